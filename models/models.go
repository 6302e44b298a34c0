// Package models holds the registry of classifier architectures that sgt trains:
// an MLP, CIFAR ResNets, ImageNet-style ResNets, SE-ResNets and their variants
// without batch norm. Every model is a GoMLX function from a batch of images to
// logits; its hyperparameters live in the GoMLX context. Spec.Features builds
// the same model and also returns the input of its final linear layer (the
// pooled features of a ResNet, the hidden layer of the MLP).
//
// Registered models (Spec.Paper says which are the paper's, built as the
// authors' code builds them; the others are extensions):
//
//   - mlp: flatten, dense 256, ReLU, dense (PyTorch nn.Linear initialisation).
//   - resnet20 (the paper's CIFAR-10 model), resnet32, resnet44, resnet56,
//     resnet110: He et al. (2016) section 4.2 CIFAR ResNets (16/32/64
//     channels, option-A shortcuts: subsampling and zero channel padding).
//     Convolutions and the final layer are initialised Kaiming-normal with
//     fan-in, sqrt(2/fanIn), as in the authors' CifarResNet (PyTorch's
//     kaiming_normal_ default) and as He et al. prescribe (they initialise
//     "as in [13]", He et al. 2015 "Delving Deep into Rectifiers", whose
//     forward-pass derivation uses the fan-in k*k*inChannels). Every block
//     has its skip connection: the authors' code drops it in the 7 of 9
//     blocks that do not downsample (CifarBasicBlock adds the residual only
//     when a shortcut module exists), a quirk not copied here.
//   - resnet18, resnet34, resnet50, resnet101, resnet152: the torchvision
//     ImageNet ResNets as timm builds them (7x7/2 stem and max pool, or a
//     3x3/1 stem with ParamSmallStem; projection shortcuts; stride on the 3x3
//     convolution of a bottleneck); convolutions Kaiming-normal with fan-out,
//     batch norm scale 1 and offset 0 (timm's zero-init of the last scale is
//     inactive in the authors' fork), final layer PyTorch's default. The
//     paper uses resnet18, resnet50 and resnet101.
//   - seresnet18, seresnet34, seresnet50, seresnet101: the same with timm's
//     squeeze-and-excitation block at the end of each residual branch
//     (hidden width by timm's rule, see seChannels). The paper uses
//     seresnet18 and seresnet50.
//   - <any ResNet above>-nobn: batch norm simply removed, as the authors'
//     resnet18_wobn (timm's ResNet-18 with norm_layer = nn.Identity):
//     convolutions without bias, no scalar on the residual branch, the same
//     initialisation. resnet18-nobn is the paper's non-BN model; the others
//     are extensions. Without normalisation the activations grow with every
//     residual block, so the deep ones start with huge logits: on random 8x8
//     images resnet110-nobn starts at a loss of about 3.6e5, and one plain
//     SGD step of 1e-4 without gradient clipping gives NaN.
//   - <any ResNet above>-nobn-skipinit: an extension, not the paper's:
//     batch norm removed, convolutions with biases, and each residual
//     branch multiplied by a learned scalar initialised to 0 (SkipInit, De &
//     Smith 2020), so that deep un-normalised networks start as their
//     shortcut path.
//
// Padding is PyTorch's symmetric kernel/2, and batch norm uses PyTorch's
// momentum 0.1 and epsilon 1e-5 (see ParamBatchNormMomentum). Biases, where
// a layer has them, follow PyTorch's default uniform ±1/sqrt(fanIn).
//
// Mixed precision: ParamComputeDType = "bfloat16" computes in bfloat16 with
// float32 variables, batch norm in float32 and float32 logits.
//
// Builders panic with an error on bad shapes or hyperparameters, the GoMLX
// convention while a graph is built; context.Exec returns such panics as
// errors, and CountParameters does too.
package models

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// BuildFunc builds a model's logits, shape [N, numClasses], for a batch of
// images of shape [N, Height, Width, Channels] (channels last, float32 or
// float64). Its variables live under ctx; whether it runs in training mode
// (batch norm, dropout) is read from the context (context.IsTraining). The
// logits are float64 for float64 images and float32 otherwise, whatever
// ParamComputeDType says.
type BuildFunc func(ctx *context.Context, images *graph.Node, numClasses int) *graph.Node

// FeaturesFunc builds, like a BuildFunc and with the same variables, a
// model's logits [N, numClasses] together with its features: the input of
// its final linear (classifier) layer, shape [N, F]. For the ResNets these
// are the globally pooled activations, for the MLP the hidden layer's
// activations after the ReLU.
type FeaturesFunc func(ctx *context.Context, images *graph.Node, numClasses int) (features, logits *graph.Node)

// Spec describes one registered model.
type Spec struct {
	// Name is the registry key, e.g. "resnet20".
	Name string
	// Description is a one-line summary for "sgt models".
	Description string
	// Paper, when not empty, says which of the paper's experiments use this
	// model, built as the authors' code builds it. Empty means the model
	// is an extension of sgt's, not used in the paper.
	Paper string
	// Build builds the model.
	Build BuildFunc
	// Features, when not nil, builds the same model (same variables, same
	// logits) and also returns its features; see FeaturesFunc. Every
	// registered model has it.
	Features FeaturesFunc
	// InputShape is the model's usual input image shape [Height, Width,
	// Channels], e.g. [32, 32, 3] for the CIFAR ResNets. Models accept other
	// sizes too (the MLP only the size it was built with).
	InputShape []int
	// BatchNorm tells whether the model has batch-norm layers, whose
	// behaviour depends on context.IsTraining and which keep moving averages.
	BatchNorm bool
	// SmallStem tells whether the model honours ParamSmallStem.
	SmallStem bool
}

// registry maps model names to their specs; models register themselves in init functions.
var registry = map[string]Spec{}

// Register adds a model to the registry. It panics on a duplicate name, which
// is a programming error caught by any test run.
func Register(spec Spec) {
	if _, dup := registry[spec.Name]; dup {
		panic(fmt.Sprintf("models: duplicate model name %q", spec.Name))
	}
	registry[spec.Name] = spec
}

// Get returns the spec of the named model, or an error listing the known names.
func Get(name string) (Spec, error) {
	spec, ok := registry[name]
	if !ok {
		return Spec{}, fmt.Errorf("unknown model %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return spec, nil
}

// Names returns the registered model names, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// CountParameters builds the named model's graph on backend b for a batch of
// one float32 image of shape inputShape ([Height, Width, Channels]; nil means
// the model's InputShape) and numClasses classes, and returns the number of
// trainable parameters (batch-norm scales and offsets count, their moving
// averages do not). Nothing is executed. params are context hyperparameters
// set before building (e.g. ParamSmallStem); nil is fine.
func CountParameters(b backends.Backend, name string, inputShape []int, numClasses int, params map[string]any) (int, error) {
	ctx, err := buildVariables(b, name, inputShape, numClasses, params)
	if err != nil {
		return 0, err
	}
	count := 0
	for v := range ctx.IterVariables() {
		if v.Trainable {
			count += v.Shape().Size()
		}
	}
	return count, nil
}

// buildVariables builds the model's graph once (without executing it) in a
// fresh context, which it returns holding the model's variables.
func buildVariables(b backends.Backend, name string, inputShape []int, numClasses int, params map[string]any) (ctx *context.Context, err error) {
	spec, err := Get(name)
	if err != nil {
		return nil, err
	}
	if inputShape == nil {
		inputShape = spec.InputShape
	}
	if len(inputShape) != 3 || inputShape[0] < 1 || inputShape[1] < 1 || inputShape[2] < 1 {
		return nil, fmt.Errorf("model %s: input shape must be [Height, Width, Channels] with positive sizes, got %v", name, inputShape)
	}
	if numClasses < 1 {
		return nil, fmt.Errorf("model %s: number of classes must be >= 1, got %d", name, numClasses)
	}
	ctx = context.New()
	if params != nil {
		ctx.SetParams(params)
	}
	g := graph.NewGraph(b, "build_"+name)
	defer g.Finalize()
	defer func() {
		if r := recover(); r != nil {
			ctx, err = nil, fmt.Errorf("building model %s for input %v: %v", name, inputShape, r)
		}
	}()
	images := graph.Parameter(g, "images", shapes.Make(dtypes.Float32, 1, inputShape[0], inputShape[1], inputShape[2]))
	logits := spec.Build(ctx, images, numClasses)
	if dims := logits.Shape().Dimensions; len(dims) != 2 || dims[0] != 1 || dims[1] != numClasses {
		return nil, fmt.Errorf("model %s: logits have shape %s, want [1, %d]", name, logits.Shape(), numClasses)
	}
	return ctx, nil
}
