package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/losses"
	"github.com/sgt-dev/sgt/models"
)

// Results must not depend on the number of workers (GOMAXPROCS): these
// tests run the same computation with several worker counts and compare
// bit patterns.

// TestReduceWorkerInvariant runs large reductions, whose outermost axis is
// summed in parts, with 1 to 16 workers.
func TestReduceWorkerInvariant(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	r := rand.New(rand.NewPCG(31, 32))
	for _, c := range []struct {
		kind reduceKind
		dims []int
		axes []int
	}{
		{redSum, []int{300000}, []int{0}},
		{redSum, []int{1000, 300}, []int{0}},
		{redSum, []int{64, 16, 16, 32}, []int{0, 1, 2}}, // a bias gradient
		{redSum, []int{7, 5000, 3}, []int{0, 1}},
		{redSum, []int{3000, 40}, []int{0, 1}},
		{redProd, []int{200000}, []int{0}},
		{redMax, []int{500, 400}, []int{0}},
		{redSum, []int{64, 2048}, []int{1}}, // outer axis kept: no partial sums
	} {
		in32 := make([]float32, sizeOf(c.dims))
		in64 := make([]float64, len(in32))
		for i := range in32 {
			v := r.NormFloat64()
			if c.kind == redProd {
				v = 1 + v/1000
			}
			in32[i], in64[i] = float32(v), v
		}
		p := newReducePlan(c.kind, c.dims, c.axes)
		name := fmt.Sprintf("%v over %v of %v", c.kind, c.axes, c.dims)
		var ref32 []float32
		var ref64 []float64
		for _, w := range []int{1, 2, 3, 4, 5, 7, 8, 16} {
			runtime.GOMAXPROCS(w)
			out32, out64 := make([]float32, p.outSize), make([]float64, p.outSize)
			reduceNum[float32](p)([]any{in32}, []any{out32})
			reduceNum[float64](p)([]any{in64}, []any{out64})
			if ref32 == nil {
				ref32, ref64 = out32, out64
				continue
			}
			for i := range out32 {
				if math.Float32bits(out32[i]) != math.Float32bits(ref32[i]) || math.Float64bits(out64[i]) != math.Float64bits(ref64[i]) {
					t.Errorf("%s: element %d = %g (float32), %g (float64) with %d workers, %g, %g with 1",
						name, i, out32[i], out64[i], w, ref32[i], ref64[i])
					break
				}
			}
		}
	}
}

// workerTrainStep returns a graph function doing one SGD step (learning
// rate 0.05) on the mean cross-entropy of the model; it returns the loss
// before the step.
func workerTrainStep(spec models.Spec, classes int) func(ctx *context.Context, x, labels *graph.Node) *graph.Node {
	return func(ctx *context.Context, x, labels *graph.Node) *graph.Node {
		g := x.Graph()
		ctx.SetTraining(g, true)
		logits := spec.Build(ctx, x, classes)
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
			v.SetValueGraph(graph.Sub(values[i], graph.MulScalar(grads[i], 0.05)))
		}
		return loss
	}
}

// trainedBits trains the named model for steps steps on fixed random
// batches and returns the bit patterns of the losses and of every variable
// afterwards (batch-norm statistics included), by variable name.
func trainedBits(t *testing.T, name string, params map[string]any, batch int, in []int, steps int) (losses []uint32, vars map[string][]uint64) {
	t.Helper()
	spec, err := models.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	const classes = 10
	r := rand.New(rand.NewPCG(41, 42))
	var xs, ys []*tensors.Tensor
	for range 2 {
		x := make([]float32, batch*in[0]*in[1]*in[2])
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		y := make([]int32, batch)
		for i := range y {
			y[i] = int32(r.IntN(classes))
		}
		xs = append(xs, tensors.FromFlatDataAndDimensions(x, batch, in[0], in[1], in[2]))
		ys = append(ys, tensors.FromFlatDataAndDimensions(y, batch, 1))
	}
	ctx := context.New()
	ctx.SetParam(context.ParamInitialSeed, int64(7))
	ctx.SetParams(params)
	e, err := context.NewExec(mustCPU(t), ctx, workerTrainStep(spec, classes))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	for i := range steps {
		loss, err := e.Exec1(xs[i%2], ys[i%2])
		if err != nil {
			t.Fatalf("%s step %d: %v", name, i, err)
		}
		losses = append(losses, math.Float32bits(tensors.ToScalar[float32](loss)))
	}
	vars = map[string][]uint64{}
	for v := range ctx.IterVariables() {
		val, err := v.Value()
		if err != nil {
			t.Fatal(err)
		}
		if !val.Shape().DType.IsFloat() {
			continue
		}
		fs := tensorF64(val)
		bits := make([]uint64, len(fs))
		for i, f := range fs {
			bits[i] = math.Float64bits(f)
		}
		vars[v.ScopeAndName()] = bits
	}
	return losses, vars
}

// TestTrainWorkerInvariant trains each model family a few steps with
// GOMAXPROCS 1, 2, 3 and 5 and checks that the losses and the trained
// variables are bit-identical.
func TestTrainWorkerInvariant(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	cases := []struct {
		name   string
		params map[string]any
		batch  int
		in     []int
	}{
		{"mlp", nil, 64, []int{28, 28, 1}},
		{"resnet20", nil, 16, []int{16, 16, 3}},
		{"resnet20-nobn", nil, 16, []int{16, 16, 3}},
		{"resnet18", nil, 8, []int{32, 32, 3}}, // 7x7 stem and max pool
		{"seresnet18", map[string]any{models.ParamSmallStem: true}, 8, []int{16, 16, 3}},
		{"resnet50", map[string]any{models.ParamSmallStem: true}, 8, []int{8, 8, 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var refLoss []uint32
			var refVars map[string][]uint64
			for _, w := range []int{1, 2, 3, 5} {
				runtime.GOMAXPROCS(w)
				losses, vars := trainedBits(t, c.name, c.params, c.batch, c.in, 3)
				if refLoss == nil {
					refLoss, refVars = losses, vars
					continue
				}
				for i := range losses {
					if losses[i] != refLoss[i] {
						t.Errorf("GOMAXPROCS=%d: step %d loss %.9g, with 1: %.9g", w, i,
							math.Float32frombits(losses[i]), math.Float32frombits(refLoss[i]))
					}
				}
				var differ []string
				for name, bits := range vars {
					if strings.HasPrefix(name, "/metrics") {
						continue
					}
					ref := refVars[name]
					for i := range bits {
						if bits[i] != ref[i] {
							differ = append(differ, name)
							break
						}
					}
				}
				if len(differ) > 0 {
					t.Errorf("GOMAXPROCS=%d: %d of %d variables differ from GOMAXPROCS=1, e.g. %s", w, len(differ), len(vars), differ[0])
				}
			}
		})
	}
}
