package kernels

import (
	"sync"
	"unsafe"
)

// Kernel gradients of channels-last convolutions, read in place.
//
// GoMLX's autodiff computes the kernel gradient of a convolution with input
// x [N, H, W, Cin] and output gradient dy [N, Ho, Wo, Cout] as a
// convolution whose batch is Cin and whose input channels are N, that is,
// of x with its batch and channel axes swapped (ConvParams.SwappedInput).
// The general path would transpose x so that N is innermost and pack dy for
// every k block. The direct path here reads both in place: for one kernel
// tap t (an output position of this convolution), the gradient of the
// tap's Cin x Cout weights is a sum over images n and output-gradient
// positions o of
//
//	x[n, pos(t, o), ci] * dy[n, o, co]
//
// in which, for fixed (n, o), the ci are contiguous in x and the co are
// contiguous in dy. A micro-kernel keeps an MR x 16 tile of (ci, co) in
// registers, broadcasts MR consecutive channels of x and loads 16
// consecutive channels of dy per step, and walks a run of positions along
// the last spatial axis with fixed byte strides. The images are split
// into parts, each summed into its own copy of the result, and the copies
// are added at the end (see convWgrad).

// wgradNR is the number of columns (output channels) of every kernel
// gradient micro-kernel.
const wgradNR = 16

// wgradMicroArgs is the argument block of the kernel-gradient
// micro-kernels; the assembly kernels read it by byte offset (see
// gemm_asm_gen.go), so the field order and types must not change.
//
// A kernel accumulates acc[MR][16] over nseg segments of 3 ints: k, then
// the byte offsets of the segment's first A step (from abase) and first B
// step (from bbase). Step p of a segment broadcasts the MR consecutive
// float32 at A + p*astep and loads the 16 consecutive float32 at B +
// p*bstep. At the end it adds row i of acc to the 16 float32 at c + i*ldc.
type wgradMicroArgs struct {
	segs  unsafe.Pointer // +0: *int, nseg*3 ints
	nseg  int            // +8
	abase unsafe.Pointer // +16
	bbase unsafe.Pointer // +24
	astep int            // +32: bytes between A steps
	bstep int            // +40: bytes between B steps
	c     unsafe.Pointer // +48
	ldc   int            // +56: bytes between C rows
}

// wgradKernel is a float32 kernel-gradient micro-kernel of mr rows and
// wgradNR columns.
type wgradKernel struct {
	mr int
	fn func(*wgradMicroArgs)
}

// wgradPortable is the portable Go kernel-gradient micro-kernel.
var wgradPortable = &wgradKernel{mr: wgradGoMR, fn: wgradMicroGo}

const wgradGoMR = 4

// wgradMicroGo is the portable micro-kernel with the contract of
// wgradMicroArgs, for wgradGoMR rows: it walks the segments once per group
// of 4 columns, keeping that 4x4 block of sums in local variables
// (registers), as gemmMicroGo does.
func wgradMicroGo(args *wgradMicroArgs) {
	segs := unsafe.Slice((*int)(args.segs), 3*args.nseg)
	for j0 := 0; j0 < wgradNR; j0 += 4 {
		var c00, c01, c02, c03, c10, c11, c12, c13 float32
		var c20, c21, c22, c23, c30, c31, c32, c33 float32
		for s := 0; s < args.nseg; s++ {
			k, ao, bo := segs[3*s], segs[3*s+1], segs[3*s+2]+4*j0
			for p := 0; p < k; p++ {
				a := (*[wgradGoMR]float32)(unsafe.Add(args.abase, ao))
				b := (*[4]float32)(unsafe.Add(args.bbase, bo))
				b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
				x := a[0]
				c00 += x * b0
				c01 += x * b1
				c02 += x * b2
				c03 += x * b3
				x = a[1]
				c10 += x * b0
				c11 += x * b1
				c12 += x * b2
				c13 += x * b3
				x = a[2]
				c20 += x * b0
				c21 += x * b1
				c22 += x * b2
				c23 += x * b3
				x = a[3]
				c30 += x * b0
				c31 += x * b1
				c32 += x * b2
				c33 += x * b3
				ao += args.astep
				bo += args.bstep
			}
		}
		for i, row := range [wgradGoMR][4]float32{
			{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33},
		} {
			c := (*[4]float32)(unsafe.Add(args.c, i*args.ldc+4*j0))
			c[0] += row[0]
			c[1] += row[1]
			c[2] += row[2]
			c[3] += row[3]
		}
	}
}

// wgradKernelFor returns the micro-kernel for a kernel gradient of rows
// rows with element type T, or nil if there is none (float64): the active
// family's, or, for fewer than 16 rows that are not a multiple of its MR,
// the family's narrower one (fewer padding rows: the stem's 3 channels
// cost 4 rows instead of 16).
func wgradKernelFor[T gemmFloat](rows int) *wgradKernel {
	var z T
	if unsafe.Sizeof(z) != 4 {
		return nil
	}
	isa := gemmCurrentISA()
	k := isa.wgrad32
	if k == nil {
		return wgradPortable
	}
	if n := isa.wgrad32Narrow; n != nil && rows%k.mr != 0 && rows < k.mr {
		return n
	}
	return k
}

// SwappedInputDirect reports whether a float32 convolution p with
// SwappedInput reads its input in place (the direct kernel-gradient path)
// rather than transposing it first: p is valid, has at least one spatial
// axis, no groups and no input dilation, its kernel has the output
// channels innermost (no layout, or a KernelLayout with Out == 1 and no
// reversed axes), and OutChannels is a multiple of 16.
func (p *ConvParams) SwappedInputDirect() bool {
	return p.Validate() == nil && p.wgradDirect()
}

// wgradDirect is SwappedInputDirect without validating p.
func (p *ConvParams) wgradDirect() bool {
	if len(p.InSpatial) == 0 || max(p.FeatureGroups, 1) != 1 || max(p.BatchGroups, 1) != 1 {
		return false
	}
	for _, v := range p.InputDilation {
		if v != 1 {
			return false
		}
	}
	if kl := p.KernelLayout; kl != nil {
		if kl.Out != 1 {
			return false
		}
		for _, r := range kl.Reverse {
			if r {
				return false
			}
		}
	}
	return p.Batch > 0 && p.OutChannels > 0 && p.OutChannels%wgradNR == 0 && p.InChannels > 0
}

// convSwapped runs a convolution with SwappedInput: directly when a
// kernel-gradient micro-kernel applies, else by transposing the input to
// the canonical layout and running the general path.
func convSwapped[T gemmFloat](p *ConvParams, input, kernel, output []T) error {
	if wk := wgradKernelFor[T](p.Batch); wk != nil && p.wgradDirect() {
		f32 := func(s []T) []float32 { return unsafe.Slice((*float32)(unsafe.Pointer(&s[0])), len(s)) }
		convWgrad(newWgradGeom(p, wk.mr), wk, f32(input), f32(kernel), f32(output))
		return nil
	}
	dims, perm := swappedToCanonical(p)
	canonical := make([]T, len(input))
	if err := Transpose(input, canonical, dims, perm); err != nil {
		return err
	}
	q := *p
	q.SwappedInput = false
	return conv(&q, canonical, kernel, output)
}

// swappedToCanonical returns the dimensions of p's input in the
// SwappedInput layout, [InChannels, InSpatial..., Batch], and the Transpose
// permutation to the canonical [Batch, InSpatial..., InChannels]: it swaps
// the first and last axes.
func swappedToCanonical(p *ConvParams) (dims, perm []int) {
	d := len(p.InSpatial)
	dims = make([]int, 0, d+2)
	dims = append(dims, p.InChannels)
	dims = append(dims, p.InSpatial...)
	dims = append(dims, p.Batch)
	perm = make([]int, d+2)
	for i := range perm {
		perm[i] = i
	}
	perm[0], perm[d+1] = d+1, 0
	return dims, perm
}

// wgradGeom is the geometry of a direct kernel-gradient convolution, in
// the terms of the convolution p itself: rows are its batch (the forward
// input channels), columns its output channels, and the depth runs over
// its input channels (images) and kernel positions (output-gradient
// positions).
type wgradGeom struct {
	d                   int
	rows, images, cols  int   // p.Batch, p.InChannels, p.OutChannels
	rowsP               int   // rows rounded up to the micro-kernel's MR
	in, ko, taps        []int // input, kernel and output spatial sizes
	stride, kd, pad     []int
	inSt                []int // element strides of the input's spatial axes
	inImg               int   // elements per input image
	kSt                 []int // element strides of the kernel's spatial axes
	kImg                int   // element stride of the kernel's image axis
	outRow              int   // element stride of the output's batch axis
	outSt               []int // element strides of the output's spatial axes
	nTaps, tileElements int
	inLen               int // elements of the input
}

func newWgradGeom(p *ConvParams, mr int) *wgradGeom {
	// The convolution plan has everything but the input strides: the
	// kernel and output strides (canonical or from the layouts; the kernel
	// has no reversed axis here) and the defaults filled in.
	pl := newConvPlan(p)
	d := pl.d
	g := &wgradGeom{d: d, rows: p.Batch, images: p.InChannels, cols: p.OutChannels,
		in: p.InSpatial, ko: p.KernelSpatial, taps: p.OutSpatial,
		stride: pl.stride, kd: pl.kd, pad: pl.pad,
		inSt: make([]int, d), kSt: pl.kTap, kImg: pl.kIn, outRow: pl.outBatchStride, outSt: pl.outStride, nTaps: 1}
	is := p.Batch // the input's channels (this convolution's batch) are innermost
	for i := d - 1; i >= 0; i-- {
		g.inSt[i] = is
		is *= p.InSpatial[i]
		g.nTaps *= p.OutSpatial[i]
	}
	g.inImg = is
	g.rowsP = (g.rows + mr - 1) / mr * mr
	g.tileElements = g.nTaps * g.rowsP * g.cols
	return g
}

// wgradWorkspace holds one worker's segment list and argument block, pooled
// so that steady-state calls do not allocate them.
type wgradWorkspace struct {
	segs    []int
	tail    []int // steps left to accumulateTail: A and B byte offsets
	image   []int // the runs of one image
	lo, hi  []int // valid kernel positions per axis for the current tap
	tap, o  []int // odometers
	args    wgradMicroArgs
	partial []float32 // the per-worker sums (used by the calling worker)
}

var wgradPool = sync.Pool{New: func() any { return new(wgradWorkspace) }}

// wgradChunkBytes bounds the input and output-gradient bytes of the images
// one worker processes together (they stay in its L2 cache while every tap
// and tile reads them).
const wgradChunkBytes = 512 << 10

// The kernel gradient is a sum over images. Its images are split into
// parts, each summed into its own copy of the result (a partial), and the
// partials are added in order at the end; the rows (forward input
// channels) are split into blocks, which write disjoint parts of a
// partial. Both splits depend on the shape only, never on the number of
// workers, so that the sums, and the results, are the same whatever that
// number: the workers only take the (part, row block) items.
const (
	// wgradItems is the number of work items the splits aim at.
	wgradItems = 16
	// wgradPartPositions is the least number of output-gradient positions
	// (images times positions per image) a part sums, so that adding the
	// partials costs little next to computing them.
	wgradPartPositions = 1024
	// wgradPartialBudget bounds the elements of all partials together.
	wgradPartialBudget = 1 << 23
)

// split returns the number of image parts and row blocks of g (computed
// with the micro-kernel of mr rows).
func (g *wgradGeom) split(mr int) (parts, rowBlocks int) {
	positions := g.images
	for _, v := range g.ko {
		positions *= v
	}
	parts = min(g.images, wgradItems, max(1, positions/wgradPartPositions), max(1, wgradPartialBudget/g.tileElements))
	rowBlocks = min(g.rowsP/mr, (wgradItems+parts-1)/parts)
	return parts, rowBlocks
}

// convWgrad runs the direct kernel-gradient convolution.
func convWgrad(g *wgradGeom, wk *wgradKernel, input, kernel, output []float32) {
	g.inLen = len(input)
	parts, rowBlocks := g.split(wk.mr)
	tiles := g.rowsP / wk.mr
	ws := wgradPool.Get().(*wgradWorkspace)
	partial := gemmGrow(ws.partial, parts*g.tileElements)
	ws.partial = partial
	Parallel(parts*rowBlocks, 1, func(lo, hi int) {
		w := wgradPool.Get().(*wgradWorkspace)
		for item := lo; item < hi; item++ {
			part, b := item/rowBlocks, item%rowBlocks
			n0, n1 := part*g.images/parts, (part+1)*g.images/parts
			r0, r1 := b*tiles/rowBlocks*wk.mr, (b+1)*tiles/rowBlocks*wk.mr
			g.accumulate(w, wk, input, kernel, partial[part*g.tileElements:(part+1)*g.tileElements], n0, n1, r0, r1)
		}
		w.args = wgradMicroArgs{}
		wgradPool.Put(w)
	})
	// Add the parts into the output: element (row, tap, col) of the
	// output is partial[(tap*rowsP + row)*cols + col] summed over parts,
	// in order (rows past rows are padding). Items are (tap, row) pairs.
	Parallel(g.nTaps*g.rows, poolGrain(parts*g.cols), func(lo, hi int) {
		w := wgradPool.Get().(*wgradWorkspace)
		tap := gemmGrow(w.tap, g.d)
		w.tap = tap
		t, r := lo/g.rows, lo%g.rows
		transposeDecode(tap, t, g.taps)
		for item := lo; item < hi; item++ {
			toff := 0
			for i, v := range tap {
				toff += v * g.outSt[i]
			}
			dst := output[r*g.outRow+toff : r*g.outRow+toff+g.cols]
			src := (t*g.rowsP + r) * g.cols
			copy(dst, partial[src:src+g.cols])
			for part := 1; part < parts; part++ {
				wgradAdd(dst, partial[part*g.tileElements+src:part*g.tileElements+src+g.cols])
			}
			if r++; r == g.rows {
				r = 0
				t++
				transposeNext(tap, g.taps)
			}
		}
		wgradPool.Put(w)
	})
	wgradPool.Put(ws)
}

// wgradAdd sets dst[i] += src[i].
func wgradAdd(dst, src []float32) {
	i := 0
	if n := len(dst) &^ 7; n > 0 && elemSIMD() {
		addAVX2(&dst[0], &dst[0], &src[0], n)
		i = n
	}
	for ; i < len(dst); i++ {
		dst[i] += src[i]
	}
}

// accumulate sets rows [r0, r1) (whole row tiles) of part, laid out as
// [tap][row][col], to the contribution of images [n0, n1).
func (g *wgradGeom) accumulate(w *wgradWorkspace, wk *wgradKernel, input, kernel, part []float32, n0, n1, r0, r1 int) {
	const size = 4
	d := g.d
	dyImage := g.cols
	for _, v := range g.ko {
		dyImage *= v
	}
	perImage := (g.inImg + dyImage) * size
	chunk := max(1, wgradChunkBytes/perImage)
	w.tap = gemmGrow(w.tap, d)
	w.lo, w.hi, w.o = gemmGrow(w.lo, d), gemmGrow(w.hi, d), gemmGrow(w.o, d)
	args := &w.args
	args.astep = g.kd[d-1] * g.inSt[d-1] * size
	args.bstep = g.kSt[d-1] * size
	args.ldc = g.cols * size
	for t := range g.nTaps {
		clear(part[(t*g.rowsP+r0)*g.cols : (t*g.rowsP+r1)*g.cols])
	}
	for c0 := n0; c0 < n1; c0 += chunk {
		c1 := min(c0+chunk, n1)
		clear(w.tap)
		for t := 0; t < g.nTaps; t++ {
			if t > 0 {
				transposeNext(w.tap, g.taps)
			}
			w.segs = g.segments(w, w.segs[:0], c0, c1)
			if len(w.segs) == 0 {
				continue
			}
			args.segs = unsafe.Pointer(&w.segs[0])
			args.nseg = len(w.segs) / 3
			for r := r0; r < min(r1, g.rows); r += wk.mr {
				args.abase = unsafe.Pointer(&input[r])
				for c := 0; c < g.cols; c += wgradNR {
					args.bbase = unsafe.Pointer(&kernel[c])
					args.c = unsafe.Pointer(&part[(t*g.rowsP+r)*g.cols+c])
					wk.fn(args)
				}
			}
			g.accumulateTail(w, input, kernel, part[t*g.rowsP*g.cols:], r0, min(r1, g.rows))
		}
	}
}

// segments appends to segs the runs of kernel positions, along the last
// spatial axis, that reach inside the input for tap w.tap, for images
// [c0, c1); runs that continue each other in both operands are merged.
func (g *wgradGeom) segments(w *wgradWorkspace, segs []int, c0, c1 int) []int {
	const size = 4
	d := g.d
	lo, hi, o := w.lo, w.hi, w.o
	w.tail = w.tail[:0]
	// Kernel position o along axis i reads input position
	// tap*stride + o*kd - pad, which must be in [0, in).
	for i := 0; i < d; i++ {
		base := w.tap[i]*g.stride[i] - g.pad[i]
		lo[i] = max(0, convCeilDiv(-base, g.kd[i]))
		hi[i] = min(g.ko[i], convFloorDiv(g.in[i]-1-base, g.kd[i])+1)
		if lo[i] >= hi[i] {
			return segs
		}
	}
	k := hi[d-1] - lo[d-1]
	astep, bstep := g.kd[d-1]*g.inSt[d-1]*size, g.kSt[d-1]*size
	add := func(k, aoff, boff int) {
		if l := len(segs); l > 0 && segs[l-2]+segs[l-3]*astep == aoff && segs[l-1]+segs[l-3]*bstep == boff {
			segs[l-3] += k
			return
		}
		segs = append(segs, k, aoff, boff)
	}
	// The runs of image c0, then the same runs shifted to the other images.
	copy(o, lo)
	for {
		aoff, boff := c0*g.inImg, c0*g.kImg
		for i := 0; i < d; i++ {
			aoff += (w.tap[i]*g.stride[i] + o[i]*g.kd[i] - g.pad[i]) * g.inSt[i]
			boff += o[i] * g.kSt[i]
		}
		add(k, aoff*size, boff*size)
		// Next combination of the outer axes' positions.
		i := d - 2
		for ; i >= 0; i-- {
			o[i]++
			if o[i] < hi[i] {
				break
			}
			o[i] = lo[i]
		}
		if i < 0 {
			break
		}
	}
	// (A copy: merging into the last run of an image changes segs.)
	w.image = append(w.image[:0], segs...)
	for n := c0 + 1; n < c1; n++ {
		da, db := (n-c0)*g.inImg*size, (n-c0)*g.kImg*size
		for s := 0; s < len(w.image); s += 3 {
			add(w.image[s], w.image[s+1]+da, w.image[s+2]+db)
		}
	}
	if c1 == g.images && g.rowsP > g.rows {
		segs = g.trimEnd(w, segs)
	}
	return segs
}

// trimEnd shortens the runs so that the last row tile, whose padding rows
// read past a position's channels into the next position's, never reads
// past the end of the input (the last positions of the last image): the
// steps it removes go to w.tail, as pairs of A and B byte offsets, for
// accumulateTail.
func (g *wgradGeom) trimEnd(w *wgradWorkspace, segs []int) []int {
	const size = 4
	d := g.d
	astep, bstep := g.kd[d-1]*g.inSt[d-1]*size, g.kSt[d-1]*size
	// The padded tile reads rowsP elements from a step's A offset.
	limit := (g.inLen - g.rowsP) * size
	for s := 0; s < len(segs); s += 3 {
		k, aoff, boff := segs[s], segs[s+1], segs[s+2]
		if k == 0 || aoff+(k-1)*astep <= limit {
			continue
		}
		safe := 0
		if aoff <= limit {
			safe = (limit-aoff)/astep + 1
		}
		for p := safe; p < k; p++ {
			w.tail = append(w.tail, aoff+p*astep, boff+p*bstep)
		}
		segs[s] = safe
	}
	return segs
}

// accumulateTail adds the steps trimEnd removed to rows [r0, r1) of part
// (one tap's [rowsP][cols] sums), in plain Go.
func (g *wgradGeom) accumulateTail(w *wgradWorkspace, input, kernel, part []float32, r0, r1 int) {
	for i := 0; i+1 < len(w.tail); i += 2 {
		a := input[w.tail[i]/4+r0 : w.tail[i]/4+r1]
		b := kernel[w.tail[i+1]/4 : w.tail[i+1]/4+g.cols]
		for r, x := range a {
			r += r0
			row := part[r*g.cols : (r+1)*g.cols]
			for j, y := range b {
				row[j] += x * y
			}
		}
	}
}

// convCeilDiv is a/b rounded towards plus infinity (b > 0).
func convCeilDiv(a, b int) int {
	return -convFloorDiv(-a, b)
}
