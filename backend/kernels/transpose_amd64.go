//go:build amd64

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// transpose8x8AVX2 transposes nb 8x8 blocks of 4-byte elements (see
// transpose_amd64.s): block b reads 8 rows of 8 elements at src + 32*b +
// r*sl and writes row c of its transpose at dst + 8*b*dq + c*dq (strides in
// bytes).
//
//go:noescape
func transpose8x8AVX2(src, dst unsafe.Pointer, sl, dq, nb int)

// transposeHasAVX2 reports whether the CPU runs transpose8x8AVX2.
var transposeHasAVX2 = cpu.X86.HasAVX2

// transposeSIMD reports whether Transpose uses the assembly 8x8 blocks for
// 4-byte elements: the CPU has AVX2 and the selected ISA is not the
// portable one.
func transposeSIMD() bool { return transposeHasAVX2 && CurrentISA() != ISAGo }
