package models

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
)

// ParamMLPHidden is the context hyperparameter (int) with the width of the
// MLP's hidden layer. Default: 256.
const ParamMLPHidden = "mlp_hidden"

func init() {
	Register(Spec{
		Name:        "mlp",
		Description: "multilayer perceptron: flatten, dense 256, ReLU, dense (784-256-10 on MNIST: 203,530 parameters)",
		Build:       MLP,
		Features:    MLPFeatures,
		InputShape:  []int{28, 28, 1},
	})
}

// MLP builds a one-hidden-layer perceptron: the images are flattened, then
// go through a dense layer of width ParamMLPHidden (default 256), a ReLU and a
// dense layer to numClasses logits. Both layers have biases and are
// initialised like PyTorch's nn.Linear: weights and biases uniform in
// ±1/sqrt(fanIn). Variables live under the scopes "mlp/hidden" and "mlp/output".
func MLP(ctx *context.Context, images *graph.Node, numClasses int) *graph.Node {
	_, logits := MLPFeatures(ctx, images, numClasses)
	return logits
}

// MLPFeatures builds the same network as MLP and returns, besides the
// logits, its features: the hidden layer's activations after the ReLU
// ([N, ParamMLPHidden]), the input of the output layer. Both are in the
// master dtype (see ParamComputeDType).
func MLPFeatures(ctx *context.Context, images *graph.Node, numClasses int) (features, logits *graph.Node) {
	if images.Rank() < 2 || !images.DType().IsFloat() {
		panic(fmt.Errorf("model mlp: images must be float [N, ...], got %s", images.Shape()))
	}
	if numClasses < 1 {
		panic(fmt.Errorf("model mlp: number of classes must be >= 1, got %d", numClasses))
	}
	p := newPrecision("mlp", ctx, images)
	ctx = ctx.In("mlp")
	hidden := context.GetParamOr(ctx, ParamMLPHidden, 256)
	batch := images.Shape().Dimensions[0]
	x := graph.Reshape(p.toCompute(images), batch, -1)
	h := activations.Relu(dense(ctx.In("hidden"), p, x, hidden, 0))
	logits = dense(ctx.In("output"), p, h, numClasses, 0)
	return p.toMaster(h), p.toMaster(logits)
}
