package cpu

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/sgt-dev/sgt/backend/kernels"
)

// stridedCopy copies a dims-shaped block from src (starting at sOff, with
// element strides sStr, possibly negative or zero) to dst (starting at dOff,
// strides dStr). It is the workhorse of the layout ops: broadcast,
// transpose, slice, reverse, pad, concatenate, dynamic slices.
type stridedCopy struct {
	dims, sStr, dStr []int
	size             int
	// tileAxis >= 0 selects the tiled transpose path: the innermost
	// destination axis is strided in the source while axis tileAxis is
	// contiguous in the source, so 2-D tiles of (tileAxis, last) are copied
	// to keep both reads and writes in cache.
	tileAxis int
	// outer axes (all but tileAxis and the last) for the tiled path.
	oDims, oS, oD []int
}

// transposeTile is the tile edge of the tiled transpose.
const transposeTile = 16

// stridedParallelMin is the minimum number of elements to copy in parallel.
const stridedParallelMin = 1 << 16

// newStridedCopy drops axes of dimension 1 and merges adjacent axes that are
// contiguous in both source and destination.
func newStridedCopy(dims, sStr, dStr []int) stridedCopy {
	c := stridedCopy{tileAxis: -1}
	c.size = 1
	for _, d := range dims {
		c.size *= d
	}
	for k := range dims {
		if dims[k] == 1 {
			continue
		}
		if n := len(c.dims); n > 0 && c.sStr[n-1] == sStr[k]*dims[k] && c.dStr[n-1] == dStr[k]*dims[k] {
			c.dims[n-1] *= dims[k]
			c.sStr[n-1], c.dStr[n-1] = sStr[k], dStr[k]
			continue
		}
		c.dims = append(c.dims, dims[k])
		c.sStr = append(c.sStr, sStr[k])
		c.dStr = append(c.dStr, dStr[k])
	}
	r := len(c.dims)
	if r >= 2 && c.dStr[r-1] == 1 && c.sStr[r-1] != 1 && c.dims[r-1] >= transposeTile {
		for j := range r - 1 {
			if c.sStr[j] == 1 && c.dims[j] >= transposeTile {
				c.tileAxis = j
			}
		}
	}
	if c.tileAxis >= 0 {
		for k := range r - 1 {
			if k != c.tileAxis {
				c.oDims = append(c.oDims, c.dims[k])
				c.oS = append(c.oS, c.sStr[k])
				c.oD = append(c.oD, c.dStr[k])
			}
		}
	}
	return c
}

// run performs the copy on typed slices of the same element type.
func (c *stridedCopy) run(dst any, dOff int, src any, sOff int) {
	if c.size == 0 {
		return
	}
	switch d := dst.(type) {
	case []float32:
		runStrided(c, d, dOff, src.([]float32), sOff)
	case []float64:
		runStrided(c, d, dOff, src.([]float64), sOff)
	case []bool:
		runStrided(c, d, dOff, src.([]bool), sOff)
	case []int8:
		runStrided(c, d, dOff, src.([]int8), sOff)
	case []int16:
		runStrided(c, d, dOff, src.([]int16), sOff)
	case []int32:
		runStrided(c, d, dOff, src.([]int32), sOff)
	case []int64:
		runStrided(c, d, dOff, src.([]int64), sOff)
	case []uint8:
		runStrided(c, d, dOff, src.([]uint8), sOff)
	case []uint16:
		runStrided(c, d, dOff, src.([]uint16), sOff)
	case []uint32:
		runStrided(c, d, dOff, src.([]uint32), sOff)
	case []uint64:
		runStrided(c, d, dOff, src.([]uint64), sOff)
	case []bfloat16.BFloat16:
		runStrided(c, d, dOff, src.([]bfloat16.BFloat16), sOff)
	default:
		panic(fmt.Sprintf("stridedCopy: unsupported type %T", dst))
	}
}

func runStrided[T any](c *stridedCopy, dst []T, dOff int, src []T, sOff int) {
	r := len(c.dims)
	if r == 0 {
		dst[dOff] = src[sOff]
		return
	}
	if c.tileAxis >= 0 {
		tiledTranspose(c, dst, dOff, src, sOff)
		return
	}
	if r == 1 || c.size < stridedParallelMin {
		stridedRange(c, dst, dOff, src, sOff, 0, c.dims[0])
		return
	}
	kernels.Parallel(c.dims[0], 1, func(lo, hi int) {
		stridedRange(c, dst, dOff, src, sOff, lo, hi)
	})
}

// stridedRange copies the part of the block with outermost index in [lo, hi).
func stridedRange[T any](c *stridedCopy, dst []T, dOff int, src []T, sOff int, lo, hi int) {
	r := len(c.dims)
	if r == 1 {
		n, ss, ds := hi-lo, c.sStr[0], c.dStr[0]
		s, d := sOff+lo*ss, dOff+lo*ds
		switch {
		case ss == 1 && ds == 1:
			copy(dst[d:d+n], src[s:s+n])
		case ss == 0 && ds == 1:
			v := src[s]
			dd := dst[d : d+n]
			for i := range dd {
				dd[i] = v
			}
		default:
			for range n {
				dst[d] = src[s]
				s += ss
				d += ds
			}
		}
		return
	}
	var idxBuf [8]int
	var idx []int
	if r <= len(idxBuf) {
		idx = idxBuf[:r]
	} else {
		idx = make([]int, r)
	}
	inner, iss, ids := c.dims[r-1], c.sStr[r-1], c.dStr[r-1]
	for o := lo; o < hi; o++ {
		s := sOff + o*c.sStr[0]
		d := dOff + o*c.dStr[0]
		for k := 1; k < r; k++ {
			idx[k] = 0
		}
		for {
			switch {
			case iss == 1 && ids == 1:
				copy(dst[d:d+inner], src[s:s+inner])
			case iss == 0 && ids == 1:
				v := src[s]
				dd := dst[d : d+inner]
				for i := range dd {
					dd[i] = v
				}
			default:
				ss, dd := s, d
				for range inner {
					dst[dd] = src[ss]
					ss += iss
					dd += ids
				}
			}
			// Advance the odometer over axes 1..r-2.
			k := r - 2
			for ; k >= 1; k-- {
				idx[k]++
				s += c.sStr[k]
				d += c.dStr[k]
				if idx[k] < c.dims[k] {
					break
				}
				s -= c.sStr[k] * c.dims[k]
				d -= c.dStr[k] * c.dims[k]
				idx[k] = 0
			}
			if k < 1 {
				break
			}
		}
	}
}

// tiledTranspose runs the tiled path: for every index of the outer axes,
// a 2-D transpose between axis tileAxis (contiguous in the source) and the
// last axis (contiguous in the destination), tile by tile.
func tiledTranspose[T any](c *stridedCopy, dst []T, dOff int, src []T, sOff int) {
	r := len(c.dims)
	nJ, nL := c.dims[c.tileAxis], c.dims[r-1]
	dJ, sL := c.dStr[c.tileAxis], c.sStr[r-1]
	outer := sizeOf(c.oDims)
	tilesJ := (nJ + transposeTile - 1) / transposeTile
	work := outer * tilesJ
	run := func(lo, hi int) {
		for w := lo; w < hi; w++ {
			o, tj := w/tilesJ, w%tilesJ
			s, d := sOff, dOff
			for k := len(c.oDims) - 1; k >= 0; k-- {
				i := o % c.oDims[k]
				o /= c.oDims[k]
				s += i * c.oS[k]
				d += i * c.oD[k]
			}
			j0, j1 := tj*transposeTile, min((tj+1)*transposeTile, nJ)
			for l0 := 0; l0 < nL; l0 += transposeTile {
				l1 := min(l0+transposeTile, nL)
				for j := j0; j < j1; j++ {
					dd := dst[d+j*dJ+l0 : d+j*dJ+l1]
					ss := s + j + l0*sL
					for l := range dd {
						dd[l] = src[ss]
						ss += sL
					}
				}
			}
		}
	}
	if c.size < stridedParallelMin {
		run(0, work)
		return
	}
	kernels.Parallel(work, 1, run)
}
