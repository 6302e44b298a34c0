package cpu

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

// Gather and Scatter{Sum,Max,Min} with XLA's general semantics.

func init() {
	registerLowering(lowerGather, backends.OpTypeGather)
	registerLowering(lowerScatter, backends.OpTypeScatterSum, backends.OpTypeScatterMax, backends.OpTypeScatterMin)
}

type gatherData struct {
	indexVectorAxis                                            int
	offsetOutputAxes, collapsedSliceAxes, startIndexMap, sizes []int
}

// Gather gathers slices of operand at positions read from startIndices (see
// backends.StandardOps.Gather); start positions are clamped into bounds.
func (b *Builder) Gather(operand, startIndices backends.Op, indexVectorAxis int,
	offsetOutputAxes, collapsedSliceAxes, startIndexMap, sliceSizes []int, indicesAreSorted bool) (backends.Op, error) {
	in, err := b.checkOps("Gather", operand, startIndices)
	if err != nil {
		return nil, err
	}
	if !in[1].shape.DType.IsInt() {
		return nil, fmt.Errorf("cpu backend: Gather: indices must be integers, got %s", in[1].shape)
	}
	if indexVectorAxis < 0 || indexVectorAxis > in[1].shape.Rank() {
		return nil, fmt.Errorf("cpu backend: Gather: indexVectorAxis %d out of range for indices %s", indexVectorAxis, in[1].shape)
	}
	idxShape := in[1].shape
	if indexVectorAxis == idxShape.Rank() {
		// Implicit trailing index axis of size 1.
		idxShape = idxShape.Clone()
		idxShape.Dimensions = append(idxShape.Dimensions, 1)
	}
	shape, err := shapeinference.Gather(in[0].shape, idxShape, indexVectorAxis, offsetOutputAxes, collapsedSliceAxes,
		startIndexMap, sliceSizes, indicesAreSorted)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: Gather: %w", err)
	}
	d := &gatherData{indexVectorAxis, slices.Clone(offsetOutputAxes), slices.Clone(collapsedSliceAxes),
		slices.Clone(startIndexMap), slices.Clone(sliceSizes)}
	return b.newNode(backends.OpTypeGather, shape, d, in[0], in[1]), nil
}

// indexReader reads the index vectors of an indices tensor: batch position
// i (row-major over the indices' axes other than the index-vector axis).
type indexReader struct {
	n, vecLen   int
	batchOffset []int // flat offset of each batch position's first component
	compStride  int
}

func newIndexReader(dims []int, indexVectorAxis int) indexReader {
	var r indexReader
	strides := rowMajorStrides(dims)
	var bDims, bStrides []int
	for k, d := range dims {
		if k == indexVectorAxis {
			continue
		}
		bDims = append(bDims, d)
		bStrides = append(bStrides, strides[k])
	}
	r.vecLen, r.compStride = 1, 0
	if indexVectorAxis < len(dims) {
		r.vecLen, r.compStride = dims[indexVectorAxis], strides[indexVectorAxis]
	}
	r.n = sizeOf(bDims)
	r.batchOffset = make([]int, r.n)
	idx := make([]int, len(bDims))
	for i := range r.n {
		off := 0
		for k := range idx {
			off += idx[k] * bStrides[k]
		}
		r.batchOffset[i] = off
		for k := len(idx) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < bDims[k] {
				break
			}
			idx[k] = 0
		}
	}
	return r
}

func lowerGather(n *node) (kernelFn, error) {
	d := n.data.(*gatherData)
	od := n.shape.Dimensions
	xd := n.inputs[0].shape.Dimensions
	xs := rowMajorStrides(xd)
	os := rowMajorStrides(od)
	ir := newIndexReader(n.inputs[1].shape.Dimensions, d.indexVectorAxis)
	isOffset := make([]bool, len(od))
	for _, a := range d.offsetOutputAxes {
		isOffset[a] = true
	}
	var batchOutStrides []int
	var offsetOutAxes []int
	for a := range od {
		if isOffset[a] {
			offsetOutAxes = append(offsetOutAxes, a)
		} else {
			batchOutStrides = append(batchOutStrides, os[a])
		}
	}
	collapsed := make([]bool, len(xd))
	for _, a := range d.collapsedSliceAxes {
		collapsed[a] = true
	}
	// Slice copy: non-collapsed operand axes in order -> offset output axes in order.
	var cDims, cS, cD []int
	j := 0
	for a := range xd {
		if collapsed[a] {
			continue
		}
		cDims = append(cDims, d.sizes[a])
		cS = append(cS, xs[a])
		cD = append(cD, os[offsetOutAxes[j]])
		j++
	}
	c := newStridedCopy(cDims, cS, cD)
	// Output offset of each batch position.
	bDims := make([]int, 0, len(batchOutStrides))
	for a := range od {
		if !isOffset[a] {
			bDims = append(bDims, od[a])
		}
	}
	dstBase := make([]int, ir.n)
	idx := make([]int, len(bDims))
	for i := range ir.n {
		off := 0
		for k := range idx {
			off += idx[k] * batchOutStrides[k]
		}
		dstBase[i] = off
		for k := len(idx) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < bDims[k] {
				break
			}
			idx[k] = 0
		}
	}
	return func(ins, outs []any) {
		for i := range ir.n {
			src := 0
			for v, a := range d.startIndexMap {
				s := scalarAsInt(ins[1], ir.batchOffset[i]+v*ir.compStride)
				s = max(0, min(s, xd[a]-d.sizes[a]))
				src += s * xs[a]
			}
			c.run(outs[0], dstBase[i], ins[0], src)
		}
	}, nil
}

type scatterData struct {
	kind                                                           reduceKind
	indexVectorAxis                                                int
	updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes []int
}

func (b *Builder) addScatter(op backends.OpType, kind reduceKind, operand, scatterIndices, updates backends.Op,
	indexVectorAxis int, updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes []int) (backends.Op, error) {
	in, err := b.checkOps(op.String(), operand, scatterIndices, updates)
	if err != nil {
		return nil, err
	}
	if in[0].shape.DType == dtypes.Bool {
		return nil, fmt.Errorf("cpu backend: %s: booleans not supported (%s)", op, in[0].shape)
	}
	shape, err := shapeinference.ScatterOp(in[0].shape, in[1].shape, in[2].shape, indexVectorAxis,
		updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: %s: %w", op, err)
	}
	d := &scatterData{kind, indexVectorAxis, slices.Clone(updateWindowAxes), slices.Clone(insertedWindowAxes),
		slices.Clone(scatterAxesToOperandAxes)}
	return b.newNode(op, shape.Clone(), d, in...), nil
}

// ScatterSum adds updates into a copy of operand at the positions given by
// scatterIndices; windows falling out of bounds are skipped.
func (b *Builder) ScatterSum(operand, scatterIndices, updates backends.Op, indexVectorAxis int,
	updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes []int, indicesAreSorted, uniqueIndices bool) (backends.Op, error) {
	return b.addScatter(backends.OpTypeScatterSum, redSum, operand, scatterIndices, updates, indexVectorAxis,
		updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes)
}

// ScatterMax scatters updates into a copy of operand taking the maximum.
func (b *Builder) ScatterMax(operand, scatterIndices, updates backends.Op, indexVectorAxis int,
	updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes []int, indicesAreSorted, uniqueIndices bool) (backends.Op, error) {
	return b.addScatter(backends.OpTypeScatterMax, redMax, operand, scatterIndices, updates, indexVectorAxis,
		updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes)
}

// ScatterMin scatters updates into a copy of operand taking the minimum.
func (b *Builder) ScatterMin(operand, scatterIndices, updates backends.Op, indexVectorAxis int,
	updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes []int, indicesAreSorted, uniqueIndices bool) (backends.Op, error) {
	return b.addScatter(backends.OpTypeScatterMin, redMin, operand, scatterIndices, updates, indexVectorAxis,
		updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes)
}

// scatterPlan is a precomputed scatter: for each update batch position, the
// update offset; the window is combined into the operand with strides.
type scatterPlan struct {
	d               *scatterData
	xd, xs          []int
	ir              indexReader
	updBase         []int // update flat offset per batch position
	winDims         []int // window dims per operand axis (1 for inserted axes)
	wDims, wUS, wXS []int // window iteration: dims, update strides, operand strides
}

func newScatterPlan(n *node) *scatterPlan {
	d := n.data.(*scatterData)
	p := &scatterPlan{d: d, xd: n.inputs[0].shape.Dimensions}
	p.xs = rowMajorStrides(p.xd)
	ud := n.inputs[2].shape.Dimensions
	us := rowMajorStrides(ud)
	p.ir = newIndexReader(n.inputs[1].shape.Dimensions, d.indexVectorAxis)
	isWindow := make([]bool, len(ud))
	for _, a := range d.updateWindowAxes {
		isWindow[a] = true
	}
	var bDims, bStr []int
	for a := range ud {
		if !isWindow[a] {
			bDims = append(bDims, ud[a])
			bStr = append(bStr, us[a])
		}
	}
	p.updBase = make([]int, p.ir.n)
	idx := make([]int, len(bDims))
	for i := range p.ir.n {
		off := 0
		for k := range idx {
			off += idx[k] * bStr[k]
		}
		p.updBase[i] = off
		for k := len(idx) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < bDims[k] {
				break
			}
			idx[k] = 0
		}
	}
	inserted := make([]bool, len(p.xd))
	for _, a := range d.insertedWindowAxes {
		inserted[a] = true
	}
	p.winDims = slices.Repeat([]int{1}, len(p.xd))
	j := 0
	for a := range p.xd {
		if inserted[a] {
			continue
		}
		ua := d.updateWindowAxes[j]
		j++
		p.winDims[a] = ud[ua]
		p.wDims = append(p.wDims, ud[ua])
		p.wUS = append(p.wUS, us[ua])
		p.wXS = append(p.wXS, p.xs[a])
	}
	return p
}

func lowerScatter(n *node) (kernelFn, error) {
	p := newScatterPlan(n)
	switch n.shape.DType {
	case dtypes.Float32:
		return scatterT[float32](p), nil
	case dtypes.Float64:
		return scatterT[float64](p), nil
	case dtypes.Int8:
		return scatterT[int8](p), nil
	case dtypes.Int16:
		return scatterT[int16](p), nil
	case dtypes.Int32:
		return scatterT[int32](p), nil
	case dtypes.Int64:
		return scatterT[int64](p), nil
	case dtypes.Uint8:
		return scatterT[uint8](p), nil
	case dtypes.Uint16:
		return scatterT[uint16](p), nil
	case dtypes.Uint32:
		return scatterT[uint32](p), nil
	case dtypes.Uint64:
		return scatterT[uint64](p), nil
	}
	return nil, unsupported(n.op, n.shape.DType)
}

func scatterT[T numT](p *scatterPlan) kernelFn {
	kind := p.d.kind
	r := len(p.wDims)
	return func(ins, outs []any) {
		out, upd := outs[0].([]T), ins[2].([]T)
		copy(out, ins[0].([]T))
		if sizeOf(p.wDims) == 0 {
			return
		}
		start := make([]int, len(p.xd))
		idx := make([]int, r)
	positions:
		for i := range p.ir.n {
			clear(start)
			for v, a := range p.d.scatterAxesToOperandAxes {
				start[a] = scalarAsInt(ins[1], p.ir.batchOffset[i]+v*p.ir.compStride)
			}
			xo := 0
			for a := range p.xd {
				if start[a] < 0 || start[a]+p.winDims[a] > p.xd[a] {
					continue positions // out of bounds: skipped
				}
				xo += start[a] * p.xs[a]
			}
			uo := p.updBase[i]
			clear(idx)
			for {
				v := upd[uo]
				switch kind {
				case redSum:
					out[xo] += v
				case redMax:
					out[xo] = max(out[xo], v)
				case redMin:
					out[xo] = min(out[xo], v)
				}
				k := r - 1
				for ; k >= 0; k-- {
					idx[k]++
					uo += p.wUS[k]
					xo += p.wXS[k]
					if idx[k] < p.wDims[k] {
						break
					}
					uo -= p.wUS[k] * p.wDims[k]
					xo -= p.wXS[k] * p.wDims[k]
					idx[k] = 0
				}
				if k < 0 {
					break
				}
			}
		}
	}
}
