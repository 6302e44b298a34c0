package cpu

import (
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/sgt-dev/sgt/backend/kernels"
)

// Reductions over axes, and ArgMinMax.

type reduceKind int

const (
	redSum reduceKind = iota
	redProd
	redMax
	redMin
	redAnd // logical or bitwise
	redOr
	redXor
)

var reduceKinds = map[backends.OpType]reduceKind{
	backends.OpTypeReduceSum: redSum, backends.OpTypeReduceProduct: redProd,
	backends.OpTypeReduceMax: redMax, backends.OpTypeReduceMin: redMin,
	backends.OpTypeReduceLogicalAnd: redAnd, backends.OpTypeReduceLogicalOr: redOr, backends.OpTypeReduceLogicalXor: redXor,
	backends.OpTypeReduceBitwiseAnd: redAnd, backends.OpTypeReduceBitwiseOr: redOr, backends.OpTypeReduceBitwiseXor: redXor,
}

func init() {
	for op := range reduceKinds {
		registerLowering(lowerReduce, op)
	}
	registerLowering(lowerArgMinMax, backends.OpTypeArgMinMax)
}

type reduceData struct{ axes []int }

func (b *Builder) addReduce(op backends.OpType, x backends.Op, axes []int) (backends.Op, error) {
	in, err := b.checkOps(op.String(), x)
	if err != nil {
		return nil, err
	}
	xs := in[0].shape
	if len(axes) == 0 {
		axes = make([]int, xs.Rank())
		for i := range axes {
			axes[i] = i
		}
	}
	seen := make(map[int]bool)
	for _, a := range axes {
		if a < 0 || a >= xs.Rank() || seen[a] {
			return nil, fmt.Errorf("cpu backend: %s: invalid or repeated axis %d for %s", op, a, xs)
		}
		seen[a] = true
	}
	dt := xs.DType
	switch op {
	case backends.OpTypeReduceLogicalAnd, backends.OpTypeReduceLogicalOr, backends.OpTypeReduceLogicalXor:
		if dt != dtypes.Bool {
			return nil, fmt.Errorf("cpu backend: %s needs booleans, got %s", op, xs)
		}
	case backends.OpTypeReduceBitwiseAnd, backends.OpTypeReduceBitwiseOr, backends.OpTypeReduceBitwiseXor:
		if !dt.IsInt() {
			return nil, fmt.Errorf("cpu backend: %s needs integers, got %s", op, xs)
		}
	default:
		if !dt.IsInt() && !dt.IsFloat() {
			return nil, fmt.Errorf("cpu backend: %s needs numbers, got %s", op, xs)
		}
	}
	shape, err := shapeinference.ReduceOp(xs, axes)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: %s: %w", op, err)
	}
	return b.newNode(op, shape, &reduceData{slices.Clone(axes)}, in[0]), nil
}

// ReduceSum sums x over axes (all axes if none given). A sum over a
// broadcast product, ReduceSum(Mul(a, b)), is built as a DotGeneral of a
// and b (see tryContraction).
func (b *Builder) ReduceSum(x backends.Op, axes ...int) (backends.Op, error) {
	r, err := b.addReduce(backends.OpTypeReduceSum, x, axes)
	if err != nil {
		return nil, err
	}
	rn := r.(*node)
	if c := b.tryContraction(rn.inputs[0], rn.data.(*reduceData).axes); c != nil {
		return c, nil
	}
	return r, nil
}

// ReduceProduct multiplies x over axes.
func (b *Builder) ReduceProduct(x backends.Op, axes ...int) (backends.Op, error) {
	return b.addReduce(backends.OpTypeReduceProduct, x, axes)
}

// ReduceMax takes the maximum of x over axes (NaN propagates).
func (b *Builder) ReduceMax(x backends.Op, axes ...int) (backends.Op, error) {
	return b.addReduce(backends.OpTypeReduceMax, x, axes)
}

// ReduceMin takes the minimum of x over axes (NaN propagates).
func (b *Builder) ReduceMin(x backends.Op, axes ...int) (backends.Op, error) {
	return b.addReduce(backends.OpTypeReduceMin, x, axes)
}

// ReduceLogicalAnd reduces booleans with AND.
func (b *Builder) ReduceLogicalAnd(x backends.Op, axes ...int) (backends.Op, error) {
	return b.addReduce(backends.OpTypeReduceLogicalAnd, x, axes)
}

// ReduceLogicalOr reduces booleans with OR.
func (b *Builder) ReduceLogicalOr(x backends.Op, axes ...int) (backends.Op, error) {
	return b.addReduce(backends.OpTypeReduceLogicalOr, x, axes)
}

// ReduceLogicalXor reduces booleans with XOR.
func (b *Builder) ReduceLogicalXor(x backends.Op, axes ...int) (backends.Op, error) {
	return b.addReduce(backends.OpTypeReduceLogicalXor, x, axes)
}

// ReduceBitwiseAnd reduces integers with bitwise AND.
func (b *Builder) ReduceBitwiseAnd(x backends.Op, axes ...int) (backends.Op, error) {
	return b.addReduce(backends.OpTypeReduceBitwiseAnd, x, axes)
}

// ReduceBitwiseOr reduces integers with bitwise OR.
func (b *Builder) ReduceBitwiseOr(x backends.Op, axes ...int) (backends.Op, error) {
	return b.addReduce(backends.OpTypeReduceBitwiseOr, x, axes)
}

// ReduceBitwiseXor reduces integers with bitwise XOR.
func (b *Builder) ReduceBitwiseXor(x backends.Op, axes ...int) (backends.Op, error) {
	return b.addReduce(backends.OpTypeReduceBitwiseXor, x, axes)
}

// reducePlan is a reduction with collapsed axes: per input axis, its input
// stride and its output stride (0 for reduced axes).
type reducePlan struct {
	kind               reduceKind
	dims, sStr, dStr   []int
	inSize, outSize    int
	firstAxisIsReduced bool
}

// reduceParallelMin is the input size above which reductions are split.
const reduceParallelMin = 1 << 16

func newReducePlan(kind reduceKind, dims []int, axes []int) *reducePlan {
	p := &reducePlan{kind: kind, inSize: sizeOf(dims)}
	red := make([]bool, len(dims))
	for _, a := range axes {
		red[a] = true
	}
	var outDims []int
	for k, d := range dims {
		if !red[k] {
			outDims = append(outDims, d)
		}
	}
	p.outSize = sizeOf(outDims)
	os := rowMajorStrides(outDims)
	is := rowMajorStrides(dims)
	j := 0
	for k, d := range dims {
		ds := 0
		if !red[k] {
			ds = os[j]
			j++
		}
		if d == 1 {
			continue
		}
		if n := len(p.dims); n > 0 && p.sStr[n-1] == is[k]*d && p.dStr[n-1] == ds*d {
			p.dims[n-1] *= d
			p.sStr[n-1], p.dStr[n-1] = is[k], ds
			continue
		}
		p.dims = append(p.dims, d)
		p.sStr = append(p.sStr, is[k])
		p.dStr = append(p.dStr, ds)
	}
	p.firstAxisIsReduced = len(p.dims) > 0 && p.dStr[0] == 0
	return p
}

func lowerReduce(n *node) (kernelFn, error) {
	kind := reduceKinds[n.op]
	p := newReducePlan(kind, n.inputs[0].shape.Dimensions, n.data.(*reduceData).axes)
	switch n.shape.DType {
	case dtypes.Float32:
		return reduceNum[float32](p), nil
	case dtypes.Float64:
		return reduceNum[float64](p), nil
	case dtypes.Int8:
		return reduceNum[int8](p), nil
	case dtypes.Int16:
		return reduceNum[int16](p), nil
	case dtypes.Int32:
		return reduceNum[int32](p), nil
	case dtypes.Int64:
		return reduceNum[int64](p), nil
	case dtypes.Uint8:
		return reduceNum[uint8](p), nil
	case dtypes.Uint16:
		return reduceNum[uint16](p), nil
	case dtypes.Uint32:
		return reduceNum[uint32](p), nil
	case dtypes.Uint64:
		return reduceNum[uint64](p), nil
	case dtypes.Bool:
		return reduceBool(p), nil
	}
	return nil, unsupported(n.op, n.shape.DType)
}

// identityOf returns the neutral element of a reduction.
func identityOf[T numT](kind reduceKind) T {
	var z, one T = 0, 1
	isFloat := dtypes.FromAny(z).IsFloat()
	unsigned := !isFloat && z-one > z
	maxInt := T(uint64(math.MaxUint64) >> (65 - 8*int(unsafe.Sizeof(z)))) // signed types only
	switch kind {
	case redProd:
		return 1
	case redAnd:
		return z - one // all ones for integers
	case redMax:
		switch {
		case isFloat:
			return T(math.Inf(-1))
		case unsigned:
			return 0
		}
		return -maxInt - 1
	case redMin:
		switch {
		case isFloat:
			return T(math.Inf(1))
		case unsigned:
			return z - one
		}
		return maxInt
	}
	return 0
}

func reduceNum[T numT](p *reducePlan) kernelFn {
	var z T
	isInt := !dtypes.FromAny(z).IsFloat()
	id := identityOf[T](p.kind)
	run := func(dst []T, dOff, dStr int, src []T, sOff, sStr, n int) {
		numRun(p.kind, isInt, dst, dOff, dStr, src, sOff, sStr, n)
	}
	combine := func(dst, src []T) { numRun(p.kind, isInt, dst, 0, 1, src, 0, 1, len(dst)) }
	return func(ins, outs []any) {
		reduceDrive(p, outs[0].([]T), ins[0].([]T), id, run, combine)
	}
}

// numRun combines n source elements into dst: into one element when
// dStr == 0, elementwise otherwise.
func numRun[T numT](kind reduceKind, isInt bool, dst []T, dOff, dStr int, src []T, sOff, sStr, n int) {
	if dStr == 0 {
		acc := dst[dOff]
		s := sOff
		switch kind {
		case redSum:
			if sStr == 1 {
				for _, v := range src[s : s+n] {
					acc += v
				}
			} else {
				for range n {
					acc += src[s]
					s += sStr
				}
			}
		case redProd:
			for range n {
				acc *= src[s]
				s += sStr
			}
		case redMax:
			for range n {
				acc = max(acc, src[s])
				s += sStr
			}
		case redMin:
			for range n {
				acc = min(acc, src[s])
				s += sStr
			}
		default:
			if isInt {
				for range n {
					acc = bitwise(kind, acc, src[s])
					s += sStr
				}
			}
		}
		dst[dOff] = acc
		return
	}
	d, s := dOff, sOff
	if dStr == 1 && sStr == 1 {
		dd, ss := dst[d:d+n], src[s:s+n]
		switch kind {
		case redSum:
			for i, v := range ss {
				dd[i] += v
			}
		case redProd:
			for i, v := range ss {
				dd[i] *= v
			}
		case redMax:
			for i, v := range ss {
				dd[i] = max(dd[i], v)
			}
		case redMin:
			for i, v := range ss {
				dd[i] = min(dd[i], v)
			}
		default:
			if isInt {
				for i, v := range ss {
					dd[i] = bitwise(kind, dd[i], v)
				}
			}
		}
		return
	}
	for range n {
		v := src[s]
		switch kind {
		case redSum:
			dst[d] += v
		case redProd:
			dst[d] *= v
		case redMax:
			dst[d] = max(dst[d], v)
		case redMin:
			dst[d] = min(dst[d], v)
		default:
			if isInt {
				dst[d] = bitwise(kind, dst[d], v)
			}
		}
		s += sStr
		d += dStr
	}
}

// bitwise applies an integer bitwise reduction (only called on integer T).
func bitwise[T numT](kind reduceKind, a, b T) T {
	switch any(a).(type) {
	case int8:
		return T(bitwiseInt(kind, int64(a), int64(b)))
	case int16:
		return T(bitwiseInt(kind, int64(a), int64(b)))
	case int32:
		return T(bitwiseInt(kind, int64(a), int64(b)))
	case int64:
		return T(bitwiseInt(kind, int64(a), int64(b)))
	default:
		return T(bitwiseUint(kind, uint64(a), uint64(b)))
	}
}

func bitwiseInt(kind reduceKind, a, b int64) int64 {
	switch kind {
	case redAnd:
		return a & b
	case redOr:
		return a | b
	}
	return a ^ b
}

func bitwiseUint(kind reduceKind, a, b uint64) uint64 {
	switch kind {
	case redAnd:
		return a & b
	case redOr:
		return a | b
	}
	return a ^ b
}

func reduceBool(p *reducePlan) kernelFn {
	id := p.kind == redAnd
	run := func(dst []bool, dOff, dStr int, src []bool, sOff, sStr, n int) {
		d, s := dOff, sOff
		for range n {
			switch p.kind {
			case redAnd:
				dst[d] = dst[d] && src[s]
			case redOr:
				dst[d] = dst[d] || src[s]
			default:
				dst[d] = dst[d] != src[s]
			}
			s += sStr
			d += dStr
		}
	}
	combine := func(dst, src []bool) { run(dst, 0, 1, src, 0, 1, len(dst)) }
	return func(ins, outs []any) {
		reduceDrive(p, outs[0].([]bool), ins[0].([]bool), id, run, combine)
	}
}

// reducePartMin is the least number of input elements, and
// reducePartRows of input elements per output element, each part of a
// reduction of its outermost axis sums; reduceMaxParts bounds the number of
// parts.
const (
	reducePartMin  = 1 << 15
	reducePartRows = 16
	reduceMaxParts = 32
)

// reduceParts returns the number of parts the outermost axis of p, when it
// is reduced, is split into (1: none). Each part is reduced into its own
// partial output, and the partials are combined in order: the number
// depends on the shape only, never on the number of workers, so that the
// result is the same whatever that number.
func reduceParts(p *reducePlan) int {
	if !p.firstAxisIsReduced || p.inSize < reduceParallelMin {
		return 1
	}
	return max(1, min(p.dims[0], reduceMaxParts, p.inSize/reducePartMin, p.inSize/(reducePartRows*max(1, p.outSize))))
}

// reduceDrive runs a reduction plan: it initialises out with the identity
// and iterates over the input, splitting the work across workers when large.
// Results do not depend on the number of workers: a reduced outermost axis
// is split into reduceParts parts whatever it is.
func reduceDrive[T any](p *reducePlan, out, in []T, id T,
	run func(dst []T, dOff, dStr int, src []T, sOff, sStr, n int), combine func(dst, src []T)) {
	for i := range out {
		out[i] = id
	}
	if p.inSize == 0 {
		return
	}
	if len(p.dims) == 0 {
		run(out, 0, 0, in, 0, 0, 1)
		return
	}
	d0 := p.dims[0]
	parts := reduceParts(p)
	if parts == 1 {
		if p.firstAxisIsReduced || p.inSize < reduceParallelMin || d0 < 2 {
			reduceRange(p, out, in, 0, d0, run)
			return
		}
		// The outermost axis is kept: workers write disjoint outputs.
		kernels.Parallel(d0, 1, func(lo, hi int) { reduceRange(p, out, in, lo, hi, run) })
		return
	}
	// Part 0 reduces into out, the others into their own partial outputs,
	// combined into out in order.
	partials := make([]T, (parts-1)*len(out))
	kernels.Parallel(parts, 1, func(lo, hi int) {
		for w := lo; w < hi; w++ {
			a, b := w*d0/parts, (w+1)*d0/parts
			dst := out
			if w > 0 {
				dst = partials[(w-1)*len(out) : w*len(out)]
				for i := range dst {
					dst[i] = id
				}
			}
			reduceRange(p, dst, in, a, b, run)
		}
	})
	for w := 1; w < parts; w++ {
		combine(out, partials[(w-1)*len(out):w*len(out)])
	}
}

// reduceRange reduces the part of the input whose outermost index is in
// [lo, hi).
func reduceRange[T any](p *reducePlan, out, in []T, lo, hi int,
	run func(dst []T, dOff, dStr int, src []T, sOff, sStr, n int)) {
	r := len(p.dims)
	if r == 1 {
		run(out, lo*p.dStr[0], p.dStr[0], in, lo*p.sStr[0], p.sStr[0], hi-lo)
		return
	}
	idx := make([]int, r)
	inner := p.dims[r-1]
	for o := lo; o < hi; o++ {
		s, d := o*p.sStr[0], o*p.dStr[0]
		for k := 1; k < r; k++ {
			idx[k] = 0
		}
		for {
			run(out, d, p.dStr[r-1], in, s, p.sStr[r-1], inner)
			k := r - 2
			for ; k >= 1; k-- {
				idx[k]++
				s += p.sStr[k]
				d += p.dStr[k]
				if idx[k] < p.dims[k] {
					break
				}
				s -= p.sStr[k] * p.dims[k]
				d -= p.dStr[k] * p.dims[k]
				idx[k] = 0
			}
			if k < 1 {
				break
			}
		}
	}
}

type argMinMaxData struct {
	axis  int
	isMin bool
}

// ArgMinMax returns the index of the minimum (isMin) or maximum of x along
// axis, as outputDType; the first NaN wins, ties take the first index.
func (b *Builder) ArgMinMax(x backends.Op, axis int, outputDType dtypes.DType, isMin bool) (backends.Op, error) {
	in, err := b.checkOps("ArgMinMax", x)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.ArgMinMaxOp(in[0].shape, axis, outputDType)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: ArgMinMax: %w", err)
	}
	if !isSupportedDType(outputDType) {
		return nil, fmt.Errorf("cpu backend: ArgMinMax: unsupported output dtype %s", outputDType)
	}
	return b.newNode(backends.OpTypeArgMinMax, shape, &argMinMaxData{axis, isMin}, in[0]), nil
}

func lowerArgMinMax(n *node) (kernelFn, error) {
	d := n.data.(*argMinMaxData)
	dims := n.inputs[0].shape.Dimensions
	outer, dim, inner := sizeOf(dims[:d.axis]), dims[d.axis], sizeOf(dims[d.axis+1:])
	conv, err := convertKernel(dtypes.Int64, n.shape.DType)
	if err != nil {
		return nil, err
	}
	return func(ins, outs []any) {
		idx := make([]int64, outer*inner)
		argBestAny(ins[0], idx, outer, dim, inner, d.isMin)
		conv(outs[0], []any{idx})
	}, nil
}

func argBestAny(in any, idx []int64, outer, dim, inner int, isMin bool) {
	switch s := in.(type) {
	case []float32:
		argBest(s, idx, outer, dim, inner, isMin, true)
	case []float64:
		argBest(s, idx, outer, dim, inner, isMin, true)
	case []int8:
		argBest(s, idx, outer, dim, inner, isMin, false)
	case []int16:
		argBest(s, idx, outer, dim, inner, isMin, false)
	case []int32:
		argBest(s, idx, outer, dim, inner, isMin, false)
	case []int64:
		argBest(s, idx, outer, dim, inner, isMin, false)
	case []uint8:
		argBest(s, idx, outer, dim, inner, isMin, false)
	case []uint16:
		argBest(s, idx, outer, dim, inner, isMin, false)
	case []uint32:
		argBest(s, idx, outer, dim, inner, isMin, false)
	case []uint64:
		argBest(s, idx, outer, dim, inner, isMin, false)
	default:
		panic(fmt.Sprintf("ArgMinMax: unsupported type %T", in))
	}
}

func argBest[T numT](in []T, idx []int64, outer, dim, inner int, isMin, isFloat bool) {
	for o := range outer {
		base := o * dim * inner
		for j := range inner {
			best := in[base+j]
			bi := 0
			if !(isFloat && best != best) {
				for k := 1; k < dim; k++ {
					v := in[base+k*inner+j]
					if isFloat && v != v {
						best, bi = v, k
						break
					}
					if (isMin && v < best) || (!isMin && v > best) {
						best, bi = v, k
					}
				}
			}
			idx[o*inner+j] = int64(bi)
		}
	}
}
