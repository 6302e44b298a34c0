package optim

import (
	"math"
	"os"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt/backend"
)

func TestMain(m *testing.M) {
	// Never let GoMLX try to download an XLA plugin during tests.
	os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	os.Exit(m.Run())
}

var (
	testBackendOnce sync.Once
	testBackendVal  backends.Backend
	testBackendErr  error
)

// testBackend returns the default backend, shared by the tests.
func testBackend(t testing.TB) backends.Backend {
	t.Helper()
	testBackendOnce.Do(func() { testBackendVal, _, testBackendErr = backend.New("") })
	if testBackendErr != nil {
		t.Fatalf("backend: %v", testBackendErr)
	}
	return testBackendVal
}

// tparam is a parameter of a transform test: its shape, initial value and
// whether it belongs to the final layer.
type tparam struct {
	dims  []int
	value []float32
	final bool
}

// stepResult is what one executed optimizer step returns: the updates after
// the transform, and the parameter values after ApplyUpdates.
type stepResult struct {
	updates [][]float32
	params  [][]float32
}

// runTransform runs the transform for len(grads) steps on variables holding
// params, feeding grads[s][i] as the gradient of parameter i at step s and lr
// as the learning rate, and applies the returned updates to the variables.
func runTransform(t *testing.T, tr GradientTransform, params []tparam, grads [][][]float32, lr float64) []stepResult {
	t.Helper()
	ctx := context.New()
	n := len(params)
	fn := func(ctx *context.Context, inputs []*graph.Node) []*graph.Node {
		g := inputs[0].Graph()
		ps := make([]Param, n)
		for i, p := range params {
			v := ctx.In("model").In("layer"+string(rune('a'+i))).Checked(false).
				VariableWithValue("w", tensors.FromFlatDataAndDimensions(append([]float32(nil), p.value...), p.dims...))
			ps[i] = Param{Variable: v, Value: v.ValueGraph(g), Final: p.final}
		}
		step := &Step{Ctx: ctx.In("optimizer").Checked(false), Params: ps, LearningRate: inputs[n]}
		updates := tr.Update(step, inputs[:n])
		checkUpdates("test", ps, updates)
		ApplyUpdates(ps, updates)
		return updates
	}
	exec, err := context.NewExec(testBackend(t), ctx, fn)
	if err != nil {
		t.Fatal(err)
	}
	var results []stepResult
	for s, gs := range grads {
		args := make([]any, 0, n+1)
		for i, g := range gs {
			args = append(args, tensors.FromFlatDataAndDimensions(append([]float32(nil), g...), params[i].dims...))
		}
		args = append(args, float32(lr))
		out, err := exec.Exec(args...)
		if err != nil {
			t.Fatalf("step %d: %v", s, err)
		}
		var r stepResult
		for _, o := range out {
			r.updates = append(r.updates, tensors.MustCopyFlatData[float32](o))
		}
		for i := range params {
			v := ctx.GetVariableByScopeAndName("/model/layer"+string(rune('a'+i)), "w")
			r.params = append(r.params, tensors.MustCopyFlatData[float32](v.MustValue()))
		}
		results = append(results, r)
	}
	return results
}

// assertClose fails unless got and want agree within a relative tolerance.
func assertClose(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); d > 1e-5*math.Max(1, math.Abs(want[i])) {
			t.Fatalf("%s: element %d = %v, want %v (all: got %v want %v)", what, i, got[i], want[i], got, want)
		}
	}
}

func TestWeightDecay(t *testing.T) {
	params := []tparam{
		{dims: []int{2, 2}, value: []float32{1, -2, 3, 0.5}},
		{dims: []int{2}, value: []float32{4, -1}},
	}
	grads := [][][]float32{{{0.1, 0.2, 0.3, 0.4}, {1, 2}}}
	// u = g + 0.01*w for every parameter.
	r := runTransform(t, WeightDecay{Rate: 0.01}, params, grads, 0)
	assertClose(t, "matrix", r[0].updates[0], []float64{0.11, 0.18, 0.33, 0.405})
	assertClose(t, "vector", r[0].updates[1], []float64{1.04, 1.99})
	// With ExemptVectors the rank-1 parameter keeps its gradient.
	r = runTransform(t, WeightDecay{Rate: 0.01, ExemptVectors: true}, params, grads, 0)
	assertClose(t, "matrix exempt", r[0].updates[0], []float64{0.11, 0.18, 0.33, 0.405})
	assertClose(t, "vector exempt", r[0].updates[1], []float64{1, 2})
}

func TestClipGlobalNorm(t *testing.T) {
	params := []tparam{
		{dims: []int{2}, value: []float32{0, 0}},
		{dims: []int{1, 1}, value: []float32{0}},
	}
	// Global norm sqrt(3²+4²+12²) = 13.
	grads := [][][]float32{{{3, 4}, {12}}}
	r := runTransform(t, ClipGlobalNorm{MaxNorm: 6.5}, params, grads, 0)
	assertClose(t, "clipped a", r[0].updates[0], []float64{1.5, 2})
	assertClose(t, "clipped b", r[0].updates[1], []float64{6})
	// Under the threshold the gradients pass unchanged.
	r = runTransform(t, ClipGlobalNorm{MaxNorm: 20}, params, grads, 0)
	assertClose(t, "unclipped a", r[0].updates[0], []float64{3, 4})
	assertClose(t, "unclipped b", r[0].updates[1], []float64{12})
}

func TestAdaptiveClip(t *testing.T) {
	params := []tparam{
		// Dense weights [in=2, out=2]: unit (column) norms 5 and 1.
		{dims: []int{2, 2}, value: []float32{3, 0, 4, 1}},
		// Zero bias: its norm is floored at eps = 1e-3.
		{dims: []int{2}, value: []float32{0, 0}},
		// A final-layer weight: left alone by default.
		{dims: []int{1, 2}, value: []float32{1, 1}, final: true},
	}
	// Column 0 gradient [6, 8] (norm 10) exceeds 0.5*5 = 2.5: scaled to norm
	// 2.5, i.e. [1.5, 2]. Column 1 gradient [0.1, 0.2] (norm 0.224) is below
	// 0.5*1 and stays. The bias gradient [1, 0] (norm 1) is scaled to norm
	// 0.5*1e-3.
	grads := [][][]float32{{{6, 0.1, 8, 0.2}, {1, 0}, {10, 0.1}}}
	r := runTransform(t, AdaptiveClip{Clip: 0.5}, params, grads, 0)
	assertClose(t, "weights", r[0].updates[0], []float64{1.5, 0.1, 2, 0.2})
	assertClose(t, "bias", r[0].updates[1], []float64{5e-4, 0})
	assertClose(t, "final", r[0].updates[2], []float64{10, 0.1})
	// IncludeFinal clips the final layer too: column norms 1 and 1, limits
	// 0.5: [10] -> [0.5]; [0.1] stays.
	r = runTransform(t, AdaptiveClip{Clip: 0.5, IncludeFinal: true}, params, grads, 0)
	assertClose(t, "final included", r[0].updates[2], []float64{0.5, 0.1})
}

func TestAdaptiveClipConvKernel(t *testing.T) {
	// A [1, 1, 2, 2] kernel (HWIO): the units are the output channels, so
	// norms run over the first three axes, exactly like the [2, 2] case.
	params := []tparam{{dims: []int{1, 1, 2, 2}, value: []float32{3, 0, 4, 1}}}
	grads := [][][]float32{{{6, 0.1, 8, 0.2}}}
	r := runTransform(t, AdaptiveClip{Clip: 0.5}, params, grads, 0)
	assertClose(t, "kernel", r[0].updates[0], []float64{1.5, 0.1, 2, 0.2})
}

func TestMomentum(t *testing.T) {
	params := []tparam{{dims: []int{2}, value: []float32{0, 0}}}
	grads := [][][]float32{{{1, 2}}, {{3, -1}}}
	// PyTorch: buf1 = g1 = [1, 2]; buf2 = 0.9*buf1 + g2 = [3.9, 0.8].
	r := runTransform(t, Momentum{Mu: 0.9}, params, grads, 0)
	assertClose(t, "heavy ball 1", r[0].updates[0], []float64{1, 2})
	assertClose(t, "heavy ball 2", r[1].updates[0], []float64{3.9, 0.8})
	// Nesterov: g + 0.9*buf: [1.9, 3.8], then [3+3.51, -1+0.72].
	r = runTransform(t, Momentum{Mu: 0.9, Nesterov: true}, params, grads, 0)
	assertClose(t, "nesterov 1", r[0].updates[0], []float64{1.9, 3.8})
	assertClose(t, "nesterov 2", r[1].updates[0], []float64{6.51, -0.28})
}

func TestLearningRateStep(t *testing.T) {
	params := []tparam{{dims: []int{2}, value: []float32{1, 1}}}
	r := runTransform(t, LearningRateStep{}, params, [][][]float32{{{2, -4}}}, 0.25)
	assertClose(t, "increment", r[0].updates[0], []float64{-0.5, 1})
	assertClose(t, "applied", r[0].params[0], []float64{0.5, 2})
}

// referenceSGD is PyTorch's SGD step (weight decay, momentum without
// dampening, optional Nesterov) on float64 slices; buf is updated in place.
func referenceSGD(w, g, buf []float64, lr, wd, mu float64, nesterov bool) {
	for i := range w {
		d := g[i] + wd*w[i]
		buf[i] = mu*buf[i] + d
		if nesterov {
			d += mu * buf[i]
		} else {
			d = buf[i]
		}
		w[i] -= lr * d
	}
}

func TestChainMatchesPyTorchSGD(t *testing.T) {
	// PyTorch's SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4).
	const wd, mu = 5e-4, 0.9
	chain := Chain{WeightDecay{Rate: wd}, Momentum{Mu: mu, Nesterov: true}, LearningRateStep{}}
	params := []tparam{
		{dims: []int{2, 2}, value: []float32{0.5, -0.25, 1, 2}},
		{dims: []int{2}, value: []float32{0.1, -0.1}},
	}
	grads := [][][]float32{
		{{1, 0, -1, 0.5}, {0.2, 0.3}},
		{{0.5, 0.5, 0.5, 0.5}, {-1, 1}},
		{{-2, 1, 0, 0.25}, {0, 0.7}},
	}
	lr := 0.1
	r := runTransform(t, chain, params, grads, lr)
	for i, p := range params {
		w := make([]float64, len(p.value))
		for j, v := range p.value {
			w[j] = float64(v)
		}
		buf := make([]float64, len(w))
		for s := range grads {
			g := make([]float64, len(w))
			for j, v := range grads[s][i] {
				g[j] = float64(v)
			}
			referenceSGD(w, g, buf, lr, wd, mu, true)
			assertClose(t, "parameter after step", r[s].params[i], w)
		}
	}
}

func TestChainScopesState(t *testing.T) {
	// Two momentum transforms in one chain keep separate buffers (under
	// "0_momentum" and "1_momentum"); sharing one would give other numbers.
	params := []tparam{{dims: []int{1}, value: []float32{0}}}
	grads := [][][]float32{{{1}}, {{1}}}
	r := runTransform(t, Chain{Momentum{Mu: 0.5}, Momentum{Mu: 0.5}}, params, grads, 0)
	// First transform: buf1 = 1, then 1.5. Second: sees 1 then 1.5:
	// buf2 = 1, then 0.5*1 + 1.5 = 2.
	assertClose(t, "step 1", r[0].updates[0], []float64{1})
	assertClose(t, "step 2", r[1].updates[0], []float64{2})
}
