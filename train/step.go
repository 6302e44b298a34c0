package train

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt"
	"github.com/sgt-dev/sgt/models"
	"github.com/sgt-dev/sgt/train/optim"
)

// Step builds the graphs of a run's steps: the optimizer step (model, SGT
// loss, gradients, optimizer) and the evaluation of a batch. "sgt train"
// and "sgt bench" both build their steps here.
type Step struct {
	// Model is the model, NumClasses the number of its outputs.
	Model      models.Spec
	NumClasses int
	// Alpha and LabelSmoothing configure the SGT loss (sgt.CrossEntropyLoss).
	Alpha, LabelSmoothing float64
	// Optimizer transforms the gradients into the variables' updates.
	Optimizer optim.Chain
}

// NewStep returns the step of a run with configuration cfg, for a model
// with numClasses outputs.
func NewStep(cfg Config, spec models.Spec, numClasses int) Step {
	return Step{
		Model:          spec,
		NumClasses:     numClasses,
		Alpha:          cfg.Alpha,
		LabelSmoothing: cfg.LabelSmoothing,
		Optimizer:      cfg.Optimizer(),
	}
}

// finalLayerScope returns the scope of the model's final (classifier) layer:
// that of the last-created trainable variable of rank >= 2 whose last axis
// has numClasses entries (the logits' weights). It returns "" when there is
// none.
func finalLayerScope(ctx *context.Context, g *graph.Graph, numClasses int) string {
	scope := ""
	for v := range ctx.IterVariables() {
		if !v.Trainable || !v.InUseByGraph(g) {
			continue
		}
		dims := v.Shape().Dimensions
		if len(dims) >= 2 && dims[len(dims)-1] == numClasses {
			scope = v.Scope()
		}
	}
	return scope
}

// Train builds one optimizer step: logits, the SGT loss, the gradients, the
// optimizer chain and the variable updates. It returns the batch's mean loss
// and its number of correct predictions (a float32 scalar).
func (s Step) Train(ctx *context.Context, images, labels, lr *graph.Node) (loss, correct *graph.Node) {
	g := images.Graph()
	ctx.SetTraining(g, true)
	logits := s.Model.Build(ctx, images, s.NumClasses)
	loss = sgt.CrossEntropyLoss(logits, labels, s.Alpha, s.LabelSmoothing)

	final := finalLayerScope(ctx, g, s.NumClasses)
	var params []optim.Param
	var values []*graph.Node
	for v := range ctx.IterVariables() {
		if !v.Trainable || !v.InUseByGraph(g) {
			continue
		}
		value := v.ValueGraph(g)
		params = append(params, optim.Param{Variable: v, Value: value, Final: final != "" && v.Scope() == final})
		values = append(values, value)
	}
	if len(params) == 0 {
		panic(fmt.Errorf("model %s has no trainable variables", s.Model.Name))
	}
	grads := graph.Gradient(loss, values...)
	step := &optim.Step{Ctx: ctx.In("optimizer").Checked(false), Params: params, LearningRate: lr}
	optim.ApplyUpdates(params, s.Optimizer.Update(step, grads))
	return loss, countCorrect(logits, labels)
}

// Outputs of the eval step, in order; evalFeatureAbs is there only for
// models that expose their features.
const (
	evalLossSum = iota
	evalCorrect
	evalTop5
	evalLogitNorm
	evalFeatureAbs
)

// Eval builds the evaluation of one batch in inference mode. It returns
// (see the eval* constants) the summed loss, the number of correct
// predictions, the number of labels among the 5 highest logits, the summed
// L2 norms of the logit vectors and, when the model exposes its features,
// their summed absolute values per feature.
func (s Step) Eval(ctx *context.Context, images, labels *graph.Node) []*graph.Node {
	g := images.Graph()
	ctx.SetTraining(g, false)
	var features, logits *graph.Node
	if s.Model.Features != nil {
		features, logits = s.Model.Features(ctx, images, s.NumClasses)
	} else {
		logits = s.Model.Build(ctx, images, s.NumClasses)
	}
	loss := sgt.CrossEntropyLoss(logits, labels, s.Alpha, s.LabelSmoothing)
	n := images.Shape().Dimensions[0]
	z := graph.ConvertDType(logits, dtypes.Float32)
	outs := []*graph.Node{
		evalLossSum:   graph.ConvertDType(graph.MulScalar(loss, float64(n)), dtypes.Float32),
		evalCorrect:   countCorrect(logits, labels),
		evalTop5:      countTopK(z, labels, 5),
		evalLogitNorm: graph.ReduceAllSum(graph.Sqrt(graph.ReduceSum(graph.Square(z), -1))),
	}
	if features != nil {
		f := graph.ConvertDType(features, dtypes.Float32)
		outs = append(outs, graph.ReduceSum(graph.Abs(f), 0))
	}
	return outs
}

// countCorrect returns the number of rows of logits whose arg-max is the
// label, as a float32 scalar.
func countCorrect(logits, labels *graph.Node) *graph.Node {
	pred := graph.ArgMax(logits, -1, labels.DType())
	hits := graph.ConvertDType(graph.Equal(pred, labels), dtypes.Float32)
	return graph.ReduceAllSum(hits)
}

// countTopK returns the number of rows of logits [N, C] in which fewer
// than k logits exceed the label's, i.e. the label is among the k highest
// (ties counted in its favour), as a float32 scalar.
func countTopK(logits, labels *graph.Node, k int) *graph.Node {
	dims := logits.Shape().Dimensions
	onehot := graph.OneHot(labels, dims[1], logits.DType())
	target := graph.ReduceSum(graph.Mul(logits, onehot), -1)
	target = graph.BroadcastToDims(graph.ExpandAxes(target, -1), dims...)
	above := graph.ReduceSum(graph.ConvertDType(graph.GreaterThan(logits, target), dtypes.Float32), -1)
	hits := graph.LessThan(above, graph.Scalar(logits.Graph(), dtypes.Float32, k))
	return graph.ReduceAllSum(graph.ConvertDType(hits, dtypes.Float32))
}
