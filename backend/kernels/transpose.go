package kernels

import (
	"fmt"
	"reflect"
	"sync"
	"unsafe"
)

// transposeBlock is the tile height of Transpose's 2-D tiles (along the
// source's contiguous axis) and transposeBlockJ their width (along the
// destination's): each tile row reads transposeBlockJ source rows, which
// are usually on as many pages, so the width is kept small for the TLB.
const (
	transposeBlock  = 32
	transposeBlockJ = 8
)

// transposeGrain is the number of elements below which Transpose runs on
// the calling goroutine.
const transposeGrain = 1 << 15

// Transpose writes into dst the row-major tensor src of dimensions dims with
// its axes permuted by perm: dst has dimensions dims[perm[0]], ...,
// dims[perm[r-1]] and dst[i_0, ..., i_{r-1}] = src[j] where j_{perm[a]} =
// i_a. Size-1 axes are dropped and axes that stay adjacent are merged first;
// a permutation that keeps the last axis in place becomes parallel copies of
// contiguous runs, any other one a parallel, cache-blocked 2-D tile
// transpose between the source's contiguous axis and the destination's. It
// returns an error if perm is not a permutation of the axes or a slice does
// not hold the tensor.
//
// For backend/cpu: this is the kernel for Transpose nodes (and the layout
// changes around convolutions that the direct convolution entry points do
// not already avoid).
func Transpose[T any](src, dst []T, dims, perm []int) error {
	r := len(dims)
	if len(perm) != r {
		return fmt.Errorf("kernels.Transpose: perm %v has %d axes, dims %v has %d", perm, len(perm), dims, r)
	}
	var seenBuf [transposeMaxRank]bool
	var seen []bool
	if r <= transposeMaxRank {
		seen = seenBuf[:r]
	} else {
		seen = make([]bool, r)
	}
	size := 1
	for a, p := range perm {
		if p < 0 || p >= r || seen[p] {
			return fmt.Errorf("kernels.Transpose: perm %v is not a permutation of %d axes", perm, r)
		}
		seen[p] = true
		if dims[a] < 0 {
			return fmt.Errorf("kernels.Transpose: negative dimension in %v", dims)
		}
		size *= dims[a]
	}
	if len(src) != size || len(dst) != size {
		return fmt.Errorf("kernels.Transpose: src and dst have %d and %d elements, want %d for dims %v", len(src), len(dst), size, dims)
	}
	if size == 0 {
		return nil
	}
	// Element types without pointers move as unsigned words of their size,
	// through pooled jobs (no allocation); any other type gets a job of its
	// own.
	var es T
	if transposePlainKind(reflect.TypeFor[T]().Kind()) {
		switch unsafe.Sizeof(es) {
		case 1:
			transposeWith(transposeGetJob[uint8](&transposePool1), transposeCast[uint8](src), transposeCast[uint8](dst), dims, perm)
			return nil
		case 2:
			transposeWith(transposeGetJob[uint16](&transposePool2), transposeCast[uint16](src), transposeCast[uint16](dst), dims, perm)
			return nil
		case 4:
			transposeWith(transposeGetJob[uint32](&transposePool4), transposeCast[uint32](src), transposeCast[uint32](dst), dims, perm)
			return nil
		case 8:
			transposeWith(transposeGetJob[uint64](&transposePool8), transposeCast[uint64](src), transposeCast[uint64](dst), dims, perm)
			return nil
		case 16:
			transposeWith(transposeGetJob[[2]uint64](&transposePool16), transposeCast[[2]uint64](src), transposeCast[[2]uint64](dst), dims, perm)
			return nil
		}
	}
	transposeWith(new(transposeJob[T]), src, dst, dims, perm)
	return nil
}

// transposeMaxRank is the rank up to which Transpose keeps its index
// vectors in fixed arrays; higher ranks allocate them.
const transposeMaxRank = 12

// transposePlainKind reports whether values of kind k hold no pointers.
func transposePlainKind(k reflect.Kind) bool {
	switch k {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	}
	return false
}

// transposeCast views s, whose elements hold no pointers and have E's size,
// as a slice of E.
func transposeCast[E, T any](s []T) []E {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*E)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
}

// Pools of transpose jobs, by element size.
var transposePool1, transposePool2, transposePool4, transposePool8, transposePool16 sync.Pool

// transposeGetJob returns a pooled job; transposeWith puts it back.
func transposeGetJob[E any](pool *sync.Pool) *transposeJob[E] {
	if j, ok := pool.Get().(*transposeJob[E]); ok {
		return j
	}
	return &transposeJob[E]{pool: pool}
}

// transposeJob is one Transpose call: the merged axes and the operands. Its
// Parallel bodies are method values bound once, and its index vectors live
// in fixed arrays, so that a pooled job is reused without allocating.
type transposeJob[E any] struct {
	pool     *sync.Pool // where the job goes back, if pooled
	src, dst []E
	// Destination axes as (size, source stride, destination stride), with
	// size-1 axes dropped and adjacent runs merged.
	dd, ds, dStr []int
	// Tiles: axis q is contiguous in the source; od, os, odst are the
	// outer axes (all but q and the last).
	q, last, sl, qBlocks, dq int
	od, os, odst             []int
	simd                     bool

	arrays          [6][transposeMaxRank]int
	runsFn, tilesFn func(lo, hi int)
	elemsFn         func(lo, hi int)
}

// vec returns array i of the job, emptied, or a new slice if rank r does
// not fit.
func (j *transposeJob[E]) vec(i, r int) []int {
	if r <= transposeMaxRank {
		return j.arrays[i][:0]
	}
	return make([]int, 0, r)
}

// transposeWith runs Transpose's permutation (already checked) with job j.
func transposeWith[E any](j *transposeJob[E], src, dst []E, dims, perm []int) {
	if j.runsFn == nil {
		j.runsFn, j.tilesFn, j.elemsFn = j.runs, j.tiles, j.elems
	}
	r := len(dims)
	j.src, j.dst = src, dst
	// Source strides (in j.dStr's array for now), then the destination's
	// axes.
	sStr := j.vec(2, r)[:r]
	st := 1
	for a := r - 1; a >= 0; a-- {
		sStr[a] = st
		st *= dims[a]
	}
	dd, ds := j.vec(0, r), j.vec(1, r)
	for _, p := range perm {
		if dims[p] == 1 {
			continue
		}
		if n := len(dd); n > 0 && ds[n-1] == sStr[p]*dims[p] {
			dd[n-1] *= dims[p]
			ds[n-1] = sStr[p]
			continue
		}
		dd = append(dd, dims[p])
		ds = append(ds, sStr[p])
	}
	j.dd, j.ds = dd, ds
	n := len(dd)
	switch {
	case n <= 1:
		copy(dst, src)
	default:
		// Destination strides.
		dStr := j.vec(2, n)[:n]
		st = 1
		for a := n - 1; a >= 0; a-- {
			dStr[a] = st
			st *= dd[a]
		}
		j.dStr = dStr
		if ds[n-1] == 1 {
			// Contiguous runs of the last axis: rows of the destination's
			// outer axes are split over the workers.
			run := dd[n-1]
			Parallel(len(dst)/run, max(1, transposeGrain/run), j.runsFn)
		} else {
			j.planTiles()
		}
	}
	j.src, j.dst = nil, nil
	if j.pool != nil {
		j.pool.Put(j)
	}
}

// transposeIdx returns a zeroed index vector of n elements, on the caller's
// array when it fits.
func transposeIdx(buf *[transposeMaxRank]int, n int) []int {
	if n <= transposeMaxRank {
		clear(buf[:n])
		return buf[:n]
	}
	return make([]int, n)
}

// runs copies the contiguous runs of rows [lo, hi) of the destination's
// outer axes.
func (j *transposeJob[E]) runs(lo, hi int) {
	n := len(j.dd)
	run := j.dd[n-1]
	var buf [transposeMaxRank]int
	idx := transposeIdx(&buf, n-1)
	transposeDecode(idx, lo, j.dd[:n-1])
	ds := j.ds
	for row := lo; row < hi; row++ {
		s := 0
		for a, i := range idx {
			s += i * ds[a]
		}
		copy(j.dst[row*run:(row+1)*run], j.src[s:s+run])
		transposeNext(idx, j.dd[:n-1])
	}
}

// planTiles transposes between destination axis q (contiguous in the
// source) and the last destination axis, in transposeBlock-square tiles;
// the work items are (outer index, block of axis q).
func (j *transposeJob[E]) planTiles() {
	dd, ds, dStr := j.dd, j.ds, j.dStr
	n := len(dd)
	j.q = -1
	for a := range n - 1 {
		if ds[a] == 1 {
			j.q = a
		}
	}
	j.last, j.sl = dd[n-1], ds[n-1]
	if j.q < 0 {
		// No axis is contiguous in the source (cannot happen after merging,
		// the source's last axis has stride 1); copy element by element.
		Parallel(len(j.dst), transposeGrain, j.elemsFn)
		return
	}
	od, os, odst := j.vec(3, n), j.vec(4, n), j.vec(5, n)
	for a := range n - 1 {
		if a != j.q {
			od = append(od, dd[a])
			os = append(os, ds[a])
			odst = append(odst, dStr[a])
		}
	}
	j.od, j.os, j.odst = od, os, odst
	outer := 1
	for _, d := range od {
		outer *= d
	}
	j.qBlocks = (dd[j.q] + transposeBlock - 1) / transposeBlock
	j.dq = dStr[j.q]
	var es E
	j.simd = unsafe.Sizeof(es) == 4 && transposeSIMD()
	Parallel(outer*j.qBlocks, max(1, transposeGrain/(transposeBlock*j.last)), j.tilesFn)
}

// elems copies destination elements [lo, hi) one by one.
func (j *transposeJob[E]) elems(lo, hi int) {
	dd, ds := j.dd, j.ds
	var buf [transposeMaxRank]int
	idx := transposeIdx(&buf, len(dd))
	transposeDecode(idx, lo, dd)
	for i := lo; i < hi; i++ {
		s := 0
		for a, v := range idx {
			s += v * ds[a]
		}
		j.dst[i] = j.src[s]
		transposeNext(idx, dd)
	}
}

// tiles transposes the tile work items [lo, hi).
func (j *transposeJob[E]) tiles(lo, hi int) {
	src, dst := j.src, j.dst
	od, os, odst := j.od, j.os, j.odst
	q, last, sl, qBlocks, dq := j.q, j.last, j.sl, j.qBlocks, j.dq
	nq := j.dd[q]
	var buf [transposeMaxRank]int
	idx := transposeIdx(&buf, len(od))
	transposeDecode(idx, lo/qBlocks, od)
	qb := lo % qBlocks
	for it := lo; it < hi; it++ {
		sb, db := 0, 0
		for a, v := range idx {
			sb += v * os[a]
			db += v * odst[a]
		}
		i0 := qb * transposeBlock
		i1 := min(i0+transposeBlock, nq)
		j8 := 0
		if j.simd {
			// 8x8 blocks in assembly; the Go loops below do the rest.
			if nb := (i1 - i0) / 8; nb > 0 {
				for ; j8+8 <= last; j8 += 8 {
					transpose8x8AVX2(unsafe.Pointer(&src[sb+i0+j8*sl]), unsafe.Pointer(&dst[db+i0*dq+j8]), sl*4, dq*4, nb)
				}
				for i := i0; i < i0+8*nb; i++ {
					d := dst[db+i*dq+j8 : db+i*dq+last]
					s := sb + i + j8*sl
					for k := range d {
						d[k] = src[s]
						s += sl
					}
				}
				i0 += 8 * nb
			}
		}
		for j0 := 0; j0 < last; j0 += transposeBlockJ {
			j1 := min(j0+transposeBlockJ, last)
			for i := i0; i < i1; i++ {
				d := dst[db+i*dq+j0 : db+i*dq+j1]
				s := sb + i + j0*sl
				for k := range d {
					d[k] = src[s]
					s += sl
				}
			}
		}
		if qb++; qb == qBlocks {
			qb = 0
			transposeNext(idx, od)
		}
	}
}

// transposeDecode sets idx to the row-major coordinates of flat index i in
// dims.
func transposeDecode(idx []int, i int, dims []int) {
	for a := len(dims) - 1; a >= 0; a-- {
		idx[a] = i % dims[a]
		i /= dims[a]
	}
}

// transposeNext advances idx to the next row-major coordinates in dims.
func transposeNext(idx []int, dims []int) {
	for a := len(dims) - 1; a >= 0; a-- {
		if idx[a]++; idx[a] < dims[a] {
			return
		}
		idx[a] = 0
	}
}
