package kernels

import (
	"sync/atomic"
	"testing"
)

// BenchmarkParallelOverhead measures the cost of one Parallel call that is
// split over the workers but does almost no work: the dispatch overhead that
// small elementwise ops pay.
func BenchmarkParallelOverhead(b *testing.B) {
	var sink atomic.Int64
	b.ReportAllocs()
	for b.Loop() {
		Parallel(2*Workers(), 1, func(lo, hi int) { sink.Add(int64(hi - lo)) })
	}
	if sink.Load() == 0 {
		b.Fatal("Parallel ran nothing")
	}
}

// BenchmarkParallelSmallOp is a 64K-element float32 scale split over the
// workers, the size of a small batch-norm or ReLU pass.
func BenchmarkParallelSmallOp(b *testing.B) {
	x := make([]float32, 1<<16)
	b.SetBytes(int64(8 * len(x)))
	for b.Loop() {
		Parallel(len(x), 4096, func(lo, hi int) {
			for i := range x[lo:hi] {
				x[lo+i] = x[lo+i]*0.5 + 1
			}
		})
	}
}
