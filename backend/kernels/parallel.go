// Package kernels holds the numeric kernels of sgt's CPU backend: matrix
// multiplication, convolution, pooling and batch normalisation on flat,
// row-major slices. Each kernel has a portable Go version; where an
// architecture-specific version exists (assembly, selected at run time by CPU
// feature detection) both are tested against the same simple reference.
package kernels

import (
	"runtime"
	"sync"
)

// Workers returns the number of goroutines kernels split their work over.
func Workers() int { return runtime.GOMAXPROCS(0) }

// Parallel splits the index range [0, n) into contiguous chunks of at least
// grain indices and calls fn(lo, hi) on each chunk, using up to Workers()
// goroutines; it returns when all chunks are done. Small ranges run inline on
// the calling goroutine.
func Parallel(n, grain int, fn func(lo, hi int)) {
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
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, hi)
	}
	fn(0, min(chunk, n))
	wg.Wait()
}
