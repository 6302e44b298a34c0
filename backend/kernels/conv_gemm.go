package kernels

import "unsafe"

// convProblems lowers the convolution to GEMMs: one per group, per
// combination of input-dilation phases of the spatial axes and per part of
// the phase's outputs (border ranges, see convSplitBorders). Each GEMM has
// rows (output batch, output positions of the part), columns the group's
// output channels and depth (kernel taps of the part, input channels of the
// group); its A operand is the implicit im2col matrix, read in place.
func convProblems[T gemmFloat](pl *convPlan, input, kernel, output []T) []*convSub[T] {
	d := pl.d
	axes := make([][]convAxisPhase, d)
	for i := range axes {
		axes[i] = pl.axisPhases(i)
	}
	inBatch := pl.cin
	for i := 0; i < d; i++ {
		inBatch *= pl.in[i]
	}
	outBatch := pl.outBatchStride
	var subs []*convSub[T]
	idx := make([]int, d)
	for g := 0; g < pl.groups; g++ {
		cinOff, b0 := g*pl.cinG, 0
		if !pl.featureGroups {
			cinOff, b0 = 0, g*pl.outBatch
		}
		coutOff := g * pl.coutG
		clear(idx)
		for {
			ph := make([]convAxisPhase, d)
			for i := range ph {
				ph[i] = axes[i][idx[i]]
			}
			for _, part := range convSplitBorders(pl, ph) {
				subs = append(subs, newConvSub(pl, part.ph, part.merge, input, kernel, output, b0*inBatch+cinOff, inBatch, coutOff, outBatch))
			}
			if !convNextCombination(idx, axes) {
				break
			}
		}
	}
	return subs
}

// convNextCombination advances idx, one index per axis into axes[i], to
// the next combination in row-major order; it returns false (and idx all
// zero) after the last one.
func convNextCombination(idx []int, axes [][]convAxisPhase) bool {
	for i := len(idx) - 1; i >= 0; i-- {
		idx[i]++
		if idx[i] < len(axes[i]) {
			return true
		}
		idx[i] = 0
	}
	return false
}

// convMergeable reports whether the taps of the last axis of a phase can be
// merged into one convA unit: they are contiguous in memory (kernel dilation
// 1, all channels in one group) and the channels alone are short.
func convMergeable(pl *convPlan, ph []convAxisPhase) bool {
	if len(ph) == 0 {
		return false
	}
	last := &ph[len(ph)-1]
	return last.U > 1 && last.dil == 1 && pl.cinG == pl.cin && pl.cinG < 64
}

// convPart is a phase restricted to a range of outputs along each axis.
type convPart struct {
	ph    []convAxisPhase
	merge bool
}

// convMinPartRows is the fewest rows a part of convSplitBorders may have
// along an axis that it splits only to drop the padding: each part is a GEMM
// of its own, which packs the kernel again (once per chunk of rows when it
// runs on several workers).
const convMinPartRows = 512

// convSplitBorders splits a phase into parts by ranges of outputs along its
// axes, such that along a split axis every output of a part sees the same
// kernel taps inside the input, and keeps only those taps: the border
// outputs do no multiplications by padding, and every window of a part is
// inside the input along the split axes. Axes are considered from the last;
// one is split where its border outputs are at most a quarter of its outputs
// and every part keeps at least convMinPartRows rows. A last axis whose taps
// can be merged into units read in place is always split: by border ranges,
// or else into the interior range, where the windows are inside the input,
// and the untrimmed borders.
func convSplitBorders(pl *convPlan, ph []convAxisPhase) []convPart {
	d := len(ph)
	mergeable := convMergeable(pl, ph)
	axes := make([][]convAxisPhase, d)
	// minRows is the number of rows of the smallest part so far.
	minRows := pl.outBatch
	for _, a := range ph {
		minRows *= a.J
	}
	for i := d - 1; i >= 0; i-- {
		a := ph[i]
		ranges := convAxisRanges(a)
		border, smallest := a.J, a.J
		for _, r := range ranges {
			if r.U == a.U {
				border -= r.J
			}
			smallest = min(smallest, r.J)
		}
		rows := minRows / a.J * smallest
		switch {
		case 4*border <= a.J && (i == d-1 && mergeable || rows >= convMinPartRows):
			axes[i], minRows = ranges, rows
		case i == d-1 && mergeable:
			axes[i] = convSplitInterior(a, ranges)
			for _, r := range axes[i] {
				smallest = min(smallest, r.J)
			}
			minRows = minRows / a.J * smallest
		default:
			axes[i] = ph[i : i+1]
		}
	}
	var parts []convPart
	idx := make([]int, d)
	for {
		p := make([]convAxisPhase, d)
		for i := range p {
			p[i] = axes[i][idx[i]]
		}
		merge := mergeable && convMergeable(pl, p) && p[d-1].inside()
		parts = append(parts, convPart{ph: p, merge: merge})
		if !convNextCombination(idx, axes) {
			return parts
		}
	}
}

// convAxisRanges splits an axis phase into maximal ranges of outputs that
// see the same taps inside the input, each restricted to those taps (with
// U = 0 where none is inside).
func convAxisRanges(a convAxisPhase) []convAxisPhase {
	var out []convAxisPhase
	ua0, ub0 := -1, -1
	for j := 0; j < a.J; j++ {
		// Input position j*stride + u*dil - pad is inside for u in [ua, ub).
		ua := max(0, -convFloorDiv(j*a.stride-a.pad, a.dil))
		ub := min(a.U, convFloorDiv(a.in-1-j*a.stride+a.pad, a.dil)+1)
		if ub <= ua {
			ua, ub = 0, 0
		}
		if ua == ua0 && ub == ub0 {
			out[len(out)-1].J++
			continue
		}
		ua0, ub0 = ua, ub
		out = append(out, a.part(j, 1, ua, ub))
	}
	return out
}

// convSplitInterior splits an axis phase into the range of outputs that
// keeps all its taps (one of ranges, from convAxisRanges) and the outputs
// before and after it, untrimmed; it returns the whole phase if no output
// keeps all taps.
func convSplitInterior(a convAxisPhase, ranges []convAxisPhase) []convAxisPhase {
	for _, r := range ranges {
		if r.U != a.U {
			continue
		}
		lo := (r.r - a.r) / a.P
		hi := lo + r.J
		var out []convAxisPhase
		if lo > 0 {
			out = append(out, a.part(0, lo, 0, a.U))
		}
		out = append(out, r)
		if hi < a.J {
			out = append(out, a.part(hi, a.J-hi, 0, a.U))
		}
		return out
	}
	return []convAxisPhase{a}
}

// part restricts an axis phase to outputs [j0, j0+J) and taps [ua, ub):
// output j and tap u of the part are output j0+j and tap ua+u of a.
func (a convAxisPhase) part(j0, J, ua, ub int) convAxisPhase {
	a.r += a.P * j0
	a.J = J
	a.pad -= j0*a.stride + ua*a.dil
	a.t0 += a.Q * ua
	a.U = ub - ua
	return a
}

// inside reports whether every window of an axis phase is inside the
// input.
func (a convAxisPhase) inside() bool {
	return a.pad <= 0 && (a.J-1)*a.stride+(a.U-1)*a.dil-a.pad < a.in
}

// convFloorDiv is a/b rounded towards minus infinity (b > 0).
func convFloorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// newConvSub builds the GEMM of one group and phase combination. inOff is
// the element offset of the group's first input batch and channel; merge
// selects merged last-axis units (every window must then be inside the
// input along the last axis).
func newConvSub[T gemmFloat](pl *convPlan, ph []convAxisPhase, merge bool, input, kernel, output []T, inOff, inBatch, coutOff, outBatch int) *convSub[T] {
	d := pl.d
	m, taps := pl.outBatch, 1
	pointwise := true
	for i, a := range ph {
		m *= a.J
		taps *= a.U
		if a.U != 1 || a.stride != 1 || a.P != 1 || a.J != a.in || a.J != pl.out[i] || a.pad != 0 {
			pointwise = false
		}
	}
	// Kernel tap (flat index into the kernel's spatial axes) of each tap of
	// the phase, in row-major order of the phase's taps.
	// Element offset in the kernel of each tap of the phase.
	tapOff := make([]int, 0, taps)
	u := make([]int, d)
	for t := 0; t < taps; t++ {
		ti := pl.kFirst
		for i := 0; i < d; i++ {
			ti += (ph[i].t0 + ph[i].Q*u[i]) * pl.kTap[i]
		}
		tapOff = append(tapOff, ti)
		for i := d - 1; i >= 0; i-- {
			u[i]++
			if u[i] < ph[i].U {
				break
			}
			u[i] = 0
		}
	}
	sp := &convSub[T]{}
	sp.m, sp.n, sp.k = m, pl.coutG, taps*pl.cinG
	sp.alpha, sp.beta = 1, 0
	sp.c = &convC[T]{base0: unsafe.Pointer(&output[coutOff]), outBatch: outBatch, ph: ph}
	if sp.k == 0 {
		sp.zero = true
		return sp
	}
	var es T
	sp.b = &convB[T]{kernel: kernel, cinG: pl.cinG, cout: pl.cout, coutOff: coutOff, tapOff: tapOff, kIn: pl.kIn, kOut: pl.kOut}
	if pointwise {
		sp.a = &gemmMatA[T]{a: input[inOff:], lda: pl.cin, pack: (pl.cin*int(unsafe.Sizeof(es)))%2048 == 0}
		if pl.canonicalKOut {
			sp.b = &gemmMatB[T]{b: kernel[tapOff[0]+coutOff:], ldb: pl.cout}
			sp.c = &gemmMatC[T]{c: output[coutOff:], ldc: pl.cout}
		}
		return sp
	}
	sp.a = newConvA(pl, ph, merge, input, inOff, inBatch, taps)
	return sp
}

// convA is the implicit im2col A operand of a convolution GEMM: row
// (batch, j...) and depth (tap u..., channel ci) hold the input at batch
// b0+batch, position j*stride + u*dil - pad along each axis (zero outside),
// channel cinOff+ci.
//
// The depth is cut into units that become micro-kernel segments. Normally a
// unit is one tap: cinG contiguous channels. When merged, a unit is one
// combination of the taps of all but the last axis and spans all taps of
// the last axis, ulast*cinG contiguous elements (the caller guarantees
// contiguity and that every window is inside the input along the last
// axis): fewer, longer segments.
type convA[T gemmFloat] struct {
	input   []T
	inOff   int // element offset of the group's first batch and channel
	inBatch int // elements per input batch
	cinG    int
	ph      []convAxisPhase
	merged  bool
	unitLen int // depth of a unit: cinG, or ulast*cinG when merged
	udims   int // axes whose taps enumerate the units: d, or d-1 when merged
	units   int
	unitOff []int // per unit: element offset of its displacement
	// unitDisp holds per unit and axis < udims the displacement u*dil.
	unitDisp []int
	// dimMask[i][j] has bit u set if unit u is inside the input along axis
	// i < udims for output index j; nil when there are more than 64 units.
	dimMask [][]uint64
}

func newConvA[T gemmFloat](pl *convPlan, ph []convAxisPhase, merge bool, input []T, inOff, inBatch, taps int) *convA[T] {
	d := pl.d
	s := &convA[T]{input: input, inOff: inOff, inBatch: inBatch, cinG: pl.cinG, ph: ph,
		unitLen: pl.cinG, udims: d, units: taps}
	if merge {
		last := &ph[d-1]
		s.merged = true
		s.udims = d - 1
		s.units = taps / last.U
		s.unitLen = last.U * pl.cinG
	}
	ud := s.udims
	s.unitOff = make([]int, s.units)
	s.unitDisp = make([]int, s.units*ud)
	u := make([]int, ud)
	for t := 0; t < s.units; t++ {
		off := 0
		for i := 0; i < ud; i++ {
			disp := u[i] * ph[i].dil
			s.unitDisp[t*ud+i] = disp
			off += disp * ph[i].inStride
		}
		s.unitOff[t] = off
		for i := ud - 1; i >= 0; i-- {
			u[i]++
			if u[i] < ph[i].U {
				break
			}
			u[i] = 0
		}
	}
	if s.units <= 64 {
		s.dimMask = make([][]uint64, ud)
		for i := 0; i < ud; i++ {
			masks := make([]uint64, ph[i].J)
			for j := range masks {
				origin := j*ph[i].stride - ph[i].pad
				for t := 0; t < s.units; t++ {
					if x := origin + s.unitDisp[t*ud+i]; x >= 0 && x < ph[i].in {
						masks[j] |= 1 << t
					}
				}
			}
			s.dimMask[i] = masks
		}
	}
	return s
}

func (s *convA[T]) block(ws *gemmWorkspace[T], mr, i0, mc, p0, kc int) unsafe.Pointer {
	var es T
	size := int(unsafe.Sizeof(es))
	base := unsafe.Pointer(&s.input[0])
	zoff := int(uintptr(unsafe.Pointer(&ws.zeros[0])) - uintptr(base))

	// Per row: byte offset of its window origin, and the units inside the
	// input (bit mask, or else the origin per unit axis).
	rowOff := gemmGrow(ws.rowOff, mc)
	ws.rowOff = rowOff
	var rowMask []uint64
	var rowOrigin []int
	if s.dimMask != nil {
		rowMask = gemmGrow(ws.rowMask, mc)
		ws.rowMask = rowMask
	} else {
		rowOrigin = gemmGrow(ws.rowOrigin, mc*s.udims)
		ws.rowOrigin = rowOrigin
	}
	if ws.rowsKey != (convRowsKey{src: unsafe.Pointer(s), i0: i0, mc: mc}) {
		s.rows(ws, i0, rowOff, rowMask, rowOrigin)
		// Later k blocks of the same rows reuse the row data.
		ws.rowsKey = convRowsKey{src: unsafe.Pointer(s), i0: i0, mc: mc}
		s.prefetchNext(base, rowOff)
	}
	var tileLo, tileHi []int
	if rowMask == nil {
		lh := gemmGrow(ws.tileLoHi, 2*s.udims)
		ws.tileLoHi = lh
		tileLo, tileHi = lh[:s.udims], lh[s.udims:]
	}

	uFirst, uLast := p0/s.unitLen, (p0+kc-1)/s.unitLen
	per := uLast - uFirst + 1
	tiles := (mc + mr - 1) / mr
	segs := ws.segments(tiles*per, mr)
	ws.tileSeg = gemmGrow(ws.tileSeg, tiles+1)
	n := 0
	for t := 0; t < tiles; t++ {
		ws.tileSeg[t] = t * per
		r0 := t * mr
		rows := min(mr, mc-r0)
		ro := rowOff[r0 : r0+rows]
		// full: every unit is inside the input for every row of the tile.
		full := false
		if rowMask != nil {
			all := ^uint64(0)
			for _, m := range rowMask[r0 : r0+rows] {
				all &= m
			}
			full = all|(^uint64(0)<<uint(s.units)) == ^uint64(0)
		} else {
			// Range of the rows' origins per unit axis.
			for ax := 0; ax < s.udims; ax++ {
				lo, hi := rowOrigin[r0*s.udims+ax], rowOrigin[r0*s.udims+ax]
				for r := r0 + 1; r < r0+rows; r++ {
					o := rowOrigin[r*s.udims+ax]
					lo, hi = min(lo, o), max(hi, o)
				}
				tileLo[ax], tileHi[ax] = lo, hi
			}
		}
		for u := uFirst; u <= uLast; u++ {
			if rowMask == nil {
				// Is the unit inside for the whole range of origins?
				full = true
				for ax := 0; ax < s.udims; ax++ {
					disp := s.unitDisp[u*s.udims+ax]
					if tileLo[ax]+disp < 0 || tileHi[ax]+disp >= s.ph[ax].in {
						full = false
						break
					}
				}
			}
			c0 := max(p0-u*s.unitLen, 0)
			c1 := min(p0+kc-u*s.unitLen, s.unitLen)
			seg := segs[n*(1+mr) : (n+1)*(1+mr)]
			n++
			seg[0] = c1 - c0
			dst := seg[1 : 1+mr]
			add := (s.unitOff[u] + c0) * size
			switch {
			case full:
				for i, o := range ro {
					dst[i] = o + add
				}
			case rowMask != nil:
				rm := rowMask[r0 : r0+rows]
				sh := uint(u)
				for i, o := range ro {
					v := zoff
					if rm[i]>>sh&1 != 0 {
						v = o + add
					}
					dst[i] = v
				}
			default:
				for i, o := range ro {
					v := zoff
					if s.unitInside(rowOrigin, r0+i, u) {
						v = o + add
					}
					dst[i] = v
				}
			}
			for i := rows; i < mr; i++ {
				dst[i] = zoff
			}
		}
	}
	ws.tileSeg[tiles] = tiles * per
	return base
}

// evenSegments reports whether every segment of the k range [p0, p0+kc)
// has even k: segments end at multiples of the unit length and at the range
// ends.
func (s *convA[T]) evenSegments(p0, kc int) bool {
	return s.unitLen%2 == 0 && p0%2 == 0 && kc%2 == 0
}

// convRowsKey identifies the block whose row data a workspace holds.
type convRowsKey struct {
	src    unsafe.Pointer
	i0, mc int
}

// rows fills the per-row data of the block rows starting at GEMM row i0
// (see block), line by line (a line has fixed batch and indices of all but
// the last axis).
func (s *convA[T]) rows(ws *gemmWorkspace[T], i0 int, rowOff []int, rowMask []uint64, rowOrigin []int) {
	var es T
	size := int(unsafe.Sizeof(es))
	d := len(s.ph)
	ud := s.udims
	mc := len(rowOff)
	last := &s.ph[d-1]
	idx := ws.odometer(d + 1)
	convDecode(idx, i0, s.ph)
	for r := 0; r < mc; {
		j0 := idx[d]
		cnt := min(last.J-j0, mc-r)
		lineOff := s.inOff + idx[0]*s.inBatch
		lineMask := ^uint64(0)
		for i := 0; i < d-1; i++ {
			a := &s.ph[i]
			origin := idx[1+i]*a.stride - a.pad
			lineOff += origin * a.inStride
			if rowMask != nil {
				lineMask &= s.dimMask[i][idx[1+i]]
			} else {
				for q := r; q < r+cnt; q++ {
					rowOrigin[q*ud+i] = origin
				}
			}
		}
		off := (lineOff + (j0*last.stride-last.pad)*last.inStride) * size
		step := last.stride * last.inStride * size
		ro := rowOff[r : r+cnt]
		for q := range ro {
			ro[q] = off
			off += step
		}
		switch {
		case s.merged && rowMask != nil:
			rm := rowMask[r : r+cnt]
			for q := range rm {
				rm[q] = lineMask
			}
		case s.merged:
		case rowMask != nil:
			rm := rowMask[r : r+cnt]
			dm := s.dimMask[d-1][j0 : j0+cnt]
			for q := range rm {
				rm[q] = lineMask & dm[q]
			}
		default:
			for q := 0; q < cnt; q++ {
				rowOrigin[(r+q)*ud+d-1] = (j0+q)*last.stride - last.pad
			}
		}
		r += cnt
		// Next line.
		idx[d] = 0
		if d == 1 {
			idx[0]++
		}
		for i := d - 1; i >= 1; i-- {
			idx[i]++
			if idx[i] < s.ph[i-1].J {
				break
			}
			idx[i] = 0
			if i == 1 {
				idx[0]++
			}
		}
	}
}

// unitInside reports whether unit u of block row r is inside the input
// along the unit axes, from the row origins.
func (s *convA[T]) unitInside(rowOrigin []int, r, u int) bool {
	ud := s.udims
	for ax := 0; ax < ud; ax++ {
		x := rowOrigin[r*ud+ax] + s.unitDisp[u*ud+ax]
		if x < 0 || x >= s.ph[ax].in {
			return false
		}
	}
	return true
}

// convDecode sets idx to the (batch, j...) coordinates of GEMM row i.
func convDecode(idx []int, i int, ph []convAxisPhase) {
	for a := len(ph) - 1; a >= 0; a-- {
		idx[1+a] = i % ph[a].J
		i /= ph[a].J
	}
	idx[0] = i
}

// convNext advances idx to the next GEMM row.
func convNext(idx []int, ph []convAxisPhase) {
	for a := len(ph) - 1; a >= 0; a-- {
		idx[1+a]++
		if idx[1+a] < ph[a].J {
			return
		}
		idx[1+a] = 0
	}
	idx[0]++
}

// convB is the kernel as the B operand: depth (tap u, channel ci) and
// column j are kernel element tapOff[u] + ci*kIn + (coutOff+j)*kOut.
type convB[T gemmFloat] struct {
	kernel    []T
	cinG      int
	cout      int
	coutOff   int
	tapOff    []int
	kIn, kOut int
}

func (s *convB[T]) pack(dst []T, p0, kc, j0, w, nrs int) {
	u, ci := p0/s.cinG, p0%s.cinG
	if w == nrs && w == s.cout && s.kOut == 1 && s.kIn == w {
		// Whole contiguous kernel rows: copy runs of consecutive rows at once.
		for r := 0; r < kc; {
			off := s.tapOff[u] + ci*w
			n := min(s.cinG-ci, kc-r)
			copy(dst[r*w:(r+n)*w], s.kernel[off:])
			r += n
			ci = 0
			u++
		}
		return
	}
	if s.kIn == 1 {
		// Input channels contiguous (the input gradient's kernel read in
		// place): copy each column's run of channels of a tap down the
		// panel, instead of gathering every row across the columns.
		for r := 0; r < kc; {
			off := s.tapOff[u] + ci + (s.coutOff+j0)*s.kOut
			n := min(s.cinG-ci, kc-r)
			d := dst[r*nrs : (r+n)*nrs]
			j := 0
			for ; j+4 <= w; j += 4 {
				c0 := s.kernel[off+j*s.kOut : off+j*s.kOut+n]
				c1 := s.kernel[off+(j+1)*s.kOut : off+(j+1)*s.kOut+n]
				c2 := s.kernel[off+(j+2)*s.kOut : off+(j+2)*s.kOut+n]
				c3 := s.kernel[off+(j+3)*s.kOut : off+(j+3)*s.kOut+n]
				for q := range c0 {
					dq := d[q*nrs+j : q*nrs+j+4 : q*nrs+j+4]
					dq[0], dq[1], dq[2], dq[3] = c0[q], c1[q], c2[q], c3[q]
				}
			}
			for ; j < w; j++ {
				for q, v := range s.kernel[off+j*s.kOut : off+j*s.kOut+n] {
					d[q*nrs+j] = v
				}
			}
			if w < nrs {
				for q := 0; q < n; q++ {
					clear(d[q*nrs+w : (q+1)*nrs])
				}
			}
			r += n
			ci = 0
			u++
		}
		return
	}
	for r := 0; r < kc; r++ {
		off := s.tapOff[u] + ci*s.kIn + (s.coutOff+j0)*s.kOut
		d := dst[r*nrs : (r+1)*nrs]
		if s.kOut == 1 {
			copy(d[:w], s.kernel[off:off+w])
		} else {
			src := s.kernel[off : off+(w-1)*s.kOut+1]
			for j := range d[:w] {
				d[j] = src[j*s.kOut]
			}
		}
		clear(d[w:])
		if ci++; ci == s.cinG {
			ci = 0
			u++
		}
	}
}

// convC is the output as the C operand: row (batch, j...) is output
// position r + P*j along each axis; columns start at the group's first
// output channel (base0).
type convC[T gemmFloat] struct {
	base0    unsafe.Pointer
	outBatch int // elements per output batch
	ph       []convAxisPhase
}

func (s *convC[T]) base() unsafe.Pointer { return s.base0 }

func (s *convC[T]) rowOffsets(i0 int, dst []int) {
	var es T
	size := int(unsafe.Sizeof(es))
	d := len(s.ph)
	if d == 0 {
		for r := range dst {
			dst[r] = (i0 + r) * s.outBatch * size
		}
		return
	}
	var buf [8]int
	idx := buf[:]
	if d+1 > len(buf) {
		idx = make([]int, d+1)
	}
	idx = idx[:d+1]
	convDecode(idx, i0, s.ph)
	last := &s.ph[d-1]
	step := last.P * last.outStride * size
	for r := 0; r < len(dst); {
		// One line: fixed batch and indices of all but the last axis.
		off := idx[0] * s.outBatch
		for a := 0; a < d-1; a++ {
			off += (s.ph[a].r + s.ph[a].P*idx[1+a]) * s.ph[a].outStride
		}
		j0 := idx[d]
		off = (off + (last.r+last.P*j0)*last.outStride) * size
		cnt := min(last.J-j0, len(dst)-r)
		for q := 0; q < cnt; q++ {
			dst[r+q] = off
			off += step
		}
		r += cnt
		idx[d] = last.J - 1
		convNext(idx, s.ph)
	}
}
