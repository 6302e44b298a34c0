package cpu

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/sgt-dev/sgt/backend/kernels"
)

// ConvGeneral in full generality is lowered at build time to
//
//	Transpose(input) -> canonical conv -> Transpose(output)
//
// where the canonical conv works in kernels.ConvParams' channels-last layout
// (transposes are omitted when the axes are already in that order), so
// buffer planning sees the temporaries.

func init() {
	registerLowering(lowerConv, backends.OpTypeConvGeneral)
}

// ConvGeneral adds a convolution (XLA ConvGeneralDilated semantics) with any
// axis order, strides, padding, input and kernel dilation and feature or
// batch groups. Nil strides and dilations mean 1, nil paddings mean 0.
func (b *Builder) ConvGeneral(input, kernel backends.Op, axes backends.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (backends.Op, error) {
	in, err := b.checkOps("ConvGeneral", input, kernel)
	if err != nil {
		return nil, err
	}
	xs, ks := in[0].shape, in[1].shape
	if xs.DType != ks.DType || !xs.DType.IsFloat() || !isSupportedDType(xs.DType) {
		return nil, fmt.Errorf("cpu backend: ConvGeneral: needs float32 or float64 input and kernel of the same dtype, got %s and %s", xs, ks)
	}
	rank := xs.Rank()
	ns := rank - 2
	if ns < 0 {
		return nil, fmt.Errorf("cpu backend: ConvGeneral: input %s needs rank >= 2", xs)
	}
	ones := func(v []int, name string) ([]int, error) {
		if v == nil {
			return slices.Repeat([]int{1}, ns), nil
		}
		if len(v) != ns {
			return nil, fmt.Errorf("cpu backend: ConvGeneral: %s %v needs %d values (one per spatial axis)", name, v, ns)
		}
		return slices.Clone(v), nil
	}
	if strides, err = ones(strides, "strides"); err != nil {
		return nil, err
	}
	if inputDilations, err = ones(inputDilations, "input dilations"); err != nil {
		return nil, err
	}
	if kernelDilations, err = ones(kernelDilations, "kernel dilations"); err != nil {
		return nil, err
	}
	if paddings == nil {
		paddings = make([][2]int, ns)
	}
	channelGroupCount, batchGroupCount = max(channelGroupCount, 1), max(batchGroupCount, 1)
	outShape, err := shapeinference.ConvGeneralOp(xs, ks, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: ConvGeneral: %w", err)
	}
	p := &kernels.ConvParams{
		Batch:          xs.Dimensions[axes.InputBatch],
		InChannels:     xs.Dimensions[axes.InputChannels],
		OutChannels:    ks.Dimensions[axes.KernelOutputChannels],
		Strides:        strides,
		InputDilation:  inputDilations,
		KernelDilation: kernelDilations,
		FeatureGroups:  channelGroupCount,
		BatchGroups:    batchGroupCount,
	}
	for i := range ns {
		p.InSpatial = append(p.InSpatial, xs.Dimensions[axes.InputSpatial[i]])
		p.KernelSpatial = append(p.KernelSpatial, ks.Dimensions[axes.KernelSpatial[i]])
		p.OutSpatial = append(p.OutSpatial, outShape.Dimensions[axes.OutputSpatial[i]])
		p.PadLow = append(p.PadLow, paddings[i][0])
		p.PadHigh = append(p.PadHigh, paddings[i][1])
	}
	// Canonical layouts, except for layouts the kernels read in place.
	k, err := convKernelInPlace(in[1], axes, p)
	if err != nil {
		return nil, err
	}
	xperm := slices.Concat([]int{axes.InputBatch}, axes.InputSpatial, []int{axes.InputChannels})
	convInput := func() (*node, error) {
		if b.backend.noConvLayout || xs.DType != dtypes.Float32 || !isSwappedPerm(xperm) {
			return b.permuted(in[0], xperm)
		}
		// The kernel gradient's x [N, spatial..., C] with its batch and
		// channel roles swapped: read in place when the kernels can.
		p.SwappedInput = true
		if !p.SwappedInputDirect() {
			p.SwappedInput = false
			return b.permuted(in[0], xperm)
		}
		return in[0], nil
	}
	// Output axis j holds canonical axis perm[j].
	perm := make([]int, rank)
	perm[axes.OutputBatch] = 0
	for i, a := range axes.OutputSpatial {
		perm[a] = 1 + i
	}
	perm[axes.OutputChannels] = rank - 1
	if !isIdentityPerm(perm) && axes.OutputChannels == rank-1 && outShape.Size() > 0 && !b.backend.noConvLayout {
		// Channels stay innermost: the kernel writes the other axes in
		// place (e.g. the kernel gradient's [KH, KW, Cin, Cout]).
		os := rowMajorStrides(outShape.Dimensions)
		ol := &kernels.ConvOutputLayout{Batch: os[axes.OutputBatch]}
		for _, a := range axes.OutputSpatial {
			ol.Spatial = append(ol.Spatial, os[a])
		}
		p.OutputLayout = ol
		x, err := convInput()
		if err != nil {
			return nil, err
		}
		return b.newNode(backends.OpTypeConvGeneral, outShape.Clone(), p, x, k), nil
	}
	x, err := convInput()
	if err != nil {
		return nil, err
	}
	canonDims := slices.Concat([]int{p.Batch / p.BatchGroups}, p.OutSpatial, []int{p.OutChannels})
	conv := b.newNode(backends.OpTypeConvGeneral, shapes.Make(xs.DType, canonDims...), p, x, k)
	out, err := b.permuted(conv, perm)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// convKernelInPlace returns the node the convolution reads its kernel from
// and, when that is not the canonical [spatial..., in, out] layout, sets
// p.KernelLayout so that the kernel is read in place: any axis order, and a
// Reverse of spatial axes (as in GoMLX's input gradient) folded into the
// strides instead of materialized.
func convKernelInPlace(k *node, axes backends.ConvolveAxesConfig, p *kernels.ConvParams) (*node, error) {
	src := k
	var rev []bool
	if k.op == backends.OpTypeReverse {
		rev = make([]bool, len(axes.KernelSpatial))
		folded := true
		for _, a := range k.data.(*axesData).axes {
			i := slices.Index(axes.KernelSpatial, a)
			if i < 0 {
				folded = false
				break
			}
			rev[i] = !rev[i]
		}
		if folded {
			src = k.inputs[0]
		}
		if !folded || !slices.Contains(rev, true) {
			rev = nil
		}
	}
	perm := slices.Concat(axes.KernelSpatial, []int{axes.KernelInputChannels, axes.KernelOutputChannels})
	if rev == nil && isIdentityPerm(perm) {
		return src, nil
	}
	if src.shape.Size() == 0 || k.builder.backend.noConvLayout {
		// The canonical layout, materialized (also for empty kernels,
		// whose strides would be degenerate).
		return k.builder.permuted(k, perm)
	}
	st := rowMajorStrides(src.shape.Dimensions)
	kl := &kernels.ConvKernelLayout{In: st[axes.KernelInputChannels], Out: st[axes.KernelOutputChannels], Reverse: rev}
	for _, a := range axes.KernelSpatial {
		kl.Spatial = append(kl.Spatial, st[a])
	}
	if rev == nil {
		kl.Reverse = nil
	}
	p.KernelLayout = kl
	return src, nil
}

// isSwappedPerm reports whether perm (canonical axis i is x's axis perm[i])
// takes x's last axis as the batch, its first as the channels and the
// others as the spatial axes in order: x is stored as [channels,
// spatial..., batch], ConvParams.SwappedInput's layout.
func isSwappedPerm(perm []int) bool {
	r := len(perm)
	if r < 3 || perm[0] != r-1 || perm[r-1] != 0 {
		return false
	}
	for i := 1; i < r-1; i++ {
		if perm[i] != i {
			return false
		}
	}
	return true
}

// permuted returns x transposed by perm, or x itself for the identity.
func (b *Builder) permuted(x *node, perm []int) (*node, error) {
	if isIdentityPerm(perm) {
		return x, nil
	}
	t, err := b.Transpose(x, perm...)
	if err != nil {
		return nil, err
	}
	return t.(*node), nil
}

func lowerConv(n *node) (kernelFn, error) {
	p := n.data.(*kernels.ConvParams)
	if err := p.Validate(); err != nil {
		return nil, err
	}
	switch n.shape.DType {
	case dtypes.Float32:
		return func(ins, outs []any) {
			if err := kernels.ConvF32(p, ins[0].([]float32), ins[1].([]float32), outs[0].([]float32)); err != nil {
				panic(err)
			}
		}, nil
	case dtypes.Float64:
		return func(ins, outs []any) {
			if err := kernels.ConvF64(p, ins[0].([]float64), ins[1].([]float64), outs[0].([]float64)); err != nil {
				panic(err)
			}
		}, nil
	}
	return nil, unsupported(n.op, n.shape.DType)
}
