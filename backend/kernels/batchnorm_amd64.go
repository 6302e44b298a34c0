//go:build amd64

package kernels

import "golang.org/x/sys/cpu"

// The batch-norm row passes of batchnorm_amd64.s (AVX2+FMA): float32 data,
// rows of ncols (a positive multiple of 8) columns with row stride ld, one
// per-column coefficient vector per operand. They serve the channels-last
// layout (Inner == 1), where a row holds every feature once.

//go:noescape
func bnAffineAVX2(x, res, y, pre, hi, lo, coef, add *float32, rows, ncols, ld, relu int)

//go:noescape
func bnGradOutAVX2(x, gr, mask, y, mu, c1, c2, c3 *float32, rows, ncols, ld int)

//go:noescape
func bnStatsAVX2(x *float32, k, s1, s2 *float64, rows, ncols, ld int)

//go:noescape
func bnGradSumsAVX2(x, gr, mask *float32, mu, s1, s2 *float64, rows, ncols, ld int)

//go:noescape
func bnAffineBitsAVX2(x, res, y *float32, bits *uint8, hi, lo, coef, add *float32, rows, ncols, nanOff int)

//go:noescape
func bnGradOutBitsAVX2(x, gr *float32, bits *uint8, y, gm, mu, c1, c2, c3 *float32, rows, ncols, nanOff int)

//go:noescape
func bnGradSumsBitsAVX2(x, gr *float32, bits *uint8, mu, s1, s2 *float64, rows, ncols, nanOff int)

// bnHasAVX2 reports whether the CPU runs the AVX2 batch-norm passes.
var bnHasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// bnSIMD reports whether the batch-norm passes use assembly: the CPU has
// it and the selected ISA (SetISA) is not the portable one.
func bnSIMD() bool { return bnHasAVX2 && CurrentISA() != ISAGo }
