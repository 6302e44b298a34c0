package kernels

import "fmt"

// scatterBlock is the number of inner (channel) elements SelectAndScatter
// tracks at once, in stack arrays.
const scatterBlock = 64

// SelectAndScatter computes XLA's SelectAndScatter with select = GE (op
// ReduceMax) or LE (op ReduceMin) and scatter = add, the gradient of max
// (min) pooling. The plan must have no base or window dilation.
//
// out (dimensions p.InDims()) is set to zero; then for every window, with
// source element s (source has dimensions p.OutDims()), the window's operand
// elements are scanned in row-major window order, skipping padding, keeping
// the first element as selected and replacing the selected element by the
// current one v whenever !(selected >= v) (max) or !(selected <= v) (min):
// among equal maxima the first wins. s is added to out at the selected
// position. A window entirely in padding scatters nothing.
func SelectAndScatter[T KernelFloat](p *WindowPlan, op ReduceOp, operand, source, out []T) error {
	if p == nil {
		return fmt.Errorf("kernels.SelectAndScatter: nil plan")
	}
	if op != ReduceMax && op != ReduceMin {
		return fmt.Errorf("kernels.SelectAndScatter: selection must be max or min, got %v", op)
	}
	if p.dilated {
		return fmt.Errorf("kernels.SelectAndScatter: base and window dilations are not supported (operand %v)", p.inDims)
	}
	if len(operand) != p.inSize {
		return fmt.Errorf("kernels.SelectAndScatter: operand has %d elements, want %d for dimensions %v", len(operand), p.inSize, p.inDims)
	}
	if len(source) != p.outSize {
		return fmt.Errorf("kernels.SelectAndScatter: source has %d elements, want %d for dimensions %v", len(source), p.outSize, p.outDims)
	}
	if len(out) != p.inSize {
		return fmt.Errorf("kernels.SelectAndScatter: output has %d elements, want %d for dimensions %v", len(out), p.inSize, p.inDims)
	}
	if p.outSize == 0 {
		clear(out) // no window, nothing scattered
		return nil
	}
	if len(p.midOut) == 0 {
		// Every window is a single element, selected by construction.
		copy(out, source)
		return nil
	}
	// Work items are (outer index, block of inner elements): they write
	// disjoint parts of out, whereas windows of one item may overlap.
	blocks := (p.inner + scatterBlock - 1) / scatterBlock
	Parallel(p.outer*blocks, poolGrain(p.outBlock/blocks*4), func(lo, hi int) {
		for item := lo; item < hi; item++ {
			o, b := item/blocks, item%blocks
			c0 := b * scatterBlock
			c1 := min(c0+scatterBlock, p.inner)
			xb := operand[o*p.inBlock : (o+1)*p.inBlock]
			ob := out[o*p.inBlock : (o+1)*p.inBlock]
			sb := source[o*p.outBlock : (o+1)*p.outBlock]
			if blocks == 1 {
				clear(ob)
			} else {
				for pos := c0; pos < len(ob); pos += p.inner {
					clear(ob[pos : pos+c1-c0])
				}
			}
			if p.inner == 1 {
				scatterScalar(p, op == ReduceMax, xb, sb, ob)
			} else {
				scatterVector(p, op == ReduceMax, xb[c0:], sb[c0:], ob[c0:], c1-c0)
			}
		}
	})
	return nil
}

// selectReplaces reports whether v replaces the selected value sel: XLA keeps sel
// while select(sel, v) holds, with select GE for max and LE for min.
func selectReplaces[T KernelFloat](isMax bool, sel, v T) bool {
	if isMax {
		return !(sel >= v)
	}
	return !(sel <= v)
}

// scatterRowMax is the longest output row for which scatterScalar computes
// the window extrema a whole row at a time, in a stack buffer.
const scatterRowMax = 512

// scatterScalar runs SelectAndScatter for one outer index with inner == 1.
func scatterScalar[T KernelFloat](p *WindowPlan, isMax bool, x, src, out []T) {
	if len(p.midOut) == 2 && p.midOut[1] <= scatterRowMax {
		// Fast 2-D path: the extremum of every window of a row first (a
		// row-wise ReduceWindow), then each window's first position holding
		// it, found with branch-free conditional moves scanning backwards.
		// Windows holding a NaN follow XLA's comparison rule directly.
		op := ReduceMin
		if isMax {
			op = ReduceMax
		}
		var extBuf [scatterRowMax]T
		ext := extBuf[:p.midOut[1]]
		s := 0
		for i := range p.midOut[0] {
			offsA := p.offs[0][p.start[0][i]:p.start[0][i+1]]
			if len(offsA) == 0 {
				s += len(ext)
				continue
			}
			reduceScalarRow(p, op, x, offsA, ext)
			for j, e := range ext {
				offsB := p.offs[1][p.start[1][j]:p.start[1][j+1]]
				if len(offsB) == 0 {
					s++
					continue
				}
				pos := offsA[0] + offsB[0]
				if e == e {
					for ia := len(offsA) - 1; ia >= 0; ia-- {
						a := offsA[ia]
						row := x[a:]
						for ib := len(offsB) - 1; ib >= 0; ib-- {
							b := offsB[ib]
							if row[b] == e {
								pos = a + b
							}
						}
					}
				} else {
					sel := x[pos]
					for _, a := range offsA {
						for _, b := range offsB {
							if v := x[a+b]; selectReplaces(isMax, sel, v) {
								sel, pos = v, a+b
							}
						}
					}
				}
				out[pos] += src[s]
				s++
			}
		}
		return
	}
	var oBuf, wBuf [16]int
	w := newWindowWalker(p, 0, oBuf[:], wBuf[:])
	for s := 0; ; s++ {
		if w.reset() {
			bestPos := w.offset()
			best := x[bestPos]
			for w.nextOffset() {
				off := w.offset()
				if v := x[off]; selectReplaces(isMax, best, v) {
					best, bestPos = v, off
				}
			}
			out[bestPos] += src[s]
		}
		if !w.nextWindow() {
			return
		}
	}
}

// scatterVector runs SelectAndScatter for one outer index and n <=
// scatterBlock inner elements: x, src and out start at the block's first
// inner element and their inner stride is p.inner.
func scatterVector[T KernelFloat](p *WindowPlan, isMax bool, x, src, out []T, n int) {
	var bestBuf [scatterBlock]T
	var posBuf [scatterBlock]int
	best, bestPos := bestBuf[:n], posBuf[:n]
	if len(p.midOut) == 2 {
		// Fast 2-D path (NHWC pooling).
		s := 0
		for i := range p.midOut[0] {
			offsA := p.offs[0][p.start[0][i]:p.start[0][i+1]]
			for j := range p.midOut[1] {
				offsB := p.offs[1][p.start[1][j]:p.start[1][j+1]]
				if len(offsA) > 0 && len(offsB) > 0 {
					selectWindow2D(isMax, x, offsA, offsB, best, bestPos)
					scatterSelected(src[s:s+n], bestPos, out)
				}
				s += p.inner
			}
		}
		return
	}
	var oBuf, wBuf [16]int
	w := newWindowWalker(p, 0, oBuf[:], wBuf[:])
	for s := 0; ; s += p.inner {
		if w.reset() {
			first := true
			for ok := true; ok; ok = w.nextOffset() {
				off := w.offset()
				selectVector(isMax, first, x[off:off+n], off, best, bestPos)
				first = false
			}
			scatterSelected(src[s:s+n], bestPos, out)
		}
		if !w.nextWindow() {
			return
		}
	}
}

// selectWindow2D selects, for each of the len(best) inner elements, the
// position of XLA's selection in the window {a+b : a in offsA, b in offsB}
// (both non-empty). It first reduces the window to its max (min) with
// branch-free comparisons, then finds the first position holding that value
// with conditional moves, scanning backwards; an inner element whose window
// holds a NaN is redone with XLA's comparison rule.
func selectWindow2D[T KernelFloat](isMax bool, x []T, offsA, offsB []int, best []T, bestPos []int) {
	n := len(best)
	bestPos = bestPos[:n]
	first := true
	for _, a := range offsA {
		for _, b := range offsB {
			xs := x[a+b : a+b+n]
			switch {
			case first:
				copy(best, xs)
				first = false
			case isMax:
				for c, v := range xs {
					best[c] = max(best[c], v)
				}
			default:
				for c, v := range xs {
					best[c] = min(best[c], v)
				}
			}
		}
	}
	for ia := len(offsA) - 1; ia >= 0; ia-- {
		for ib := len(offsB) - 1; ib >= 0; ib-- {
			off := offsA[ia] + offsB[ib]
			xs := x[off : off+n]
			for c, v := range xs {
				p := bestPos[c]
				if v == best[c] {
					p = off
				}
				bestPos[c] = p
			}
		}
	}
	for c, v := range best {
		if v != v {
			// NaN in the window: apply XLA's rule for this element.
			sel, pos := x[offsA[0]+offsB[0]+c], offsA[0]+offsB[0]
			for _, a := range offsA {
				for _, b := range offsB {
					if u := x[a+b+c]; selectReplaces(isMax, sel, u) {
						sel, pos = u, a+b
					}
				}
			}
			bestPos[c] = pos
		}
	}
}

// selectVector updates the running selection (best, bestPos) of an inner
// vector with the window position at operand offset off holding xs; first
// marks the window's first valid position, which is always selected.
func selectVector[T KernelFloat](isMax, first bool, xs []T, off int, best []T, bestPos []int) {
	xs = xs[:len(best)]
	bestPos = bestPos[:len(best)]
	switch {
	case first:
		copy(best, xs)
		for c := range bestPos {
			bestPos[c] = off
		}
	case isMax:
		for c, v := range xs {
			if !(best[c] >= v) {
				best[c], bestPos[c] = v, off
			}
		}
	default:
		for c, v := range xs {
			if !(best[c] <= v) {
				best[c], bestPos[c] = v, off
			}
		}
	}
}

// scatterSelected adds src[c] to out[bestPos[c]+c].
func scatterSelected[T KernelFloat](src []T, bestPos []int, out []T) {
	bestPos = bestPos[:len(src)]
	for c, v := range src {
		out[bestPos[c]+c] += v
	}
}
