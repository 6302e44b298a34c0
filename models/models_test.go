package models

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/losses"
)

var resnetNames = []string{
	"resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
	"resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
	"seresnet18", "seresnet34", "seresnet50", "seresnet101",
}

func TestRegistry(t *testing.T) {
	want := []string{"mlp"}
	for _, n := range resnetNames {
		want = append(want, n, n+"-nobn")
	}
	slices.Sort(want)
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v\nwant %v", got, want)
	}
	for _, n := range want {
		spec, err := Get(n)
		if err != nil {
			t.Fatalf("Get(%q): %v", n, err)
		}
		if spec.Name != n || spec.Description == "" || spec.Build == nil || len(spec.InputShape) != 3 {
			t.Errorf("spec %q incomplete: %+v", n, spec)
		}
		if spec.BatchNorm != (n != "mlp" && !strings.HasSuffix(n, "-nobn")) {
			t.Errorf("spec %q: BatchNorm = %v", n, spec.BatchNorm)
		}
	}
	if _, err := Get("resnet7"); err == nil || !strings.Contains(err.Error(), "resnet7") || !strings.Contains(err.Error(), "resnet20") {
		t.Errorf("Get(unknown) error %v should name the model and list the known ones", err)
	}
}

// TestBuildShapes builds every model for several input sizes and channel
// counts (CountParameters checks the logits shape) and checks the bad inputs
// give errors.
func TestBuildShapes(t *testing.T) {
	b := goBackend(t)
	for _, name := range Names() {
		spec, _ := Get(name)
		inputs := [][]int{spec.InputShape}
		switch {
		case name == "mlp":
			inputs = append(inputs, []int{32, 32, 3})
		case spec.SmallStem:
			inputs = append(inputs, []int{64, 64, 3}, []int{33, 31, 1})
		default:
			inputs = append(inputs, []int{28, 28, 1}, []int{17, 9, 4})
		}
		for _, in := range inputs {
			if _, err := CountParameters(b, name, in, 7, nil); err != nil {
				t.Errorf("%s on %v: %v", name, in, err)
			}
		}
	}
	if _, err := CountParameters(b, "resnet20", []int{32, 32}, 10, nil); err == nil {
		t.Error("2-D input shape accepted")
	}
	if _, err := CountParameters(b, "resnet20", nil, 0, nil); err == nil {
		t.Error("0 classes accepted")
	}
	if _, err := CountParameters(b, "resnet18", nil, 10, map[string]any{ParamSEReduction: 0}); err != nil {
		t.Errorf("se_reduction must not matter without SE blocks: %v", err)
	}
	if _, err := CountParameters(b, "seresnet18", nil, 10, map[string]any{ParamSEReduction: 0}); err == nil {
		t.Error("se_reduction 0 accepted")
	}
}

// TestVariantCounts checks the parameter counts of the variants against the
// base models: no-BN replaces each BN (2 parameters per channel) by a conv
// bias (1 per channel) and adds one scalar per residual block; the small stem
// replaces the 7x7 stem kernel by a 3x3 one.
func TestVariantCounts(t *testing.T) {
	b := goBackend(t)
	for _, name := range []string{"resnet20", "resnet18", "seresnet50"} {
		ctx, err := buildVariables(b, name, nil, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		total, bnChannels, blocks := 0, 0, map[string]bool{}
		for v := range ctx.IterVariables() {
			if !v.Trainable {
				continue
			}
			total += v.Shape().Size()
			if strings.HasSuffix(v.Scope(), "/batch_normalization") && v.Name() == "scale" {
				bnChannels += v.Shape().Size()
			}
			if i := strings.Index(v.Scope(), "/block"); i >= 0 {
				blocks[v.Scope()[:i+len("/blockNN")]] = true
			}
		}
		got, err := CountParameters(b, name+"-nobn", nil, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := total - bnChannels + len(blocks); got != want || len(blocks) == 0 {
			t.Errorf("%s-nobn: %d parameters, want %d (%d, %d BN channels, %d blocks)", name, got, want, total, bnChannels, len(blocks))
		}
	}
	base, err1 := CountParameters(b, "resnet18", []int{32, 32, 3}, 10, nil)
	small, err2 := CountParameters(b, "resnet18", []int{32, 32, 3}, 10, map[string]any{ParamSmallStem: true})
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if base-small != (7*7-3*3)*3*64 {
		t.Errorf("small stem saves %d parameters, want %d", base-small, (7*7-3*3)*3*64)
	}
}

// trainStep returns a graph function doing one plain SGD step with learning
// rate lr on the mean cross-entropy of the model; it returns the loss before
// the step.
func trainStep(spec Spec, numClasses int, lr float64) func(ctx *context.Context, x, labels *graph.Node) *graph.Node {
	return func(ctx *context.Context, x, labels *graph.Node) *graph.Node {
		g := x.Graph()
		ctx.SetTraining(g, true)
		logits := spec.Build(ctx, x, numClasses)
		loss := losses.SparseCategoricalCrossEntropyLogits([]*graph.Node{labels}, []*graph.Node{logits})
		var vars []*context.Variable
		var values []*graph.Node
		for v := range ctx.IterVariables() {
			if v.Trainable && v.InUseByGraph(g) {
				vars = append(vars, v)
				values = append(values, v.ValueGraph(g))
			}
		}
		grads := graph.Gradient(loss, values...)
		for i, v := range vars {
			v.SetValueGraph(graph.Sub(values[i], graph.MulScalar(grads[i], lr)))
		}
		return loss
	}
}

// randomBatch returns n float32 images of shape in and labels in [0, classes).
func randomBatch(rng *rand.Rand, n int, in []int, classes int) (*tensors.Tensor, *tensors.Tensor) {
	x := make([]float32, n*in[0]*in[1]*in[2])
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]int32, n)
	for i := range y {
		y[i] = int32(rng.IntN(classes))
	}
	return tensors.FromFlatDataAndDimensions(x, n, in[0], in[1], in[2]), tensors.FromFlatDataAndDimensions(y, n, 1)
}

// trainLosses runs steps training steps of the named model on backend b,
// cycling through the given batches, and returns the losses.
func trainLosses(t *testing.T, b backends.Backend, name string, params map[string]any, classes int, lr float64, steps int, xs, ys []*tensors.Tensor) []float64 {
	t.Helper()
	spec, err := Get(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	ctx.SetParam(context.ParamInitialSeed, int64(42))
	ctx.SetParams(params)
	e, err := context.NewExec(b, ctx, trainStep(spec, classes, lr))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	var out []float64
	for i := range steps {
		loss, err := e.Exec1(xs[i%len(xs)], ys[i%len(ys)])
		if err != nil {
			t.Fatalf("%s step %d: %v", name, i, err)
		}
		l := float64(tensors.ToScalar[float32](loss))
		if math.IsNaN(l) || math.IsInf(l, 0) {
			t.Fatalf("%s step %d: loss %g", name, i, l)
		}
		out = append(out, l)
	}
	return out
}

// convGradientOps are the backend ops that the gradient of a convolution
// needs (GoMLX flips the kernel with Reverse); GoMLX's pure-Go backend lacks
// them, so convolutional models train only on other backends.
var convGradientOps = []backends.OpType{backends.OpTypeReverse}

// skipUnlessOps skips the (sub)test when backend b lacks one of ops.
func skipUnlessOps(t *testing.T, b backends.Backend, ops ...backends.OpType) {
	t.Helper()
	for _, op := range ops {
		if !b.Capabilities().Operations[op] {
			t.Skipf("backend %s does not implement %s", b.Name(), op)
		}
	}
}

// testBackends returns the backends that the training tests run on: GoMLX's
// pure-Go one, and ours ("cpu") once it is registered.
func testBackends(t *testing.T) []backends.Backend {
	bs := []backends.Backend{goBackend(t)}
	if slices.Contains(backends.List(), "cpu") {
		b, err := backends.NewWithConfig("cpu")
		if err != nil {
			t.Fatalf("creating backend cpu: %v", err)
		}
		bs = append(bs, b)
	}
	return bs
}

// bigModels are the deepest ImageNet-style models; their smoke test is left
// out in short mode (they repeat resnet50's blocks, and each step updates
// 40-60 million parameters).
var bigModels = []string{"resnet101", "resnet152", "seresnet101"}

// smokeTrain runs two training steps of every model on backend b with tiny
// inputs: the graphs build, compile, run forward and backward, the losses are
// finite and the second step sees the first one's update. smallStemOnly
// selects the small stem for the ImageNet-style models (for backends without
// the max-pool gradient). Batches have 4 images, so that batch norm has at
// least 4 values per channel where the feature maps are 1x1 (with 2 it
// normalises everything to ±1 or, on ties, divides by sqrt(eps)).
func smokeTrain(t *testing.T, b backends.Backend, smallStemOnly bool) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, name := range Names() {
		spec, _ := Get(name)
		in := []int{8, 8, 3}
		params := map[string]any{}
		switch {
		case name == "mlp":
			in = []int{6, 6, 1}
		case spec.SmallStem && smallStemOnly:
			params[ParamSmallStem] = true
		}
		x, y := randomBatch(rng, 4, in, 5)
		t.Run(name, func(t *testing.T) {
			if name != "mlp" {
				skipUnlessOps(t, b, convGradientOps...)
			}
			if spec.SmallStem && !smallStemOnly {
				skipUnlessOps(t, b, backends.OpTypeSelectAndScatterMax)
			}
			if testing.Short() && slices.Contains(bigModels, strings.TrimSuffix(name, "-nobn")) {
				t.Skip("deep model left out in short mode")
			}
			l := trainLosses(t, b, name, params, 5, 0.01, 2, []*tensors.Tensor{x}, []*tensors.Tensor{y})
			if l[0] == l[1] {
				t.Errorf("loss unchanged by a training step (%g)", l[0])
			}
		})
	}
}

func TestSmokeTrainGo(t *testing.T) {
	smokeTrain(t, goBackend(t), true)
}

func TestSmokeTrainCPU(t *testing.T) {
	if !slices.Contains(backends.List(), "cpu") {
		t.Skip("backend cpu (package backend/cpu) is not registered yet")
	}
	b, err := backends.NewWithConfig("cpu")
	if err != nil {
		t.Fatal(err)
	}
	smokeTrain(t, b, false)
}

// TestModelsLearn checks that a few models memorise a small fixed batch:
// the loss falls well below its starting value.
func TestModelsLearn(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	cases := []struct {
		name   string
		in     []int
		params map[string]any
		lr     float64
		steps  int
	}{
		{"mlp", []int{6, 6, 1}, nil, 0.1, 30},
		{"resnet20", []int{8, 8, 3}, nil, 0.05, 15},
		{"resnet20-nobn", []int{8, 8, 3}, nil, 0.2, 25}, // SkipInit branches start at 0: slower start
		{"seresnet18", []int{8, 8, 3}, map[string]any{ParamSmallStem: true}, 0.05, 15},
	}
	for _, b := range testBackends(t) {
		for _, tc := range cases {
			x, y := randomBatch(rng, 8, tc.in, 4)
			t.Run(b.Name()+"/"+tc.name, func(t *testing.T) {
				if tc.name != "mlp" {
					skipUnlessOps(t, b, convGradientOps...)
				}
				l := trainLosses(t, b, tc.name, tc.params, 4, tc.lr, tc.steps, []*tensors.Tensor{x}, []*tensors.Tensor{y})
				if last := l[len(l)-1]; !(last < 0.3*l[0]) {
					t.Errorf("loss went from %.4f to %.4f in %d steps; want below 30%% of the start: %v", l[0], last, tc.steps, l)
				}
			})
		}
	}
}

// TestModelGradients checks the backward pass of whole models (training
// mode, float64) against central finite differences of the loss along a
// random direction of the input images. On backends without the convolution
// gradient it checks the training-mode forward pass only (finite values that
// depend on the input).
func TestModelGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	bs := testBackends(t)
	for _, b := range bs[len(bs)-1:] { // our CPU backend if registered, else GoMLX's pure-Go one
		for _, tc := range []struct {
			name   string
			params map[string]any
		}{
			{"resnet20", nil},
			{"seresnet18", map[string]any{ParamSmallStem: true}},
			{"resnet50-nobn", map[string]any{ParamSmallStem: true}},
		} {
			x, d, coef := randImg(rng, 3, 5, 6, 3), randImg(rng, 3, 5, 6, 3), randImg(rng, 1, 1, 3, 4)
			t.Run(b.Name()+"/"+tc.name, func(t *testing.T) {
				if !b.Capabilities().DTypes[dtypes.Float64] {
					t.Skipf("backend %s has no float64", b.Name())
				}
				checkModelGradient(t, b, tc.name, tc.params, x, d, coef)
			})
		}
	}
}

func checkModelGradient(t *testing.T, b backends.Backend, name string, params map[string]any, x, d, coef img) {
	spec, _ := Get(name)
	withGradient := !slices.ContainsFunc(convGradientOps, func(op backends.OpType) bool { return !b.Capabilities().Operations[op] })
	ctx := context.New()
	ctx.SetParams(params)
	// A fixed seed makes the initial weights, and so the check, reproducible:
	// GoMLX otherwise seeds them from a secure random source.
	if err := ctx.SetRNGStateFromSeed(7); err != nil {
		t.Fatal(err)
	}
	e, err := context.NewExec(b, ctx, func(ctx *context.Context, x, d, coef *graph.Node) []*graph.Node {
		ctx.SetTraining(x.Graph(), true)
		logits := spec.Build(ctx, x, 4)
		loss := graph.ReduceAllSum(graph.Mul(graph.Sin(logits), graph.Reshape(coef, 3, 4)))
		directional := graph.ScalarZero(x.Graph(), x.DType())
		if withGradient {
			directional = graph.ReduceAllSum(graph.Mul(graph.Gradient(loss, x)[0], d))
		}
		return []*graph.Node{loss, directional}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	eval := func(data []float64) (float64, float64) {
		out, err := e.Exec(img{x.n, x.h, x.w, x.c, data}.tensor(), d.tensor(), coef.tensor())
		if err != nil {
			t.Fatal(err)
		}
		return tensors.ToScalar[float64](out[0]), tensors.ToScalar[float64](out[1])
	}
	l0, directional := eval(x.data)
	// A small step: ReLU kinks and batch norm over few values make the loss
	// strongly curved, and central differences converge to the gradient only
	// for steps of about 1e-6 and below.
	const h = 1e-7
	plus, minus := slices.Clone(x.data), slices.Clone(x.data)
	for i := range plus {
		plus[i] += h * d.data[i]
		minus[i] -= h * d.data[i]
	}
	lp, _ := eval(plus)
	lm, _ := eval(minus)
	if math.IsNaN(l0) || math.IsInf(l0, 0) || lp == lm {
		t.Fatalf("loss %g, and %g / %g after moving the input", l0, lp, lm)
	}
	if !withGradient {
		t.Skipf("forward pass checked; backend %s lacks the convolution gradient", b.Name())
	}
	fd := (lp - lm) / (2 * h)
	if math.Abs(fd-directional) > 1e-5*(1+math.Abs(fd)) || directional == 0 {
		t.Errorf("directional derivative %.10g, finite differences %.10g", directional, fd)
	}
}

// BenchmarkTrainStep times one plain-SGD training step of the peer workloads
// (mlp: 128x28x28x1; resnet20: 128x32x32x3) on the backend named by
// GOMLX_BACKEND (default: GoMLX's pure-Go one, where only the MLP trains).
func BenchmarkTrainStep(b *testing.B) {
	backend := goBackend(b)
	if config := os.Getenv(backends.ConfigEnvVar); config != "" {
		var err error
		if backend, err = backends.NewWithConfig(config); err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		in   []int
	}{{"mlp", []int{28, 28, 1}}, {"resnet20", []int{32, 32, 3}}} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.name != "mlp" && !backend.Capabilities().Operations[backends.OpTypeReverse] {
				b.Skipf("backend %s lacks the convolution gradient", backend.Name())
			}
			spec, _ := Get(tc.name)
			x, y := randomBatch(rand.New(rand.NewPCG(1, 1)), 128, tc.in, 10)
			e, err := context.NewExec(backend, context.New(), trainStep(spec, 10, 0.01))
			if err != nil {
				b.Fatal(err)
			}
			defer e.Finalize()
			if _, err := e.Exec1(x, y); err != nil { // compile
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				loss, err := e.Exec1(x, y)
				if err != nil {
					b.Fatal(err)
				}
				_ = loss.FinalizeAll()
			}
			b.ReportMetric(float64(128*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
