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

// Pooling: ReduceWindow and SelectAndScatter, on kernels' window plans for
// floats (and a simple loop for integer ReduceWindow).

func init() {
	registerLowering(lowerReduceWindow, backends.OpTypeReduceWindow)
	registerLowering(lowerSelectAndScatter, backends.OpTypeSelectAndScatterMax, backends.OpTypeSelectAndScatterMin)
}

type windowData struct {
	kind reduceKind
	cfg  kernels.WindowConfig
}

var kernelReduceOps = map[reduceKind]kernels.ReduceOp{
	redSum: kernels.ReduceSum, redProd: kernels.ReduceProduct, redMax: kernels.ReduceMax, redMin: kernels.ReduceMin,
}

// ReduceWindow reduces windows of x (XLA ReduceWindow): nil strides mean the
// window size, nil dilations 1, nil paddings 0.
func (b *Builder) ReduceWindow(x backends.Op, reductionType backends.ReduceOpType,
	windowDimensions, strides, baseDilations, windowDilations []int, paddings [][2]int) (backends.Op, error) {
	in, err := b.checkOps("ReduceWindow", x)
	if err != nil {
		return nil, err
	}
	xs := in[0].shape
	var kind reduceKind
	switch reductionType {
	case backends.ReduceOpSum:
		kind = redSum
	case backends.ReduceOpProduct:
		kind = redProd
	case backends.ReduceOpMax:
		kind = redMax
	case backends.ReduceOpMin:
		kind = redMin
	default:
		return nil, fmt.Errorf("cpu backend: ReduceWindow: unsupported reduction %s", reductionType)
	}
	if !xs.DType.IsFloat() && !xs.DType.IsInt() {
		return nil, fmt.Errorf("cpu backend: ReduceWindow: needs numbers, got %s", xs)
	}
	if len(windowDimensions) != xs.Rank() {
		return nil, fmt.Errorf("cpu backend: ReduceWindow: window %v needs one size per axis of %s", windowDimensions, xs)
	}
	shape, err := shapeinference.ReduceWindowOp(xs, windowDimensions, strides, baseDilations, windowDilations, paddings)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: ReduceWindow: %w", err)
	}
	cfg := kernels.WindowConfig{
		Window: slices.Clone(windowDimensions), Strides: slices.Clone(strides),
		BaseDilations: slices.Clone(baseDilations), WindowDilations: slices.Clone(windowDilations),
		Paddings: slices.Clone(paddings),
	}
	if xs.DType.IsFloat() {
		plan, err := kernels.NewWindowPlan(xs.Dimensions, cfg)
		if err != nil {
			return nil, fmt.Errorf("cpu backend: ReduceWindow: %w", err)
		}
		if !slices.Equal(plan.OutDims(), shape.Dimensions) {
			return nil, fmt.Errorf("cpu backend: ReduceWindow: output %v disagrees with shape inference %s", plan.OutDims(), shape)
		}
	}
	return b.newNode(backends.OpTypeReduceWindow, shape, &windowData{kind, cfg}, in[0]), nil
}

func lowerReduceWindow(n *node) (kernelFn, error) {
	d := n.data.(*windowData)
	xd := n.inputs[0].shape.Dimensions
	switch n.shape.DType {
	case dtypes.Float32:
		plan, err := kernels.NewWindowPlan(xd, d.cfg)
		if err != nil {
			return nil, err
		}
		op := kernelReduceOps[d.kind]
		return func(ins, outs []any) {
			if err := kernels.ReduceWindow(plan, op, ins[0].([]float32), outs[0].([]float32)); err != nil {
				panic(err)
			}
		}, nil
	case dtypes.Float64:
		plan, err := kernels.NewWindowPlan(xd, d.cfg)
		if err != nil {
			return nil, err
		}
		op := kernelReduceOps[d.kind]
		return func(ins, outs []any) {
			if err := kernels.ReduceWindow(plan, op, ins[0].([]float64), outs[0].([]float64)); err != nil {
				panic(err)
			}
		}, nil
	case dtypes.Int8:
		return reduceWindowLoop[int8](d, xd, n.shape.Dimensions), nil
	case dtypes.Int16:
		return reduceWindowLoop[int16](d, xd, n.shape.Dimensions), nil
	case dtypes.Int32:
		return reduceWindowLoop[int32](d, xd, n.shape.Dimensions), nil
	case dtypes.Int64:
		return reduceWindowLoop[int64](d, xd, n.shape.Dimensions), nil
	case dtypes.Uint8:
		return reduceWindowLoop[uint8](d, xd, n.shape.Dimensions), nil
	case dtypes.Uint16:
		return reduceWindowLoop[uint16](d, xd, n.shape.Dimensions), nil
	case dtypes.Uint32:
		return reduceWindowLoop[uint32](d, xd, n.shape.Dimensions), nil
	case dtypes.Uint64:
		return reduceWindowLoop[uint64](d, xd, n.shape.Dimensions), nil
	}
	return nil, unsupported(n.op, n.shape.DType)
}

func reduceWindowLoop[T numT](d *windowData, xd, od []int) kernelFn {
	return func(ins, outs []any) {
		refReduceWindow(d.kind, d.cfg, xd, od, ins[0].([]T), outs[0].([]T))
	}
}

// refReduceWindow is a direct N-dimensional ReduceWindow: for every output
// position, it reduces the window's operand elements (padding and dilation
// holes contribute the identity).
func refReduceWindow[T numT](kind reduceKind, cfg kernels.WindowConfig, xd, od []int, x, out []T) {
	r := len(xd)
	get := func(v []int, k, def int) int {
		if v == nil {
			return def
		}
		return v[k]
	}
	xs := rowMajorStrides(xd)
	id := identityOf[T](kind)
	oIdx := make([]int, r)
	wIdx := make([]int, r)
	for oi := range out {
		rem := oi
		for k := r - 1; k >= 0; k-- {
			oIdx[k] = rem % od[k]
			rem /= od[k]
		}
		acc := id
		for k := range wIdx {
			wIdx[k] = 0
		}
		for {
			off, ok := 0, true
			for k := range r {
				lo := 0
				if cfg.Paddings != nil {
					lo = cfg.Paddings[k][0]
				}
				pos := oIdx[k]*get(cfg.Strides, k, cfg.Window[k]) + wIdx[k]*get(cfg.WindowDilations, k, 1) - lo
				bd := get(cfg.BaseDilations, k, 1)
				if pos < 0 || pos%bd != 0 || pos/bd >= xd[k] {
					ok = false
					break
				}
				off += pos / bd * xs[k]
			}
			if ok {
				v := x[off]
				switch kind {
				case redSum:
					acc += v
				case redProd:
					acc *= v
				case redMax:
					acc = max(acc, v)
				case redMin:
					acc = min(acc, v)
				}
			}
			k := r - 1
			for ; k >= 0; k-- {
				wIdx[k]++
				if wIdx[k] < cfg.Window[k] {
					break
				}
				wIdx[k] = 0
			}
			if k < 0 {
				break
			}
		}
		out[oi] = acc
	}
}

func (b *Builder) addSelectAndScatter(op backends.OpType, kind reduceKind, operand, source backends.Op,
	windowDimensions, windowStrides []int, paddings [][2]int) (backends.Op, error) {
	in, err := b.checkOps(op.String(), operand, source)
	if err != nil {
		return nil, err
	}
	xs, ss := in[0].shape, in[1].shape
	if xs.DType != ss.DType || !xs.DType.IsFloat() || !isSupportedDType(xs.DType) {
		return nil, fmt.Errorf("cpu backend: %s: needs float operand and source of the same dtype, got %s and %s", op, xs, ss)
	}
	cfg := kernels.WindowConfig{Window: slices.Clone(windowDimensions), Strides: slices.Clone(windowStrides), Paddings: slices.Clone(paddings)}
	plan, err := kernels.NewWindowPlan(xs.Dimensions, cfg)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: %s: %w", op, err)
	}
	if !slices.Equal(plan.OutDims(), ss.Dimensions) {
		return nil, fmt.Errorf("cpu backend: %s: source %s must have the pooled shape %v of operand %s", op, ss, plan.OutDims(), xs)
	}
	return b.newNode(op, shapes.Make(xs.DType, xs.Dimensions...), &windowData{kind, cfg}, in[0], in[1]), nil
}

// SelectAndScatterMax scatters source into the positions of the window
// maxima of operand (the gradient of max pooling).
func (b *Builder) SelectAndScatterMax(operand, source backends.Op, windowDimensions, windowStrides []int, paddings [][2]int) (backends.Op, error) {
	return b.addSelectAndScatter(backends.OpTypeSelectAndScatterMax, redMax, operand, source, windowDimensions, windowStrides, paddings)
}

// SelectAndScatterMin scatters source into the positions of the window
// minima of operand (the gradient of min pooling).
func (b *Builder) SelectAndScatterMin(operand, source backends.Op, windowDimensions, windowStrides []int, paddings [][2]int) (backends.Op, error) {
	return b.addSelectAndScatter(backends.OpTypeSelectAndScatterMin, redMin, operand, source, windowDimensions, windowStrides, paddings)
}

func lowerSelectAndScatter(n *node) (kernelFn, error) {
	d := n.data.(*windowData)
	plan, err := kernels.NewWindowPlan(n.shape.Dimensions, d.cfg)
	if err != nil {
		return nil, err
	}
	op := kernelReduceOps[d.kind]
	switch n.shape.DType {
	case dtypes.Float32:
		return func(ins, outs []any) {
			if err := kernels.SelectAndScatter(plan, op, ins[0].([]float32), ins[1].([]float32), outs[0].([]float32)); err != nil {
				panic(err)
			}
		}, nil
	case dtypes.Float64:
		return func(ins, outs []any) {
			if err := kernels.SelectAndScatter(plan, op, ins[0].([]float64), ins[1].([]float64), outs[0].([]float64)); err != nil {
				panic(err)
			}
		}, nil
	}
	return nil, unsupported(n.op, n.shape.DType)
}
