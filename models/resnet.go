package models

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
)

// ParamSmallStem is the context hyperparameter (bool) that gives the
// ImageNet-style ResNets (resnet18 ... resnet152, the SE-ResNets and their
// no-BN variants) a stem for small images such as 28x28 or 32x32: a 3x3
// stride-1 convolution with 64 channels and no max pool, instead of the 7x7
// stride-2 convolution followed by a 3x3 stride-2 max pool. Default false.
const ParamSmallStem = "small_stem"

// resnetConfig describes one member of the ResNet family.
type resnetConfig struct {
	// cifar selects He et al.'s CIFAR layout: 3x3 stem with 16 channels,
	// stages of 16/32/64 channels and parameter-free option-A shortcuts.
	// Otherwise the torchvision ImageNet layout is used.
	cifar bool
	// blocks is the number of residual blocks per stage.
	blocks []int
	// bottleneck selects 1x1-3x3-1x1 bottleneck blocks (expansion 4)
	// instead of two 3x3 convolutions.
	bottleneck bool
	// se adds a squeeze-and-excitation block at the end of each residual branch.
	se bool
	// batchNorm is false for the no-BN variants: convolutions get biases
	// and each residual branch is scaled by a learned scalar starting at 0.
	batchNorm bool
}

// convUnit is a convolution followed, with batch norm, by batchNorm; with
// relu set, a ReLU follows. Without batch norm the convolution has a bias.
// Variables live under ctx.In("conv"+suffix) and ctx.In("bn"+suffix).
func (cfg resnetConfig) convUnit(ctx *context.Context, suffix string, x *graph.Node, channels, kernel, stride int, relu bool) *graph.Node {
	y := conv2d(ctx.In("conv"+suffix), x, channels, kernel, stride, !cfg.batchNorm)
	if cfg.batchNorm {
		y = batchNorm(ctx.In("bn"+suffix), y)
	}
	if relu {
		y = activations.Relu(y)
	}
	return y
}

// block is one residual block with the given number of planes (output
// channels before expansion) and stride (on its first 3x3 convolution).
func (cfg resnetConfig) block(ctx *context.Context, x *graph.Node, planes, stride int) *graph.Node {
	inChannels := x.Shape().Dimensions[3]
	outChannels := planes
	var y *graph.Node
	if cfg.bottleneck {
		outChannels = 4 * planes
		y = cfg.convUnit(ctx, "1", x, planes, 1, 1, true)
		y = cfg.convUnit(ctx, "2", y, planes, 3, stride, true)
		y = cfg.convUnit(ctx, "3", y, outChannels, 1, 1, false)
	} else {
		y = cfg.convUnit(ctx, "1", x, planes, 3, stride, true)
		y = cfg.convUnit(ctx, "2", y, planes, 3, 1, false)
	}
	if cfg.se {
		y = squeezeExcite(ctx.In("se"), y)
	}
	if !cfg.batchNorm {
		// SkipInit (De & Smith 2020): the branch starts switched off, so the
		// un-normalised network starts close to its shortcut path.
		scale := ctx.In("skipinit").WithInitializer(initializers.Zero).
			VariableWithShape("branch_scale", shapes.Make(y.DType()))
		y = graph.Mul(y, scale.ValueGraph(y.Graph()))
	}
	shortcut := x
	if stride != 1 || inChannels != outChannels {
		if cfg.cifar {
			shortcut = shortcutA(x, outChannels, stride)
		} else {
			shortcut = cfg.convUnit(ctx, "_shortcut", x, outChannels, 1, stride, false)
		}
	}
	return activations.Relu(graph.Add(y, shortcut))
}

// build returns the pooled features (the output of the global average pool,
// [N, channels]) and the logits of the network for images [N, H, W, C].
func (cfg resnetConfig) build(name string, ctx *context.Context, images *graph.Node, numClasses int) (features, logits *graph.Node) {
	checkImages(name, images, numClasses)
	ctx = ctx.In("resnet")
	x := images
	widths := []int{64, 128, 256, 512}
	if cfg.cifar {
		widths = []int{16, 32, 64}
		x = cfg.convUnit(ctx.In("stem"), "", x, 16, 3, 1, true)
	} else if context.GetParamOr(ctx, ParamSmallStem, false) {
		x = cfg.convUnit(ctx.In("stem"), "", x, 64, 3, 1, true)
	} else {
		x = cfg.convUnit(ctx.In("stem"), "", x, 64, 7, 2, true)
		x = maxPool3x3s2(x)
	}
	if len(cfg.blocks) != len(widths) {
		panic(fmt.Errorf("model %s: %d stages configured for %d widths", name, len(cfg.blocks), len(widths)))
	}
	for stage, n := range cfg.blocks {
		for i := range n {
			stride := 1
			if stage > 0 && i == 0 {
				stride = 2
			}
			x = cfg.block(ctx.Inf("stage%d", stage+1).Inf("block%d", i+1), x, widths[stage], stride)
		}
	}
	features = globalAvgPool(x)
	fcStd := 0.0 // PyTorch's default nn.Linear initialisation, as in torchvision.
	if cfg.cifar {
		// Kaiming-normal with fan-in, as the CIFAR ResNet of the peer benchmark.
		fcStd = kaimingNormalStd(features.Shape().Dimensions[1])
	}
	return features, dense(ctx.In("fc"), features, numClasses, fcStd)
}

func init() {
	cifar := []struct {
		name string
		n    int
	}{{"resnet20", 3}, {"resnet32", 5}, {"resnet44", 7}, {"resnet56", 9}, {"resnet110", 18}}
	for _, m := range cifar {
		for _, bn := range []bool{true, false} {
			cfg := resnetConfig{cifar: true, blocks: []int{m.n, m.n, m.n}, batchNorm: bn}
			desc := fmt.Sprintf("CIFAR ResNet (He et al. 2016), 3 stages x %d basic blocks, 16/32/64 channels, option-A shortcuts", m.n)
			register(m.name, desc, cfg, []int{32, 32, 3}, false)
		}
	}
	imagenet := []struct {
		name       string
		blocks     []int
		bottleneck bool
		se         bool
	}{
		{"resnet18", []int{2, 2, 2, 2}, false, false},
		{"resnet34", []int{3, 4, 6, 3}, false, false},
		{"resnet50", []int{3, 4, 6, 3}, true, false},
		{"resnet101", []int{3, 4, 23, 3}, true, false},
		{"resnet152", []int{3, 8, 36, 3}, true, false},
		{"seresnet18", []int{2, 2, 2, 2}, false, true},
		{"seresnet34", []int{3, 4, 6, 3}, false, true},
		{"seresnet50", []int{3, 4, 6, 3}, true, true},
		{"seresnet101", []int{3, 4, 23, 3}, true, true},
	}
	for _, m := range imagenet {
		for _, bn := range []bool{true, false} {
			cfg := resnetConfig{blocks: m.blocks, bottleneck: m.bottleneck, se: m.se, batchNorm: bn}
			kind := "basic blocks"
			if m.bottleneck {
				kind = "bottleneck blocks"
			}
			desc := fmt.Sprintf("ImageNet ResNet (torchvision layout), %v %s, 64-512 channels", m.blocks, kind)
			if m.se {
				desc = "squeeze-and-excitation " + desc
			}
			register(m.name, desc, cfg, []int{224, 224, 3}, true)
		}
	}
}

// register adds a ResNet configuration under name, or name+"-nobn" for the
// variant without batch norm.
func register(name, desc string, cfg resnetConfig, inputShape []int, smallStem bool) {
	if !cfg.batchNorm {
		name += "-nobn"
		desc += "; no batch norm: conv biases and SkipInit branch scales"
	}
	Register(Spec{
		Name:        name,
		Description: desc,
		Build: func(ctx *context.Context, images *graph.Node, numClasses int) *graph.Node {
			_, logits := cfg.build(name, ctx, images, numClasses)
			return logits
		},
		Features: func(ctx *context.Context, images *graph.Node, numClasses int) (features, logits *graph.Node) {
			return cfg.build(name, ctx, images, numClasses)
		},
		InputShape: inputShape,
		BatchNorm:  cfg.batchNorm,
		SmallStem:  smallStem,
	})
}
