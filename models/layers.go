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
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/gomlx/gomlx/pkg/ml/layers/batchnorm"
	"github.com/gomlx/gomlx/pkg/ml/layers/regularizers"
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
	// ParamSEReduction (int) is the channel reduction ratio r of the
	// squeeze-and-excitation blocks; the hidden width follows timm's rule
	// (see seChannels). Default 16.
	ParamSEReduction = "se_reduction"
	// ParamComputeDType (string) selects the dtype the models compute in,
	// for mixed-precision training: "float32" or "bfloat16"; unset (or "")
	// computes in the dtype of the images, as before. Whatever it is, the
	// variables are kept in the master dtype (float64 for float64 images,
	// float32 otherwise) and converted to the compute dtype where they are
	// used, so their gradients and the optimizer's updates are in the master
	// dtype; the images are converted to the compute dtype on entry;
	// convolutions, matrix multiplications and activations run in the
	// compute dtype; batch norm (its statistics and normalisation) and the
	// global average pools run in the master dtype; and the logits and
	// features a model returns are converted to the master dtype.
	// sgt.CrossEntropyLoss then computes the softmax and the loss in
	// float32 too.
	ParamComputeDType = "compute_dtype"
)

// precision says in which dtypes a model keeps its variables (master) and
// computes (compute); see ParamComputeDType.
type precision struct {
	master, compute dtypes.DType
}

// newPrecision reads ParamComputeDType for a model's images. It panics with
// an error naming the value when it is not a known dtype.
func newPrecision(model string, ctx *context.Context, images *graph.Node) precision {
	master := dtypes.Float32
	if images.DType() == dtypes.Float64 {
		master = dtypes.Float64
	}
	p := precision{master: master, compute: master}
	switch name := context.GetParamOr(ctx, ParamComputeDType, ""); name {
	case "":
	case "float32":
		p.compute = dtypes.Float32
	case "bfloat16":
		p.compute = dtypes.BFloat16
	default:
		panic(fmt.Errorf("model %s: hyperparameter %s = %q: want \"float32\" or \"bfloat16\"", model, ParamComputeDType, name))
	}
	return p
}

// precisionOf is the precision of a model that keeps and computes
// everything in dtype.
func precisionOf(dtype dtypes.DType) precision {
	return precision{master: dtype, compute: dtype}
}

// variable returns, in the compute dtype, the value of the variable name
// of ctx with the given dimensions, kept in the master dtype (created with
// ctx's initializer on first use).
func (p precision) variable(ctx *context.Context, g *graph.Graph, name string, dims ...int) *graph.Node {
	v := ctx.VariableWithShape(name, shapes.Make(p.master, dims...))
	return graph.ConvertDType(v.ValueGraph(g), p.compute)
}

// toCompute and toMaster convert x to the compute and master dtypes.
func (p precision) toCompute(x *graph.Node) *graph.Node { return graph.ConvertDType(x, p.compute) }
func (p precision) toMaster(x *graph.Node) *graph.Node  { return graph.ConvertDType(x, p.master) }

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

// conv2d adds a 2D convolution (channels last) of x (in the compute dtype)
// with a square kernel of the given size and stride and PyTorch's symmetric
// zero padding of kernel/2 on each side. The kernel variable "weights" [k, k,
// inChannels, channels] lives in ctx, initialised normal with standard
// deviation std (Kaiming-normal with fan-in or fan-out, chosen by the
// caller); with bias, a "biases" variable initialised like PyTorch's default
// (uniform ±1/sqrt(fanIn)) is added.
func conv2d(ctx *context.Context, p precision, x *graph.Node, channels, kernel, stride int, bias bool, std float64) *graph.Node {
	g := x.Graph()
	inChannels := x.Shape().Dimensions[x.Rank()-1]
	w := p.variable(ctx.WithInitializer(normalInit(ctx, std)), g, "weights", kernel, kernel, inChannels, channels)
	pad := kernel / 2
	y := graph.Convolve(x, w).
		ChannelsAxis(images.ChannelsLast).
		StridePerAxis(stride, stride).
		PaddingPerDim([][2]int{{pad, pad}, {pad, pad}}).
		Done()
	if bias {
		b := p.variable(ctx.WithInitializer(torchDefaultInit(ctx, kernel*kernel*inChannels)), g, "biases", channels)
		y = graph.Add(y, graph.Reshape(b, 1, 1, 1, channels))
	}
	return y
}

// dense adds a fully connected layer with bias to x [N, features] (in the
// compute dtype), with the variables of GoMLX's layers.Dense: "weights"
// [features, outputs] and "biases" [outputs] under ctx.In("dense"), and the
// weights regularised as layers.Dense does. Biases are initialised like
// PyTorch's nn.Linear (uniform ±1/sqrt(fanIn)); weights too if weightStd is
// 0, otherwise normal with that standard deviation.
func dense(ctx *context.Context, p precision, x *graph.Node, outputs int, weightStd float64) *graph.Node {
	g := x.Graph()
	fanIn := x.Shape().Dimensions[x.Rank()-1]
	ctx = ctx.In("dense")
	wInit := torchDefaultInit(ctx, fanIn)
	if weightStd > 0 {
		wInit = normalInit(ctx, weightStd)
	}
	w := p.variable(ctx.WithInitializer(wInit), g, "weights", fanIn, outputs)
	if regularizer := regularizers.FromContext(ctx); regularizer != nil {
		regularizer(ctx, g, ctx.GetVariable("weights"))
	}
	b := p.variable(ctx.WithInitializer(torchDefaultInit(ctx, fanIn)), g, "biases", outputs)
	return graph.Add(graph.Dot(x, w), graph.Reshape(b, 1, outputs))
}

// globalAvgPool averages x [N, H, W, C] over its spatial axes in the master
// dtype, giving [N, C] in the master dtype.
func globalAvgPool(p precision, x *graph.Node) *graph.Node {
	return graph.ReduceMean(p.toMaster(x), 1, 2)
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
// ParamBatchNormEpsilon). It runs in the master dtype: x is converted to it
// and the result back to the compute dtype.
//
// It uses the backend's fused batch-norm ops where the backend implements
// them (unless ParamBatchNormFused is false). When training on a backend
// without BatchNormForTraining (GoMLX's pure-Go backend), it normalises with
// graph ops instead; unlike batchnorm's
// own fallback, the gradient then flows through the batch mean and variance,
// which is what training with batch norm requires.
func batchNorm(ctx *context.Context, p precision, x *graph.Node) *graph.Node {
	return p.toCompute(batchNormMaster(ctx, p.toMaster(x)))
}

// batchNormMaster is batchNorm on x in the master dtype.
func batchNormMaster(ctx *context.Context, x *graph.Node) *graph.Node {
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

// squeezeExcite is the squeeze-and-excitation block of Hu et al. as timm
// builds it (SEModule, used by the authors' seresnet18/50): global average
// pool, dense C -> seChannels(C, r) with bias, ReLU, dense back to C with
// bias, sigmoid, and a per-channel scaling of x (r is ParamSEReduction,
// default 16). timm's two layers are 1x1 convolutions, which its ResNet
// initialises Kaiming-normal with fan-out (standard deviation sqrt(2/outputs))
// and whose biases keep PyTorch's default, uniform ±1/sqrt(inputs); so are
// these.
func squeezeExcite(ctx *context.Context, p precision, x *graph.Node) *graph.Node {
	reduction := context.GetParamOr(ctx, ParamSEReduction, 16)
	if reduction < 1 {
		panic(fmt.Errorf("hyperparameter %s must be >= 1, got %d", ParamSEReduction, reduction))
	}
	dims := x.Shape().Dimensions
	channels := dims[3]
	hidden := seChannels(channels, reduction)
	s := p.toCompute(globalAvgPool(p, x))
	s = activations.Relu(dense(ctx.In("reduce"), p, s, hidden, kaimingNormalStd(hidden)))
	s = graph.Sigmoid(dense(ctx.In("expand"), p, s, channels, kaimingNormalStd(channels)))
	return graph.Mul(x, graph.Reshape(s, dims[0], 1, 1, channels))
}

// seChannels is the hidden width of a squeeze-and-excitation block on the
// given channels with reduction ratio r, by timm's rule: SEModule's
// make_divisible(channels/r, divisor 8, round_limit 0), that is v = channels/r
// rounded to the nearest multiple of 8 (halves up), and at least 8:
// max(8, floor((v + 4)/8)*8). round_limit 0 switches off make_divisible's
// other step (add 8 when the rounded value is below 90% of v). For r = 16
// and the ResNets' widths (64 ... 2048) this gives 8, 8, 16, 32 (basic
// blocks) and 16, 32, 64, 128 (bottlenecks); the older timm rule max(8,
// channels/r) gives the same widths there.
func seChannels(channels, r int) int {
	v := float64(channels) / float64(r)
	return max(8, int(v+4)/8*8)
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
