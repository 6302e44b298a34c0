// Package kernels holds the numeric kernels of sgt's CPU backend: matrix
// multiplication, convolution, pooling and batch normalisation on flat,
// row-major slices. Each kernel has a portable Go version; where an
// architecture-specific version exists (assembly, selected at run time by CPU
// feature detection) both are tested against the same simple reference.
package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Workers returns the number of goroutines kernels split their work over:
// GOMAXPROCS, or the worker count of a scaling analysis in progress.
func Workers() int {
	if a := analysis.Load(); a != nil {
		return a.workers
	}
	return runtime.GOMAXPROCS(0)
}

// parJob is one Parallel call: pieces equal chunks of [0, n), claimed by the
// calling goroutine and the pool's helpers through next. Jobs are reused:
// refs counts the caller and every copy of the pointer put on the job
// channel, and the last to release it returns it to parJobPool, so that no
// helper still holding a stale pointer can see it reused.
type parJob struct {
	fn       func(lo, hi int)
	n, chunk int
	pieces   int32
	next     atomic.Int32
	refs     atomic.Int32
	wg       sync.WaitGroup
}

// parJobPool holds released jobs.
var parJobPool = sync.Pool{New: func() any { return new(parJob) }}

// release drops one reference to j, returning it to the pool with the last.
func (j *parJob) release() {
	if j.refs.Add(-1) == 0 {
		j.fn = nil
		parJobPool.Put(j)
	}
}

// run claims and runs pieces until none is left.
func (j *parJob) run() {
	for {
		p := int(j.next.Add(1) - 1)
		if p >= int(j.pieces) {
			return
		}
		lo := p * j.chunk
		j.fn(lo, min(lo+j.chunk, j.n))
		j.wg.Done()
	}
}

// parPool is the persistent pool of helper goroutines behind Parallel. Jobs
// are offered on a buffered channel without blocking: idle helpers pick them
// up, and a helper that takes a job whose pieces are all claimed drops it.
// The caller always works on its own job too, so Parallel never waits for a
// helper to become free (nested calls cannot deadlock).
var parPool struct {
	mu      sync.Mutex
	started atomic.Int32
	jobs    chan *parJob
}

// parHelpers makes sure at least n helper goroutines run and returns the
// job channel.
func parHelpers(n int) chan *parJob {
	if int(parPool.started.Load()) >= n {
		return parPool.jobs
	}
	parPool.mu.Lock()
	defer parPool.mu.Unlock()
	if parPool.jobs == nil {
		parPool.jobs = make(chan *parJob, 64)
	}
	for int(parPool.started.Load()) < n {
		go parHelper(parPool.jobs)
		parPool.started.Add(1)
	}
	return parPool.jobs
}

// parSpin is how many times an idle helper polls for a new job, yielding
// its thread between polls, before it parks: kernels that follow each other
// closely then find it awake.
const parSpin = 100

// parHelper runs jobs from the channel for the life of the program.
func parHelper(jobs chan *parJob) {
	for {
		var j *parJob
	poll:
		for range parSpin {
			select {
			case j = <-jobs:
				break poll
			default:
				runtime.Gosched()
			}
		}
		if j == nil {
			j = <-jobs
		}
		j.run()
		j.release()
	}
}

// Parallel splits the index range [0, n) into min(Workers(), ceil(n/grain))
// contiguous chunks of nearly equal size and calls fn(lo, hi) on each chunk,
// concurrently; it returns when all chunks are done. Small ranges run inline
// on the calling goroutine. The chunks run on the calling goroutine and on a
// persistent pool of helper goroutines (no goroutine is started per call);
// fn may itself call Parallel. Chunks must not wait for each other: when
// every helper is busy, the caller runs the chunks one after the other.
func Parallel(n, grain int, fn func(lo, hi int)) {
	if a := analysis.Load(); a != nil {
		a.parallel(n, grain, fn)
		return
	}
	parallel(n, grain, fn)
}

// parallel is Parallel.
func parallel(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	workers := Workers()
	if max := (n + grain - 1) / grain; workers > max {
		workers = max
	}
	if workers <= 1 {
		fn(0, n)
		return
	}
	chunk := (n + workers - 1) / workers
	j := parJobPool.Get().(*parJob)
	j.fn, j.n, j.chunk, j.pieces = fn, n, chunk, int32((n+chunk-1)/chunk)
	j.next.Store(0)
	j.refs.Store(1)
	j.wg.Add(int(j.pieces))
	jobs := parHelpers(Workers() - 1)
	for range j.pieces - 1 {
		// Count the reference before it is visible to a helper.
		j.refs.Add(1)
		select {
		case jobs <- j:
		default:
			// Every helper is busy and the queue is full: the caller and
			// the helpers that do come take the pieces.
			j.refs.Add(-1)
		}
	}
	j.run()
	j.wg.Wait()
	// Copies of j still queued keep it from reuse: take them off the
	// channel while references other than ours remain. Another call's job
	// taken by mistake goes back (or, if the queue filled up meanwhile, is
	// run here as a helper would).
	for j.refs.Load() > 1 {
		select {
		case q := <-jobs:
			if q == j {
				j.refs.Add(-1) // all pieces are done: just drop the copy
				continue
			}
			select {
			case jobs <- q:
			default:
				q.run()
				q.release()
			}
		default:
		}
		break
	}
	j.release()
}
