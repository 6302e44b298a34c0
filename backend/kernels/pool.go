package kernels

import (
	"fmt"
	"math"
)

// KernelFloat is the set of element types the pooling and batch-norm kernels
// are generic over.
type KernelFloat interface {
	~float32 | ~float64
}

// ReduceOp selects the reduction that ReduceWindow applies over each window,
// and (for ReduceMax and ReduceMin) the selection of SelectAndScatter.
type ReduceOp int

const (
	// ReduceMax takes the maximum; its padding value is -Inf. NaN propagates.
	ReduceMax ReduceOp = iota
	// ReduceMin takes the minimum; its padding value is +Inf. NaN propagates.
	ReduceMin
	// ReduceSum adds; its padding value is 0.
	ReduceSum
	// ReduceProduct multiplies; its padding value is 1.
	ReduceProduct
)

// String returns the reduction's name.
func (op ReduceOp) String() string {
	switch op {
	case ReduceMax:
		return "max"
	case ReduceMin:
		return "min"
	case ReduceSum:
		return "sum"
	case ReduceProduct:
		return "poolProd"
	}
	return fmt.Sprintf("ReduceOp(%d)", int(op))
}

// reduceIdentity returns the identity (padding value) of op.
func reduceIdentity[T KernelFloat](op ReduceOp) T {
	switch op {
	case ReduceMax:
		return T(math.Inf(-1))
	case ReduceMin:
		return T(math.Inf(1))
	case ReduceProduct:
		return 1
	}
	return 0
}

// WindowConfig describes the windows of XLA's ReduceWindow and SelectAndScatter
// over an N-dimensional row-major operand. Every non-nil slice has one entry
// per operand axis.
//
// Along an axis of size d the operand is first base-dilated to (d-1)*b+1
// elements (b-1 holes between elements), then padded with PadLow/PadHigh
// elements of the reduction's identity. A window of size w with window
// dilation r spans (w-1)*r+1 positions; window i starts at i*stride. The
// output size is ((d-1)*b+1 + lo + hi - ((w-1)*r+1)) / stride + 1, or 0 when
// the window is larger than the padded, dilated operand.
type WindowConfig struct {
	// Window are the window sizes; nil means 1 on every axis.
	Window []int
	// Strides are the window strides; nil means equal to Window.
	Strides []int
	// BaseDilations dilate the operand (XLA's base dilation); nil means 1.
	BaseDilations []int
	// WindowDilations dilate the window; nil means 1.
	WindowDilations []int
	// Paddings are the (low, high) paddings per axis, applied after base
	// dilation; nil means no padding. They must not be negative.
	Paddings [][2]int
}

// WindowPlan is a validated WindowConfig for one operand shape, with the
// index tables the pooling kernels use. Build it once (for example when a
// graph is compiled) and reuse it: running a plan does not allocate beyond
// the worker pool's bookkeeping. A plan is read-only after construction and
// safe for concurrent use.
//
// The kernels split the axes into three groups: leading "outer" axes and
// trailing "inner" axes whose window is trivial (size 1, stride 1, no
// dilation, no padding), and the "middle" axes in between. NHWC pooling has
// outer N, middle H,W and inner C (the inner vectors are reduced elementwise);
// NCHW pooling has outer N*C, middle H,W and inner 1 (scalar windows).
type WindowPlan struct {
	inDims, outDims []int
	inSize, outSize int
	dilated         bool // any base or window dilation > 1

	outer, inner int
	// inBlock and outBlock are the element counts of one outer index in the
	// operand and the output (product of the middle and inner sizes).
	inBlock, outBlock int
	// midOut are the output sizes of the middle axes.
	midOut []int
	// For middle axis k and output index o along it, the operand element
	// offsets (index times element stride, inner factor included) of the
	// valid, non-padding window positions, in window order, are
	// offs[k][start[k][o]:start[k][o+1]].
	start, offs [][]int
	// When inner == 1 and the last middle axis has no base dilation, its
	// outputs j in [rowLo, rowHi) have full windows at operand offsets
	// rowBase + (j-rowLo)*rowStride + rowSteps[w]: the scalar path reduces
	// them a whole row at a time, with independent accumulators.
	rowLo, rowHi, rowBase, rowStride int
	rowSteps                         []int
}

// NewWindowPlan validates cfg against an operand of dimensions inDims and
// precomputes the index tables. Errors name the offending field and value.
func NewWindowPlan(inDims []int, cfg WindowConfig) (*WindowPlan, error) {
	rank := len(inDims)
	check := func(name string, n int) error {
		if n != 0 && n != rank {
			return fmt.Errorf("kernels.NewWindowPlan: %s has %d entries, want one per axis of operand %v", name, n, inDims)
		}
		return nil
	}
	if err := check("Window", len(cfg.Window)); err != nil {
		return nil, err
	}
	if err := check("Strides", len(cfg.Strides)); err != nil {
		return nil, err
	}
	if err := check("BaseDilations", len(cfg.BaseDilations)); err != nil {
		return nil, err
	}
	if err := check("WindowDilations", len(cfg.WindowDilations)); err != nil {
		return nil, err
	}
	if err := check("Paddings", len(cfg.Paddings)); err != nil {
		return nil, err
	}

	p := &WindowPlan{inDims: append([]int(nil), inDims...), outDims: make([]int, rank)}
	win := make([]int, rank)
	stride := make([]int, rank)
	bdil := make([]int, rank)
	wdil := make([]int, rank)
	pads := make([][2]int, rank)
	p.inSize = 1
	for a := range rank {
		if inDims[a] < 0 {
			return nil, fmt.Errorf("kernels.NewWindowPlan: operand dimension %d is %d, must be >= 0", a, inDims[a])
		}
		p.inSize *= inDims[a]
		win[a], bdil[a], wdil[a] = 1, 1, 1
		if cfg.Window != nil {
			win[a] = cfg.Window[a]
		}
		stride[a] = win[a]
		if cfg.Strides != nil {
			stride[a] = cfg.Strides[a]
		}
		if cfg.BaseDilations != nil {
			bdil[a] = cfg.BaseDilations[a]
		}
		if cfg.WindowDilations != nil {
			wdil[a] = cfg.WindowDilations[a]
		}
		if cfg.Paddings != nil {
			pads[a] = cfg.Paddings[a]
		}
		for _, f := range []struct {
			name string
			v    int
		}{{"Window", win[a]}, {"Strides", stride[a]}, {"BaseDilations", bdil[a]}, {"WindowDilations", wdil[a]}} {
			if f.v < 1 {
				return nil, fmt.Errorf("kernels.NewWindowPlan: %s[%d]=%d, must be >= 1 (operand %v)", f.name, a, f.v, inDims)
			}
		}
		if pads[a][0] < 0 || pads[a][1] < 0 {
			return nil, fmt.Errorf("kernels.NewWindowPlan: Paddings[%d]=%v, must not be negative (operand %v)", a, pads[a], inDims)
		}
		if bdil[a] > 1 || (wdil[a] > 1 && win[a] > 1) {
			p.dilated = true
		}
		dilatedIn := 0
		if inDims[a] > 0 {
			dilatedIn = (inDims[a]-1)*bdil[a] + 1
		}
		padded := dilatedIn + pads[a][0] + pads[a][1]
		span := (win[a]-1)*wdil[a] + 1
		if span <= padded {
			p.outDims[a] = (padded-span)/stride[a] + 1
		}
	}
	p.outSize = 1
	for _, d := range p.outDims {
		p.outSize *= d
	}

	// Split the axes into outer / middle / inner groups.
	trivial := func(a int) bool {
		return win[a] == 1 && stride[a] == 1 && bdil[a] == 1 && pads[a] == [2]int{}
	}
	lo := 0
	for lo < rank && trivial(lo) {
		lo++
	}
	hi := rank
	for hi > lo && trivial(hi-1) {
		hi--
	}
	p.outer, p.inner = 1, 1
	for a := range lo {
		p.outer *= inDims[a]
	}
	for a := hi; a < rank; a++ {
		p.inner *= inDims[a]
	}
	p.inBlock, p.outBlock = p.inner, p.inner
	for a := lo; a < hi; a++ {
		p.inBlock *= inDims[a]
		p.outBlock *= p.outDims[a]
	}

	// Element strides of the operand.
	elemStride := make([]int, rank)
	s := 1
	for a := rank - 1; a >= 0; a-- {
		elemStride[a] = s
		s *= inDims[a]
	}
	for a := lo; a < hi; a++ {
		o := p.outDims[a]
		start := make([]int, o+1)
		offs := make([]int, 0, o*win[a])
		for i := range o {
			start[i] = len(offs)
			for w := range win[a] {
				pos := i*stride[a] + w*wdil[a] - pads[a][0]
				if pos < 0 || pos%bdil[a] != 0 {
					continue
				}
				if q := pos / bdil[a]; q < inDims[a] {
					offs = append(offs, q*elemStride[a])
				}
			}
		}
		start[o] = len(offs)
		p.midOut = append(p.midOut, o)
		p.start = append(p.start, start)
		p.offs = append(p.offs, offs)
	}
	if a := hi - 1; hi > lo && p.inner == 1 && bdil[a] == 1 {
		// Interior outputs of the last middle axis: windows entirely inside
		// the operand. Their offsets (element stride 1) are regular.
		s, wd, pad := stride[a], wdil[a], pads[a][0]
		p.rowLo = min((pad+s-1)/s, p.outDims[a])
		p.rowHi = p.rowLo
		for j := p.rowLo; j < p.outDims[a] && j*s-pad+(win[a]-1)*wd < inDims[a]; j++ {
			p.rowHi = j + 1
		}
		p.rowBase, p.rowStride = p.rowLo*s-pad, s
		for w := range win[a] {
			p.rowSteps = append(p.rowSteps, w*wd)
		}
	}
	return p, nil
}

// InDims returns a copy of the operand dimensions the plan was built for.
func (p *WindowPlan) InDims() []int { return append([]int(nil), p.inDims...) }

// OutDims returns a copy of the output dimensions (ReduceWindow's output and
// SelectAndScatter's source).
func (p *WindowPlan) OutDims() []int { return append([]int(nil), p.outDims...) }

// InSize returns the number of operand elements.
func (p *WindowPlan) InSize() int { return p.inSize }

// OutSize returns the number of output elements.
func (p *WindowPlan) OutSize() int { return p.outSize }

// poolGrain returns a Parallel grain so that each chunk does at least about
// 32K element operations, given the cost of one work item.
func poolGrain(itemCost int) int {
	const target = 1 << 15
	if itemCost < 1 {
		itemCost = 1
	}
	return max(1, target/itemCost)
}

// ReduceWindow computes XLA's ReduceWindow of x (row-major, dimensions
// p.InDims()) with reduction op into out (row-major, dimensions p.OutDims()).
// Padding and base-dilation holes take the reduction's identity, so a window
// with no operand element yields the identity (-Inf for max, +Inf for min,
// 0 for sum, 1 for product). Max and min propagate NaN.
func ReduceWindow[T KernelFloat](p *WindowPlan, op ReduceOp, x, out []T) error {
	if p == nil {
		return fmt.Errorf("kernels.ReduceWindow: nil plan")
	}
	if op < ReduceMax || op > ReduceProduct {
		return fmt.Errorf("kernels.ReduceWindow: unknown reduction %v", op)
	}
	if len(x) != p.inSize {
		return fmt.Errorf("kernels.ReduceWindow: operand has %d elements, want %d for dimensions %v", len(x), p.inSize, p.inDims)
	}
	if len(out) != p.outSize {
		return fmt.Errorf("kernels.ReduceWindow: output has %d elements, want %d for dimensions %v", len(out), p.outSize, p.outDims)
	}
	if p.outSize == 0 {
		return nil
	}
	m := len(p.midOut)
	if m == 0 {
		// Every window holds exactly one element: the output is the operand.
		copy(out, x)
		return nil
	}
	rows := p.midOut[0] // work items: (outer index, first middle output index)
	rowOut := p.outBlock / rows
	winSize := 1
	for k := range m {
		winSize *= max(1, len(p.offs[k])/max(1, p.midOut[k]))
	}
	Parallel(p.outer*rows, poolGrain(rowOut*winSize), func(lo, hi int) {
		for item := lo; item < hi; item++ {
			o, r := item/rows, item%rows
			xb := x[o*p.inBlock : (o+1)*p.inBlock]
			ob := out[o*p.outBlock+r*rowOut : o*p.outBlock+(r+1)*rowOut]
			offs0 := p.offs[0][p.start[0][r]:p.start[0][r+1]]
			switch {
			case m == 1 && p.inner == 1:
				reduceScalar2D(op, xb, []int{0}, offs0, ob)
			case m == 1:
				reduceVector(op, xb, offs0, []int{0}, p.inner, ob)
			case m == 2 && p.inner == 1:
				reduceScalarRow(p, op, xb, offs0, ob)
			case m == 2:
				for j := range p.midOut[1] {
					offs1 := p.offs[1][p.start[1][j]:p.start[1][j+1]]
					reduceVector(op, xb, offs0, offs1, p.inner, ob[j*p.inner:(j+1)*p.inner])
				}
			default:
				reduceGeneral(p, op, xb, offs0, ob)
			}
		}
	})
	return nil
}

// reduceScalar2D reduces, for a single output element out[0], the operand
// elements x[a+b] for a in offsA and b in offsB.
func reduceScalar2D[T KernelFloat](op ReduceOp, x []T, offsA, offsB []int, out []T) {
	acc := reduceIdentity[T](op)
	switch op {
	case ReduceMax:
		for _, a := range offsA {
			for _, b := range offsB {
				acc = max(acc, x[a+b])
			}
		}
	case ReduceMin:
		for _, a := range offsA {
			for _, b := range offsB {
				acc = min(acc, x[a+b])
			}
		}
	case ReduceSum:
		for _, a := range offsA {
			for _, b := range offsB {
				acc += x[a+b]
			}
		}
	case ReduceProduct:
		for _, a := range offsA {
			for _, b := range offsB {
				acc *= x[a+b]
			}
		}
	}
	out[0] = acc
}

// reduceScalarRow computes one output row of a 2-D scalar (inner == 1)
// reduction: out[j] reduces x[a+b] for a in offsA and b in the j-th window
// of the second middle axis. Interior outputs (p.rowLo <= j < p.rowHi) are
// reduced row-wise: each window position is combined into all of them at
// once, which keeps many independent accumulators in flight.
func reduceScalarRow[T KernelFloat](p *WindowPlan, op ReduceOp, x []T, offsA []int, out []T) {
	startB, offsB := p.start[1], p.offs[1]
	for j := range p.rowLo {
		reduceScalar2D(op, x, offsA, offsB[startB[j]:startB[j+1]], out[j:j+1])
	}
	for j := p.rowHi; j < len(out); j++ {
		reduceScalar2D(op, x, offsA, offsB[startB[j]:startB[j+1]], out[j:j+1])
	}
	dst := out[p.rowLo:p.rowHi]
	if len(dst) == 0 {
		return
	}
	if len(offsA) == 0 {
		id := reduceIdentity[T](op)
		for i := range dst {
			dst[i] = id
		}
		return
	}
	s := p.rowStride
	first := true
	for _, a := range offsA {
		for _, step := range p.rowSteps {
			src := x[a+p.rowBase+step:]
			src = src[:(len(dst)-1)*s+1]
			if first {
				for i := range dst {
					dst[i] = src[i*s]
				}
				first = false
				continue
			}
			switch op {
			case ReduceMax:
				for i := range dst {
					dst[i] = max(dst[i], src[i*s])
				}
			case ReduceMin:
				for i := range dst {
					dst[i] = min(dst[i], src[i*s])
				}
			case ReduceSum:
				for i := range dst {
					dst[i] += src[i*s]
				}
			case ReduceProduct:
				for i := range dst {
					dst[i] *= src[i*s]
				}
			}
		}
	}
}

// reduceVector reduces elementwise, into the inner vector out (length n), the
// operand vectors x[a+b : a+b+n] for a in offsA and b in offsB.
func reduceVector[T KernelFloat](op ReduceOp, x []T, offsA, offsB []int, n int, out []T) {
	out = out[:n]
	first := true
	for _, a := range offsA {
		for _, b := range offsB {
			src := x[a+b : a+b+n]
			if first {
				copy(out, src)
				first = false
				continue
			}
			combineVector(op, out, src)
		}
	}
	if first {
		id := reduceIdentity[T](op)
		for i := range out {
			out[i] = id
		}
	}
}

// combineVector sets dst[i] = op(dst[i], src[i]).
func combineVector[T KernelFloat](op ReduceOp, dst, src []T) {
	src = src[:len(dst)]
	switch op {
	case ReduceMax:
		for i, v := range src {
			dst[i] = max(dst[i], v)
		}
	case ReduceMin:
		for i, v := range src {
			dst[i] = min(dst[i], v)
		}
	case ReduceSum:
		for i, v := range src {
			dst[i] += v
		}
	case ReduceProduct:
		for i, v := range src {
			dst[i] *= v
		}
	}
}

// reduceGeneral handles three or more middle axes: out holds the outputs
// whose first middle index is fixed (its window offsets are offs0), and the
// remaining middle axes are walked with a windowWalker.
func reduceGeneral[T KernelFloat](p *WindowPlan, op ReduceOp, x []T, offs0 []int, out []T) {
	var oBuf, wBuf [16]int
	w := newWindowWalker(p, 1, oBuf[:], wBuf[:])
	n := p.inner
	id := reduceIdentity[T](op)
	for pos := 0; pos < len(out); pos += n {
		dst := out[pos : pos+n]
		for i := range dst {
			dst[i] = id
		}
		for ok := w.reset(); ok; ok = w.nextOffset() {
			off := w.offset()
			for _, a := range offs0 {
				combineVector(op, dst, x[a+off:a+off+n])
			}
		}
		w.nextWindow()
	}
}

// windowWalker walks the middle axes from, from+1, ... of a plan: the output
// positions in row-major order and, within the window of the current output
// position, the valid operand offsets in row-major window order. It does not
// allocate when given buffers of at least the number of walked axes.
type windowWalker struct {
	p          *WindowPlan
	from       int
	oIdx, wIdx []int // indexed by middle axis - from
}

// newWindowWalker returns a walker over middle axes [from, m) positioned at
// the first output position, using oBuf and wBuf as odometers when large
// enough.
func newWindowWalker(p *WindowPlan, from int, oBuf, wBuf []int) windowWalker {
	n := len(p.midOut) - from
	if len(oBuf) < n || len(wBuf) < n {
		oBuf, wBuf = make([]int, n), make([]int, n)
	}
	w := windowWalker{p: p, from: from, oIdx: oBuf[:n], wIdx: wBuf[:n]}
	clear(w.oIdx)
	return w
}

// reset moves to the first valid offset of the current window; it returns
// false if the window has none.
func (w *windowWalker) reset() bool {
	for k := range w.oIdx {
		a := w.from + k
		w.wIdx[k] = w.p.start[a][w.oIdx[k]]
		if w.wIdx[k] == w.p.start[a][w.oIdx[k]+1] {
			return false
		}
	}
	return true
}

// offset returns the operand offset of the current window position.
func (w *windowWalker) offset() int {
	off := 0
	for k, i := range w.wIdx {
		off += w.p.offs[w.from+k][i]
	}
	return off
}

// nextOffset moves to the next valid position of the current window; it
// returns false after the last.
func (w *windowWalker) nextOffset() bool {
	for k := len(w.wIdx) - 1; k >= 0; k-- {
		a := w.from + k
		w.wIdx[k]++
		if w.wIdx[k] < w.p.start[a][w.oIdx[k]+1] {
			return true
		}
		w.wIdx[k] = w.p.start[a][w.oIdx[k]]
	}
	return false
}

// nextWindow moves to the next output position; it returns false after the
// last (and wraps around to the first).
func (w *windowWalker) nextWindow() bool {
	for k := len(w.oIdx) - 1; k >= 0; k-- {
		w.oIdx[k]++
		if w.oIdx[k] < w.p.midOut[w.from+k] {
			return true
		}
		w.oIdx[k] = 0
	}
	return false
}
