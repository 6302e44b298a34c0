package kernels

import (
	"fmt"
	"slices"
	"testing"
)

// checkTransposeType transposes a tensor of element type T, built by
// value(i), against the reference.
func checkTransposeType[T comparable](t *testing.T, dims, perm []int, value func(i int) T) {
	t.Helper()
	n := 1
	for _, d := range dims {
		n *= d
	}
	src, dst := make([]T, n), make([]T, n)
	for i := range src {
		src[i] = value(i)
	}
	if err := Transpose(src, dst, dims, perm); err != nil {
		t.Fatalf("%T dims %v perm %v: %v", src, dims, perm, err)
	}
	if want := refTranspose(src, dims, perm); !slices.Equal(dst, want) {
		t.Fatalf("%T dims %v perm %v: result differs from the reference", src, dims, perm)
	}
}

// TestTransposeElementTypes covers every element size Transpose moves as
// words (1, 2, 4, 8 and 16 bytes), a type with pointers (which gets a job
// of its own) and ranks above the fixed index arrays.
func TestTransposeElementTypes(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		cases := []struct{ dims, perm []int }{
			{[]int{16, 8, 8, 24}, []int{3, 1, 2, 0}}, // tiles
			{[]int{3, 4, 5, 6}, []int{0, 2, 1, 3}},   // runs
			{[]int{40, 3, 19}, []int{2, 1, 0}},
		}
		// Rank 14 (> transposeMaxRank) with axes of size 1 and 2.
		big := make([]int, 14)
		for a := range big {
			big[a] = 1 + a%2
		}
		cases = append(cases, struct{ dims, perm []int }{big, []int{13, 0, 12, 1, 11, 2, 10, 3, 9, 4, 8, 5, 7, 6}})
		cases = append(cases, struct{ dims, perm []int }{[]int{2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3},
			[]int{13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}})
		for _, c := range cases {
			checkTransposeType(t, c.dims, c.perm, func(i int) uint8 { return uint8(i * 7) })
			checkTransposeType(t, c.dims, c.perm, func(i int) bool { return i%3 == 0 })
			checkTransposeType(t, c.dims, c.perm, func(i int) int16 { return int16(i - 500) })
			checkTransposeType(t, c.dims, c.perm, func(i int) float32 { return float32(i) / 3 })
			checkTransposeType(t, c.dims, c.perm, func(i int) float64 { return float64(i) / 7 })
			checkTransposeType(t, c.dims, c.perm, func(i int) complex128 { return complex(float64(i), -float64(i)) })
			checkTransposeType(t, c.dims, c.perm, func(i int) string { return fmt.Sprint(i) })
			checkTransposeType(t, c.dims, c.perm, func(i int) [3]byte { return [3]byte{byte(i), byte(i >> 8), 1} })
		}
	})
}
