package kernels

import (
	"runtime"
	"testing"
)

// mallocsPerCall runs f calls times and returns the heap allocations per
// call, counted over the whole process.
func mallocsPerCall(calls int, f func()) float64 {
	// Collect first, so that no collection started by earlier allocations
	// empties the pools during the count.
	runtime.GC()
	for range 20 {
		f() // warm the pools
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range calls {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(calls)
}

// TestSteadyStateAllocs checks that repeated GEMMs (serial and every
// parallel split), Transposes and Parallel calls do not allocate: a pooled workspace
// refilled after a garbage collection may, so the bound is half an
// allocation per call (each call used to make 2 to 7).
func TestSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	// At least two workers, so that the parallel splits run.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	fn := func(lo, hi int) {}
	if got := mallocsPerCall(500, func() { Parallel(64, 1, fn) }); got > 0.5 {
		t.Errorf("Parallel: %.2f allocations per call, want 0", got)
	}
	src, dst := make([]float32, 128*32*32*16), make([]float32, 128*32*32*16)
	for _, tr := range []struct{ dims, perm []int }{
		{[]int{128, 32, 32, 16}, []int{3, 1, 2, 0}}, // tiles
		{[]int{128, 32, 32, 16}, []int{1, 2, 0, 3}}, // runs
	} {
		var err error
		got := mallocsPerCall(20, func() {
			if e := Transpose(src, dst, tr.dims, tr.perm); e != nil {
				err = e
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if got > 0.5 {
			t.Errorf("Transpose %v perm %v: %.2f allocations per call, want 0", tr.dims, tr.perm, got)
		}
	}
	shapes := []struct {
		name    string
		m, n, k int
		transA  bool
	}{
		{"serial", 16, 16, 16, false},
		{"rows-dynamic", 4096, 16, 144, false},
		{"rows-shared", 128, 256, 784, false},
		{"strips", 16, 2048, 64, false},
		{"split-k", 16, 144, 4096, false},
		{"swapped", 784, 256, 128, true},
	}
	for _, s := range shapes {
		a, b, c := make([]float32, s.m*s.k), make([]float32, s.k*s.n), make([]float32, s.m*s.n)
		lda := s.k
		if s.transA {
			lda = s.m
		}
		var err error
		got := mallocsPerCall(100, func() {
			if e := GemmF32(s.transA, false, s.m, s.n, s.k, 1, a, lda, b, s.n, 0, c, s.n); e != nil {
				err = e
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if got > 0.5 {
			t.Errorf("GemmF32 %s %dx%dx%d: %.2f allocations per call, want 0", s.name, s.m, s.n, s.k, got)
		}
	}
}
