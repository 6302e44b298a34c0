package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Tests of multi-output fusion: elementwise passes feeding each other merge
// into one pass with side outputs; the results must equal the unmerged
// plan ("nomultifuse") and a plain Go reference, with and without donated
// inputs overwritten in place.

func multiFuseBackends(t *testing.T) (merged, plain backends.Backend) {
	t.Helper()
	p, err := New("nomultifuse")
	if err != nil {
		t.Fatal(err)
	}
	return mustCPU(t), p
}

// scalarC adds a scalar constant of dtype dt.
func scalarC(b backends.Builder, dt dtypes.DType, v float64) backends.Op {
	var c backends.Op
	if dt == dtypes.Float32 {
		c, _ = b.Constant([]float32{float32(v)})
	} else {
		c, _ = b.Constant([]float64{v})
	}
	c, _ = b.Reshape(c)
	return c
}

// nesterovStep is SGD with momentum and weight decay, as the optimizer
// builds it: g2 = g + wd*w; m2 = mu*m + g2; w2 = w - lr*(g2 + mu*m2).
func nesterovStep(dt dtypes.DType) rawFn {
	return func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		w, g, m := p[0], p[1], p[2]
		t1, _ := b.Mul(w, scalarC(b, dt, 5e-4))
		g2, _ := b.Add(g, t1)
		t2, _ := b.Mul(m, scalarC(b, dt, 0.9))
		m2, _ := b.Add(t2, g2)
		t3, _ := b.Mul(m2, scalarC(b, dt, 0.9))
		t4, _ := b.Add(g2, t3)
		t5, _ := b.Mul(t4, scalarC(b, dt, 0.1))
		w2, err := b.Sub(w, t5)
		return []backends.Op{m2, w2}, err
	}
}

func nesterovRef(w, g, m []float64) (m2, w2 []float64) {
	m2, w2 = make([]float64, len(w)), make([]float64, len(w))
	for i := range w {
		g2 := g[i] + 5e-4*w[i]
		m2[i] = 0.9*m[i] + g2
		w2[i] = w[i] - 0.1*(g2+0.9*m2[i])
	}
	return m2, w2
}

func TestMultiFuseOptimizer(t *testing.T) {
	rng := rand.New(rand.NewPCG(71, 72))
	merged, plain := multiFuseBackends(t)
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		// 70,000 elements: several blocks, split over workers.
		dims := []int{350, 200}
		w, g, m := randHost(rng, dt, dims, -1, 1), randHost(rng, dt, dims, -1, 1), randHost(rng, dt, dims, -1, 1)
		fn := nesterovStep(dt)
		e := compileOn(t, merged, fn, w, g, m)
		if n := len(e.steps); n != 1 {
			t.Errorf("%s: %d steps, want one merged pass:\n%s", dt, n, e.describe())
		}
		if ep := compileOn(t, plain, fn, w, g, m); len(ep.steps) < 2 {
			t.Errorf("%s: nomultifuse merged the passes:\n%s", dt, ep.describe())
		}
		want, err := runRaw(plain, fn, w, g, m)
		if err != nil {
			t.Fatal(err)
		}
		m2Ref, w2Ref := nesterovRef(toF64(w.flat), toF64(g.flat), toF64(m.flat))
		// Without donation, then with w and m donated (the outputs may be
		// written over the inputs they are computed from).
		for _, donate := range [][]bool{nil, {true, false, true}} {
			bufs := make([]backends.Buffer, 3)
			for i, h := range []*hostT{w, g, m} {
				if bufs[i], err = merged.BufferFromFlatData(0, h.flat, h.shape); err != nil {
					t.Fatal(err)
				}
			}
			outs, err := e.Execute(bufs, donate, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i, ref := range [][]float64{m2Ref, w2Ref} {
				got := &hostT{shapes.Make(dt, dims...), makeSlice(dt, w.shape.Size())}
				if err := merged.BufferToFlatData(outs[i], got.flat); err != nil {
					t.Fatal(err)
				}
				if err := compareHost(got, want[i], tolFor(dt, false)); err != nil {
					t.Errorf("%s donate=%v output #%d against nomultifuse: %v", dt, donate, i, err)
				}
				refH := &hostT{got.shape, fromF64(dt, ref)}
				if err := compareHost(got, refH, tolFor(dt, true)); err != nil {
					t.Errorf("%s donate=%v output #%d against the Go reference: %v", dt, donate, i, err)
				}
			}
		}
	}
}

// TestMultiFuseForward: relu(x + b) where x + b is also read by a later
// pass and by a reduction (as in ReLU's gradient): one pass writes both.
// And a merge that would create a cycle (a pass reading a reduction of
// the value it would produce) is refused.
func TestMultiFuseForward(t *testing.T) {
	rng := rand.New(rand.NewPCG(73, 74))
	merged, plain := multiFuseBackends(t)
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		x := randHost(rng, dt, []int{64, 300}, -2, 2)
		bias := randHost(rng, dt, []int{300}, -1, 1)
		up := randHost(rng, dt, []int{64, 300}, -1, 1)
		cases := []struct {
			name      string
			fn        rawFn
			wantSteps int
		}{
			{"relu-side-output", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				bb, _ := b.BroadcastInDim(p[1], p[0].(*node).shape, []int{1})
				a, _ := b.Add(p[0], bb)
				r, _ := b.Max(a, scalarC(b, dt, 0))
				s, _ := b.ReduceSum(r, 1) // uses r: the merged pass must come first
				sq, _ := b.Mul(a, p[2])   // a later pass reading a
				g, _ := b.Tanh(sq)
				return []backends.Op{s, g}, nil
			}, 3},
			{"cycle-refused", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				a, _ := b.Exp(p[2])
				s, _ := b.ReduceSum(a, 1)
				sb, _ := b.BroadcastInDim(s, a.(*node).shape, []int{0})
				y, _ := b.Div(a, sb) // softmax: reads a and a reduction of a
				return one(b.Neg(y))
			}, 3},
		}
		for _, c := range cases {
			name := fmt.Sprintf("%s/%s", c.name, dt)
			want, err := runRaw(plain, c.fn, x, bias, up)
			if err != nil {
				t.Fatal(err)
			}
			got, err := runRaw(merged, c.fn, x, bias, up)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for i := range want {
				if err := compareHost(got[i], want[i], tolFor(dt, true)); err != nil {
					t.Errorf("%s: output #%d: %v", name, i, err)
				}
			}
			if e := compileOn(t, merged, c.fn, x, bias, up); len(e.steps) != c.wantSteps {
				t.Errorf("%s: %d steps, want %d:\n%s", name, len(e.steps), c.wantSteps, e.describe())
			}
		}
	}
}

func toF64(flat any) []float64 {
	switch f := flat.(type) {
	case []float32:
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return out
	case []float64:
		return f
	}
	panic(fmt.Sprintf("toF64: %T", flat))
}

func fromF64(dt dtypes.DType, v []float64) any {
	if dt == dtypes.Float64 {
		return v
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
		if math.IsNaN(x) {
			out[i] = float32(math.NaN())
		}
	}
	return out
}

// TestIdentityPeephole: x - 0 and x * 1 inside a fused pass cost no
// instruction, and stay exact for -0, NaN and infinities; x - (-0) is not
// an identity (-0 - -0 = +0) and is kept.
func TestIdentityPeephole(t *testing.T) {
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		vals := []float64{0, 0, math.NaN(), math.Inf(1), math.Inf(-1), 1.5, -2.25, 3}
		vals[0] = math.Copysign(0, -1) // negative zero
		x := &hostT{shapes.Make(dt, len(vals)), fromF64(dt, vals)}
		for _, c := range []struct {
			name   string
			k      float64
			op     string
			instrs int
		}{
			{"x-0", 0, "Sub", 2}, {"x*1", 1, "Mul", 2}, {"x-(-0)", math.Copysign(0, -1), "Sub", 3},
		} {
			fn := func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				var y backends.Op
				if c.op == "Sub" {
					y, _ = b.Sub(p[0], scalarC(b, dt, c.k))
				} else {
					y, _ = b.Mul(scalarC(b, dt, c.k), p[0])
				}
				e, _ := b.Neg(y)
				return one(b.Add(e, p[0]))
			}
			diffTest(t, fmt.Sprintf("%s/%s", c.name, dt), fn, tolExact, x)
			// Signs of zeros, which compareHost does not see: -(x - k)
			// against Go's arithmetic.
			got, err := runRaw(mustCPU(t), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				y, _ := b.Sub(p[0], scalarC(b, dt, c.k))
				return one(b.Neg(y))
			}, x)
			if err != nil {
				t.Fatal(err)
			}
			if c.op == "Sub" {
				for i, v := range toF64(got[0].flat) {
					want := -(vals[i] - c.k)
					if dt == dtypes.Float32 {
						want = float64(-(float32(vals[i]) - float32(c.k)))
					}
					if v == 0 && want == 0 && math.Signbit(v) != math.Signbit(want) {
						t.Errorf("%s/%s: element %d: got %g, want %g", c.name, dt, i, v, want)
					}
				}
			}
			e := compileOn(t, mustCPU(t), fn, x)
			if len(e.steps) != 1 || e.steps[0].fused == nil {
				t.Fatalf("%s: want one fused step:\n%s", c.name, e.describe())
			}
			if n := len(e.steps[0].fused.instrs); n != c.instrs {
				t.Errorf("%s/%s: %d instructions, want %d", c.name, dt, n, c.instrs)
			}
		}
	}
}

// TestMaskedMultiplyPeephole: the ReLU gradient g * NonNegativeIndicator(y)
// as GoMLX builds it (through y - 0), in float32 and float64, as one
// instruction, against simplego, with signed zeros and infinities in y and
// infinite g (inf * 0 must stay NaN).
func TestMaskedMultiplyPeephole(t *testing.T) {
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		fn := func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			y, _ := b.Sub(p[0], scalarC(b, dt, 0))
			s, _ := b.Sign(y)
			a, _ := b.Add(s, scalarC(b, dt, 1))
			ind, _ := b.Sign(a)
			return one(b.Mul(p[1], ind))
		}
		ys := []float64{-2, -0.5, math.Copysign(0, -1), 0, 0.5, 3, math.Inf(1), math.Inf(-1), -1}
		gs := []float64{1, 2, 3, 4, 5, 6, 7, 8, math.Inf(1)}
		y := &hostT{shapes.Make(dt, len(ys)), fromF64(dt, ys)}
		g := &hostT{shapes.Make(dt, len(gs)), fromF64(dt, gs)}
		diffTest(t, fmt.Sprintf("masked multiply %s", dt), fn, tolExact, y, g)
		e := compileOn(t, mustCPU(t), fn, y, g)
		if len(e.steps) != 1 || len(e.steps[0].fused.instrs) != 1 {
			t.Errorf("%s: want one fused step of one instruction:\n%s", dt, e.describe())
		}
	}
}
