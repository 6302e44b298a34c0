package cpu

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/notimplemented"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Tests of the graph compiler: fusion, dead-code elimination, buffer
// planning, donation, concurrency and error reporting.

// compileRaw builds and compiles fn on our backend with the given parameter
// shapes.
func compileRaw(t *testing.T, fn rawFn, params ...shapes.Shape) *Executable {
	t.Helper()
	b := mustCPU(t).Builder("test")
	ps := make([]backends.Op, len(params))
	for i, s := range params {
		var err error
		if ps[i], err = b.Parameter(fmt.Sprintf("p%d", i), s, nil); err != nil {
			t.Fatal(err)
		}
	}
	outs, err := fn(b, ps)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := b.Compile(outs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return exec.(*Executable)
}

func stepNames(e *Executable) []string {
	var names []string
	for _, st := range e.steps {
		names = append(names, st.name)
	}
	return names
}

func TestFusionAndDCE(t *testing.T) {
	// tanh(2x + broadcast(bias)) and an unused branch: one fused step, and
	// the broadcast is read through, never materialized.
	e := compileRaw(t, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		two, _ := b.Constant([]float32{2})
		two, _ = b.Reshape(two)
		m, _ := b.Mul(p[0], two)
		bias, _ := b.BroadcastInDim(p[1], shapesF32(64, 33), []int{1})
		a, _ := b.Add(m, bias)
		_, _ = b.Exp(a) // dead
		return one(b.Tanh(a))
	}, shapesF32(64, 33), shapesF32(33))
	if names := stepNames(e); len(names) != 1 || !strings.HasPrefix(names[0], "fused") {
		t.Errorf("want a single fused step, got %v", names)
	}
	// A value used twice inside one cluster stays in the cluster; a value
	// also used by a non-elementwise op is materialized.
	e = compileRaw(t, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		z, _ := b.Exp(p[0])
		zz, _ := b.Mul(z, z)
		s, _ := b.Add(z, zz)
		w, _ := b.Logistic(p[0])
		r, _ := b.ReduceSum(w, 0)
		w2, _ := b.Neg(w)
		return []backends.Op{s, r, w2}, nil
	}, shapesF32(16, 8))
	want := []string{"fused(Add)", "fused(Logistic)", "ReduceSum", "fused(Neg)"}
	if got := stepNames(e); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("steps %v, want %v", got, want)
	}
	// And the results are right.
	x := &hostT{shapesF32(16, 8), make([]float32, 128)}
	for i := range 128 {
		x.flat.([]float32)[i] = float32(i%11)/5 - 1
	}
	diffTest(t, "fusion", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		z, _ := b.Exp(p[0])
		zz, _ := b.Mul(z, z)
		s, _ := b.Add(z, zz)
		w, _ := b.Logistic(p[0])
		r, _ := b.ReduceSum(w, 0)
		w2, _ := b.Neg(w)
		return []backends.Op{s, r, w2}, nil
	}, tolAcc32, x)
}

func TestBufferPlanning(t *testing.T) {
	// A chain of 12 non-fusable ops on a large tensor: liveness lets the
	// arena reuse a couple of slots instead of one per value.
	const n = 12
	e := compileRaw(t, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		x := p[0]
		for i := range n {
			var err error
			if i%2 == 0 {
				x, err = b.Transpose(x, 1, 0)
			} else {
				x, err = b.Reverse(x, 0)
			}
			if err != nil {
				return nil, err
			}
		}
		return one(b.ReduceSum(x))
	}, shapesF32(300, 200))
	if len(e.steps) != n+1 {
		t.Fatalf("steps: %v", stepNames(e))
	}
	if len(e.slotWords) > 2 {
		t.Errorf("%d arena slots for a chain, want <= 2:\n%s", len(e.slotWords), e.describe())
	}
	// Elementwise steps write in place over a dying input of the same size.
	e = compileRaw(t, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		x, _ := b.Transpose(p[0], 1, 0)
		r, _ := b.Reverse(x, 0)
		y, _ := b.Exp(r) // r dies here: same slot
		return one(b.Transpose(y, 1, 0))
	}, shapesF32(30, 20))
	r, y := e.steps[1].outs[0], e.steps[2].outs[0]
	if e.values[r].slot != e.values[y].slot {
		t.Errorf("elementwise step did not reuse its input's slot:\n%s", e.describe())
	}
}

func TestDonationAndOutputs(t *testing.T) {
	be := mustCPU(t)
	// w' = w - 0.5*g, with w donated: the output reuses w's memory.
	e := compileRaw(t, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		h, _ := b.Constant([]float32{0.5})
		h, _ = b.Reshape(h)
		d, _ := b.Mul(p[1], h)
		w, _ := b.Sub(p[0], d)
		return []backends.Op{w, p[1]}, nil // also pass g through
	}, shapesF32(1000), shapesF32(1000))
	w, _ := be.BufferFromFlatData(0, make([]float32, 1000), shapesF32(1000))
	gFlat := make([]float32, 1000)
	for i := range gFlat {
		gFlat[i] = float32(i)
	}
	g, _ := be.BufferFromFlatData(0, gFlat, shapesF32(1000))
	wData, _ := be.BufferData(w)
	gData, _ := be.BufferData(g)
	outs, err := e.Execute([]backends.Buffer{w, g}, []bool{true, false}, 0)
	if err != nil {
		t.Fatal(err)
	}
	outW, _ := be.BufferData(outs[0])
	outG, _ := be.BufferData(outs[1])
	if &outW.([]float32)[0] != &wData.([]float32)[0] {
		t.Errorf("donated w was not reused for the update")
	}
	if &outG.([]float32)[0] == &gData.([]float32)[0] {
		t.Errorf("non-donated pass-through output aliases its input")
	}
	if outW.([]float32)[10] != -5 || outG.([]float32)[10] != 10 {
		t.Errorf("wrong values: w'[10]=%g g[10]=%g", outW.([]float32)[10], outG.([]float32)[10])
	}
	if _, err := be.BufferShape(w); err == nil {
		t.Errorf("donated buffer still valid")
	}
	if _, err := e.Execute([]backends.Buffer{w, g}, nil, 0); err == nil || !strings.Contains(err.Error(), "donated") {
		t.Errorf("executing with a donated buffer: err=%v", err)
	}
	// Donated pass-through: handed over without a copy.
	w2, _ := be.BufferFromFlatData(0, make([]float32, 1000), shapesF32(1000))
	g2, _ := be.BufferFromFlatData(0, gFlat, shapesF32(1000))
	g2Data, _ := be.BufferData(g2)
	outs, err = e.Execute([]backends.Buffer{w2, g2}, []bool{false, true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := be.BufferData(outs[1]); &o.([]float32)[0] != &g2Data.([]float32)[0] {
		t.Errorf("donated pass-through output was copied")
	}
}

func TestConcurrentExecute(t *testing.T) {
	be := mustCPU(t)
	e := compileRaw(t, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		x, _ := b.Transpose(p[0], 1, 0)
		s, _ := b.ReduceSum(x, 1)
		return one(b.Mul(s, s))
	}, shapesF32(200, 300))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			flat := make([]float32, 200*300)
			for i := range flat {
				flat[i] = float32(g)
			}
			for range 20 {
				in, _ := be.BufferFromFlatData(0, flat, shapesF32(200, 300))
				outs, err := e.Execute([]backends.Buffer{in}, nil, 0)
				if err != nil {
					errs <- err
					return
				}
				got := make([]float32, 300)
				_ = be.BufferToFlatData(outs[0], got)
				want := float32(200*g) * float32(200*g)
				for _, v := range got {
					if v != want {
						errs <- fmt.Errorf("goroutine %d: got %g, want %g", g, v, want)
						return
					}
				}
				_ = be.BufferFinalize(outs[0])
				_ = be.BufferFinalize(in)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestErrors(t *testing.T) {
	be := mustCPU(t)
	e := compileRaw(t, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		return one(b.Neg(p[0]))
	}, shapesF32(3))
	bad, _ := be.BufferFromFlatData(0, []float32{1, 2}, shapesF32(2))
	if _, err := e.Execute([]backends.Buffer{bad}, nil, 0); err == nil || !strings.Contains(err.Error(), `"p0"`) {
		t.Errorf("wrong input shape: err=%v", err)
	}
	if _, err := e.Execute(nil, nil, 0); err == nil {
		t.Errorf("missing inputs accepted")
	}
	_ = be.BufferFinalize(bad)
	if err := be.BufferFinalize(bad); err == nil {
		t.Errorf("double finalize accepted")
	}
	if _, err := be.BufferFromFlatData(0, []float32{1}, shapesF32(2)); err == nil {
		t.Errorf("size mismatch accepted")
	}
	if _, err := be.BufferFromFlatData(1, []float32{1}, shapesF32(1)); err == nil {
		t.Errorf("device 1 accepted")
	}
	b := be.Builder("errors")
	x, _ := b.Parameter("x", shapesF32(2, 3), nil)
	y, _ := b.Parameter("y", shapes.Make(dtypes.Float64, 2, 3), nil)
	if _, err := b.Add(x, y); err == nil {
		t.Errorf("Add of mixed dtypes accepted")
	}
	if _, err := b.Reshape(x, 4); err == nil {
		t.Errorf("bad reshape accepted")
	}
	if _, err := b.ConvGeneral(x, x, backends.ConvolveAxesConfig{}, nil, nil, nil, nil, 1, 1); err == nil {
		t.Errorf("bad conv accepted")
	}
	other := be.Builder("other")
	if _, err := other.Neg(x); err == nil || !strings.Contains(err.Error(), "another builder") {
		t.Errorf("op from another builder: err=%v", err)
	}
	if _, err := b.FFT(x, backends.FFTForward, []int{3}); !errors.Is(err, notimplemented.NotImplementedError) {
		t.Errorf("FFT: want a not-implemented error, got %v", err)
	}
	if _, err := b.Parameter("f16", shapes.Make(dtypes.Float16, 2), nil); err == nil || !strings.Contains(err.Error(), "f16") {
		t.Errorf("unsupported dtype: err=%v", err)
	}
}

// TestCapabilities checks that the reported ops are exactly the implemented
// ones: every listed op has a kernel (or is compiled without one), and every
// kernel is listed.
func TestCapabilities(t *testing.T) {
	c := mustCPU(t).Capabilities()
	structural := map[backends.OpType]bool{backends.OpTypeParameter: true, backends.OpTypeConstant: true,
		backends.OpTypeIdentity: true, backends.OpTypeReshape: true, backends.OpTypeDot: true}
	for op := range c.Operations {
		if lowerings[op] == nil && !elementwiseOps[op] && !structural[op] {
			t.Errorf("capability %s has no implementation", op)
		}
	}
	for op := range lowerings {
		if !c.Operations[op] {
			t.Errorf("op %s is implemented but not reported", op)
		}
	}
	for op := range elementwiseOps {
		if !c.Operations[op] {
			t.Errorf("elementwise op %s is implemented but not reported", op)
		}
	}
	for _, dt := range supportedDTypes {
		if !c.DTypes[dt] {
			t.Errorf("dtype %s not reported", dt)
		}
	}
	// Every supported dtype round-trips through a computation.
	for _, dt := range supportedDTypes {
		h := randHost(nilRNG(), dt, []int{5}, 0, 50)
		out, err := runRaw(mustCPU(t), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			t, err := b.Transpose(p[0], 0)
			return []backends.Op{t}, err
		}, h)
		if err != nil {
			t.Fatalf("%s: %v", dt, err)
		}
		checkHost(t, dt.String(), out[0], h, tolExact)
	}
	_ = math.Pi
}

// TestNonNegativeIndicatorPeephole checks the fused rewrite of
// Sign(Add(Sign(y), 1)) (GoMLX's ReLU gradient) against simplego, on
// special values included.
func TestNonNegativeIndicatorPeephole(t *testing.T) {
	fn := func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		one, _ := b.Constant([]float32{1})
		one, _ = b.Reshape(one)
		s, _ := b.Sign(p[0])
		a, _ := b.Add(s, one)
		ind, _ := b.Sign(a)
		return one2(b.Mul(ind, p[1]))
	}
	vals := []float32{-2, -0.5, float32(math.Copysign(0, -1)), 0, 0.5, 3, float32(math.Inf(1)), float32(math.Inf(-1))}
	x := &hostT{shapesF32(len(vals)), vals}
	v := &hostT{shapesF32(len(vals)), []float32{1, 2, 3, 4, 5, 6, 7, 8}}
	diffTest(t, "NonNegativeIndicator", fn, tolExact, x, v)
	// Sign(NaN) is NaN (GoMLX's documented semantics; simplego returns 1).
	nan := &hostT{shapesF32(1), []float32{float32(math.NaN())}}
	if got := runCPU(t, "NaN", fn, nan, &hostT{shapesF32(1), []float32{1}})[0].flat.([]float32)[0]; got == got {
		t.Errorf("NonNegativeIndicator(NaN) = %g, want NaN", got)
	}
	e := compileRaw(t, fn, x.shape, v.shape)
	if len(e.steps) != 1 {
		t.Fatalf("steps: %v", stepNames(e))
	}
	// The cluster has 4 members; the peepholes leave 1 instruction (the
	// indicator, then its multiply folded into a masked multiply).
	if n := len(e.steps[0].fused.instrs); n != 1 {
		t.Errorf("fused cluster has %d instructions, want 1 (peepholes not applied)", n)
	}
}

func one2(op backends.Op, err error) ([]backends.Op, error) { return []backends.Op{op}, err }
