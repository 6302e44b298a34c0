package cpu

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/gomlx/gomlx/pkg/ml/layers/batchnorm"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/gomlx/gomlx/pkg/ml/train/losses"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
)

// End-to-end training tests with GoMLX's trainer, layers and optimizers.

// mlpModel is a 2-hidden-layer MLP with dropout.
func mlpModel(ctx *context.Context, _ any, inputs []*Node) []*Node {
	x := inputs[0]
	x = activations.Relu(layers.DenseWithBias(ctx.In("h1"), x, 16))
	x = layers.DropoutStatic(ctx, x, 0.1)
	x = activations.Relu(layers.DenseWithBias(ctx.In("h2"), x, 16))
	return []*Node{layers.DenseWithBias(ctx.In("out"), x, 3)}
}

// mlpData is a synthetic 3-class problem: the class is the argmax of three
// fixed linear functions of the 6 features.
func mlpData(n int, seed uint64) (*tensors.Tensor, *tensors.Tensor) {
	rng := rand.New(rand.NewPCG(seed, 1))
	xs := make([]float32, n*6)
	ys := make([]int32, n)
	for i := range n {
		best, bestV := 0, math.Inf(-1)
		for c := range 3 {
			v := 0.0
			for f := range 6 {
				if c == 0 {
					xs[i*6+f] = float32(rng.NormFloat64())
				}
				v += float64(xs[i*6+f]) * math.Sin(float64(c*6+f+1))
			}
			if v > bestV {
				best, bestV = c, v
			}
		}
		ys[i] = int32(best)
	}
	return tensors.FromFlatDataAndDimensions(xs, n, 6), tensors.FromFlatDataAndDimensions(ys, n, 1)
}

// trainSteps trains model on be for steps steps and returns the losses and
// the context.
func trainSteps(t *testing.T, be backends.Backend, model train.ModelFn, opt optimizers.Interface,
	x, y *tensors.Tensor, steps int) ([]float64, *context.Context) {
	t.Helper()
	ctx := context.New()
	if err := ctx.SetRNGStateFromSeed(42); err != nil {
		t.Fatal(err)
	}
	trainer := train.NewTrainer(be, ctx, model, losses.SparseCategoricalCrossEntropyLogits, opt, nil, nil)
	var ls []float64
	for range steps {
		m, err := trainer.TrainStep(nil, []*tensors.Tensor{x}, []*tensors.Tensor{y})
		if err != nil {
			t.Fatalf("%s: train step: %v", be.Name(), err)
		}
		ls = append(ls, float64(tensors.ToScalar[float32](m[0])))
	}
	return ls, ctx
}

// TestTrainMLPMatchesSimpleGo trains the same MLP (same seed, same data,
// dropout included: the RNG is bit-compatible) on both backends and
// compares the losses and final weights.
func TestTrainMLPMatchesSimpleGo(t *testing.T) {
	cpu, ref := testBackends(t)
	const steps = 8
	x, y := mlpData(64, 3)
	lossCPU, ctxCPU := trainSteps(t, cpu, mlpModel, optimizers.Adam().LearningRate(0.01).Done(), x, y, steps)
	x, y = mlpData(64, 3) // tensors cannot be shared across backends
	lossRef, ctxRef := trainSteps(t, ref, mlpModel, optimizers.Adam().LearningRate(0.01).Done(), x, y, steps)
	for i := range lossCPU {
		if d := math.Abs(lossCPU[i] - lossRef[i]); d > 1e-4*(1+math.Abs(lossRef[i])) {
			t.Errorf("step %d: loss %.7g on cpu, %.7g on simplego", i, lossCPU[i], lossRef[i])
		}
	}
	if !(lossCPU[steps-1] < lossCPU[0]) {
		t.Errorf("MLP did not learn: losses %v", lossCPU)
	}
	n := 0
	for v := range ctxRef.IterVariables() {
		if strings.HasPrefix(v.Scope(), "/metrics") {
			continue // metric variables have per-run unique names
		}
		w := ctxCPU.GetVariableByScopeAndName(v.Scope(), v.Name())
		if w == nil {
			t.Fatalf("variable %s missing on cpu", v.ScopeAndName())
		}
		wantT, err := v.Value()
		if err != nil {
			t.Fatal(err)
		}
		gotT, err := w.Value()
		if err != nil {
			t.Fatal(err)
		}
		if !wantT.Shape().DType.IsFloat() {
			continue
		}
		want := tensorF64(wantT)
		got := tensorF64(gotT)
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-4*(1+math.Abs(want[i])) {
				t.Errorf("variable %s[%d] = %.7g on cpu, %.7g on simplego", v.ScopeAndName(), i, got[i], want[i])
				break
			}
		}
		n++
	}
	if n < 6 {
		t.Errorf("only %d float variables compared", n)
	}
}

func tensorF64(t *tensors.Tensor) []float64 {
	var out []float64
	t.ConstFlatData(func(flat any) {
		n := t.Shape().Size()
		out = make([]float64, n)
		for i := range n {
			out[i] = scalarAsFloat64(flat, i)
		}
	})
	return out
}

// convModel is a small CNN with batch norm, max and mean pooling, a strided
// convolution, a sigmoid gate (as in SE blocks) and dropout.
func convModel(ctx *context.Context, _ any, inputs []*Node) []*Node {
	x := inputs[0]
	x = layers.Convolution(ctx.In("c1"), x).Channels(8).KernelSize(3).PadSame().Done()
	x = batchnorm.New(ctx.In("bn1"), x, -1).Done()
	x = activations.Relu(x)
	x = MaxPool(x).Window(2).Done()
	y := layers.Convolution(ctx.In("c2"), x).Channels(8).KernelSize(3).Strides(2).PadSame().Done()
	gate := Sigmoid(layers.DenseWithBias(ctx.In("se"), ReduceMean(y, 1, 2), 8))
	y = Mul(y, ExpandAxes(gate, 1, 2))
	y = MeanPool(y).Window(2).Done()
	y = layers.DropoutStatic(ctx, y, 0.1)
	y = Reshape(y, y.Shape().Dimensions[0], -1)
	return []*Node{layers.DenseWithBias(ctx.In("out"), y, 4)}
}

// convData: 8x8 RGB images whose class is the quadrant holding a bright blob.
func convData(n int, seed uint64) (*tensors.Tensor, *tensors.Tensor) {
	rng := rand.New(rand.NewPCG(seed, 2))
	xs := make([]float32, n*8*8*3)
	ys := make([]int32, n)
	for i := range n {
		c := rng.IntN(4)
		ys[i] = int32(c)
		r0, c0 := (c/2)*4+rng.IntN(3), (c%2)*4+rng.IntN(3)
		for p := range 64 {
			for ch := range 3 {
				v := 0.3 * rng.NormFloat64()
				if r, cc := p/8, p%8; r >= r0 && r < r0+2 && cc >= c0 && cc < c0+2 {
					v += 2
				}
				xs[(i*64+p)*3+ch] = float32(v)
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(xs, n, 8, 8, 3), tensors.FromFlatDataAndDimensions(ys, n, 1)
}

// TestTrainConvNetLearns trains the CNN on our backend and checks that the
// loss falls well below chance (ln 4 ≈ 1.39).
func TestTrainConvNetLearns(t *testing.T) {
	cpu := mustCPU(t)
	x, y := convData(32, 5)
	const steps = 40
	ls, _ := trainSteps(t, cpu, convModel, optimizers.Adam().LearningRate(0.02).Done(), x, y, steps)
	first, last := ls[0], ls[len(ls)-1]
	if !(last < 0.5*first) || last > 0.7 {
		t.Errorf("conv net did not learn: loss %.4f -> %.4f (%v)", first, last, ls)
	}
}
