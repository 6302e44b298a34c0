package kernels

import (
	"math"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestLargestChunkMatchesParallel: the chunk sizes the analysis predicts
// with are the ones Parallel uses on p threads.
func TestLargestChunkMatchesParallel(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for p := 1; p <= 8; p++ {
		runtime.GOMAXPROCS(p)
		for n := 1; n <= 70; n++ {
			for grain := 1; grain <= 9; grain += 2 {
				var mu sync.Mutex
				largest := 0
				Parallel(n, grain, func(lo, hi int) {
					mu.Lock()
					largest = max(largest, hi-lo)
					mu.Unlock()
				})
				if want := largestChunk(n, grain, p); largest != want {
					t.Fatalf("p=%d n=%d grain=%d: Parallel's largest chunk %d, largestChunk %d", p, n, grain, largest, want)
				}
			}
		}
	}
}

// spin keeps the CPU busy for about d.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// TestAnalysisPredictsAmdahl analyses a workload of a known shape: a serial
// part S and one Parallel call of 16 equal pieces P (and a nested call
// inside each piece, which must not count twice). At t threads the
// prediction is S + P*ceil(16/t)/16.
func TestAnalysisPredictsAmdahl(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	a, err := StartAnalysis(16)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StartAnalysis(4); err != ErrAnalysisRunning {
		t.Errorf("a second analysis: %v, want ErrAnalysisRunning", err)
	}
	if Workers() != 16 || runtime.GOMAXPROCS(0) != 1 {
		t.Errorf("during the analysis: Workers %d, GOMAXPROCS %d; want 16 and 1", Workers(), runtime.GOMAXPROCS(0))
	}
	const serial, piece = 40 * time.Millisecond, 10 * time.Millisecond
	spin(serial)
	Parallel(16, 1, func(lo, hi int) {
		for range hi - lo {
			Parallel(2, 1, func(lo, hi int) { spin(piece / 2 * time.Duration(hi-lo)) })
		}
	})
	s := a.Stop()
	if runtime.GOMAXPROCS(0) != procs || Workers() != procs {
		t.Errorf("after the analysis: GOMAXPROCS %d, Workers %d; want %d", runtime.GOMAXPROCS(0), Workers(), procs)
	}
	if s.Calls != 1 {
		t.Errorf("%d top-level calls, want 1 (the nested ones are part of it)", s.Calls)
	}
	par := 16 * piece
	total := serial + par
	if math.Abs(s.Seconds-total.Seconds()) > 0.3*total.Seconds() {
		t.Fatalf("analysed %.3fs, want about %.3fs (the machine is too busy to check the prediction)", s.Seconds, total.Seconds())
	}
	if got, want := s.ParallelSeconds/s.Seconds, par.Seconds()/total.Seconds(); math.Abs(got-want) > 0.1 {
		t.Errorf("parallel share %.3f, want about %.3f", got, want)
	}
	for _, pt := range s.Predicted {
		chunk := (16 + pt.Threads - 1) / pt.Threads
		want := (s.Seconds - s.ParallelSeconds) + s.ParallelSeconds*float64(chunk)/16
		if math.Abs(pt.Seconds-want) > 1e-9*want || math.Abs(pt.Speedup-s.Seconds/want) > 1e-9 {
			t.Errorf("at %d threads: %.4fs (speedup %.3f), want %.4fs", pt.Threads, pt.Seconds, pt.Speedup, want)
		}
	}
	if got := []int{s.Predicted[0].Threads, s.Predicted[len(s.Predicted)-1].Threads}; got[0] != 1 || got[1] != 16 || len(s.Predicted) != 5 {
		t.Errorf("predicted at %v, want 1, 2, 4, 8, 16", s.Predicted)
	}
}
