package models

import (
	"maps"
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
		want = append(want, n, n+"-nobn", n+"-nobn-skipinit")
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
		if spec.BatchNorm != (n != "mlp" && !strings.Contains(n, "-nobn")) {
			t.Errorf("spec %q: BatchNorm = %v", n, spec.BatchNorm)
		}
		// The paper's models (pgt-reference.md sections 1.1, 1.2 and 1.4).
		paper := slices.Contains([]string{"resnet18", "resnet50", "resnet101", "seresnet18", "seresnet50", "resnet18-nobn", "resnet20"}, n)
		if (spec.Paper != "") != paper {
			t.Errorf("spec %q: Paper = %q, want it set: %v", n, spec.Paper, paper)
		}
		if strings.HasSuffix(n, "-skipinit") && !strings.Contains(spec.Description, "extension") {
			t.Errorf("spec %q: description %q should say it is an extension", n, spec.Description)
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
// variables of the base models: -nobn drops each BN's scale and offset (2
// parameters per channel); -nobn-skipinit replaces them by a conv bias (1
// per channel) and adds one scalar per residual block; the small stem
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
		if len(blocks) == 0 || bnChannels == 0 {
			t.Fatalf("%s: %d blocks, %d BN channels", name, len(blocks), bnChannels)
		}
		for variant, want := range map[string]int{
			"-nobn":          total - 2*bnChannels,
			"-nobn-skipinit": total - bnChannels + len(blocks),
		} {
			got, err := CountParameters(b, name+variant, nil, 10, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s%s: %d parameters, want %d (%d, %d BN channels, %d blocks)", name, variant, got, want, total, bnChannels, len(blocks))
			}
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

// TestNoBNVariables checks the variables of the no-BN variants by name: the
// authors' variant (-nobn) has convolution kernels only (no biases, no
// branch scales, nothing under a batch-norm scope); -nobn-skipinit has a
// bias for every kernel and one branch scale per block, starting at 0.
func TestNoBNVariables(t *testing.T) {
	b := goBackend(t)
	for _, name := range []string{"resnet18-nobn", "resnet20-nobn", "resnet18-nobn-skipinit"} {
		ctx, err := buildVariables(b, name, nil, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ctx.InitializeVariables(b, nil); err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for v := range ctx.IterVariables() {
			if !v.Trainable {
				continue
			}
			switch {
			case strings.Contains(v.Scope(), "batch_normalization"):
				counts["bn"]++
			case strings.Contains(v.Scope(), "/fc"):
				counts["fc"]++
			case v.Name() == "weights":
				counts["kernels"]++
			case v.Name() == "biases":
				counts["biases"]++
			case v.Name() == "branch_scale":
				counts["scales"]++
				if got := v.MustValue(); tensors.ToScalar[float32](got) != 0 {
					t.Errorf("%s: branch scale starts at %v, want 0", name, got)
				}
			default:
				counts[v.Name()]++
			}
		}
		kernels, blocks := 20, 8 // ResNet-18: stem, 16 block convs, 3 projections; 8 blocks.
		if strings.HasPrefix(name, "resnet20") {
			kernels, blocks = 19, 9 // stem and 18 block convs (option-A shortcuts); 9 blocks
		}
		want := map[string]int{"kernels": kernels, "fc": 2}
		if strings.HasSuffix(name, "-skipinit") {
			want["biases"], want["scales"] = kernels, blocks
		}
		if !maps.Equal(counts, want) {
			t.Errorf("%s: variables %v, want %v", name, counts, want)
		}
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
			base := strings.TrimSuffix(strings.TrimSuffix(name, "-skipinit"), "-nobn")
			if testing.Short() && slices.Contains(bigModels, base) {
				t.Skip("deep model left out in short mode")
			}
			if strings.HasSuffix(name, "-skipinit") && slices.Contains(bigModels, base) {
				t.Skip("deep SkipInit variant left out: its layers are tested on the smaller models")
			}
			lr := 0.01
			switch {
			case name == "resnet110-nobn":
				// Without normalisation or SkipInit the activations grow
				// with every residual block: resnet110-nobn starts at a loss
				// of about 3.6e5 here, and a step of 1e-4 overflows.
				lr = 1e-7
			case strings.HasSuffix(name, "-nobn"):
				lr = 1e-4 // resnet56-nobn starts at a loss of about 360
			}
			l := trainLosses(t, b, name, params, 5, lr, 2, []*tensors.Tensor{x}, []*tensors.Tensor{y})
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
		{"resnet20-nobn", []int{8, 8, 3}, nil, 0.02, 15},
		{"resnet20-nobn-skipinit", []int{8, 8, 3}, nil, 0.2, 25}, // SkipInit branches start at 0: slower start
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

// TestInitialisation checks the spread of initial weights: the CIFAR
// ResNets are Kaiming-normal with fan-in (the authors' CifarResNet, He et
// al.), the ImageNet ResNets Kaiming-normal with fan-out for convolutions
// (timm) and PyTorch's default uniform ±1/sqrt(fanIn) for the final layer.
// Each checked kernel has cin != cout, so fan-in and fan-out differ.
func TestInitialisation(t *testing.T) {
	b := goBackend(t)
	contexts := map[string]*context.Context{}
	for _, tc := range []struct {
		model, scope string
		want         float64
	}{
		{"resnet20", "/resnet/stem/conv", math.Sqrt(2.0 / (3 * 3 * 3))},                // fan-out would give sqrt(2/144)
		{"resnet20", "/resnet/stage2/block1/conv1", math.Sqrt(2.0 / (3 * 3 * 16))},     // fan-out: sqrt(2/288)
		{"resnet20", "/resnet/fc/dense", math.Sqrt(2.0 / 64)},                          // Kaiming-normal, fan-in
		{"seresnet18", "/resnet/stem/conv", math.Sqrt(2.0 / (7 * 7 * 64))},             // fan-in would give sqrt(2/147)
		{"seresnet18", "/resnet/fc/dense", 1 / math.Sqrt(512) / math.Sqrt(3)},          // uniform ±1/sqrt(512)
		{"seresnet18", "/resnet/stage4/block1/se/reduce/dense", math.Sqrt(2.0 / 32)},   // timm 1x1 conv, fan-out
		{"resnet18-nobn", "/resnet/stage2/block1/conv_shortcut", math.Sqrt(2.0 / 128)}, // 1x1 projection, fan-out
		{"resnet18-nobn", "/resnet/stage3/block1/conv1", math.Sqrt(2.0 / (9 * 256))},
	} {
		ctx := contexts[tc.model]
		if ctx == nil {
			var err error
			if ctx, err = buildVariables(b, tc.model, nil, 10, nil); err != nil {
				t.Fatal(err)
			}
			if err := ctx.InitializeVariables(b, nil); err != nil {
				t.Fatal(err)
			}
			contexts[tc.model] = ctx
		}
		v := ctx.InspectVariable(tc.scope, "weights")
		if v == nil {
			t.Fatalf("%s: no variable %s/weights", tc.model, tc.scope)
		}
		w := tensors.MustCopyFlatData[float32](v.MustValue())
		var ss float64
		for _, x := range w {
			ss += float64(x) * float64(x)
		}
		// The sample standard deviation of n values is within a few
		// 1/sqrt(2n) of the true one.
		std := math.Sqrt(ss / float64(len(w)))
		if tol := 5 / math.Sqrt(2*float64(len(w))); math.Abs(std/tc.want-1) > tol {
			t.Errorf("%s %s: weight std %.4g, want %.4g (±%.0f%%)", tc.model, tc.scope, std, tc.want, 100*tol)
		}
	}
}
