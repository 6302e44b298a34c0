package models

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/graph"
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
	// stages of 16/32/64 channels and parameter-free option-A shortcuts,
	// convolutions and the final layer initialised Kaiming-normal with
	// fan-in. Otherwise the torchvision/timm ImageNet layout is used, with
	// convolutions initialised Kaiming-normal with fan-out.
	cifar bool
	// blocks is the number of residual blocks per stage.
	blocks []int
	// bottleneck selects 1x1-3x3-1x1 bottleneck blocks (expansion 4)
	// instead of two 3x3 convolutions.
	bottleneck bool
	// se adds a squeeze-and-excitation block at the end of each residual branch.
	se bool
	// batchNorm is false for the no-BN variants.
	batchNorm bool
	// skipInit (only without batch norm) gives the convolutions biases and
	// scales each residual branch by a learned scalar starting at 0.
	skipInit bool
}

// convStd is the standard deviation of a convolution's initial weights:
// Kaiming-normal, sqrt(2/fan), with fan-in (k*k*inChannels) for the CIFAR
// ResNets and fan-out (k*k*outChannels) for the ImageNet ones.
func (cfg resnetConfig) convStd(kernel, inChannels, outChannels int) float64 {
	if cfg.cifar {
		return kaimingNormalStd(kernel * kernel * inChannels)
	}
	return kaimingNormalStd(kernel * kernel * outChannels)
}

// convUnit is a convolution followed, with batch norm, by batchNorm; with
// relu set, a ReLU follows. Only the SkipInit variant's convolutions have a
// bias. Variables live under ctx.In("conv"+suffix) and ctx.In("bn"+suffix).
func (cfg resnetConfig) convUnit(ctx *context.Context, p precision, suffix string, x *graph.Node, channels, kernel, stride int, relu bool) *graph.Node {
	std := cfg.convStd(kernel, x.Shape().Dimensions[3], channels)
	y := conv2d(ctx.In("conv"+suffix), p, x, channels, kernel, stride, cfg.skipInit, std)
	if cfg.batchNorm {
		y = batchNorm(ctx.In("bn"+suffix), p, y)
	}
	if relu {
		y = activations.Relu(y)
	}
	return y
}

// block is one residual block with the given number of planes (output
// channels before expansion) and stride (on its first 3x3 convolution).
func (cfg resnetConfig) block(ctx *context.Context, p precision, x *graph.Node, planes, stride int) *graph.Node {
	inChannels := x.Shape().Dimensions[3]
	outChannels := planes
	var y *graph.Node
	if cfg.bottleneck {
		outChannels = 4 * planes
		y = cfg.convUnit(ctx, p, "1", x, planes, 1, 1, true)
		y = cfg.convUnit(ctx, p, "2", y, planes, 3, stride, true)
		y = cfg.convUnit(ctx, p, "3", y, outChannels, 1, 1, false)
	} else {
		y = cfg.convUnit(ctx, p, "1", x, planes, 3, stride, true)
		y = cfg.convUnit(ctx, p, "2", y, planes, 3, 1, false)
	}
	if cfg.se {
		y = squeezeExcite(ctx.In("se"), p, y)
	}
	if cfg.skipInit {
		// SkipInit (De & Smith 2020): the branch starts switched off, so the
		// un-normalised network starts close to its shortcut path.
		scale := p.variable(ctx.In("skipinit").WithInitializer(initializers.Zero), y.Graph(), "branch_scale")
		y = graph.Mul(y, scale)
	}
	shortcut := x
	if stride != 1 || inChannels != outChannels {
		if cfg.cifar {
			shortcut = shortcutA(x, outChannels, stride)
		} else {
			shortcut = cfg.convUnit(ctx, p, "_shortcut", x, outChannels, 1, stride, false)
		}
	}
	return activations.Relu(graph.Add(y, shortcut))
}

// build returns the pooled features (the output of the global average pool,
// [N, channels]) and the logits of the network for images [N, H, W, C], both
// in the master dtype (see ParamComputeDType).
func (cfg resnetConfig) build(name string, ctx *context.Context, images *graph.Node, numClasses int) (features, logits *graph.Node) {
	checkImages(name, images, numClasses)
	p := newPrecision(name, ctx, images)
	ctx = ctx.In("resnet")
	x := p.toCompute(images)
	widths := []int{64, 128, 256, 512}
	if cfg.cifar {
		widths = []int{16, 32, 64}
		x = cfg.convUnit(ctx.In("stem"), p, "", x, 16, 3, 1, true)
	} else if context.GetParamOr(ctx, ParamSmallStem, false) {
		x = cfg.convUnit(ctx.In("stem"), p, "", x, 64, 3, 1, true)
	} else {
		x = cfg.convUnit(ctx.In("stem"), p, "", x, 64, 7, 2, true)
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
			x = cfg.block(ctx.Inf("stage%d", stage+1).Inf("block%d", i+1), p, x, widths[stage], stride)
		}
	}
	features = globalAvgPool(p, x)
	fcStd := 0.0 // PyTorch's default nn.Linear initialisation, as in torchvision and timm.
	if cfg.cifar {
		// Kaiming-normal with fan-in, as the authors' CifarResNet.
		fcStd = kaimingNormalStd(features.Shape().Dimensions[1])
	}
	logits = dense(ctx.In("fc"), p, p.toCompute(features), numClasses, fcStd)
	return features, p.toMaster(logits)
}

// Where the paper uses a model, as the authors built it (Spec.Paper).
const (
	paperImageNet     = "ImageNet batch-norm table (timm layout)"
	paperImageNetNoBN = "ImageNet non-BN table: the authors' resnet18_wobn (timm ResNet-18 with norm_layer=Identity)"
	paperCIFAR        = "CIFAR-10 alpha grid: the authors' CifarResNet, with the skip connections their code drops in 7 of 9 blocks restored"
)

func init() {
	cifar := []struct {
		name  string
		n     int
		paper string
	}{{"resnet20", 3, paperCIFAR}, {"resnet32", 5, ""}, {"resnet44", 7, ""}, {"resnet56", 9, ""}, {"resnet110", 18, ""}}
	for _, m := range cifar {
		cfg := resnetConfig{cifar: true, blocks: []int{m.n, m.n, m.n}}
		desc := fmt.Sprintf("CIFAR ResNet (He et al. 2016), 3 stages x %d basic blocks, 16/32/64 channels, option-A shortcuts, Kaiming-normal fan-in init", m.n)
		registerVariants(m.name, desc, cfg, []int{32, 32, 3}, false, m.paper, "")
	}
	imagenet := []struct {
		name       string
		blocks     []int
		bottleneck bool
		se         bool
		paper      string
		paperNoBN  string
	}{
		{"resnet18", []int{2, 2, 2, 2}, false, false, paperImageNet + "; ImageNet alpha grid", paperImageNetNoBN},
		{"resnet34", []int{3, 4, 6, 3}, false, false, "", ""},
		{"resnet50", []int{3, 4, 6, 3}, true, false, paperImageNet + "; label-smoothing ablation; ImageNet alpha grid", ""},
		{"resnet101", []int{3, 4, 23, 3}, true, false, paperImageNet, ""},
		{"resnet152", []int{3, 8, 36, 3}, true, false, "", ""},
		{"seresnet18", []int{2, 2, 2, 2}, false, true, paperImageNet, ""},
		{"seresnet34", []int{3, 4, 6, 3}, false, true, "", ""},
		{"seresnet50", []int{3, 4, 6, 3}, true, true, paperImageNet, ""},
		{"seresnet101", []int{3, 4, 23, 3}, true, true, "", ""},
	}
	for _, m := range imagenet {
		cfg := resnetConfig{blocks: m.blocks, bottleneck: m.bottleneck, se: m.se}
		kind := "basic blocks"
		if m.bottleneck {
			kind = "bottleneck blocks"
		}
		desc := fmt.Sprintf("ImageNet ResNet (torchvision/timm layout), %v %s, 64-512 channels", m.blocks, kind)
		if m.se {
			desc = "squeeze-and-excitation (timm SEModule) " + desc
		}
		registerVariants(m.name, desc, cfg, []int{224, 224, 3}, true, m.paper, m.paperNoBN)
	}
}

// registerVariants registers a ResNet configuration three times: under name
// with batch norm; under name+"-nobn" with batch norm simply removed (no
// conv biases, nothing added: the authors' resnet18_wobn for ResNet-18);
// and under name+"-nobn-skipinit", an extension without batch norm that
// gives the convolutions biases and each residual branch a learned scale
// starting at 0 (SkipInit, De & Smith 2020). paper and paperNoBN say where
// the paper uses the first two ("" for an extension).
func registerVariants(name, desc string, cfg resnetConfig, inputShape []int, smallStem bool, paper, paperNoBN string) {
	variants := []struct {
		suffix, desc, paper string
		batchNorm, skipInit bool
	}{
		{"", "", paper, true, false},
		{"-nobn", "; batch norm removed (identity), convolutions without bias, no branch scale", paperNoBN, false, false},
		{"-nobn-skipinit", "; batch norm removed, conv biases and SkipInit branch scales starting at 0 (an extension, not the paper's)", "", false, true},
	}
	for _, v := range variants {
		c := cfg
		c.batchNorm, c.skipInit = v.batchNorm, v.skipInit
		full := name + v.suffix
		Register(Spec{
			Name:        full,
			Description: desc + v.desc,
			Paper:       v.paper,
			Build: func(ctx *context.Context, images *graph.Node, numClasses int) *graph.Node {
				_, logits := c.build(full, ctx, images, numClasses)
				return logits
			},
			Features: func(ctx *context.Context, images *graph.Node, numClasses int) (features, logits *graph.Node) {
				return c.build(full, ctx, images, numClasses)
			},
			InputShape: inputShape,
			BatchNorm:  c.batchNorm,
			SmallStem:  smallStem,
		})
	}
}
