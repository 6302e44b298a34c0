package kernels

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Cache blocking, in elements, tuned on the target CPU (2 cores with 48 KiB
// L1d and 1 MiB L2 each, 32 MiB shared L3): a packed B strip of gemmKC rows
// (128 KiB for 32 float32 columns) streams from L2 while the MR-row tiles of
// an MC x KC block of A pass over it, and a KC x NC packed B block (8 MiB in
// float32) fits a core's share of L3. Long KC blocks mean few passes over C;
// on the 2048^3 float32 product KC=1024 ran 20% faster than KC=256.
const (
	gemmKC = 1024
	gemmMC = 480
	gemmNC = 2048
	// gemmMinParallelFlops is the problem size (2*m*n*k) below which GEMM runs
	// on the calling goroutine only.
	gemmMinParallelFlops = 1 << 18
	// gemmMaxSplitKElems bounds m*n for splitting k into parts.
	gemmMaxSplitKElems = 1 << 22
	// gemmSplitKMaxParts bounds the number of parts k is split into, and
	// gemmSplitKBudget their partial products' elements in all.
	gemmSplitKMaxParts = 16
	gemmSplitKBudget   = 1 << 22
	// gemmMaxDynamicB bounds k*n (the B operand every chunk of rows packs
	// again) for splitting the rows of C into dynamically claimed chunks;
	// above it B is packed once and shared. At 1<<16 the 8x8x64 ResNet-20
	// convolutions (k*n = 36864) repacked their kernel for each of 16
	// chunks: sharing it made them 7 to 11% faster, while the 16x16x32 ones
	// (9216) gained nothing clear.
	gemmMaxDynamicB = 1 << 14
	// gemmMinPairRows is the number of row tiles below which the pair
	// kernel's B interleaving costs more than it saves.
	gemmMinPairRows = 32
)

// GemmF32 computes the row-major float32 matrix product
//
//	C[m x n] = alpha * op(A) * op(B) + beta * C
//
// where op(A) is A (m x k, leading dimension lda >= k) or, if transA, the
// transpose of the stored k x m matrix A (lda >= m); likewise op(B) is B
// (k x n, ldb >= n) or, if transB, the transpose of the stored n x k B
// (ldb >= k). C is m x n with ldc >= n. When beta is 0, C's old contents are
// ignored (even NaN); when alpha is 0 or k is 0, A and B are not read. It
// returns an error, and leaves C untouched, if a dimension is negative, a
// leading dimension too small or a slice too short.
func GemmF32(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) error {
	return gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// GemmF64 is GemmF32 for float64 matrices.
func GemmF64(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) error {
	return gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmCheckMatrix checks that s holds a rows x cols row-major matrix with
// leading dimension ld.
func gemmCheckMatrix[T gemmFloat](name string, s []T, rows, cols, ld int) error {
	if ld < max(1, cols) {
		return fmt.Errorf("kernels: gemm: leading dimension of %s is %d, want >= %d", name, ld, max(1, cols))
	}
	if rows == 0 || cols == 0 {
		return nil
	}
	if need := (rows-1)*ld + cols; len(s) < need {
		return fmt.Errorf("kernels: gemm: %s has %d elements, want >= %d for %dx%d with leading dimension %d",
			name, len(s), need, rows, cols, ld)
	}
	return nil
}

func gemm[T gemmFloat](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) error {
	if m < 0 || n < 0 || k < 0 {
		return fmt.Errorf("kernels: gemm: negative dimension m=%d n=%d k=%d", m, n, k)
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	if err := gemmCheckMatrix("A", a, ar, ac, lda); err != nil {
		return err
	}
	if err := gemmCheckMatrix("B", b, br, bc, ldb); err != nil {
		return err
	}
	if err := gemmCheckMatrix("C", c, m, n, ldc); err != nil {
		return err
	}
	if m == 0 || n == 0 {
		return nil
	}
	if k == 0 || alpha == 0 {
		gemmScaleC[T](&gemmMatC[T]{c: c, ldc: ldc}, m, n, beta)
		return nil
	}
	// A stored transposed: either pack A^T (m*k transposed elements), or
	// compute the swapped product, which transposes op(B) (k*n, none when
	// transB) and the m x n result; take the cheaper. The MLP's weight
	// gradient 784x128 * 128x256 ran 1.8x faster direct.
	if transA && (transB || k*n+m*n < m*k) && m*n <= gemmMaxSplitKElems {
		gemmSwapped(transB, m, n, k, alpha, a, lda, b, ldb, beta, gemmMatC[T]{c: c, ldc: ldc})
		return nil
	}
	var es T
	ws := gemmGetWorkspace[T]()
	pr := ws.call.set(m, n, k, alpha, beta,
		gemmMatA[T]{a: a, lda: lda, trans: transA, pack: transA || (lda*int(unsafe.Sizeof(es)))%2048 == 0},
		gemmMatB[T]{b: b, ldb: ldb, trans: transB},
		gemmMatC[T]{c: c, ldc: ldc})
	gemmRunWith(pr, ws, Workers())
	gemmPutWorkspace(ws)
	return nil
}

// gemmCall holds the operands of one plain GemmF32/GemmF64 call in a pooled
// workspace, so that the call does not allocate them.
type gemmCall[T gemmFloat] struct {
	pr gemmProblem[T]
	a  gemmMatA[T]
	b  gemmMatB[T]
	c  gemmMatC[T]
}

// set fills the call's operands and returns its problem, whose operand
// interfaces point into the call.
func (gc *gemmCall[T]) set(m, n, k int, alpha, beta T, a gemmMatA[T], b gemmMatB[T], c gemmMatC[T]) *gemmProblem[T] {
	gc.a, gc.b, gc.c = a, b, c
	gc.pr = gemmProblem[T]{m: m, n: n, k: k, alpha: alpha, beta: beta, a: &gc.a, b: &gc.b, c: &gc.c}
	return &gc.pr
}

// gemmASource provides the A operand of a GEMM, tile by tile, as
// micro-kernel segments.
type gemmASource[T gemmFloat] interface {
	// block prepares rows [i0, i0+mc) and columns [p0, p0+kc) of op(A): it
	// fills ws.segs with the segments of the block's MR-row tiles (tile t owns
	// segments ws.tileSeg[t] to ws.tileSeg[t+1]) and returns the base pointer
	// their offsets are relative to. Rows past the block read ws.zeros.
	block(ws *gemmWorkspace[T], mr, i0, mc, p0, kc int) unsafe.Pointer
}

// gemmEvenSegments is implemented by A sources that can tell whether all
// segments of the k range [p0, p0+kc) have even k (for the pair kernels).
type gemmEvenSegments interface {
	evenSegments(p0, kc int) bool
}

// gemmBSource provides the B operand of a GEMM.
type gemmBSource[T gemmFloat] interface {
	// pack writes rows [p0, p0+kc) and columns [j0, j0+w) of op(B) into dst as
	// a row-major kc x nrs panel, zero-filling columns w to nrs.
	pack(dst []T, p0, kc, j0, w, nrs int)
}

// gemmCSource locates the rows of the GEMM's C operand.
type gemmCSource[T gemmFloat] interface {
	// base returns the address of element (0, 0).
	base() unsafe.Pointer
	// rowOffsets writes the byte offsets from base of rows [i0, i0+len(dst)).
	rowOffsets(i0 int, dst []int)
}

// gemmProblem is C = alpha*A*B + beta*C over abstract operands.
type gemmProblem[T gemmFloat] struct {
	m, n, k     int
	alpha, beta T
	a           gemmASource[T]
	b           gemmBSource[T]
	c           gemmCSource[T]
}

// gemmWorkspace holds one worker's buffers; they are pooled so that steady
// state GEMMs do not allocate.
type gemmWorkspace[T gemmFloat] struct {
	bpack   []T   // packed B block
	apack   []T   // packed A block (transposed or aliasing A)
	zeros   []T   // zero rows of A (never written)
	partial []T   // the partial products when k is split (gemmRunSplitK)
	swapped []T   // the transposed product of gemmSwapped
	bpair   []T   // scratch for the pair kernels' B layout
	segs    []int // micro-kernel segments of the current A block
	tileSeg []int // first segment of each tile of the block
	coffs   []int // byte offsets of the block's C rows
	// Per-row data of the convolution A operand.
	rowOff    []int
	rowMask   []uint64
	rowOrigin []int
	rowsKey   convRowsKey
	tileLoHi  []int
	idx       []int
	args      gemmMicroArgs
	// pass is the pass gemmRange (or gemmRunShared's owner) works on, and
	// call the operands of a plain GEMM call; both are kept here so that
	// steady-state GEMMs do not allocate.
	pass gemmPass[T]
	call gemmCall[T]
	// split is the state of a parallel GEMM this goroutine runs; pc is the
	// C operand of the partial product this worker computes when k is
	// split.
	split *gemmSplit[T]
	pc    gemmMatC[T]
}

// odometer returns a scratch index vector of n elements.
func (ws *gemmWorkspace[T]) odometer(n int) []int {
	ws.idx = gemmGrow(ws.idx, n)
	return ws.idx
}

var gemmPool32, gemmPool64 sync.Pool

func gemmGetWorkspace[T gemmFloat]() *gemmWorkspace[T] {
	var z T
	pool := &gemmPool64
	if unsafe.Sizeof(z) == 4 {
		pool = &gemmPool32
	}
	if ws, ok := pool.Get().(*gemmWorkspace[T]); ok {
		return ws
	}
	return &gemmWorkspace[T]{}
}

func gemmPutWorkspace[T gemmFloat](ws *gemmWorkspace[T]) {
	var z T
	ws.args = gemmMicroArgs{}
	ws.rowsKey = convRowsKey{}
	ws.pass = gemmPass[T]{}
	ws.call = gemmCall[T]{}
	ws.pc = gemmMatC[T]{}
	if unsafe.Sizeof(z) == 4 {
		gemmPool32.Put(ws)
	} else {
		gemmPool64.Put(ws)
	}
}

// gemmGrow returns s resized to n elements, reallocating only if its
// capacity is too small; the contents are not preserved.
func gemmGrow[E any](s []E, n int) []E {
	if cap(s) < n {
		return make([]E, n, n+n/4)
	}
	return s[:n]
}

// zeroBuf returns a zero-filled slice of at least n elements kept in ws.
func (ws *gemmWorkspace[T]) zeroBuf(n int) []T {
	if len(ws.zeros) < n {
		ws.zeros = make([]T, max(n, gemmKC))
	}
	return ws.zeros
}

// segments sizes ws.segs for nseg segments of 1+mr ints.
func (ws *gemmWorkspace[T]) segments(nseg, mr int) []int {
	ws.segs = gemmGrow(ws.segs, nseg*(1+mr))
	return ws.segs
}

// gemmScaleC sets C = beta*C (C = 0 when beta is 0).
func gemmScaleC[T gemmFloat](cs gemmCSource[T], m, n int, beta T) {
	var off [1]int
	base := cs.base()
	for i := 0; i < m; i++ {
		cs.rowOffsets(i, off[:])
		row := unsafe.Slice((*T)(unsafe.Add(base, off[0])), n)
		if beta == 0 {
			clear(row)
		} else if beta != 1 {
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// gemmSplitBlocks splits a length into nearly equal blocks of at most max
// elements, each a multiple of align (except the last), returning the block
// size.
func gemmSplitBlocks(length, maxBlock, align int) int {
	if length <= maxBlock {
		return length
	}
	nb := (length + maxBlock - 1) / maxBlock
	bs := (length + nb - 1) / nb
	return (bs + align - 1) / align * align
}

// gemmRun executes a GEMM problem, splitting it over the workers.
func gemmRun[T gemmFloat](pr *gemmProblem[T]) {
	ws := gemmGetWorkspace[T]()
	gemmRunWith(pr, ws, Workers())
	gemmPutWorkspace(ws)
}

// gemmSplitKParts returns the number of parts the k range of an m x n x k
// product is split into, each summed into its own partial product, or 1 for
// none: deep products (k much larger than m and n) of at least two k blocks,
// whose m x n partial products fit gemmSplitKBudget. It depends on the shape
// only, never on the number of workers, so that the sums, and the results,
// are the same whatever that number.
func gemmSplitKParts(m, n, k int) int {
	blocks := (k + gemmKC - 1) / gemmKC
	if blocks < 2 || k < 8*m || k < 8*n || m*n > gemmMaxSplitKElems ||
		2*float64(m)*float64(n)*float64(k) < gemmMinParallelFlops {
		return 1
	}
	return min(blocks, gemmSplitKMaxParts, max(2, gemmSplitKBudget/(m*n)))
}

// gemmRunWith is gemmRun with a workspace the caller holds (its call and
// swapped fields may be in use), over at most w workers: the serial path
// computes in it, and a parallel one keeps its split state there.
//
// Every way of splitting the work computes each element of C with the same
// operations in the same order (the same k blocks, micro-kernels and row
// tiles), so the result does not depend on w.
func gemmRunWith[T gemmFloat](pr *gemmProblem[T], owner *gemmWorkspace[T], w int) {
	kern := gemmKernelFor[T]()
	m, n, k := pr.m, pr.n, pr.k
	flops := 2 * float64(m) * float64(n) * float64(k)
	tilesM := (m + kern.mr - 1) / kern.mr
	stripsN := (n + kern.nrW - 1) / kern.nrW
	if parts := gemmSplitKParts(m, n, k); parts > 1 {
		sp := owner.splitState()
		sp.pr, sp.kern = pr, kern
		gemmRunSplitK(sp, owner, parts, w)
		sp.reset()
		return
	}
	if w <= 1 || flops < gemmMinParallelFlops {
		gemmRange(pr, kern, owner, 0, m, 0, n, 0, k, pr.c, pr.alpha, pr.beta)
		return
	}
	sp := owner.splitState()
	sp.pr, sp.kern = pr, kern
	defer sp.reset()
	splitM := func() {
		if n*k <= gemmMaxDynamicB && tilesM >= 8*w {
			// B is cheap to pack: workers claim chunks of rows as they go,
			// which keeps them balanced when a core is slowed down.
			sp.chunk, sp.tilesM = max(tilesM/(8*w), 1), tilesM
			sp.next.Store(0)
			Parallel(w, 1, sp.rowsFn)
			return
		}
		gemmRunShared(sp, owner, w)
	}
	switch {
	case tilesM >= 4*w:
		splitM()
	case stripsN >= 4*w:
		Parallel(stripsN, 1, sp.stripsFn)
	case tilesM >= w:
		splitM()
	default:
		gemmRange(pr, kern, owner, 0, m, 0, n, 0, k, pr.c, pr.alpha, pr.beta)
	}
}

// gemmSplit is the state a GEMM shares with the workers it is split over.
// It lives in the calling goroutine's workspace, and its Parallel bodies are
// method values bound once, so that a parallel GEMM does not allocate.
type gemmSplit[T gemmFloat] struct {
	pr   *gemmProblem[T]
	kern *gemmKernel
	// Dynamic row chunks (rowsFn) and row blocks of a shared pass
	// (computeFn) are claimed through next.
	next          atomic.Int64
	chunk, tilesM int
	ps            *gemmPass[T]
	mc0, blocks   int
	// Split k (splitKFn, sumKFn): the number of parts and their partial
	// products, part after part (in the calling goroutine's workspace).
	kParts   int
	partials []T

	rowsFn, stripsFn, packFn, computeFn, splitKFn, sumKFn func(lo, hi int)
}

// splitState returns the workspace's split state, binding its Parallel
// bodies the first time.
func (ws *gemmWorkspace[T]) splitState() *gemmSplit[T] {
	if ws.split == nil {
		sp := &gemmSplit[T]{}
		sp.rowsFn, sp.stripsFn, sp.packFn, sp.computeFn = sp.rows, sp.strips, sp.pack, sp.compute
		sp.splitKFn, sp.sumKFn = sp.splitK, sp.sumK
		ws.split = sp
	}
	return ws.split
}

// reset drops the references the split state holds to the problem.
func (sp *gemmSplit[T]) reset() {
	sp.pr, sp.ps, sp.partials = nil, nil, nil
}

// rows claims chunks of row tiles and computes them.
func (sp *gemmSplit[T]) rows(_, _ int) {
	pr, kern, m := sp.pr, sp.kern, sp.pr.m
	ws := gemmGetWorkspace[T]()
	for {
		c := int(sp.next.Add(1) - 1)
		if c*sp.chunk >= sp.tilesM {
			break
		}
		gemmRange(pr, kern, ws, c*sp.chunk*kern.mr, min((c+1)*sp.chunk*kern.mr, m), 0, pr.n, 0, pr.k, pr.c, pr.alpha, pr.beta)
	}
	gemmPutWorkspace(ws)
}

// strips computes the column strips [lo, hi).
func (sp *gemmSplit[T]) strips(lo, hi int) {
	pr, kern := sp.pr, sp.kern
	ws := gemmGetWorkspace[T]()
	gemmRange(pr, kern, ws, 0, pr.m, lo*kern.nrW, min(hi*kern.nrW, pr.n), 0, pr.k, pr.c, pr.alpha, pr.beta)
	gemmPutWorkspace(ws)
}

// pack packs the strips [lo, hi) of the shared pass's B block.
func (sp *gemmSplit[T]) pack(lo, hi int) {
	ws := gemmGetWorkspace[T]()
	for s := lo; s < hi; s++ {
		sp.ps.packStrip(s, &ws.bpair)
	}
	gemmPutWorkspace(ws)
}

// compute claims row blocks of the shared pass and computes them.
func (sp *gemmSplit[T]) compute(_, _ int) {
	ws := gemmGetWorkspace[T]()
	m := sp.pr.m
	for {
		b := int(sp.next.Add(1) - 1)
		if b >= sp.blocks {
			break
		}
		ic := b * sp.mc0
		sp.ps.compute(ws, sp.pr.c, ic, min(sp.mc0, m-ic))
	}
	gemmPutWorkspace(ws)
}

// splitK computes the k parts [lo, hi), each into its partial product.
func (sp *gemmSplit[T]) splitK(lo, hi int) {
	pr := sp.pr
	m, n, k := pr.m, pr.n, pr.k
	blocks := (k + gemmKC - 1) / gemmKC
	ws := gemmGetWorkspace[T]()
	for part := lo; part < hi; part++ {
		k0 := part * blocks / sp.kParts * gemmKC
		k1 := min((part+1)*blocks/sp.kParts*gemmKC, k)
		ws.pc = gemmMatC[T]{c: sp.partials[part*m*n : (part+1)*m*n], ldc: n}
		gemmRange(pr, sp.kern, ws, 0, m, 0, n, k0, k1, &ws.pc, 1, 0)
	}
	gemmPutWorkspace(ws)
}

// sumK adds the partial products into rows [lo, hi) of C: C = alpha*sum +
// beta*C, the parts summed in order.
func (sp *gemmSplit[T]) sumK(lo, hi int) {
	pr := sp.pr
	m, n := pr.m, pr.n
	ws := gemmGetWorkspace[T]()
	ws.coffs = gemmGrow(ws.coffs, hi-lo)
	pr.c.rowOffsets(lo, ws.coffs)
	base := pr.c.base()
	for i := lo; i < hi; i++ {
		row := unsafe.Slice((*T)(unsafe.Add(base, ws.coffs[i-lo])), n)
		for j := range row {
			s := sp.partials[i*n+j]
			for part := 1; part < sp.kParts; part++ {
				s += sp.partials[part*m*n+i*n+j]
			}
			if pr.beta == 0 {
				row[j] = pr.alpha * s
			} else {
				row[j] = pr.alpha*s + pr.beta*row[j]
			}
		}
	}
	gemmPutWorkspace(ws)
}

// gemmRunSplitK splits the k range into parts (gemmSplitKParts) of whole k
// blocks: each part's product goes to its own partial m x n buffer, over w
// workers, and the parts are then summed, in order, into C = alpha*sum +
// beta*C. owner is the workspace holding sp; it keeps the buffers.
func gemmRunSplitK[T gemmFloat](sp *gemmSplit[T], owner *gemmWorkspace[T], parts, w int) {
	pr := sp.pr
	m, n := pr.m, pr.n
	owner.partial = gemmGrow(owner.partial, parts*m*n)
	sp.partials, sp.kParts = owner.partial, parts
	if w <= 1 {
		sp.splitK(0, parts)
		sp.sumK(0, m)
		return
	}
	Parallel(parts, 1, sp.splitKFn)
	Parallel(m, max(1, (1<<14)/(parts*n)), sp.sumKFn)
}

// gemmRange computes rows [m0, m1) and columns [n0, n1) of
// C = alpha*A[:, k0:k1]*B[k0:k1, :] + beta*C on the calling goroutine, with C
// given by cs.
func gemmRange[T gemmFloat](pr *gemmProblem[T], kern *gemmKernel, ws *gemmWorkspace[T],
	m0, m1, n0, n1, k0, k1 int, cs gemmCSource[T], alpha, beta T) {
	kc0 := gemmSplitBlocks(k1-k0, gemmKC, 8)
	mc0 := gemmSplitBlocks(m1-m0, gemmMC/kern.mr*kern.mr, kern.mr)
	for jc := n0; jc < n1; jc += gemmNC {
		for pc := k0; pc < k1; pc += kc0 {
			ps := &ws.pass
			ps.set(pr, kern, jc, min(gemmNC, n1-jc), k0, pc, min(kc0, k1-pc), alpha, beta)
			ws.bpack = gemmGrow(ws.bpack, ps.kc*ps.nStrips*kern.nrW)
			ps.bpack = ws.bpack
			for s := 0; s < ps.nStrips; s++ {
				ps.packStrip(s, &ws.bpair)
			}
			for ic := m0; ic < m1; ic += mc0 {
				ps.compute(ws, cs, ic, min(mc0, m1-ic))
			}
		}
	}
}

// gemmRunShared computes C with one packed B block shared by the workers:
// for each column and k block, the workers pack B's strips together, then
// claim blocks of rows of C as they go (which keeps them balanced when a
// core is slowed down). It suits large B operands, which gemmRange would
// pack once per worker. owner is the workspace holding sp.
func gemmRunShared[T gemmFloat](sp *gemmSplit[T], owner *gemmWorkspace[T], w int) {
	pr, kern := sp.pr, sp.kern
	m, n, k := pr.m, pr.n, pr.k
	mr := kern.mr
	kc0 := gemmSplitBlocks(k, gemmKC, 8)
	// At least 4 row blocks per worker.
	sp.mc0 = gemmSplitBlocks(m, min(gemmMC/mr*mr, max((m/(4*w))/mr*mr, mr)), mr)
	sp.blocks = (m + sp.mc0 - 1) / sp.mc0
	for jc := 0; jc < n; jc += gemmNC {
		for pc := 0; pc < k; pc += kc0 {
			ps := &owner.pass
			ps.set(pr, kern, jc, min(gemmNC, n-jc), 0, pc, min(kc0, k-pc), pr.alpha, pr.beta)
			owner.bpack = gemmGrow(owner.bpack, ps.kc*ps.nStrips*kern.nrW)
			ps.bpack = owner.bpack
			sp.ps = ps
			Parallel(ps.nStrips, 1, sp.packFn)
			sp.next.Store(0)
			Parallel(w, 1, sp.computeFn)
		}
	}
}

// gemmPass is one column block and k block of a GEMM: its packed B block
// and the settings the micro-kernel calls share.
type gemmPass[T gemmFloat] struct {
	pr          *gemmProblem[T]
	kern        *gemmKernel
	jc, nc      int // column block
	pc, kc      int // k block
	nStrips     int
	usePair     bool
	alpha, beta T
	useBeta     bool
	bpack       []T // nStrips strips of kc x nrW
}

// set sets up ps as the pass of columns [jc, jc+nc) and k range
// [pc, pc+kc); k0 is the first k of the range the caller computes (its
// first pass applies beta, later ones accumulate). The caller then points
// ps.bpack at its packing buffer.
func (ps *gemmPass[T]) set(pr *gemmProblem[T], kern *gemmKernel, jc, nc, k0, pc, kc int, alpha, beta T) {
	*ps = gemmPass[T]{pr: pr, kern: kern, jc: jc, nc: nc, pc: pc, kc: kc,
		nStrips: (nc + kern.nrW - 1) / kern.nrW, alpha: alpha, beta: beta, useBeta: beta != 0}
	if pc != k0 {
		ps.beta, ps.useBeta = 1, true
	}
	// The pair kernel serves a narrow strip of 16 when all segments have
	// even k and enough row tiles share its (costlier) packed B. It sums in
	// another order than the narrow kernel, so the choice depends on the
	// problem's rows, not on the part of them a worker computes: results
	// must not depend on how the rows are split.
	if kern.pair != nil && pr.m >= gemmMinPairRows*kern.mr {
		if ev, ok := pr.a.(gemmEvenSegments); ok && ev.evenSegments(pc, kc) {
			ps.usePair = true
		}
	}
}

// strip returns the first column, width and padded width of column strip s:
// full wide strips, then a last one that is narrow if it fits the narrow
// kernel.
func (ps *gemmPass[T]) strip(s int) (j, wd, nrs int) {
	j = s * ps.kern.nrW
	wd = min(ps.kern.nrW, ps.nc-j)
	nrs = ps.kern.nrW
	if wd <= ps.kern.nrN {
		nrs = ps.kern.nrN
	}
	return j, wd, nrs
}

// packStrip packs column strip s of the pass's B block into ps.bpack;
// scratch is a buffer for the pair layout.
func (ps *gemmPass[T]) packStrip(s int, scratch *[]T) {
	j, wd, nrs := ps.strip(s)
	dst := ps.bpack[s*ps.kc*ps.kern.nrW:]
	if ps.usePair && nrs == ps.kern.nrN {
		*scratch = gemmGrow(*scratch, ps.kc*nrs)
		ps.pr.b.pack(*scratch, ps.pc, ps.kc, ps.jc+j, wd, nrs)
		gemmPairPack(dst, *scratch, ps.kc)
		return
	}
	ps.pr.b.pack(dst, ps.pc, ps.kc, ps.jc+j, wd, nrs)
}

// compute runs the pass over rows [ic, ic+mc) of C (given by cs): it
// prepares that block of A, then calls the micro-kernel for every strip and
// row tile.
func (ps *gemmPass[T]) compute(ws *gemmWorkspace[T], cs gemmCSource[T], ic, mc int) {
	var es T
	size := int(unsafe.Sizeof(es))
	kern := ps.kern
	mr := kern.mr
	ws.zeroBuf(ps.kc)
	args := &ws.args
	if size == 4 {
		args.alpha32, args.beta32 = float32(ps.alpha), float32(ps.beta)
	} else {
		args.alpha64, args.beta64 = float64(ps.alpha), float64(ps.beta)
	}
	args.useBeta = 0
	if ps.useBeta {
		args.useBeta = 1
	}
	tiles := (mc + mr - 1) / mr
	args.abase = ps.pr.a.block(ws, mr, ic, mc, ps.pc, ps.kc)
	args.zeros = unsafe.Pointer(&ws.zeros[0])
	args.zoff = int(uintptr(args.zeros) - uintptr(args.abase))
	ws.coffs = gemmGrow(ws.coffs, tiles*mr)
	cs.rowOffsets(ic, ws.coffs[:mc])
	cbase := cs.base()
	for s := 0; s < ps.nStrips; s++ {
		j, wd, _ := ps.strip(s)
		fn := kern.wide
		if wd <= kern.nrN {
			fn = kern.narrow
			if ps.usePair {
				fn = kern.pair
			}
		}
		args.b = unsafe.Pointer(&ps.bpack[s*ps.kc*kern.nrW])
		args.cbase = unsafe.Add(cbase, (ps.jc+j)*size)
		args.nr = wd
		for t := 0; t < tiles; t++ {
			s0, s1 := ws.tileSeg[t], ws.tileSeg[t+1]
			args.segs = unsafe.Pointer(&ws.segs[s0*(1+mr)])
			args.nseg = s1 - s0
			args.coffs = unsafe.Pointer(&ws.coffs[t*mr])
			args.mr = min(mr, mc-t*mr)
			fn(args)
		}
	}
}

// gemmMatA is a plain row-major A operand, read in place or packed.
type gemmMatA[T gemmFloat] struct {
	a     []T
	lda   int
	trans bool // A is stored k x m
	pack  bool // copy blocks into a contiguous buffer first
}

func (s *gemmMatA[T]) block(ws *gemmWorkspace[T], mr, i0, mc, p0, kc int) unsafe.Pointer {
	var es T
	size := int(unsafe.Sizeof(es))
	tiles := (mc + mr - 1) / mr
	segs := ws.segments(tiles, mr)
	ws.tileSeg = gemmGrow(ws.tileSeg, tiles+1)
	for t := range ws.tileSeg {
		ws.tileSeg[t] = t
	}
	var base unsafe.Pointer
	var ld, first int // row stride and offset of row 0, in elements
	if s.pack {
		// Padded row stride so that the rows of a tile fall in different L1 sets.
		ld = (kc + 15) &^ 15
		if (ld*size)%1024 == 0 {
			ld += 16
		}
		ws.apack = gemmGrow(ws.apack, mc*ld)
		ap := ws.apack
		if s.trans {
			gemmPackTrans(ap, ld, s.a, s.lda, i0, mc, p0, kc)
		} else {
			for r := 0; r < mc; r++ {
				copy(ap[r*ld:r*ld+kc], s.a[(i0+r)*s.lda+p0:])
			}
		}
		base = unsafe.Pointer(&ap[0])
	} else {
		base = unsafe.Pointer(&s.a[0])
		ld, first = s.lda, i0*s.lda+p0
	}
	zoff := int(uintptr(unsafe.Pointer(&ws.zeros[0])) - uintptr(base))
	for t := 0; t < tiles; t++ {
		seg := segs[t*(1+mr) : (t+1)*(1+mr)]
		seg[0] = kc
		for i := 0; i < mr; i++ {
			if r := t*mr + i; r < mc {
				seg[1+i] = (first + r*ld) * size
			} else {
				seg[1+i] = zoff
			}
		}
	}
	return base
}

func (s *gemmMatA[T]) evenSegments(p0, kc int) bool { return kc%2 == 0 }

// gemmPackTrans copies rows [i0, i0+mc) and columns [p0, p0+kc) of op(A) =
// transpose of the stored k x m matrix a into dst (row stride ld).
func gemmPackTrans[T gemmFloat](dst []T, ld int, a []T, lda, i0, mc, p0, kc int) {
	q := 0
	for ; q+4 <= kc; q += 4 {
		s0 := a[(p0+q)*lda+i0 : (p0+q)*lda+i0+mc]
		s1 := a[(p0+q+1)*lda+i0 : (p0+q+1)*lda+i0+mc]
		s2 := a[(p0+q+2)*lda+i0 : (p0+q+2)*lda+i0+mc]
		s3 := a[(p0+q+3)*lda+i0 : (p0+q+3)*lda+i0+mc]
		for r := range s0 {
			d := dst[r*ld+q : r*ld+q+4 : r*ld+q+4]
			d[0], d[1], d[2], d[3] = s0[r], s1[r], s2[r], s3[r]
		}
	}
	for ; q < kc; q++ {
		src := a[(p0+q)*lda+i0 : (p0+q)*lda+i0+mc]
		for r, v := range src {
			dst[r*ld+q] = v
		}
	}
}

// gemmMatB is a plain row-major B operand.
type gemmMatB[T gemmFloat] struct {
	b     []T
	ldb   int
	trans bool // B is stored n x k
}

func (s *gemmMatB[T]) pack(dst []T, p0, kc, j0, w, nrs int) {
	dst = dst[:kc*nrs]
	if !s.trans {
		if w == nrs && s.ldb == w {
			copy(dst, s.b[p0*w:])
			return
		}
		for r := 0; r < kc; r++ {
			d := dst[r*nrs : (r+1)*nrs]
			copy(d[:w], s.b[(p0+r)*s.ldb+j0:])
			clear(d[w:])
		}
		return
	}
	if w < nrs {
		clear(dst)
	}
	for jj := 0; jj < w; jj++ {
		src := s.b[(j0+jj)*s.ldb+p0 : (j0+jj)*s.ldb+p0+kc]
		for r, v := range src {
			dst[r*nrs+jj] = v
		}
	}
}

// gemmMatC is a plain row-major C operand.
type gemmMatC[T gemmFloat] struct {
	c   []T
	ldc int
}

func (s *gemmMatC[T]) base() unsafe.Pointer { return unsafe.Pointer(&s.c[0]) }

func (s *gemmMatC[T]) rowOffsets(i0 int, dst []int) {
	var es T
	step := s.ldc * int(unsafe.Sizeof(es))
	off := i0 * step
	for i := range dst {
		dst[i] = off
		off += step
	}
}

// gemmSwapped computes C = alpha*A^T*op(B) + beta*C (A stored k x m) as the
// transposed product T = op(B)^T * A into a temporary n x m matrix, then
// adds its transpose into C. Reading A^T in place would need a transposing
// copy of all of A; this way A is read by rows, and only op(B)^T, the
// smaller operand, is transposed (or none is, when transB).
func gemmSwapped[T gemmFloat](transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, cs gemmMatC[T]) {
	ws := gemmGetWorkspace[T]()
	defer gemmPutWorkspace(ws)
	ws.swapped = gemmGrow(ws.swapped, n*m)
	t := ws.swapped
	var es T
	pr := ws.call.set(n, m, k, 1, 0,
		gemmMatA[T]{a: b, lda: ldb, trans: !transB, pack: !transB || (ldb*int(unsafe.Sizeof(es)))%2048 == 0},
		gemmMatB[T]{b: a, ldb: lda},
		gemmMatC[T]{c: t, ldc: m})
	gemmRunWith(pr, ws, Workers())
	// C = alpha*T^T + beta*C, in blocks for locality.
	const bs = 32
	for i0 := 0; i0 < m; i0 += bs {
		for j0 := 0; j0 < n; j0 += bs {
			for i := i0; i < min(i0+bs, m); i++ {
				row := cs.c[i*cs.ldc : i*cs.ldc+n]
				for j := j0; j < min(j0+bs, n); j++ {
					if beta == 0 {
						row[j] = alpha * t[j*m+i]
					} else {
						row[j] = alpha*t[j*m+i] + beta*row[j]
					}
				}
			}
		}
	}
}
