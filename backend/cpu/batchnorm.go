package cpu

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/sgt-dev/sgt/backend/kernels"
)

// Batch normalisation (training, inference and fused gradient) on kernels'
// batch-norm kernels.

func init() {
	registerLowering(lowerBatchNorm, backends.OpTypeBatchNormForTraining, backends.OpTypeBatchNormForInference,
		backends.OpTypeBatchNormGradient)
}

type bnData struct {
	epsilon float64
	layout  kernels.BatchNormLayout
	// relu (set by fuseBatchNormReLU): in training, a fourth output holds
	// Max(normalized, 0); in inference, the output is Max(normalized, 0).
	relu bool
	// addReLU (training, set by fuseBatchNormReLU): a fourth input is a
	// residual r; the first output holds normalized + r and a fourth output
	// Max(normalized + r, 0).
	addReLU bool
	// reluPre (gradient, set by fuseBatchNormReLU): the inputs are x,
	// scale, mean, variance, v and a, and the output gradient is v masked
	// by GoMLX's ReLU gradient rule on a.
	reluPre bool
	// mask (training with relu or addReLU, and gradient with reluPre; set
	// by fuseReLUMasks): the ReLU input is kept as a kernels ReLU mask
	// ([]uint8), the first output of the training batch norm and the sixth
	// input of the gradient.
	mask bool
}

// checkBN validates the operand, the per-feature operands and the axis.
func (b *Builder) checkBN(op backends.OpType, featureAxis int, operands ...backends.Op) ([]*node, *bnData, error) {
	in, err := b.checkOps(op.String(), operands...)
	if err != nil {
		return nil, nil, err
	}
	xs := in[0].shape
	if !xs.DType.IsFloat() || !isSupportedDType(xs.DType) {
		return nil, nil, fmt.Errorf("cpu backend: %s: needs a float32 or float64 operand, got %s", op, xs)
	}
	l, err := kernels.NewBatchNormLayout(xs.Dimensions, featureAxis)
	if err != nil {
		return nil, nil, fmt.Errorf("cpu backend: %s: %w", op, err)
	}
	return in, &bnData{layout: l}, nil
}

func checkFeatureShapes(op backends.OpType, xs shapes.Shape, features int, names []string, ns []*node) error {
	for i, n := range ns {
		if n.shape.DType != xs.DType || n.shape.Rank() != 1 || n.shape.Dimensions[0] != features {
			return fmt.Errorf("cpu backend: %s: %s must be [%d]%s, got %s", op, names[i], features, xs.DType, n.shape)
		}
	}
	return nil
}

// BatchNormForTraining normalises operand with its batch statistics and
// returns the normalised value, the batch mean and the (biased) variance.
func (b *Builder) BatchNormForTraining(operand, scale, offset backends.Op, epsilon float32, featureAxis int) (
	normalized, batchMean, batchVariance backends.Op, err error) {
	op := backends.OpTypeBatchNormForTraining
	in, d, err := b.checkBN(op, featureAxis, operand, scale, offset)
	if err != nil {
		return nil, nil, nil, err
	}
	xs := in[0].shape
	if err := checkFeatureShapes(op, xs, d.layout.Features, []string{"scale", "offset"}, in[1:]); err != nil {
		return nil, nil, nil, err
	}
	d.epsilon = float64(epsilon)
	fs := shapes.Make(xs.DType, d.layout.Features)
	p := b.newMultiNode(op, []shapes.Shape{xs.Clone(), fs, fs.Clone()}, d, in...)
	return p.outs[0], p.outs[1], p.outs[2], nil
}

// BatchNormForInference normalises operand with the given mean and variance.
func (b *Builder) BatchNormForInference(operand, scale, offset, mean, variance backends.Op, epsilon float32, featureAxis int) (backends.Op, error) {
	op := backends.OpTypeBatchNormForInference
	in, d, err := b.checkBN(op, featureAxis, operand, scale, offset, mean, variance)
	if err != nil {
		return nil, err
	}
	xs := in[0].shape
	if err := checkFeatureShapes(op, xs, d.layout.Features, []string{"scale", "offset", "mean", "variance"}, in[1:]); err != nil {
		return nil, err
	}
	d.epsilon = float64(epsilon)
	return b.newNode(op, xs.Clone(), d, in...), nil
}

// BatchNormGradient returns the gradients of batch normalisation (with batch
// statistics) with respect to operand, scale and offset.
func (b *Builder) BatchNormGradient(operand, scale, mean, variance, gradOutput backends.Op, epsilon float32, featureAxis int) (
	gradOperand, gradScale, gradOffset backends.Op, err error) {
	op := backends.OpTypeBatchNormGradient
	in, d, err := b.checkBN(op, featureAxis, operand, scale, mean, variance, gradOutput)
	if err != nil {
		return nil, nil, nil, err
	}
	xs := in[0].shape
	if err := checkFeatureShapes(op, xs, d.layout.Features, []string{"scale", "mean", "variance"}, in[1:4]); err != nil {
		return nil, nil, nil, err
	}
	if !in[4].shape.Equal(xs) {
		return nil, nil, nil, fmt.Errorf("cpu backend: %s: gradOutput %s must have the operand's shape %s", op, in[4].shape, xs)
	}
	d.epsilon = float64(epsilon)
	fs := shapes.Make(xs.DType, d.layout.Features)
	p := b.newMultiNode(op, []shapes.Shape{xs.Clone(), fs, fs.Clone()}, d, in...)
	return p.outs[0], p.outs[1], p.outs[2], nil
}

func lowerBatchNorm(n *node) (kernelFn, error) {
	d := n.data.(*bnData)
	switch n.inputs[0].shape.DType {
	case dtypes.Float32:
		return bnKernel[float32](n.op, d), nil
	case dtypes.Float64:
		return bnKernel[float64](n.op, d), nil
	}
	return nil, unsupported(n.op, n.inputs[0].shape.DType)
}

func bnKernel[T float32 | float64](op backends.OpType, d *bnData) kernelFn {
	l, eps, relu, addReLU, reluPre, mask := d.layout, d.epsilon, d.relu, d.addReLU, d.reluPre, d.mask
	return func(ins, outs []any) {
		f := func(i int) []T { return ins[i].([]T) }
		o := func(i int) []T { return outs[i].([]T) }
		var err error
		switch op {
		case backends.OpTypeBatchNormForTraining:
			// With a ReLU, the fourth output is the ReLU's output and the
			// first its input (or a ReLU mask of it); with addReLU, the
			// fourth input is the residual.
			var ep kernels.BatchNormEpilogue[T]
			normalized := outs[0]
			if relu || addReLU {
				ep.ReLU = true
				normalized = outs[3]
				if addReLU {
					ep.Residual = f(3)
				}
				if mask {
					ep.Mask = outs[0].([]uint8)
				} else {
					ep.PreAct = o(0)
				}
			}
			err = kernels.BatchNormTraining(f(0), f(1), f(2), eps, l, ep, normalized.([]T), o(1), o(2))
		case backends.OpTypeBatchNormForInference:
			err = kernels.BatchNormInference(f(0), f(1), f(2), f(3), f(4), eps, l, kernels.BatchNormEpilogue[T]{ReLU: relu}, o(0))
		case backends.OpTypeBatchNormGradient:
			// With reluPre, the sixth input is the ReLU's input (or a ReLU
			// mask of it), and a fourth output, if any, the masked gradient.
			var r kernels.BatchNormReLUGrad[T]
			switch {
			case mask:
				r.Mask = ins[5].([]uint8)
				if len(outs) > 3 {
					r.MaskedGrad = o(3)
				}
			case reluPre:
				r.PreAct = f(5)
			}
			err = kernels.BatchNormGradient(f(0), f(1), f(2), f(3), f(4), eps, l, r, o(0), o(1), o(2))
		}
		if err != nil {
			panic(err)
		}
	}
}
