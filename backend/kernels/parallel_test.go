package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkCover runs Parallel(n, grain) and checks that every index is visited
// exactly once, by at most Workers() chunks of contiguous indices.
func checkCover(t *testing.T, n, grain int) {
	t.Helper()
	hits := make([]atomic.Int32, max(n, 0))
	var chunks atomic.Int32
	Parallel(n, grain, func(lo, hi int) {
		chunks.Add(1)
		if lo >= hi || lo < 0 || hi > n {
			t.Errorf("n=%d grain=%d: bad chunk [%d, %d)", n, grain, lo, hi)
			return
		}
		for i := lo; i < hi; i++ {
			hits[i].Add(1)
		}
	})
	for i := range hits {
		if h := hits[i].Load(); h != 1 {
			t.Fatalf("n=%d grain=%d: index %d visited %d times", n, grain, i, h)
		}
	}
	if c := int(chunks.Load()); c > max(Workers(), 1) || (n > 0 && c < 1) {
		t.Fatalf("n=%d grain=%d: %d chunks with %d workers", n, grain, c, Workers())
	}
}

func TestParallelCovers(t *testing.T) {
	for _, procs := range []int{1, 2, 3, 5} {
		old := runtime.GOMAXPROCS(procs)
		for _, n := range []int{0, 1, 2, 3, 7, 64, 1000} {
			for _, grain := range []int{0, 1, 3, 100, 5000} {
				checkCover(t, n, grain)
			}
		}
		runtime.GOMAXPROCS(old)
	}
}

// TestParallelNestedAndConcurrent calls Parallel from inside Parallel and
// from many goroutines at once: the calling goroutine always takes part in
// its own job, so nothing waits on a busy pool.
func TestParallelNestedAndConcurrent(t *testing.T) {
	old := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(old)
	var total atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				Parallel(8, 1, func(lo, hi int) {
					for range hi - lo {
						Parallel(10, 1, func(lo, hi int) { total.Add(int64(hi - lo)) })
					}
				})
			}
		}()
	}
	wg.Wait()
	if want := int64(16 * 20 * 8 * 10); total.Load() != want {
		t.Fatalf("total = %d, want %d", total.Load(), want)
	}
}

// TestParallelRunsConcurrently checks that the chunks of one call really
// run at the same time on a pool helper.
func TestParallelRunsConcurrently(t *testing.T) {
	old := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(old)
	// Each chunk waits a bounded time for the other to start, so the test can
	// never hang (chunks must not depend on each other); at least one of the
	// iterations must see both chunks running at once.
	overlapped := 0
	for range 50 {
		var arrived atomic.Int32
		var both atomic.Bool
		Parallel(2, 1, func(lo, hi int) {
			arrived.Add(1)
			deadline := time.Now().Add(200 * time.Millisecond)
			for arrived.Load() < 2 && time.Now().Before(deadline) {
				runtime.Gosched()
			}
			if arrived.Load() == 2 {
				both.Store(true)
			}
		})
		if both.Load() {
			overlapped++
		}
	}
	if overlapped == 0 {
		t.Fatal("Parallel never ran its two chunks at the same time in 50 tries")
	}
}
