package kernels

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A scaling analysis predicts, from a run on one thread, how a stretch of
// work would scale to more threads. While it runs, Workers returns the
// analysis's worker count, so that every kernel splits its work as it would
// on that many threads, and each top-level Parallel call (not one nested in
// another) is timed. The time outside Parallel is serial. At P threads a
// call of range n and grain g runs as min(P, ceil(n/g)) chunks of
// ceil(n/chunks) indices, so its time is predicted as its one-thread time
// times the largest chunk's share of n. The prediction is an upper bound
// of the speedup: it assumes that the indices of a call cost the same, and
// it ignores memory bandwidth, caches and the cost of waking helpers.

// analysis is the scaling analysis in progress, or nil.
var analysis atomic.Pointer[Analysis]

// Analysis is a scaling analysis in progress (StartAnalysis).
type Analysis struct {
	workers      int
	threads      []int
	start        time.Time
	depth        atomic.Int32
	restoreProcs int

	mu         sync.Mutex
	calls      int
	inParallel time.Duration
	predicted  []float64 // seconds of the parallel part at threads[i]
}

// ScalingPoint is the predicted time of the analysed work at Threads threads.
type ScalingPoint struct {
	Threads    int     `json:"threads"`
	Seconds    float64 `json:"seconds"`
	Speedup    float64 `json:"speedup"`    // one-thread time / Seconds
	Efficiency float64 `json:"efficiency"` // Speedup / Threads
}

// Scaling is the result of a scaling analysis.
type Scaling struct {
	Workers         int            `json:"workers"`          // the worker count the kernels split for
	Seconds         float64        `json:"seconds"`          // wall time on one thread
	ParallelSeconds float64        `json:"parallel_seconds"` // of which in top-level Parallel calls
	SerialFraction  float64        `json:"serial_fraction"`  // 1 - ParallelSeconds/Seconds
	Calls           int            `json:"calls"`            // top-level Parallel calls
	Predicted       []ScalingPoint `json:"predicted"`        // at 1, 2, 4, ... threads up to Workers
}

// ErrAnalysisRunning is returned by StartAnalysis while another runs.
var ErrAnalysisRunning = errors.New("kernels: a scaling analysis is already running")

// StartAnalysis starts a scaling analysis for workers workers (at least 2).
// It sets GOMAXPROCS to 1 until Stop, so that the kernels' own time is
// measured without contention.
func StartAnalysis(workers int) (*Analysis, error) {
	if workers < 2 {
		return nil, errors.New("kernels: a scaling analysis needs at least 2 workers")
	}
	a := &Analysis{workers: workers}
	for p := 1; p < workers; p *= 2 {
		a.threads = append(a.threads, p)
	}
	a.threads = append(a.threads, workers)
	a.predicted = make([]float64, len(a.threads))
	if !analysis.CompareAndSwap(nil, a) {
		return nil, ErrAnalysisRunning
	}
	a.restoreProcs = runtime.GOMAXPROCS(1)
	a.start = time.Now()
	return a, nil
}

// Stop ends the analysis and returns its result.
func (a *Analysis) Stop() Scaling {
	wall := time.Since(a.start).Seconds()
	analysis.CompareAndSwap(a, nil)
	runtime.GOMAXPROCS(a.restoreProcs)
	a.mu.Lock()
	defer a.mu.Unlock()
	par := a.inParallel.Seconds()
	serial := max(wall-par, 0)
	s := Scaling{Workers: a.workers, Seconds: wall, ParallelSeconds: par, Calls: a.calls}
	if wall > 0 {
		s.SerialFraction = serial / wall
	}
	for i, p := range a.threads {
		pt := ScalingPoint{Threads: p, Seconds: serial + a.predicted[i]}
		if pt.Seconds > 0 {
			pt.Speedup = wall / pt.Seconds
			pt.Efficiency = pt.Speedup / float64(p)
		}
		s.Predicted = append(s.Predicted, pt)
	}
	return s
}

// parallel runs and, when it is a top-level call, times a Parallel call.
func (a *Analysis) parallel(n, grain int, fn func(lo, hi int)) {
	if a.depth.Add(1) != 1 {
		parallel(n, grain, fn)
		a.depth.Add(-1)
		return
	}
	t0 := time.Now()
	parallel(n, grain, fn)
	d := time.Since(t0)
	a.depth.Add(-1)
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	a.inParallel += d
	for i, p := range a.threads {
		a.predicted[i] += d.Seconds() * float64(largestChunk(n, grain, p)) / float64(n)
	}
}

// largestChunk returns the largest chunk of Parallel(n, grain, ...) on p
// threads.
func largestChunk(n, grain, p int) int {
	w := min(p, (n+grain-1)/grain)
	return (n + w - 1) / w
}
