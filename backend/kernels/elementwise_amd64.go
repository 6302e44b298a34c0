//go:build amd64

package kernels

import "golang.org/x/sys/cpu"

// The AVX2 loops of elementwise_amd64.s; n is a positive multiple of 8.

//go:noescape
func addAVX2(dst, a, b *float32, n int)

//go:noescape
func mulNonNegAVX2(dst, gr, y *float32, n int)

// elemHasAVX2 reports whether the CPU runs the AVX2 elementwise loops.
var elemHasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// elemSIMD reports whether the elementwise kernels use assembly: the CPU
// has it and the selected ISA (SetISA) is not the portable one.
func elemSIMD() bool { return elemHasAVX2 && CurrentISA() != ISAGo }
