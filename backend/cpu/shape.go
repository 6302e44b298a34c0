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

// Layout ops: broadcast, reshape, transpose, slice, concatenate, pad,
// reverse, iota and dynamic slices. All are lowered to strided copies.

func init() {
	registerLowering(lowerBroadcastInDim, backends.OpTypeBroadcastInDim)
	registerLowering(lowerTranspose, backends.OpTypeTranspose)
	registerLowering(lowerSlice, backends.OpTypeSlice)
	registerLowering(lowerReverse, backends.OpTypeReverse)
	registerLowering(lowerConcatenate, backends.OpTypeConcatenate)
	registerLowering(lowerPad, backends.OpTypePad)
	registerLowering(lowerIota, backends.OpTypeIota)
	registerLowering(lowerDynamicSlice, backends.OpTypeDynamicSlice)
	registerLowering(lowerDynamicUpdateSlice, backends.OpTypeDynamicUpdateSlice)
}

type broadcastData struct{ axes []int }

// BroadcastInDim broadcasts x to outputShape; x's axis i maps to output axis
// broadcastAxes[i].
func (b *Builder) BroadcastInDim(x backends.Op, outputShape shapes.Shape, broadcastAxes []int) (backends.Op, error) {
	in, err := b.checkOps("BroadcastInDim", x)
	if err != nil {
		return nil, err
	}
	if outputShape.DType != in[0].shape.DType {
		outputShape = outputShape.Clone()
		outputShape.DType = in[0].shape.DType
	}
	if err := shapeinference.BroadcastInDimOp(in[0].shape, outputShape, broadcastAxes); err != nil {
		return nil, fmt.Errorf("cpu backend: BroadcastInDim: %w", err)
	}
	return b.newNode(backends.OpTypeBroadcastInDim, outputShape.Clone(), &broadcastData{axes: slices.Clone(broadcastAxes)}, in[0]), nil
}

func lowerBroadcastInDim(n *node) (kernelFn, error) {
	x := n.inputs[0]
	axes := n.data.(*broadcastData).axes
	xs := rowMajorStrides(x.shape.Dimensions)
	out := n.shape.Dimensions
	sStr := make([]int, len(out))
	for i, a := range axes {
		if x.shape.Dimensions[i] == out[a] {
			sStr[a] = xs[i]
		}
	}
	c := newStridedCopy(out, sStr, rowMajorStrides(out))
	return func(ins, outs []any) { c.run(outs[0], 0, ins[0], 0) }, nil
}

// Reshape reinterprets x with new dimensions (compiled to an alias).
func (b *Builder) Reshape(x backends.Op, dimensions ...int) (backends.Op, error) {
	in, err := b.checkOps("Reshape", x)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.ReshapeOp(in[0].shape, dimensions)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: Reshape: %w", err)
	}
	return b.newNode(backends.OpTypeReshape, shape, nil, in[0]), nil
}

type permData struct{ perm []int }

// Transpose permutes the axes of x: output axis i is x's axis permutation[i].
func (b *Builder) Transpose(x backends.Op, permutation ...int) (backends.Op, error) {
	in, err := b.checkOps("Transpose", x)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.TransposeOp(in[0].shape, permutation)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: Transpose: %w", err)
	}
	identity := true
	for i, p := range permutation {
		identity = identity && i == p
	}
	if identity {
		return b.newNode(backends.OpTypeIdentity, shape, nil, in[0]), nil
	}
	return b.newNode(backends.OpTypeTranspose, shape, &permData{slices.Clone(permutation)}, in[0]), nil
}

func lowerTranspose(n *node) (kernelFn, error) {
	dims, perm := n.inputs[0].shape.Dimensions, n.data.(*permData).perm
	switch n.shape.DType {
	case dtypes.Float32:
		// The kernels' cache-blocked, parallel transpose (SIMD tiles).
		return func(ins, outs []any) {
			if err := kernels.Transpose(ins[0].([]float32), outs[0].([]float32), dims, perm); err != nil {
				panic(err)
			}
		}, nil
	case dtypes.Float64:
		return func(ins, outs []any) {
			if err := kernels.Transpose(ins[0].([]float64), outs[0].([]float64), dims, perm); err != nil {
				panic(err)
			}
		}, nil
	}
	c := transposeCopy(dims, perm)
	return func(ins, outs []any) { c.run(outs[0], 0, ins[0], 0) }, nil
}

// transposeCopy returns the copy of a row-major array of dims into the
// row-major layout of its axes permuted by perm.
func transposeCopy(dims, perm []int) stridedCopy {
	xs := rowMajorStrides(dims)
	od := make([]int, len(perm))
	ss := make([]int, len(perm))
	for i, p := range perm {
		od[i] = dims[p]
		ss[i] = xs[p]
	}
	return newStridedCopy(od, ss, rowMajorStrides(od))
}

type sliceData struct{ starts, limits, strides []int }

// Slice extracts the box [starts, limits) of x with the given strides (nil
// strides mean 1).
func (b *Builder) Slice(x backends.Op, starts, limits, strides []int) (backends.Op, error) {
	in, err := b.checkOps("Slice", x)
	if err != nil {
		return nil, err
	}
	if strides == nil {
		strides = slices.Repeat([]int{1}, in[0].shape.Rank())
	}
	shape, err := shapeinference.SliceOp(in[0].shape, starts, limits, strides)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: Slice: %w", err)
	}
	return b.newNode(backends.OpTypeSlice, shape, &sliceData{slices.Clone(starts), slices.Clone(limits), slices.Clone(strides)}, in[0]), nil
}

func lowerSlice(n *node) (kernelFn, error) {
	d := n.data.(*sliceData)
	xs := rowMajorStrides(n.inputs[0].shape.Dimensions)
	ss := make([]int, len(xs))
	off := 0
	for k := range xs {
		ss[k] = xs[k] * d.strides[k]
		off += d.starts[k] * xs[k]
	}
	c := newStridedCopy(n.shape.Dimensions, ss, rowMajorStrides(n.shape.Dimensions))
	return func(ins, outs []any) { c.run(outs[0], 0, ins[0], off) }, nil
}

type axesData struct{ axes []int }

// Reverse reverses x along the given axes.
func (b *Builder) Reverse(x backends.Op, axes ...int) (backends.Op, error) {
	in, err := b.checkOps("Reverse", x)
	if err != nil {
		return nil, err
	}
	for _, a := range axes {
		if a < 0 || a >= in[0].shape.Rank() {
			return nil, fmt.Errorf("cpu backend: Reverse: axis %d out of range for %s", a, in[0].shape)
		}
	}
	return b.newNode(backends.OpTypeReverse, in[0].shape.Clone(), &axesData{slices.Clone(axes)}, in[0]), nil
}

func lowerReverse(n *node) (kernelFn, error) {
	dims := n.shape.Dimensions
	xs := rowMajorStrides(dims)
	ss := slices.Clone(xs)
	off := 0
	rev := make([]bool, len(dims))
	for _, a := range n.data.(*axesData).axes {
		rev[a] = !rev[a]
	}
	for a, r := range rev {
		if r {
			ss[a] = -xs[a]
			off += (dims[a] - 1) * xs[a]
		}
	}
	c := newStridedCopy(dims, ss, xs)
	return func(ins, outs []any) { c.run(outs[0], 0, ins[0], off) }, nil
}

type concatData struct{ axis int }

// Concatenate joins operands along axis.
func (b *Builder) Concatenate(axis int, operands ...backends.Op) (backends.Op, error) {
	in, err := b.checkOps("Concatenate", operands...)
	if err != nil {
		return nil, err
	}
	ss := make([]shapes.Shape, len(in))
	for i, n := range in {
		ss[i] = n.shape
	}
	shape, err := shapeinference.ConcatenateOp(ss, axis)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: Concatenate: %w", err)
	}
	if len(in) == 1 {
		return b.newNode(backends.OpTypeIdentity, shape, nil, in[0]), nil
	}
	return b.newNode(backends.OpTypeConcatenate, shape, &concatData{axis}, in...), nil
}

func lowerConcatenate(n *node) (kernelFn, error) {
	axis := n.data.(*concatData).axis
	os := rowMajorStrides(n.shape.Dimensions)
	copies := make([]stridedCopy, len(n.inputs))
	offs := make([]int, len(n.inputs))
	pos := 0
	for i, x := range n.inputs {
		copies[i] = newStridedCopy(x.shape.Dimensions, rowMajorStrides(x.shape.Dimensions), os)
		offs[i] = pos * os[axis]
		pos += x.shape.Dimensions[axis]
	}
	return func(ins, outs []any) {
		for i := range copies {
			copies[i].run(outs[0], offs[i], ins[i], 0)
		}
	}, nil
}

type padData struct{ axes []backends.PadAxis }

// Pad pads x with fillValue (a scalar): Start/End padding may be negative
// (cropping), Interior inserts values between elements.
func (b *Builder) Pad(x, fillValue backends.Op, axesConfig ...backends.PadAxis) (backends.Op, error) {
	in, err := b.checkOps("Pad", x, fillValue)
	if err != nil {
		return nil, err
	}
	xs, fs := in[0].shape, in[1].shape
	if !fs.IsScalar() || fs.DType != xs.DType {
		return nil, fmt.Errorf("cpu backend: Pad: fill value must be a scalar of dtype %s, got %s", xs.DType, fs)
	}
	if len(axesConfig) > xs.Rank() {
		return nil, fmt.Errorf("cpu backend: Pad: %d axis configurations for rank-%d operand %s", len(axesConfig), xs.Rank(), xs)
	}
	cfg := make([]backends.PadAxis, xs.Rank())
	copy(cfg, axesConfig)
	out := xs.Clone()
	for k, c := range cfg {
		if c.Interior < 0 {
			return nil, fmt.Errorf("cpu backend: Pad: negative interior padding %d on axis %d", c.Interior, k)
		}
		d := xs.Dimensions[k]
		nd := c.Start + c.End + d
		if d > 0 {
			nd += (d - 1) * c.Interior
		}
		if nd < 0 {
			return nil, fmt.Errorf("cpu backend: Pad: axis %d of %s would have negative size %d with %+v", k, xs, nd, c)
		}
		out.Dimensions[k] = nd
	}
	return b.newNode(backends.OpTypePad, out, &padData{cfg}, in[0], in[1]), nil
}

func lowerPad(n *node) (kernelFn, error) {
	cfg := n.data.(*padData).axes
	xd := n.inputs[0].shape.Dimensions
	od := n.shape.Dimensions
	xs, os := rowMajorStrides(xd), rowMajorStrides(od)
	dims := make([]int, len(xd))
	ss := make([]int, len(xd))
	ds := make([]int, len(xd))
	sOff, dOff := 0, 0
	empty := false
	for k, c := range cfg {
		step := c.Interior + 1
		// First input index landing at output position >= 0.
		i0 := 0
		if c.Start < 0 {
			i0 = (-c.Start + step - 1) / step
		}
		// Last input index landing at output position < od[k].
		i1 := xd[k] - 1
		if last := c.Start + i1*step; last >= od[k] {
			i1 = (od[k] - 1 - c.Start) / step
			if od[k]-1-c.Start < 0 {
				i1 = -1
			}
		}
		if i1 < i0 {
			empty = true
			continue
		}
		dims[k] = i1 - i0 + 1
		ss[k] = xs[k]
		ds[k] = os[k] * step
		sOff += i0 * xs[k]
		dOff += (c.Start + i0*step) * os[k]
	}
	size := sizeOf(od)
	var c stridedCopy
	if !empty {
		c = newStridedCopy(dims, ss, ds)
	}
	fill := newStridedCopy([]int{size}, []int{0}, []int{1})
	return func(ins, outs []any) {
		fill.run(outs[0], 0, ins[1], 0)
		if !empty {
			c.run(outs[0], dOff, ins[0], sOff)
		}
	}, nil
}

type iotaData struct{ axis int }

// Iota creates a tensor whose values count along iotaAxis.
func (b *Builder) Iota(shape shapes.Shape, iotaAxis int) (backends.Op, error) {
	if _, err := b.checkOps("Iota"); err != nil {
		return nil, err
	}
	if shape.Rank() == 0 || iotaAxis < 0 || iotaAxis >= shape.Rank() {
		return nil, fmt.Errorf("cpu backend: Iota: invalid axis %d for shape %s", iotaAxis, shape)
	}
	if shape.DType == dtypes.BFloat16 {
		return nil, bf16Error("Iota")
	}
	if !shape.DType.IsFloat() && !shape.DType.IsInt() || !isSupportedDType(shape.DType) {
		return nil, fmt.Errorf("cpu backend: Iota: unsupported dtype in %s", shape)
	}
	return b.newNode(backends.OpTypeIota, shape.Clone(), &iotaData{iotaAxis}), nil
}

func lowerIota(n *node) (kernelFn, error) {
	axis := n.data.(*iotaData).axis
	dims := n.shape.Dimensions
	outer := sizeOf(dims[:axis])
	dim := dims[axis]
	inner := sizeOf(dims[axis+1:])
	// Compute the pattern once in float64/int64 then convert per dtype.
	var fill func(out any)
	switch n.shape.DType {
	case dtypes.Float32:
		fill = func(out any) { iotaT(out.([]float32), outer, dim, inner) }
	case dtypes.Float64:
		fill = func(out any) { iotaT(out.([]float64), outer, dim, inner) }
	case dtypes.Int8:
		fill = func(out any) { iotaT(out.([]int8), outer, dim, inner) }
	case dtypes.Int16:
		fill = func(out any) { iotaT(out.([]int16), outer, dim, inner) }
	case dtypes.Int32:
		fill = func(out any) { iotaT(out.([]int32), outer, dim, inner) }
	case dtypes.Int64:
		fill = func(out any) { iotaT(out.([]int64), outer, dim, inner) }
	case dtypes.Uint8:
		fill = func(out any) { iotaT(out.([]uint8), outer, dim, inner) }
	case dtypes.Uint16:
		fill = func(out any) { iotaT(out.([]uint16), outer, dim, inner) }
	case dtypes.Uint32:
		fill = func(out any) { iotaT(out.([]uint32), outer, dim, inner) }
	case dtypes.Uint64:
		fill = func(out any) { iotaT(out.([]uint64), outer, dim, inner) }
	default:
		return nil, unsupported(n.op, n.shape.DType)
	}
	return func(ins, outs []any) { fill(outs[0]) }, nil
}

func iotaT[T numT](out []T, outer, dim, inner int) {
	i := 0
	for range outer {
		for v := range dim {
			tv := T(v)
			for range inner {
				out[i] = tv
				i++
			}
		}
	}
}

type dynSliceData struct{ sizes []int }

// DynamicSlice extracts a slice of sliceDims starting at the (clamped)
// runtime startIndices, one scalar per axis.
func (b *Builder) DynamicSlice(operand backends.Op, startIndices []backends.Op, sliceDims []int) (backends.Op, error) {
	in, err := b.checkOps("DynamicSlice", append([]backends.Op{operand}, startIndices...)...)
	if err != nil {
		return nil, err
	}
	xs := in[0].shape
	if len(startIndices) != xs.Rank() || len(sliceDims) != xs.Rank() {
		return nil, fmt.Errorf("cpu backend: DynamicSlice: operand %s needs %d start indices and slice dims, got %d and %d",
			xs, xs.Rank(), len(startIndices), len(sliceDims))
	}
	for k, s := range in[1:] {
		if !s.shape.IsScalar() || !s.shape.DType.IsInt() {
			return nil, fmt.Errorf("cpu backend: DynamicSlice: start index #%d must be an integer scalar, got %s", k, s.shape)
		}
		if sliceDims[k] < 0 || sliceDims[k] > xs.Dimensions[k] {
			return nil, fmt.Errorf("cpu backend: DynamicSlice: slice dim %d out of range for axis %d of %s", sliceDims[k], k, xs)
		}
	}
	shape := shapes.Make(xs.DType, sliceDims...)
	return b.newNode(backends.OpTypeDynamicSlice, shape, &dynSliceData{slices.Clone(sliceDims)}, in...), nil
}

// dynOffset reads the clamped start indices and returns the flat offset.
func dynOffset(idx []any, dims, sizes, strides []int) int {
	off := 0
	for k := range dims {
		s := scalarAsInt(idx[k], 0)
		s = max(0, min(s, dims[k]-sizes[k]))
		off += s * strides[k]
	}
	return off
}

func lowerDynamicSlice(n *node) (kernelFn, error) {
	xd := n.inputs[0].shape.Dimensions
	xs := rowMajorStrides(xd)
	sizes := n.data.(*dynSliceData).sizes
	c := newStridedCopy(sizes, xs, rowMajorStrides(sizes))
	return func(ins, outs []any) {
		off := dynOffset(ins[1:], xd, sizes, xs)
		c.run(outs[0], 0, ins[0], off)
	}, nil
}

// DynamicUpdateSlice writes update into operand at the (clamped) runtime
// startIndices.
func (b *Builder) DynamicUpdateSlice(operand, update backends.Op, startIndices []backends.Op) (backends.Op, error) {
	in, err := b.checkOps("DynamicUpdateSlice", append([]backends.Op{operand, update}, startIndices...)...)
	if err != nil {
		return nil, err
	}
	xs, us := in[0].shape, in[1].shape
	if xs.DType != us.DType || xs.Rank() != us.Rank() || len(startIndices) != xs.Rank() {
		return nil, fmt.Errorf("cpu backend: DynamicUpdateSlice: operand %s, update %s and %d start indices do not match", xs, us, len(startIndices))
	}
	for k, s := range in[2:] {
		if !s.shape.IsScalar() || !s.shape.DType.IsInt() {
			return nil, fmt.Errorf("cpu backend: DynamicUpdateSlice: start index #%d must be an integer scalar, got %s", k, s.shape)
		}
		if us.Dimensions[k] > xs.Dimensions[k] {
			return nil, fmt.Errorf("cpu backend: DynamicUpdateSlice: update %s larger than operand %s on axis %d", us, xs, k)
		}
	}
	return b.newNode(backends.OpTypeDynamicUpdateSlice, xs.Clone(), nil, in...), nil
}

func lowerDynamicUpdateSlice(n *node) (kernelFn, error) {
	xd := n.inputs[0].shape.Dimensions
	ud := n.inputs[1].shape.Dimensions
	xs := rowMajorStrides(xd)
	c := newStridedCopy(ud, rowMajorStrides(ud), xs)
	return func(ins, outs []any) {
		copyFlat(outs[0], ins[0])
		off := dynOffset(ins[2:], xd, ud, xs)
		c.run(outs[0], off, ins[1], 0)
	}, nil
}
