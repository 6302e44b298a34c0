package kernels

import (
	"fmt"
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
	seen := make([]bool, r)
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
	// Source strides, then the destination's axes as (size, source stride)
	// with size-1 axes dropped and adjacent runs merged.
	sStr := make([]int, r)
	st := 1
	for a := r - 1; a >= 0; a-- {
		sStr[a] = st
		st *= dims[a]
	}
	var dd, ds []int
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
	n := len(dd)
	if n <= 1 {
		copy(dst, src)
		return nil
	}
	// Destination strides.
	dStr := make([]int, n)
	st = 1
	for a := n - 1; a >= 0; a-- {
		dStr[a] = st
		st *= dd[a]
	}
	if ds[n-1] == 1 {
		transposeRuns(src, dst, dd, ds, dStr)
		return nil
	}
	transposeTiles(src, dst, dd, ds, dStr)
	return nil
}

// transposeRuns copies contiguous runs of the last axis, which has source
// stride 1: rows of the destination's outer axes are split over the workers.
func transposeRuns[T any](src, dst []T, dd, ds, dStr []int) {
	n := len(dd)
	run := dd[n-1]
	rows := len(dst) / run
	Parallel(rows, max(1, transposeGrain/run), func(lo, hi int) {
		idx := make([]int, n-1)
		transposeDecode(idx, lo, dd[:n-1])
		for row := lo; row < hi; row++ {
			s := 0
			for a, i := range idx {
				s += i * ds[a]
			}
			copy(dst[row*run:(row+1)*run], src[s:s+run])
			transposeNext(idx, dd[:n-1])
		}
	})
}

// transposeTiles transposes between destination axis q (contiguous in the
// source) and the last destination axis, in transposeBlock-square tiles;
// the work items are (outer index, block of axis q).
func transposeTiles[T any](src, dst []T, dd, ds, dStr []int) {
	n := len(dd)
	q := -1
	for a := range n - 1 {
		if ds[a] == 1 {
			q = a
		}
	}
	last := dd[n-1]
	sl := ds[n-1]
	if q < 0 {
		// No axis is contiguous in the source (cannot happen after merging,
		// the source's last axis has stride 1); copy element by element.
		Parallel(len(dst), transposeGrain, func(lo, hi int) {
			idx := make([]int, n)
			transposeDecode(idx, lo, dd)
			for i := lo; i < hi; i++ {
				s := 0
				for a, v := range idx {
					s += v * ds[a]
				}
				dst[i] = src[s]
				transposeNext(idx, dd)
			}
		})
		return
	}
	// Outer axes: all but q and the last.
	var od, os, odst []int
	for a := range n - 1 {
		if a != q {
			od = append(od, dd[a])
			os = append(os, ds[a])
			odst = append(odst, dStr[a])
		}
	}
	outer := 1
	for _, d := range od {
		outer *= d
	}
	qBlocks := (dd[q] + transposeBlock - 1) / transposeBlock
	dq := dStr[q]
	items := outer * qBlocks
	var es T
	simd := unsafe.Sizeof(es) == 4 && transposeSIMD()
	Parallel(items, max(1, transposeGrain/(transposeBlock*last)), func(lo, hi int) {
		idx := make([]int, len(od))
		transposeDecode(idx, lo/qBlocks, od)
		qb := lo % qBlocks
		for it := lo; it < hi; it++ {
			sb, db := 0, 0
			for a, v := range idx {
				sb += v * os[a]
				db += v * odst[a]
			}
			i0 := qb * transposeBlock
			i1 := min(i0+transposeBlock, dd[q])
			j8 := 0
			if simd {
				// 8x8 blocks in assembly; the Go loops below do the rest.
				if nb := (i1 - i0) / 8; nb > 0 {
					for ; j8+8 <= last; j8 += 8 {
						transpose8x8AVX2(unsafe.Pointer(&src[sb+i0+j8*sl]), unsafe.Pointer(&dst[db+i0*dq+j8]), sl*4, dq*4, nb)
					}
					for i := i0; i < i0+8*nb; i++ {
						d := dst[db+i*dq+j8 : db+i*dq+last]
						s := sb + i + j8*sl
						for j := range d {
							d[j] = src[s]
							s += sl
						}
					}
					i0 += 8 * nb
					j8 = 0
				}
			}
			for j0 := 0; j0 < last; j0 += transposeBlockJ {
				j1 := min(j0+transposeBlockJ, last)
				for i := i0; i < i1; i++ {
					d := dst[db+i*dq+j0 : db+i*dq+j1]
					s := sb + i + j0*sl
					for j := range d {
						d[j] = src[s]
						s += sl
					}
				}
			}
			if qb++; qb == qBlocks {
				qb = 0
				transposeNext(idx, od)
			}
		}
	})
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
