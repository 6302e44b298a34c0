package cpu

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/sgt-dev/sgt/backend/kernels"
)

// Elementwise fusion.
//
// A cluster is a DAG of elementwise nodes with the same dimensions, rooted at
// a node whose value is materialized. It runs as one pass over the output,
// in blocks of fuseBlock elements: each member computes its block into a
// per-worker register, reading its operands from registers, directly from
// the input buffers (same-shape operands), from a register filled once
// (scalars), or from a register gathered with strides (broadcast operands,
// including BroadcastInDim nodes, which are never materialized when only
// elementwise ops read them).

// fuseBlock is the number of elements processed per block.
const fuseBlock = 1024

// fuseParallelMin is the minimum number of elements to split a fused pass
// over several workers.
const fuseParallelMin = 1 << 15

type leafMode int

const (
	leafFull    leafMode = iota // same shape as the output: read in place
	leafScalar                  // one value broadcast to all
	leafStrided                 // general broadcast, gathered per block
)

type fusedLeaf struct {
	in    int // index into the step's inputs
	mode  leafMode
	dtype dtypes.DType
	// dims and strides (collapsed) for leafStrided, over the output.
	dims, strides []int
}

type fusedInstr struct {
	dst  int
	srcs []int
	fn   ewFn
}

type fusedProg struct {
	size    int
	leaves  []fusedLeaf
	instrs  []fusedInstr
	regType []dtypes.DType
	// sides lists the side outputs: step output sides[i].out is register
	// sides[i].reg, copied out at the end of each block (after all reads
	// of the block, so outputs may overwrite inputs read in place). The
	// last output of the step is written directly by the last instruction.
	sides []fusedSide
	pool  sync.Pool
}

type fusedSide struct{ reg, out int }

type fusedScratch struct {
	regs    []any // current block views, each a *[]T (see asSlice)
	storage []any // block-sized storage for non-full registers
	args    [][]any
	outView []any // per side output, a *[]T view of its output block
}

// isElementwise reports whether n can be a member of a fusion cluster.
func isElementwise(n *node) bool {
	if n.parent != nil || len(n.outs) > 0 {
		return false
	}
	return elementwiseOps[n.op]
}

var elementwiseOps = map[backends.OpType]bool{
	backends.OpTypeWhere: true, backends.OpTypeClamp: true, backends.OpTypeConvertDType: true,
}

func init() {
	for op := range shapeinference.StandardUnaryOperations {
		elementwiseOps[op] = true
	}
	for op := range shapeinference.StandardBinaryOperations {
		elementwiseOps[op] = true
	}
	for op := range shapeinference.ComparisonOperations {
		elementwiseOps[op] = true
	}
	for _, op := range []backends.OpType{backends.OpTypeIsFinite, backends.OpTypeIsNaN, backends.OpTypeNotEqualTotalOrder,
		backends.OpTypeShiftLeft, backends.OpTypeShiftRightArithmetic, backends.OpTypeShiftRightLogical} {
		elementwiseOps[op] = true
	}
	for _, op := range []backends.OpType{backends.OpTypeReal, backends.OpTypeImag, backends.OpTypeConj} {
		delete(elementwiseOps, op)
	}
}

// readThrough resolves reads of v through virtual broadcasts: it returns the
// node actually read and the strides (in elements of that node) per axis of
// v's dimensions.
func readThrough(v *node, virtual []bool) (*node, []int) {
	if !virtual[v.idx] {
		return v, rowMajorStrides(v.shape.Dimensions)
	}
	x := v.inputs[0]
	src, xs := readThrough(x, virtual)
	axes := v.data.(*broadcastData).axes
	s := make([]int, v.shape.Rank())
	for i, a := range axes {
		if x.shape.Dimensions[i] == v.shape.Dimensions[a] {
			s[a] = xs[i]
		}
	}
	return src, s
}

// collapseAxes merges adjacent axes that are contiguous with respect to
// strides, and drops axes of dimension 1.
func collapseAxes(dims, strides []int) ([]int, []int) {
	var d, s []int
	for k := range dims {
		if dims[k] == 1 {
			continue
		}
		if n := len(d); n > 0 && s[n-1] == strides[k]*dims[k] {
			d[n-1] *= dims[k]
			s[n-1] = strides[k]
			continue
		}
		d = append(d, dims[k])
		s = append(s, strides[k])
	}
	return d, s
}

// buildFusedStep builds the step of the cluster rooted at root; the
// members in sideOut are written out too (side outputs, before the root in
// the step's outputs).
func buildFusedStep(root *node, members []*node, sideOut map[int]bool, virtual []bool, rootOf func(int) int) (*step, error) {
	outDims := root.shape.Dimensions
	prog := &fusedProg{size: root.shape.Size()}
	st := &step{name: "fused(" + root.op.String() + ")"}
	for _, m := range members {
		if sideOut[m.idx] {
			st.outs = append(st.outs, m.idx)
		}
	}
	st.outs = append(st.outs, root.idx)
	reg := make(map[int]int)    // member node idx -> register
	leafOf := make(map[int]int) // input node idx -> register
	type readKey struct {
		src     int
		strides string
	}
	leafByRead := make(map[readKey]int)
	fullReads := make(map[int]int)   // root value -> count of full-mode reads
	otherReads := make(map[int]bool) // root value read in another mode
	inOf := make(map[int]int)        // source node idx -> step input index

	addLeaf := func(x *node) int {
		if r, ok := leafOf[x.idx]; ok {
			return r
		}
		src, vs := readThrough(x, virtual)
		strides := make([]int, len(outDims))
		xd := x.shape.Dimensions
		if len(xd) == len(outDims) {
			for k := range outDims {
				if xd[k] == outDims[k] {
					strides[k] = vs[k]
				}
			}
		} // else x is a scalar: all strides 0.
		mode := leafStrided
		if src.shape.Size() == prog.size && slices.Equal(strides, rowMajorStrides(outDims)) {
			mode = leafFull
		} else if slices.Max(append([]int{0}, strides...)) == 0 {
			mode = leafScalar
		}
		key := readKey{src.idx, fmt.Sprint(mode, strides)}
		if r, ok := leafByRead[key]; ok {
			leafOf[x.idx] = r
			return r
		}
		in, ok := inOf[src.idx]
		if !ok {
			in = len(st.ins)
			st.ins = append(st.ins, src.idx)
			inOf[src.idx] = in
		}
		l := fusedLeaf{in: in, mode: mode, dtype: src.shape.DType}
		rv := rootOf(src.idx)
		if mode == leafStrided {
			l.dims, l.strides = collapseAxes(outDims, strides)
		}
		if mode == leafFull {
			fullReads[rv]++
		} else {
			otherReads[rv] = true
		}
		r := len(prog.regType)
		prog.regType = append(prog.regType, src.shape.DType)
		prog.leaves = append(prog.leaves, l)
		leafOf[x.idx] = r
		leafByRead[key] = r
		return r
	}
	inCluster := make(map[int]bool, len(members))
	for _, m := range members {
		inCluster[m.idx] = true
	}
	// Leaves first (registers 0..L-1), then one register per member.
	for _, m := range members {
		for _, x := range m.inputs {
			if !inCluster[x.idx] {
				addLeaf(x)
			}
		}
	}
	skip, rewrite, masked := peepholes(members, inCluster, sideOut, virtual)
	regOf := func(x *node) int {
		if inCluster[x.idx] {
			return reg[x.idx]
		}
		return leafOf[x.idx]
	}
	for _, m := range members {
		if skip[m.idx] {
			continue
		}
		if x := identityOperand(m, virtual); x != nil && m != root && !sideOut[m.idx] {
			reg[m.idx] = regOf(x) // x - 0 or x * 1: no instruction
			continue
		}
		fn, err := ewKernel(m)
		inputs := m.inputs
		if y, ok := rewrite[m.idx]; ok {
			fn, err = nonNegIndicatorKernel(m.shape.DType)
			inputs = []*node{y}
		}
		if gy, ok := masked[m.idx]; ok {
			fn, err = maskedMulKernel(m.shape.DType)
			inputs = gy[:]
		}
		if err != nil {
			return nil, err
		}
		r := len(prog.regType)
		prog.regType = append(prog.regType, m.shape.DType)
		reg[m.idx] = r
		ins := fusedInstr{dst: r, fn: fn}
		for _, x := range inputs {
			ins.srcs = append(ins.srcs, regOf(x))
		}
		prog.instrs = append(prog.instrs, ins)
		if sideOut[m.idx] {
			prog.sides = append(prog.sides, fusedSide{reg: r, out: len(prog.sides)})
		}
	}
	for rv, n := range fullReads {
		if n > 0 && !otherReads[rv] {
			st.inPlace = append(st.inPlace, rv)
		}
	}
	slices.Sort(st.inPlace)
	prog.pool.New = func() any { return prog.newScratch() }
	st.run = prog.run
	st.fused = prog
	return st, nil
}

// peepholes finds instruction patterns inside a cluster worth computing in
// one step. For now: GoMLX's NonNegativeIndicator, Sign(Add(Sign(y), 1)),
// which its ReLU (Max) gradient applies to every activation, becomes one
// branchless instruction on y, and a product g * indicator becomes one
// masked multiply. Side outputs are never folded away. It returns the
// members to skip, for each rewritten indicator its new single input y,
// and for each masked multiply its inputs (g, y).
func peepholes(members []*node, inCluster, sideOut map[int]bool, virtual []bool) (skip map[int]bool, rewrite map[int]*node, masked map[int][2]*node) {
	skip, rewrite = make(map[int]bool), make(map[int]*node)
	uses := make(map[int]int)
	for _, m := range members {
		for _, x := range m.inputs {
			uses[x.idx]++
		}
	}
	single := func(n *node, op backends.OpType) bool {
		return inCluster[n.idx] && n.op == op && uses[n.idx] == 1 && !sideOut[n.idx]
	}
	for _, m := range members {
		if m.op != backends.OpTypeSign || !m.shape.DType.IsFloat() {
			continue
		}
		a := m.inputs[0]
		if !single(a, backends.OpTypeAdd) {
			continue
		}
		for k := range 2 {
			s, c := a.inputs[k], a.inputs[1-k]
			if single(s, backends.OpTypeSign) && !inCluster[c.idx] && isScalarConstant(c, virtual, 1) {
				skip[a.idx], skip[s.idx] = true, true
				rewrite[m.idx] = s.inputs[0]
				break
			}
		}
	}
	// The indicator's usual reader, the ReLU gradient g * indicator(y),
	// becomes one masked multiply (same arithmetic, one loop).
	masked = make(map[int][2]*node)
	for _, m := range members {
		if m.op != backends.OpTypeMul || !m.shape.DType.IsFloat() {
			continue
		}
		for k := range 2 {
			ind, g := m.inputs[k], m.inputs[1-k]
			if y, ok := rewrite[ind.idx]; ok && uses[ind.idx] == 1 && !sideOut[ind.idx] && ind.idx != m.idx {
				skip[ind.idx] = true
				masked[m.idx] = [2]*node{g, y}
				break
			}
		}
	}
	return skip, rewrite, masked
}

// identityOperand returns x when n computes exactly x: x - 0 (IEEE: also
// for -0 and NaN; x + 0 is not, as -0 + 0 = +0) or x * 1, with the
// constant a scalar and x of n's shape and dtype; nil otherwise.
func identityOperand(n *node, virtual []bool) *node {
	if !n.shape.DType.IsFloat() || len(n.inputs) != 2 {
		return nil
	}
	a, b := n.inputs[0], n.inputs[1]
	same := func(x *node) bool { return x.shape.Equal(n.shape) }
	switch n.op {
	case backends.OpTypeSub:
		if same(a) && isScalarConstant(b, virtual, 0) {
			return a
		}
	case backends.OpTypeMul:
		if same(a) && isScalarConstant(b, virtual, 1) {
			return a
		}
		if same(b) && isScalarConstant(a, virtual, 1) {
			return b
		}
	}
	return nil
}

// isScalarConstant reports whether n reads (through reshapes and virtual
// broadcasts) a one-element constant equal to v.
func isScalarConstant(n *node, virtual []bool, v float64) bool {
	src, _ := readThrough(n, virtual)
	for src.op == backends.OpTypeReshape || src.op == backends.OpTypeIdentity {
		src = src.inputs[0]
	}
	if src.op != backends.OpTypeConstant || src.shape.Size() != 1 {
		return false
	}
	c := scalarAsFloat64(src.data, 0)
	return c == v && math.Signbit(c) == math.Signbit(v) // -0 is not 0 here
}

func (p *fusedProg) newScratch() *fusedScratch {
	sc := &fusedScratch{regs: make([]any, len(p.regType)), storage: make([]any, len(p.regType))}
	nl := len(p.leaves)
	for r, dt := range p.regType {
		sc.regs[r] = newView(dt)
		if r < nl && p.leaves[r].mode == leafFull {
			continue
		}
		sc.storage[r] = makeSlice(dt, fuseBlock)
	}
	for _, sd := range p.sides {
		sc.outView = append(sc.outView, newView(p.regType[sd.reg]))
	}
	sc.args = make([][]any, len(p.instrs))
	for i, in := range p.instrs {
		sc.args[i] = make([]any, len(in.srcs))
	}
	return sc
}

func (p *fusedProg) run(ins, outs []any) {
	n := p.size
	if n == 0 {
		return
	}
	nBlocks := (n + fuseBlock - 1) / fuseBlock
	if n < fuseParallelMin {
		p.runBlocks(ins, outs, 0, nBlocks)
		return
	}
	kernels.Parallel(nBlocks, fuseParallelMin/fuseBlock/2, func(lo, hi int) {
		p.runBlocks(ins, outs, lo, hi)
	})
}

// runBlocks evaluates blocks [b0, b1) of the outputs.
func (p *fusedProg) runBlocks(ins, outs []any, b0, b1 int) {
	out := outs[len(outs)-1]
	sc := p.pool.Get().(*fusedScratch)
	defer p.pool.Put(sc)
	for r, l := range p.leaves {
		if l.mode == leafScalar {
			fillScalar(sc.storage[r], ins[l.in])
		}
	}
	last := len(p.instrs) - 1
	for b := b0; b < b1; b++ {
		lo := b * fuseBlock
		hi := min(lo+fuseBlock, p.size)
		m := hi - lo
		for r, l := range p.leaves {
			switch l.mode {
			case leafFull:
				setView(sc.regs[r], ins[l.in], lo, hi)
			case leafScalar:
				setView(sc.regs[r], sc.storage[r], 0, m)
			default:
				setView(sc.regs[r], sc.storage[r], 0, m)
				dst := sc.storage[r]
				if m < fuseBlock {
					dst = subSlice(dst, 0, m) // the last block only
				}
				stridedRead(dst, ins[l.in], lo, l.dims, l.strides)
			}
		}
		for i := range p.instrs {
			in := &p.instrs[i]
			if i == last {
				setView(sc.regs[in.dst], out, lo, hi)
			} else {
				setView(sc.regs[in.dst], sc.storage[in.dst], 0, m)
			}
			args := sc.args[i]
			for j, s := range in.srcs {
				args[j] = sc.regs[s]
			}
			in.fn(sc.regs[in.dst], args)
		}
		for k, sd := range p.sides {
			setView(sc.outView[k], outs[sd.out], lo, hi)
			copyView(sc.outView[k], sc.regs[sd.reg])
		}
	}
	for _, v := range sc.outView {
		setView(v, nil, 0, 0)
	}
	for _, v := range sc.regs {
		setView(v, nil, 0, 0) // drop references to the caller's buffers
	}
	for _, a := range sc.args {
		clear(a)
	}
}

// newView returns a *[]T for dtype dt, boxed.
func newView(dt dtypes.DType) any {
	switch dt {
	case dtypes.Float32:
		return new([]float32)
	case dtypes.Float64:
		return new([]float64)
	case dtypes.Bool:
		return new([]bool)
	case dtypes.Int8:
		return new([]int8)
	case dtypes.Int16:
		return new([]int16)
	case dtypes.Int32:
		return new([]int32)
	case dtypes.Int64:
		return new([]int64)
	case dtypes.Uint8:
		return new([]uint8)
	case dtypes.Uint16:
		return new([]uint16)
	case dtypes.Uint32:
		return new([]uint32)
	case dtypes.Uint64:
		return new([]uint64)
	case dtypes.BFloat16:
		return new([]bfloat16.BFloat16)
	}
	panic(fmt.Sprintf("newView: unsupported dtype %s", dt))
}

// setView points view (a *[]T from newView) at src[lo:hi] (src a []T), or
// at nothing when src is nil. It does not allocate.
func setView(view, src any, lo, hi int) {
	switch v := view.(type) {
	case *[]float32:
		*v = viewOf[float32](src, lo, hi)
	case *[]float64:
		*v = viewOf[float64](src, lo, hi)
	case *[]bool:
		*v = viewOf[bool](src, lo, hi)
	case *[]int8:
		*v = viewOf[int8](src, lo, hi)
	case *[]int16:
		*v = viewOf[int16](src, lo, hi)
	case *[]int32:
		*v = viewOf[int32](src, lo, hi)
	case *[]int64:
		*v = viewOf[int64](src, lo, hi)
	case *[]uint8:
		*v = viewOf[uint8](src, lo, hi)
	case *[]uint16:
		*v = viewOf[uint16](src, lo, hi)
	case *[]uint32:
		*v = viewOf[uint32](src, lo, hi)
	case *[]uint64:
		*v = viewOf[uint64](src, lo, hi)
	case *[]bfloat16.BFloat16:
		*v = viewOf[bfloat16.BFloat16](src, lo, hi)
	default:
		panic(fmt.Sprintf("setView: unsupported view %T", view))
	}
}

// copyView copies the view src into the view dst (both *[]T of one type).
func copyView(dst, src any) {
	switch d := dst.(type) {
	case *[]float32:
		copy(*d, *src.(*[]float32))
	case *[]float64:
		copy(*d, *src.(*[]float64))
	case *[]bool:
		copy(*d, *src.(*[]bool))
	case *[]int8:
		copy(*d, *src.(*[]int8))
	case *[]int16:
		copy(*d, *src.(*[]int16))
	case *[]int32:
		copy(*d, *src.(*[]int32))
	case *[]int64:
		copy(*d, *src.(*[]int64))
	case *[]uint8:
		copy(*d, *src.(*[]uint8))
	case *[]uint16:
		copy(*d, *src.(*[]uint16))
	case *[]uint32:
		copy(*d, *src.(*[]uint32))
	case *[]uint64:
		copy(*d, *src.(*[]uint64))
	case *[]bfloat16.BFloat16:
		copy(*d, *src.(*[]bfloat16.BFloat16))
	default:
		panic(fmt.Sprintf("copyView: unsupported view %T", dst))
	}
}

func viewOf[T any](src any, lo, hi int) []T {
	if src == nil {
		return nil
	}
	return src.([]T)[lo:hi:hi]
}

// fillScalar fills dst with src[0].
func fillScalar(dst, src any) {
	switch d := dst.(type) {
	case []float32:
		fillAll(d, src.([]float32)[0])
	case []float64:
		fillAll(d, src.([]float64)[0])
	case []bool:
		fillAll(d, src.([]bool)[0])
	case []int8:
		fillAll(d, src.([]int8)[0])
	case []int16:
		fillAll(d, src.([]int16)[0])
	case []int32:
		fillAll(d, src.([]int32)[0])
	case []int64:
		fillAll(d, src.([]int64)[0])
	case []uint8:
		fillAll(d, src.([]uint8)[0])
	case []uint16:
		fillAll(d, src.([]uint16)[0])
	case []uint32:
		fillAll(d, src.([]uint32)[0])
	case []uint64:
		fillAll(d, src.([]uint64)[0])
	case []bfloat16.BFloat16:
		fillAll(d, src.([]bfloat16.BFloat16)[0])
	default:
		panic(fmt.Sprintf("fillScalar: unsupported type %T", dst))
	}
}

func fillAll[T any](d []T, v T) {
	for i := range d {
		d[i] = v
	}
}

// stridedRead fills dst with the elements lo, lo+1, ... of a row-major
// iteration over dims, reading src at the given strides.
func stridedRead(dst, src any, lo int, dims, strides []int) {
	switch d := dst.(type) {
	case []float32:
		stridedReadT(d, src.([]float32), lo, dims, strides)
	case []float64:
		stridedReadT(d, src.([]float64), lo, dims, strides)
	case []bool:
		stridedReadT(d, src.([]bool), lo, dims, strides)
	case []int8:
		stridedReadT(d, src.([]int8), lo, dims, strides)
	case []int16:
		stridedReadT(d, src.([]int16), lo, dims, strides)
	case []int32:
		stridedReadT(d, src.([]int32), lo, dims, strides)
	case []int64:
		stridedReadT(d, src.([]int64), lo, dims, strides)
	case []uint8:
		stridedReadT(d, src.([]uint8), lo, dims, strides)
	case []uint16:
		stridedReadT(d, src.([]uint16), lo, dims, strides)
	case []uint32:
		stridedReadT(d, src.([]uint32), lo, dims, strides)
	case []uint64:
		stridedReadT(d, src.([]uint64), lo, dims, strides)
	case []bfloat16.BFloat16:
		stridedReadT(d, src.([]bfloat16.BFloat16), lo, dims, strides)
	default:
		panic(fmt.Sprintf("stridedRead: unsupported type %T", dst))
	}
}

func stridedReadT[T any](dst, src []T, lo int, dims, strides []int) {
	r := len(dims)
	if r == 0 {
		fillAll(dst, src[0])
		return
	}
	var idxBuf [8]int
	var idx []int
	if r > len(idxBuf) {
		idx = make([]int, r)
	} else {
		idx = idxBuf[:r]
	}
	off := 0
	rem := lo
	for k := r - 1; k >= 0; k-- {
		idx[k] = rem % dims[k]
		rem /= dims[k]
		off += idx[k] * strides[k]
	}
	inner, is := dims[r-1], strides[r-1]
	n := len(dst)
	for i := 0; i < n; {
		cnt := min(inner-idx[r-1], n-i)
		d := dst[i : i+cnt]
		switch is {
		case 0:
			v := src[off]
			for j := range d {
				d[j] = v
			}
		case 1:
			copy(d, src[off:off+cnt])
		default:
			o := off
			for j := range d {
				d[j] = src[o]
				o += is
			}
		}
		i += cnt
		idx[r-1] += cnt
		off += cnt * is
		for k := r - 1; k > 0 && idx[k] == dims[k]; k-- {
			off -= dims[k] * strides[k]
			idx[k] = 0
			idx[k-1]++
			off += strides[k-1]
		}
	}
}
