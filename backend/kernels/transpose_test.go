package kernels

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// refTranspose is the element-by-element definition of Transpose.
func refTranspose[T any](src []T, dims, perm []int) []T {
	r := len(dims)
	sStr := make([]int, r)
	st := 1
	for a := r - 1; a >= 0; a-- {
		sStr[a] = st
		st *= dims[a]
	}
	dd := make([]int, r)
	for a, p := range perm {
		dd[a] = dims[p]
	}
	out := make([]T, len(src))
	idx := make([]int, r)
	for i := range out {
		s := 0
		for a, v := range idx {
			s += v * sStr[perm[a]]
		}
		out[i] = src[s]
		transposeNext(idx, dd)
	}
	return out
}

func TestTransposeMatchesReference(t *testing.T) {
	// The ISA selects the assembly 8x8 blocks for 4-byte elements or the
	// portable loops.
	forEachISA(t, testTransposeMatchesReference)
}

func testTransposeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct{ dims, perm []int }{
		{[]int{7, 5}, []int{1, 0}},
		{[]int{64, 96}, []int{1, 0}},
		{[]int{33, 65}, []int{1, 0}},
		{[]int{2, 3, 4}, []int{2, 0, 1}},
		{[]int{4, 1, 3, 1}, []int{3, 2, 1, 0}},
		{[]int{3, 4, 5}, []int{0, 1, 2}},       // identity
		{[]int{3, 4, 5, 6}, []int{0, 2, 1, 3}}, // last axis kept: runs
		{[]int{2, 3, 4, 5}, []int{1, 0, 3, 2}},
		// Convolution layout changes: NHWC <-> CHWN, NHWC -> HWNC, HWIO -> HWOI.
		{[]int{16, 8, 8, 24}, []int{3, 1, 2, 0}},
		{[]int{16, 8, 8, 24}, []int{1, 2, 0, 3}},
		{[]int{3, 3, 40, 36}, []int{0, 1, 3, 2}},
		{[]int{128, 9, 9, 16}, []int{3, 1, 2, 0}}, // large: split over workers
		{[]int{40, 3, 19}, []int{2, 1, 0}},        // 8x8 blocks plus both edges
		{[]int{19, 70}, []int{1, 0}},
		{[]int{5}, []int{0}},
		{[]int{0, 3}, []int{1, 0}},
	}
	for range 20 {
		r := 1 + rng.IntN(5)
		dims := make([]int, r)
		for a := range dims {
			dims[a] = 1 + rng.IntN(9)
		}
		cases = append(cases, struct{ dims, perm []int }{dims, rng.Perm(r)})
	}
	for _, c := range cases {
		n := 1
		for _, d := range c.dims {
			n *= d
		}
		src32 := make([]float32, n)
		src64 := make([]int64, n)
		for i := range src32 {
			src32[i] = float32(i)
			src64[i] = int64(i) * 3
		}
		dst32 := make([]float32, n)
		if err := Transpose(src32, dst32, c.dims, c.perm); err != nil {
			t.Fatalf("dims %v perm %v: %v", c.dims, c.perm, err)
		}
		if want := refTranspose(src32, c.dims, c.perm); !slices.Equal(dst32, want) {
			t.Fatalf("float32 dims %v perm %v: got %v, want %v", c.dims, c.perm, dst32[:min(n, 20)], want[:min(n, 20)])
		}
		src4 := make([]int32, n)
		for i := range src4 {
			src4[i] = int32(i)
		}
		dst4 := make([]int32, n)
		if err := Transpose(src4, dst4, c.dims, c.perm); err != nil {
			t.Fatalf("dims %v perm %v: %v", c.dims, c.perm, err)
		}
		if want := refTranspose(src4, c.dims, c.perm); !slices.Equal(dst4, want) {
			t.Fatalf("int32 dims %v perm %v: result differs from reference", c.dims, c.perm)
		}
		dst64 := make([]int64, n)
		if err := Transpose(src64, dst64, c.dims, c.perm); err != nil {
			t.Fatalf("dims %v perm %v: %v", c.dims, c.perm, err)
		}
		if want := refTranspose(src64, c.dims, c.perm); !slices.Equal(dst64, want) {
			t.Fatalf("int64 dims %v perm %v: result differs from reference", c.dims, c.perm)
		}
	}
}

func TestTransposeErrors(t *testing.T) {
	x := make([]float32, 6)
	for _, c := range []struct {
		dims, perm []int
		n          int
	}{
		{[]int{2, 3}, []int{0}, 6},
		{[]int{2, 3}, []int{0, 0}, 6},
		{[]int{2, 3}, []int{0, 2}, 6},
		{[]int{2, 3}, []int{1, 0}, 5},
		{[]int{-2, 3}, []int{1, 0}, 6},
	} {
		if err := Transpose(x[:c.n], make([]float32, 6), c.dims, c.perm); err == nil {
			t.Errorf("dims %v perm %v with %d elements: no error", c.dims, c.perm, c.n)
		}
	}
}

// BenchmarkTransposeNHWCToCHWN is the layout change backend/cpu did around
// kernel-gradient convolutions: [128, 32, 32, 16] -> [16, 32, 32, 128].
func BenchmarkTransposeNHWCToCHWN(b *testing.B) {
	dims := []int{128, 32, 32, 16}
	src := make([]float32, 128*32*32*16)
	dst := make([]float32, len(src))
	b.SetBytes(int64(8 * len(src)))
	cpu0 := processCPUTime()
	for b.Loop() {
		if err := Transpose(src, dst, dims, []int{3, 1, 2, 0}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPUTime(b, cpu0)
}

// reportCPUTime reports the process CPU time per operation (cpu-us/op),
// which other load on the machine does not inflate the way it does wall
// time.
func reportCPUTime(b *testing.B, cpu0 time.Duration) {
	if cpu := processCPUTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
	}
}

// BenchmarkTransposeCopyBaseline copies the same 8 MiB as
// BenchmarkTransposeNHWCToCHWN with copy (split like Transpose's workers):
// the memory-bandwidth bound a transpose can approach.
func BenchmarkTransposeCopyBaseline(b *testing.B) {
	src := make([]float32, 128*32*32*16)
	dst := make([]float32, len(src))
	b.SetBytes(int64(8 * len(src)))
	for b.Loop() {
		Parallel(len(src), transposeGrain, func(lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
	}
}

// BenchmarkTransposeCHWNToNHWC is the inverse layout change, [16, 32, 32,
// 128] -> [128, 32, 32, 16].
func BenchmarkTransposeCHWNToNHWC(b *testing.B) {
	src := make([]float32, 128*32*32*16)
	dst := make([]float32, len(src))
	b.SetBytes(int64(8 * len(src)))
	cpu0 := processCPUTime()
	for b.Loop() {
		if err := Transpose(src, dst, []int{16, 32, 32, 128}, []int{3, 1, 2, 0}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPUTime(b, cpu0)
}
