package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt"
	"github.com/sgt-dev/sgt/models"
)

// The wire test's batch: wireN examples of wireClasses classes.
const wireN, wireClasses = 16, 10

// wireLogits is the initial value of the logit-table model's parameters.
var wireLogits = func() []float32 {
	rng := rand.New(rand.NewPCG(5, 6))
	z := make([]float32, wireN*wireClasses)
	for i := range z {
		z[i] = float32(2 * rng.NormFloat64())
	}
	return z
}()

func init() {
	// A model whose parameters are the logits: a [N, C] table, whatever
	// the images. One optimizer step with lr 1 and no momentum or weight
	// decay moves it by minus the logits gradient.
	models.Register(models.Spec{
		Name:        "test-logit-table",
		Description: "test model: the logits are a trainable table",
		InputShape:  []int{28, 28, 1},
		Build: func(ctx *mlctx.Context, images *graph.Node, numClasses int) *graph.Node {
			init := func(g *graph.Graph, shape shapes.Shape) *graph.Node {
				return graph.ConstTensor(g, tensors.FromFlatDataAndDimensions(append([]float32(nil), wireLogits...), wireN, wireClasses))
			}
			table := ctx.In("table").WithInitializer(init).VariableWithShape("logits", shapes.Make(dtypes.Float32, wireN, wireClasses))
			// The first rows, for batches smaller than the table.
			n := images.Shape().Dimensions[0]
			return graph.Slice(table.ValueGraph(images.Graph()), graph.AxisRange(0, n))
		},
	})
}

// TestTrainStepUsesConfiguredAlphaAndSmoothing checks the wire from a run's
// configuration to its compiled train step: one step of the trainer that
// sgt train builds, on a model whose parameters are the logits z, must move
// them by exactly -(softmax(alpha*z) - q)/N, with q the label-smoothed
// targets. A step that ignored the configured alpha or label smoothing
// moves them differently.
func TestTrainStepUsesConfiguredAlphaAndSmoothing(t *testing.T) {
	labels := make([]int32, wireN)
	for i := range labels {
		labels[i] = int32((3 * i) % wireClasses)
	}
	for _, tc := range []struct{ alpha, eps float64 }{{0.3, 0.1}, {0.05, 0}, {1, 0.2}} {
		cfg := DefaultConfig()
		cfg.Model = "test-logit-table"
		cfg.Alpha, cfg.LabelSmoothing = tc.alpha, tc.eps
		cfg.Momentum, cfg.WeightDecay, cfg.Nesterov = 0, 0, false
		cfg.BatchSize, cfg.TrainSize, cfg.TestSize, cfg.TrainEvalSize = wireN, 64, 32, 0
		cfg.FilterNormsEvery = 0
		tr, err := newTrainer(cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.initialize(); err != nil {
			t.Fatal(err)
		}
		images := tensors.FromFlatDataAndDimensions(make([]float32, wireN*28*28), wireN, 28, 28, 1)
		if _, _, err := runStep(tr.trainExec, "wire step", images, tensors.FromFlatDataAndDimensions(labels, wireN), float32(1)); err != nil {
			t.Fatal(err)
		}
		v := tr.ctx.GetVariableByScopeAndName("/table", "logits")
		if v == nil {
			t.Fatal("no /table/logits variable")
		}
		after := tensors.MustCopyFlatData[float32](v.MustValue())
		tr.close()

		z := make([][]float64, wireN)
		ls := make([]int, wireN)
		for i := range z {
			z[i] = make([]float64, wireClasses)
			for j := range z[i] {
				z[i][j] = float64(wireLogits[i*wireClasses+j])
			}
			ls[i] = int(labels[i])
		}
		ref, err := sgt.Compute(z, ls, tc.alpha, tc.eps)
		if err != nil {
			t.Fatal(err)
		}
		for i := range z {
			for j := range z[i] {
				got := float64(after[i*wireClasses+j]) - z[i][j]
				want := -ref.Grad[i][j]
				if math.Abs(got-want) > 2e-6 {
					t.Fatalf("alpha %g, eps %g: logit [%d][%d] moved by %.7g, want -(softmax(alpha z) - q)/N = %.7g",
						tc.alpha, tc.eps, i, j, got, want)
				}
			}
		}
	}
}
