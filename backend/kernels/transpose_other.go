//go:build !amd64

package kernels

import "unsafe"

// transposeSIMD reports whether Transpose uses assembly: never on this
// architecture.
func transposeSIMD() bool { return false }

func transpose8x8AVX2(src, dst unsafe.Pointer, sl, dq, nb int) {
	panic("kernels: transpose8x8AVX2 called without assembly support")
}
