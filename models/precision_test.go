package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/sgt-dev/sgt"
)

// mixedRun is what runMixed returns: the loss, the logits and the
// gradients of the loss with respect to the logits and to chosen variables.
type mixedRun struct {
	loss       float64
	logits     []float64
	logitsGrad []float64
	varGrads   map[string][]float64
	dtypes     map[string]dtypes.DType // of the outputs: "loss", "logits", "features"
	// ops counts the graph's matrix products and convolutions ("matmul")
	// and exponentials and logarithms ("exp") by dtype.
	ops map[string]map[dtypes.DType]int
}

// runMixed builds the named model on ctx (training mode) for images x and
// labels y, with the SGT loss at alpha and label smoothing eps, runs it once
// and returns the results. gradVars names (scope/name) the variables whose
// gradients are returned.
func runMixed(t *testing.T, ctx *context.Context, name string, x, y *tensors.Tensor, classes int, alpha, eps float64, gradVars []string) mixedRun {
	t.Helper()
	spec, err := Get(name)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]map[dtypes.DType]int{"matmul": {}, "exp": {}}
	e, err := context.NewExec(goBackend(t), ctx, func(ctx *context.Context, x, y *graph.Node) []*graph.Node {
		g := x.Graph()
		ctx.SetTraining(g, true)
		features, logits := spec.Features(ctx, x, classes)
		loss := sgt.CrossEntropyLoss(logits, y, alpha, eps)
		nodes := []*graph.Node{logits}
		for _, v := range gradVars {
			scope, vname := v[:lastSlash(v)], v[lastSlash(v)+1:]
			variable := ctx.InspectVariable(scope, vname)
			if variable == nil {
				panic(fmt.Errorf("no variable %s", v))
			}
			nodes = append(nodes, variable.ValueGraph(g))
		}
		grads := graph.Gradient(loss, nodes...)
		for _, n := range g.Nodes() {
			switch n.Type() {
			case graph.NodeTypeConvGeneral, graph.NodeTypeDot, graph.NodeTypeDotGeneral:
				ops["matmul"][n.DType()]++
			case graph.NodeTypeExp, graph.NodeTypeLog:
				ops["exp"][n.DType()]++
			}
		}
		return append([]*graph.Node{loss, logits, features}, grads...)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	out, err := e.Exec(x, y)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	r := mixedRun{
		loss:       flat32(t, out[0])[0],
		logits:     flat32(t, out[1]),
		logitsGrad: flat32(t, out[3]),
		varGrads:   map[string][]float64{},
		dtypes:     map[string]dtypes.DType{"loss": out[0].DType(), "logits": out[1].DType(), "features": out[2].DType()},
		ops:        ops,
	}
	for i, v := range gradVars {
		r.varGrads[v] = flat32(t, out[4+i])
	}
	return r
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// flat32 returns the values of a float32 tensor as float64.
func flat32(t *testing.T, x *tensors.Tensor) []float64 {
	t.Helper()
	if x.DType() != dtypes.Float32 {
		t.Fatalf("tensor %s: want float32", x.Shape())
	}
	v := tensors.MustCopyFlatData[float32](x)
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(f)
	}
	return out
}

// relDiff is |a - b| / |b| in the Euclidean norm.
func relDiff(a, b []float64) float64 {
	var d, n float64
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
		n += b[i] * b[i]
	}
	return math.Sqrt(d / n)
}

// TestComputeDTypeBFloat16 builds models with ParamComputeDType "bfloat16"
// on GoMLX's pure-Go backend (which has bfloat16) and compares them with
// the float32 model on the same weights: the variables stay float32, the
// logits and features come out float32, the loss and the gradients (those
// that backend can take: it lacks the convolution's input gradient, so for
// the ResNet the final layer and the last block's batch norm) agree to
// bfloat16 accuracy, and the gradient at the logits is the float32
// tampered gradient (softmax(alpha z) - q)/N of the logits.
//
// The tolerances are wider than bfloat16's 2^-9 rounding suggests because
// that backend converts to bfloat16 by truncation (toward zero, up to 2^-7
// relative, always shrinking), so its errors add up in one direction
// through the layers: over seeds 1-6 the ResNet-20 loss was 0.5-1.8%
// lower, the final layer's gradient 3.5-4.7% and the last batch norm's
// 5-13% off (relative Euclidean distance). A wrong dtype, a missing
// conversion or a gradient that does not flow gives differences of order 1.
func TestComputeDTypeBFloat16(t *testing.T) {
	b := goBackend(t)
	if !b.Capabilities().DTypes[dtypes.BFloat16] {
		t.Skipf("backend %s has no bfloat16", b.Name())
	}
	const classes, alpha, eps = 5, 0.3, 0.1
	rng := rand.New(rand.NewPCG(21, 22))
	for _, tc := range []struct {
		name                        string
		in                          []int
		gradVars                    []string
		tolLoss, tolLogits, tolGrad float64
	}{
		{"mlp", []int{6, 6, 1}, []string{
			"/mlp/hidden/dense/weights", "/mlp/hidden/dense/biases",
			"/mlp/output/dense/weights", "/mlp/output/dense/biases"}, 1e-2, 3e-2, 0.1},
		{"resnet20", []int{8, 8, 3}, []string{
			"/resnet/fc/dense/weights", "/resnet/fc/dense/biases",
			"/resnet/stage3/block3/bn2/batch_normalization/scale",
			"/resnet/stage3/block3/bn2/batch_normalization/offset"}, 4e-2, 6e-2, 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, y := randomBatch(rng, 8, tc.in, classes)
			ctx := context.New()
			if err := ctx.SetRNGStateFromSeed(5); err != nil {
				t.Fatal(err)
			}
			// The float32 model first: its graph creates the variables.
			// The gradient variables exist only after a build, so build once
			// without them.
			runMixed(t, ctx, tc.name, x, y, classes, alpha, eps, nil)
			want := runMixed(t, ctx.Reuse(), tc.name, x, y, classes, alpha, eps, tc.gradVars)
			ctx.SetParam(ParamComputeDType, "bfloat16")
			got := runMixed(t, ctx.Reuse(), tc.name, x, y, classes, alpha, eps, tc.gradVars)

			for v := range ctx.IterVariables() {
				if v.Shape().DType != dtypes.Float32 && v.Name() != "#rngState" {
					t.Errorf("variable %s/%s is %s, want float32", v.Scope(), v.Name(), v.Shape().DType)
				}
			}
			// Every product and convolution, forward and backward, ran in
			// bfloat16; every exponential and logarithm (the softmax, the
			// loss, the tampered softmax) in float32.
			if n := got.ops["matmul"]; len(n) != 1 || n[dtypes.BFloat16] == 0 {
				t.Errorf("matrix products and convolutions by dtype: %v, want all bfloat16", n)
			}
			if n := got.ops["exp"]; len(n) != 1 || n[dtypes.Float32] == 0 {
				t.Errorf("exponentials and logarithms by dtype: %v, want all float32", n)
			}
			for what, dt := range got.dtypes {
				if dt != dtypes.Float32 {
					t.Errorf("%s is %s, want float32", what, dt)
				}
			}
			if d := math.Abs(got.loss-want.loss) / want.loss; d > tc.tolLoss || got.loss == want.loss {
				t.Errorf("loss %v in bfloat16, %v in float32 (relative difference %.2g, want in (0, %g])", got.loss, want.loss, d, tc.tolLoss)
			}
			if d := relDiff(got.logits, want.logits); d > tc.tolLogits {
				t.Errorf("logits differ by %.2g (relative), want <= %g", d, tc.tolLogits)
			}
			for _, v := range tc.gradVars {
				if d := relDiff(got.varGrads[v], want.varGrads[v]); d > tc.tolGrad || math.IsNaN(d) {
					t.Errorf("gradient of %s differs by %.2g (relative), want <= %g", v, d, tc.tolGrad)
				}
			}
			// The tampered gradient at the (float32) logits, from its
			// definition in float64 on the logits the bfloat16 model gave.
			n := len(got.logits) / classes
			labels := tensors.MustCopyFlatData[int32](y)
			for i := range n {
				z := got.logits[i*classes : (i+1)*classes]
				m := z[0]
				for _, v := range z {
					m = max(m, v)
				}
				var s float64
				for _, v := range z {
					s += math.Exp(alpha * (v - m))
				}
				for j, v := range z {
					q := eps / classes
					if j == int(labels[i]) {
						q += 1 - eps
					}
					ref := (math.Exp(alpha*(v-m))/s - q) / float64(n)
					if g := got.logitsGrad[i*classes+j]; math.Abs(g-ref) > 1e-6*math.Abs(ref)+1e-8 {
						t.Fatalf("d loss/d logits[%d][%d] = %v, want (softmax(alpha z) - q)/N = %v", i, j, g, ref)
					}
				}
			}
			t.Logf("%s: loss %.6f (bfloat16) vs %.6f (float32)", tc.name, got.loss, want.loss)
		})
	}
	if _, err := CountParameters(b, "resnet20", nil, 10, map[string]any{ParamComputeDType: "float16"}); err == nil {
		t.Error("compute dtype float16 accepted")
	}
}
