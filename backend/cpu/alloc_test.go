package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

// TestSteadyStateAllocs: once warm, executing a compiled training-like
// graph (a dense layer, its weight gradient as a contraction, a fused
// update) allocates a small, fixed number of objects per call (result
// buffer headers, kernel bookkeeping), independent of the problem size: no
// allocation per step block or element. (Before the fused engine passed its
// block views by pointer it made ~230 allocations here, growing with size.)
func TestSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector: sync.Pool drops entries at random")
	}
	rng := rand.New(rand.NewPCG(61, 62))
	be := mustCPU(t)
	allocsFor := func(rows int) float64 {
		fn := func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			// h = relu(x·w); dw = sum_b x[b,:] ⊗ h[b,:]; w' = w - 0.1 dw.
			h, err := b.DotGeneral(p[0], []int{1}, nil, p[1], []int{0}, nil)
			if err != nil {
				return nil, err
			}
			zero, _ := b.Constant([]float32{0})
			zero, _ = b.Reshape(zero)
			h, _ = b.Max(h, zero)
			xs, _ := b.Reshape(p[0], rows, 300, 1)
			hs, _ := b.Reshape(h, rows, 1, 200)
			m, _ := b.Mul(xs, hs)
			dw, err := b.ReduceSum(m, 0)
			if err != nil {
				return nil, err
			}
			lr, _ := b.Constant([]float32{0.1})
			lr, _ = b.Reshape(lr)
			step, _ := b.Mul(dw, lr)
			w2, _ := b.Sub(p[1], step)
			hh, _ := b.Mul(h, h)
			s, _ := b.ReduceSum(hh)
			return []backends.Op{w2, s}, nil
		}
		x := randHost(rng, dtypes.Float32, []int{rows, 300}, -1, 1)
		w := randHost(rng, dtypes.Float32, []int{300, 200}, -1, 1)
		e := compileOn(t, be, fn, x, w)
		defer e.Finalize()
		xb, _ := be.BufferFromFlatData(0, x.flat, x.shape)
		wb, _ := be.BufferFromFlatData(0, w.flat, w.shape)
		run := func() {
			outs, err := e.Execute([]backends.Buffer{xb, wb}, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range outs {
				_ = be.BufferFinalize(o)
			}
		}
		run()
		allocs := testing.AllocsPerRun(10, run)
		t.Logf("rows=%d: %.1f allocations per Execute (%d steps)", rows, allocs, len(e.steps))
		return allocs
	}
	small, large := allocsFor(16), allocsFor(512)
	if large > small+4 {
		t.Errorf("allocations grow with the problem size: %.1f for 16 rows, %.1f for 512", small, large)
	}
	if large > 40 {
		t.Errorf("%.1f allocations per Execute, want <= 40", large)
	}
}
