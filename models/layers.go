package models

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors/images"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/gomlx/gomlx/pkg/ml/layers"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/gomlx/gomlx/pkg/ml/layers/batchnorm"
	"github.com/gomlx/gomlx/pkg/ml/train"
)

// Context hyperparameters read by the layers of this package.
const (
	// ParamBatchNormMomentum (float64) is the weight of the old value in the
	// moving averages of batch norm's mean and variance, in GoMLX's convention.
	// Default 0.9, which is PyTorch's default momentum of 0.1.
	ParamBatchNormMomentum = "batchnorm_momentum"
	// ParamBatchNormEpsilon (float64) is added to the variance in batch norm.
	// Default 1e-5, as in PyTorch.
	ParamBatchNormEpsilon = "batchnorm_epsilon"
	// ParamBatchNormFused (bool) lets batch norm use the backend's fused
	// batch-norm ops where the backend implements them. Default true; false
	// always builds batch norm from plain graph ops (useful to cross-check a
	// backend).
	ParamBatchNormFused = "batchnorm_fused"
	// ParamSEReduction (int) is the channel reduction ratio of the
	// squeeze-and-excitation blocks. Default 16.
	ParamSEReduction = "se_reduction"
)

// checkImages panics (the GoMLX convention while building a graph) unless x
// is a float tensor of shape [N, H, W, C].
func checkImages(model string, x *graph.Node, numClasses int) {
	if x.Rank() != 4 || !x.DType().IsFloat() {
		panic(fmt.Errorf("model %s: images must be float [N, Height, Width, Channels], got %s", model, x.Shape()))
	}
	if numClasses < 1 {
		panic(fmt.Errorf("model %s: number of classes must be >= 1, got %d", model, numClasses))
	}
}

// conv2d adds a 2D convolution (channels last) with a square kernel of the
// given size and stride and PyTorch's symmetric zero padding of kernel/2 on
// each side. The kernel variable "weights" [k, k, inChannels, channels] lives
// in ctx, initialised Kaiming-normal with fan-out (as torchvision ResNets do);
// with bias, a "biases" variable initialised like PyTorch's default is added.
func conv2d(ctx *context.Context, x *graph.Node, channels, kernel, stride int, bias bool) *graph.Node {
	g := x.Graph()
	inChannels := x.Shape().Dimensions[x.Rank()-1]
	w := ctx.WithInitializer(normalInit(ctx, kaimingNormalStd(kernel*kernel*channels))).
		VariableWithShape("weights", shapes.Make(x.DType(), kernel, kernel, inChannels, channels))
	pad := kernel / 2
	y := graph.Convolve(x, w.ValueGraph(g)).
		ChannelsAxis(images.ChannelsLast).
		StridePerAxis(stride, stride).
		PaddingPerDim([][2]int{{pad, pad}, {pad, pad}}).
		Done()
	if bias {
		b := ctx.WithInitializer(torchDefaultInit(ctx, kernel*kernel*inChannels)).
			VariableWithShape("biases", shapes.Make(x.DType(), channels))
		y = graph.Add(y, graph.Reshape(b.ValueGraph(g), 1, 1, 1, channels))
	}
	return y
}

// dense adds a fully connected layer with bias to x [N, features]. Biases are
// initialised like PyTorch's nn.Linear (uniform ±1/sqrt(fanIn)); weights too
// if weightStd is 0, otherwise normal with that standard deviation.
func dense(ctx *context.Context, x *graph.Node, outputs int, weightStd float64) *graph.Node {
	fanIn := x.Shape().Dimensions[x.Rank()-1]
	init := torchDefaultInit(ctx, fanIn)
	if weightStd > 0 {
		init = weightBiasInit(normalInit(ctx, weightStd), init)
	}
	return layers.Dense(ctx.WithInitializer(init), x, true, outputs)
}

// globalAvgPool averages x [N, H, W, C] over its spatial axes, giving [N, C].
func globalAvgPool(x *graph.Node) *graph.Node {
	return graph.ReduceMean(x, 1, 2)
}

// maxPool3x3s2 is the 3x3, stride 2, padding 1 max pool of the ImageNet stem.
// Padding is with the reduction's identity (-inf), as in PyTorch.
func maxPool3x3s2(x *graph.Node) *graph.Node {
	return graph.MaxPool(x).Window(3).Strides(2).PaddingPerDim([][2]int{{1, 1}, {1, 1}}).Done()
}

// hasOps reports whether the graph's backend implements all the given ops.
func hasOps(g *graph.Graph, ops ...backends.OpType) bool {
	caps := g.Backend().Capabilities().Operations
	for _, op := range ops {
		if !caps[op] {
			return false
		}
	}
	return true
}

// batchNorm normalises x over all axes but the last (channels), with a learned
// scale and offset, as batchnorm.New does (same variables under the
// "batch_normalization" sub-scope, so batchnorm.UpdateAverages works).
// Momentum and epsilon default to PyTorch's (see ParamBatchNormMomentum and
// ParamBatchNormEpsilon).
//
// It uses the backend's fused batch-norm ops where the backend implements
// them (unless ParamBatchNormFused is false). When training on a backend
// without BatchNormForTraining (GoMLX's pure-Go backend), it normalises with
// graph ops instead; unlike batchnorm's
// own fallback, the gradient then flows through the batch mean and variance,
// which is what training with batch norm requires.
func batchNorm(ctx *context.Context, x *graph.Node) *graph.Node {
	g := x.Graph()
	momentum := context.GetParamOr(ctx, ParamBatchNormMomentum, 0.9)
	epsilon := context.GetParamOr(ctx, ParamBatchNormEpsilon, 1e-5)
	updatePhase := context.GetGraphParamOr(ctx, g, train.BatchNormalizationUpdatePhase, -1)
	fused := context.GetParamOr(ctx, ParamBatchNormFused, true)
	training := ctx.IsTraining(g) && updatePhase < 0
	if training && !(fused && hasOps(g, backends.OpTypeBatchNormForTraining, backends.OpTypeBatchNormGradient)) {
		return graphBatchNorm(ctx, x, momentum, epsilon)
	}
	useBackend := training || (fused && hasOps(g, backends.OpTypeBatchNormForInference))
	return batchnorm.New(ctx, x, -1).
		Momentum(momentum).
		Epsilon(epsilon).
		UseBackendInference(useBackend).
		Done()
}

// graphBatchNorm is training-mode batch norm built from plain graph ops, with
// the gradient flowing through the batch statistics. Its variables and
// moving-average update match batchnorm.New's.
func graphBatchNorm(ctx *context.Context, x *graph.Node, momentum, epsilon float64) *graph.Node {
	g := x.Graph()
	ctx.InAbsPath(context.RootScope).SetParam(batchnorm.AveragesUpdatesTriggerParam, true)
	ctx = ctx.In(batchnorm.BatchNormalizationScopeName)
	channels := x.Shape().Dimensions[x.Rank()-1]
	varShape := shapes.Make(x.DType(), channels)
	scale := ctx.WithInitializer(initializers.One).VariableWithShape("scale", varShape).SetTrainable(true)
	offset := ctx.WithInitializer(initializers.Zero).VariableWithShape("offset", varShape).SetTrainable(true)
	meanAvg := ctx.WithInitializer(initializers.Zero).VariableWithShape("mean", varShape).SetTrainable(false)
	varAvg := ctx.WithInitializer(initializers.One).VariableWithShape("variance", varShape).SetTrainable(false)
	weight := ctx.WithInitializer(initializers.Zero).VariableWithShape("avg_weight", varShape).SetTrainable(false)

	axes := make([]int, x.Rank()-1)
	for i := range axes {
		axes[i] = i
	}
	mean := graph.ReduceAndKeep(x, graph.ReduceMean, axes...)
	centered := graph.Sub(x, mean)
	variance := graph.ReduceAndKeep(graph.Square(centered), graph.ReduceMean, axes...)
	normalized := graph.Div(centered, graph.Sqrt(graph.AddScalar(variance, epsilon)))
	bcast := make([]int, x.Rank())
	for i := range bcast {
		bcast[i] = 1
	}
	bcast[x.Rank()-1] = channels
	normalized = graph.Add(
		graph.Mul(normalized, graph.Reshape(scale.ValueGraph(g), bcast...)),
		graph.Reshape(offset.ValueGraph(g), bcast...))

	// Moving averages, debiased over the first steps like batchnorm.New's:
	// the old value's weight is min(momentum, 1 - 1/steps).
	steps := graph.OnePlus(weight.ValueGraph(g))
	weight.SetValueGraph(steps)
	keep := graph.Min(graph.Scalar(g, x.DType(), momentum), graph.OneMinus(graph.Reciprocal(steps)))
	update := func(v *context.Variable, batchValue *graph.Node) {
		batchValue = graph.StopGradient(graph.Reshape(batchValue, channels))
		v.SetValueGraph(graph.Add(graph.Mul(keep, v.ValueGraph(g)), graph.Mul(graph.OneMinus(keep), batchValue)))
	}
	update(meanAvg, mean)
	update(varAvg, variance)
	return normalized
}

// squeezeExcite is the squeeze-and-excitation block of Hu et al.: global
// average pool, dense C -> C/r with bias, ReLU, dense C/r -> C with bias,
// sigmoid, and a per-channel scaling of x (r is ParamSEReduction).
func squeezeExcite(ctx *context.Context, x *graph.Node) *graph.Node {
	reduction := context.GetParamOr(ctx, ParamSEReduction, 16)
	if reduction < 1 {
		panic(fmt.Errorf("hyperparameter %s must be >= 1, got %d", ParamSEReduction, reduction))
	}
	dims := x.Shape().Dimensions
	channels := dims[3]
	s := globalAvgPool(x)
	s = activations.Relu(dense(ctx.In("reduce"), s, max(channels/reduction, 1), 0))
	s = graph.Sigmoid(dense(ctx.In("expand"), s, channels, 0))
	return graph.Mul(x, graph.Reshape(s, dims[0], 1, 1, channels))
}

// shortcutA is the parameter-free "option A" shortcut of He et al.'s CIFAR
// ResNets: x is subsampled by stride (x[:, ::stride, ::stride, :]) and
// zero-padded to channels, the extra channels split as evenly as possible
// before and after the existing ones (more after), as in the peer PyTorch
// benchmark. Both are done by one 1x1 convolution, with the given stride, by a
// constant 0/1 selection kernel: exact, differentiable on every backend (the
// pure-Go one has neither Pad nor the Pad-based gradient of a strided Slice),
// and cheap (it appears twice per network).
func shortcutA(x *graph.Node, channels, stride int) *graph.Node {
	inChannels := x.Shape().Dimensions[3]
	if stride == 1 && channels == inChannels {
		return x
	}
	if channels < inChannels {
		panic(fmt.Errorf("option-A shortcut cannot reduce %d channels to %d", inChannels, channels))
	}
	before := (channels - inChannels) / 2
	g := x.Graph()
	selShape := shapes.Make(dtypes.Int32, inChannels, channels)
	selection := graph.Equal(graph.AddScalar(graph.Iota(g, selShape, 0), float64(before)), graph.Iota(g, selShape, 1))
	kernel := graph.Reshape(graph.ConvertDType(selection, x.DType()), 1, 1, inChannels, channels)
	return graph.Convolve(x, kernel).
		ChannelsAxis(images.ChannelsLast).
		StridePerAxis(stride, stride).
		NoPadding().
		Done()
}
