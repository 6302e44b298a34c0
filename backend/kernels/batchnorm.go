package kernels

import (
	"fmt"
	"math"
	"sync"
)

// BatchNormLayout describes a row-major operand for batch normalisation as
// [Outer, Features, Inner]: Features is the size of the feature axis, Outer
// the product of the axes before it and Inner the product of the axes after
// it. Element (o, f, i) is at flat index (o*Features+f)*Inner+i. NHWC with
// feature axis 3 is [N*H*W, C, 1]; NCHW with feature axis 1 is [N, C, H*W].
// Statistics are taken over the Outer*Inner elements of each feature.
type BatchNormLayout struct {
	// Outer is the product of the dimensions before the feature axis.
	Outer int
	// Features is the size of the feature axis.
	Features int
	// Inner is the product of the dimensions after the feature axis.
	Inner int
}

// NewBatchNormLayout returns the layout of an operand of dimensions dims
// normalised per index of featureAxis (0 <= featureAxis < len(dims)).
func NewBatchNormLayout(dims []int, featureAxis int) (BatchNormLayout, error) {
	if featureAxis < 0 || featureAxis >= len(dims) {
		return BatchNormLayout{}, fmt.Errorf("kernels.NewBatchNormLayout: feature axis %d out of range for operand dimensions %v", featureAxis, dims)
	}
	l := BatchNormLayout{Outer: 1, Features: dims[featureAxis], Inner: 1}
	for a, d := range dims {
		if d < 0 {
			return BatchNormLayout{}, fmt.Errorf("kernels.NewBatchNormLayout: dimension %d is %d, must be >= 0 (operand dimensions %v)", a, d, dims)
		}
		switch {
		case a < featureAxis:
			l.Outer *= d
		case a > featureAxis:
			l.Inner *= d
		}
	}
	return l, nil
}

// Size returns the number of elements of the operand.
func (l BatchNormLayout) Size() int { return l.Outer * l.Features * l.Inner }

// PerFeature returns the number of elements M of each feature, Outer*Inner.
func (l BatchNormLayout) PerFeature() int { return l.Outer * l.Inner }

// bnSized is a named slice length, for argument checks.
type bnSized struct {
	name string
	n    int
}

// check validates the layout and the lengths of the operand-sized slices
// full and the per-feature slices perFeature.
func (l BatchNormLayout) check(op string, full, perFeature []bnSized) error {
	if l.Outer < 0 || l.Features < 0 || l.Inner < 0 {
		return fmt.Errorf("kernels.%s: invalid layout %+v", op, l)
	}
	for _, s := range full {
		if s.n != l.Size() {
			return fmt.Errorf("kernels.%s: %s has %d elements, want %d for layout %+v", op, s.name, s.n, l.Size(), l)
		}
	}
	for _, s := range perFeature {
		if s.n != l.Features {
			return fmt.Errorf("kernels.%s: %s has %d elements, want %d (features) for layout %+v", op, s.name, s.n, l.Features, l)
		}
	}
	return nil
}

// bnBlocks returns the number of blocks the outer axis is split into for the
// per-feature reductions. It depends only on the layout, so results are
// reproducible whatever the number of workers.
func bnBlocks(l BatchNormLayout) int {
	nb := l.Size() >> 16 // about 64K elements per block
	return max(1, min(nb, 16, l.Outer))
}

// bnBlockRange returns the outer rows [o0, o1) of block b of nb.
func bnBlockRange(l BatchNormLayout, b, nb int) (o0, o1 int) {
	return b * l.Outer / nb, (b + 1) * l.Outer / nb
}

// bnReduce computes two per-feature sums in float64, split over nb outer
// blocks (parts holds 2*nb*Features float64 of scratch): for Inner == 1,
// rows(o0, o1, s1, s2) adds rows [o0, o1) into s1, s2 (length Features); for
// Inner > 1, run(f, o0, o1) returns the two sums of feature f over outer
// rows [o0, o1). The totals are written to sum1 and sum2, combined in block
// order.
func bnReduce(l BatchNormLayout, nb int, parts, sum1, sum2 []float64,
	rows func(o0, o1 int, s1, s2 []float64),
	run func(f, o0, o1 int) (float64, float64)) {
	nf := l.Features
	clear(parts)
	if l.Inner == 1 {
		Parallel(nb, 1, func(lo, hi int) {
			for b := lo; b < hi; b++ {
				o0, o1 := bnBlockRange(l, b, nb)
				p := parts[2*b*nf : 2*(b+1)*nf]
				rows(o0, o1, p[:nf], p[nf:])
			}
		})
	} else {
		Parallel(nb*nf, poolGrain(l.Outer/nb*l.Inner), func(lo, hi int) {
			for item := lo; item < hi; item++ {
				b, f := item/nf, item%nf
				o0, o1 := bnBlockRange(l, b, nb)
				parts[2*b*nf+f], parts[(2*b+1)*nf+f] = run(f, o0, o1)
			}
		})
	}
	clear(sum1)
	clear(sum2)
	for b := range nb {
		p := parts[2*b*nf : 2*(b+1)*nf]
		for f := range nf {
			sum1[f] += p[f]
			sum2[f] += p[nf+f]
		}
	}
}

// bnScratch is the per-call scratch of the batch-norm kernels, pooled so
// that steady-state calls do not allocate it.
type bnScratch struct {
	f64 []float64
	f32 []float32
	w64 []float64 // coefficients when T is float64
}

var bnScratchPool = sync.Pool{New: func() any { return new(bnScratch) }}

// bnGetScratch returns pooled scratch with nf64 float64 and nt T elements,
// all zero.
func bnGetScratch[T KernelFloat](nf64, nt int) (*bnScratch, []float64, []T) {
	s := bnScratchPool.Get().(*bnScratch)
	s.f64 = gemmGrow(s.f64, nf64)
	clear(s.f64)
	var ts []T
	var z T
	switch any(z).(type) {
	case float32:
		s.f32 = gemmGrow(s.f32, nt)
		clear(s.f32)
		ts = any(s.f32).([]T)
	default:
		s.w64 = gemmGrow(s.w64, nt)
		clear(s.w64)
		if t, ok := any(s.w64).([]T); ok {
			ts = t
		} else {
			ts = make([]T, nt) // a named float type
		}
	}
	return s, s.f64, ts
}

// bnF32 returns s as []float32 when T is float32 and the assembly passes
// are enabled, else nil.
func bnF32[T KernelFloat](s []T) []float32 {
	if !bnSIMD() {
		return nil
	}
	f, _ := any(s).([]float32)
	return f
}

// bnVec is the number of leading features the assembly passes handle (a
// multiple of 8); the Go loops do the rest.
func bnVec(nf int) int { return nf &^ 7 }

// bnAffine writes dst = ((src - hi[f]) - lo[f]) * coef[f] + add[f] for
// every element of feature f, plus res (if not nil, same layout as src),
// copied to pre (if not nil, same layout) before max(dst, 0) if relu: the
// normalisation of inference and training.
// The centre is split in two parts so that a float64 mean keeps its
// accuracy with float32 data: src - hi is exact when src is close to hi.
//
// With bits (a ReLU mask, see ReLUMaskBytes; then relu is set, pre is nil
// and the layout is channels-last with a multiple of 8 features), the signs
// of the ReLU's input go to the bitmaps instead.
func bnAffine[T KernelFloat](l BatchNormLayout, src, res, hi, lo, coef, add, dst, pre []T, bits []uint8, relu bool) {
	nf, inner := l.Features, l.Inner
	if bits != nil {
		bnAffineBits(l, src, res, hi, lo, coef, add, dst, bits)
		return
	}
	if inner == 1 {
		src32, dst32, res32, pre32 := bnF32(src), bnF32(dst), bnF32(res), bnF32(pre)
		nv := bnVec(nf)
		Parallel(l.Outer, poolGrain(nf), func(o0, o1 int) {
			hi, lo, coef, add := hi[:nf], lo[:nf], coef[:nf], add[:nf]
			f0 := 0
			if src32 != nil && nv > 0 {
				r := 0
				if relu {
					r = 1
				}
				h32, l32, c32, a32 := bnF32(hi), bnF32(lo), bnF32(coef), bnF32(add)
				var rp, pp *float32
				if res32 != nil {
					rp = &res32[o0*nf]
				}
				if pre32 != nil {
					pp = &pre32[o0*nf]
				}
				bnAffineAVX2(&src32[o0*nf], rp, &dst32[o0*nf], pp, &h32[0], &l32[0], &c32[0], &a32[0], o1-o0, nv, nf, r)
				f0 = nv
			}
			if f0 == nf {
				return
			}
			for o := o0; o < o1; o++ {
				xs, ys := src[o*nf:(o+1)*nf], dst[o*nf:(o+1)*nf]
				for f := f0; f < nf; f++ {
					y := ((xs[f]-hi[f])-lo[f])*coef[f] + add[f]
					if res != nil {
						y += res[o*nf+f]
					}
					if pre != nil {
						pre[o*nf+f] = y
					}
					if relu {
						y = bnReLU(y)
					}
					ys[f] = y
				}
			}
		})
		return
	}
	Parallel(l.Outer*nf, poolGrain(inner), func(i0, i1 int) {
		for item := i0; item < i1; item++ {
			f := item % nf
			h, c, k, a := hi[f], lo[f], coef[f], add[f]
			xs, ys := src[item*inner:(item+1)*inner], dst[item*inner:(item+1)*inner]
			for i, v := range xs {
				y := ((v-h)-c)*k + a
				if res != nil {
					y += res[item*inner+i]
				}
				if pre != nil {
					pre[item*inner+i] = y
				}
				if relu {
					y = bnReLU(y)
				}
				ys[i] = y
			}
		}
	})
}

// bnAffineBits is bnAffine with a ReLU mask (channels-last, a multiple of
// 8 features): every row's bits are whole bytes, so the rows split between
// the workers write disjoint bytes.
func bnAffineBits[T KernelFloat](l BatchNormLayout, src, res, hi, lo, coef, add, dst []T, bits []uint8) {
	nf := l.Features
	nanOff := len(bits) / 2
	src32, dst32, res32 := bnF32(src), bnF32(dst), bnF32(res)
	Parallel(l.Outer, poolGrain(nf), func(o0, o1 int) {
		hi, lo, coef, add := hi[:nf], lo[:nf], coef[:nf], add[:nf]
		if src32 != nil {
			var rp *float32
			if res32 != nil {
				rp = &res32[o0*nf]
			}
			bnAffineBitsAVX2(&src32[o0*nf], rp, &dst32[o0*nf], &bits[o0*nf/8], &bnF32(hi)[0], &bnF32(lo)[0], &bnF32(coef)[0], &bnF32(add)[0], o1-o0, nf, nanOff)
			return
		}
		for o := o0; o < o1; o++ {
			xs, ys := src[o*nf:(o+1)*nf], dst[o*nf:(o+1)*nf]
			for f0 := 0; f0 < nf; f0 += 8 {
				var ge, nan uint8
				for j := range 8 {
					f := f0 + j
					y := ((xs[f]-hi[f])-lo[f])*coef[f] + add[f]
					if res != nil {
						y += res[o*nf+f]
					}
					switch {
					case y >= 0:
						ge |= 1 << j
					case y != y:
						nan |= 1 << j
					}
					ys[f] = bnReLU(y)
				}
				bits[(o*nf+f0)/8], bits[nanOff+(o*nf+f0)/8] = ge, nan
			}
		}
	})
}

// ReLUMaskBytes returns the length of a ReLU mask of n elements: two
// bitmaps of (n+7)/8 bytes each, the first with bit i (bit i%8 of byte
// i/8) set where the ReLU's input element i is >= 0 (including -0 and
// +Inf), the second where it is NaN. A mask stands in for the ReLU's input
// (32 times larger) in GoMLX's ReLU gradient: see BatchNormEpilogue.Mask
// and BatchNormReLUGrad.Mask.
func ReLUMaskBytes(n int) int { return 2 * ((n + 7) / 8) }

// bnCheckMask checks that l suits a ReLU mask (channels-last, a multiple
// of 8 features) and that mask has its length.
func bnCheckMask(op string, l BatchNormLayout, mask []uint8) error {
	if l.Inner != 1 || l.Features%8 != 0 {
		return fmt.Errorf("kernels.%s: a ReLU mask needs the features innermost and a multiple of 8 of them, got layout %+v", op, l)
	}
	if want := ReLUMaskBytes(l.Size()); len(mask) != want {
		return fmt.Errorf("kernels.%s: mask has %d bytes, want %d for layout %+v", op, len(mask), want, l)
	}
	return nil
}

// bnCheckFull checks that s, if not nil, has l.Size() elements.
func bnCheckFull[T KernelFloat](op, name string, l BatchNormLayout, s []T) error {
	if s != nil && len(s) != l.Size() {
		return fmt.Errorf("kernels.%s: %s has %d elements, want %d for layout %+v", op, name, len(s), l.Size(), l)
	}
	return nil
}

// BatchNormEpilogue is what BatchNormTraining and BatchNormInference do
// with the normalised value y in the same pass, before writing it as their
// normalized output: y + Residual if Residual is set, then max(·, 0) if
// ReLU (NaN stays NaN), keeping the ReLU's input in PreAct or Mask for the
// gradient (BatchNormReLUGrad). The zero value does nothing.
//
// For backend/cpu: Max(bn, 0) after a batch norm is ReLU; a residual
// block's Max(Add(bn, r), 0) is Residual r with ReLU. GoMLX's ReLU gradient
// reads the ReLU's input: keep it in PreAct, or, when only fused batch-norm
// gradients read it, as a 32 times smaller Mask.
type BatchNormEpilogue[T KernelFloat] struct {
	// Residual, if not nil, is added to the normalised value: l.Size()
	// elements in x's layout.
	Residual []T
	// ReLU applies max(·, 0) after the residual add.
	ReLU bool
	// PreAct, if not nil, receives the ReLU's input (the normalised value
	// plus Residual): l.Size() elements in x's layout. It needs ReLU.
	PreAct []T
	// Mask, if not nil, receives the ReLU's input as a ReLU mask
	// (ReLUMaskBytes(l.Size()) bytes) instead. It needs ReLU, excludes
	// PreAct, and a channels-last layout (l.Inner == 1) with a multiple of
	// 8 features.
	Mask []uint8
}

// check validates the epilogue for layout l.
func (e *BatchNormEpilogue[T]) check(op string, l BatchNormLayout) error {
	if err := bnCheckFull(op, "epilogue residual", l, e.Residual); err != nil {
		return err
	}
	if err := bnCheckFull(op, "epilogue preAct", l, e.PreAct); err != nil {
		return err
	}
	if (e.PreAct != nil || e.Mask != nil) && !e.ReLU {
		return fmt.Errorf("kernels.%s: the epilogue keeps the ReLU's input (preAct or mask) without a ReLU", op)
	}
	if e.Mask != nil {
		if e.PreAct != nil {
			return fmt.Errorf("kernels.%s: the epilogue keeps the ReLU's input both as preAct and as a mask", op)
		}
		return bnCheckMask(op, l, e.Mask)
	}
	return nil
}

// BatchNormReLUGrad tells BatchNormGradient that the batch norm's output
// went through the ReLU of a BatchNormEpilogue, whose input it kept: the
// batch norm's output gradient is then gradOut masked by GoMLX's ReLU
// gradient rule (Max(a, 0) differentiates as v * NonNegativeIndicator(a) =
// v * Sign(Sign(a)+1)), in both passes of the gradient:
//
//	gradOut      where the ReLU's input is >= 0 (including -0 and +Inf)
//	0            where it is < 0
//	NaN          where it is NaN
//
// The zero value applies no mask. For backend/cpu: use it when
// Mul(gradOut, NonNegativeIndicator(a)), with a the Max's input, feeds
// BatchNormGradient's gradOut.
type BatchNormReLUGrad[T KernelFloat] struct {
	// PreAct is the ReLU's input (BatchNormEpilogue.PreAct): l.Size()
	// elements in x's layout.
	PreAct []T
	// Mask is the ReLU's input as a ReLU mask (BatchNormEpilogue.Mask),
	// instead of PreAct; it needs a channels-last layout with a multiple of
	// 8 features.
	Mask []uint8
	// MaskedGrad, if not nil, receives the masked output gradient (the
	// gradient of the ReLU's input, which a residual block also passes to
	// its shortcut) in the same pass: l.Size() elements. It needs PreAct
	// or Mask.
	MaskedGrad []T
}

// check validates the options for layout l.
func (r *BatchNormReLUGrad[T]) check(op string, l BatchNormLayout) error {
	if err := bnCheckFull(op, "ReLU preAct", l, r.PreAct); err != nil {
		return err
	}
	if err := bnCheckFull(op, "ReLU maskedGrad", l, r.MaskedGrad); err != nil {
		return err
	}
	if r.MaskedGrad != nil && r.PreAct == nil && r.Mask == nil {
		return fmt.Errorf("kernels.%s: maskedGrad without a ReLU input (preAct or mask)", op)
	}
	if r.Mask != nil {
		if r.PreAct != nil {
			return fmt.Errorf("kernels.%s: the ReLU's input is given both as preAct and as a mask", op)
		}
		return bnCheckMask(op, l, r.Mask)
	}
	return nil
}

// bnBitMasked is bnMasked with GoMLX's ReLU rule read from a ReLU mask: g
// where element i's input was >= 0, NaN where it was NaN, else 0.
func bnBitMasked[T KernelFloat](g T, bits []uint8, i int) T {
	b := uint(i & 7)
	if bits[i>>3]>>b&1 != 0 {
		return g
	}
	if bits[len(bits)/2+i>>3]>>b&1 != 0 {
		return T(math.NaN())
	}
	return 0
}

// bnReLU is max(y, 0), keeping NaN.
func bnReLU[T KernelFloat](y T) T {
	if y < 0 {
		return 0
	}
	return y
}

// BatchNormTraining normalises x with its batch statistics (XLA's
// batch_norm_training): for each feature f, mean[f] and variance[f] are the
// mean and the biased variance of its M = l.PerFeature() elements, and the
// normalised value is (x - mean[f]) * scale[f] / sqrt(variance[f] +
// epsilon) + offset[f], which goes through the epilogue ep (residual add,
// ReLU; the zero value for none) to normalized. x and normalized have
// l.Size() elements; scale, offset, mean and variance have l.Features.
// Statistics are accumulated in float64 around a per-feature shift (a
// sample of the feature), so they are accurate even for float32 data with
// a large mean.
func BatchNormTraining[T KernelFloat](x, scale, offset []T, epsilon float64, l BatchNormLayout, ep BatchNormEpilogue[T], normalized, mean, variance []T) error {
	const op = "BatchNormTraining"
	if err := l.check(op,
		[]bnSized{{"x", len(x)}, {"normalized", len(normalized)}},
		[]bnSized{{"scale", len(scale)}, {"offset", len(offset)}, {"mean", len(mean)}, {"variance", len(variance)}}); err != nil {
		return err
	}
	if err := ep.check(op, l); err != nil {
		return err
	}
	return batchNormTraining(x, scale, offset, epsilon, l, &ep, normalized, mean, variance)
}

func batchNormTraining[T KernelFloat](x, scale, offset []T, epsilon float64, l BatchNormLayout, ep *BatchNormEpilogue[T], normalized, mean, variance []T) error {
	nf, inner := l.Features, l.Inner
	if nf == 0 {
		return nil
	}
	nb := bnBlocks(l)
	scratch, work, coef := bnGetScratch[T]((2*nb+3)*nf, 2*nf)
	defer bnScratchPool.Put(scratch)
	shift, sum1, sum2, parts := work[:nf], work[nf:2*nf], work[2*nf:3*nf], work[3*nf:]
	if l.PerFeature() > 0 {
		for f := range nf {
			shift[f] = float64(x[f*inner])
		}
	}
	x32, nv := bnF32(x), bnVec(nf)
	bnReduce(l, nb, parts, sum1, sum2,
		func(o0, o1 int, s1, s2 []float64) {
			k := shift[:nf]
			s1, s2 = s1[:nf], s2[:nf]
			f0 := 0
			if x32 != nil && nv > 0 && o1 > o0 {
				bnStatsAVX2(&x32[o0*nf], &k[0], &s1[0], &s2[0], o1-o0, nv, nf)
				f0 = nv
			}
			if f0 == nf {
				return
			}
			for o := o0; o < o1; o++ {
				xs := x[o*nf : (o+1)*nf]
				for f := f0; f < nf; f++ {
					d := float64(xs[f]) - k[f]
					s1[f] += d
					s2[f] += d * d
				}
			}
		},
		func(f, o0, o1 int) (float64, float64) {
			k := shift[f]
			var s1, s2 float64
			for o := o0; o < o1; o++ {
				base := (o*nf + f) * inner
				for _, v := range x[base : base+inner] {
					d := float64(v) - k
					s1 += d
					s2 += d * d
				}
			}
			return s1, s2
		})
	m := float64(l.PerFeature())
	coef, lo := coef[:nf], coef[nf:]
	for f := range nf {
		d := sum1[f] / m
		v := max(0, sum2[f]/m-d*d)
		mu := shift[f] + d
		mean[f] = T(mu)
		lo[f] = T(mu - float64(mean[f]))
		variance[f] = T(v)
		coef[f] = T(float64(scale[f]) / math.Sqrt(v+epsilon))
	}
	bnAffine(l, x, ep.Residual, mean, lo, coef, offset, normalized, ep.PreAct, ep.Mask, ep.ReLU)
	return nil
}

// BatchNormInference normalises x with the given statistics (XLA's
// batch_norm_inference): the normalised value (x - mean[f]) * scale[f] /
// sqrt(variance[f] + epsilon) + offset[f] of every element of feature f
// goes through the epilogue ep (the zero value for none) to normalized. x
// and normalized have l.Size() elements; scale, offset, mean and variance
// have l.Features.
func BatchNormInference[T KernelFloat](x, scale, offset, mean, variance []T, epsilon float64, l BatchNormLayout, ep BatchNormEpilogue[T], normalized []T) error {
	const op = "BatchNormInference"
	if err := l.check(op,
		[]bnSized{{"x", len(x)}, {"normalized", len(normalized)}},
		[]bnSized{{"scale", len(scale)}, {"offset", len(offset)}, {"mean", len(mean)}, {"variance", len(variance)}}); err != nil {
		return err
	}
	if err := ep.check(op, l); err != nil {
		return err
	}
	scratch, _, coef := bnGetScratch[T](0, 2*l.Features)
	defer bnScratchPool.Put(scratch)
	coef, zeros := coef[:l.Features], coef[l.Features:]
	for f := range coef {
		coef[f] = T(float64(scale[f]) / math.Sqrt(float64(variance[f])+epsilon))
	}
	bnAffine(l, x, ep.Residual, mean, zeros, coef, offset, normalized, ep.PreAct, ep.Mask, ep.ReLU)
	return nil
}

// BatchNormGradient computes the gradients of batch normalisation with batch
// statistics (XLA's batch_norm_grad), given the operand x, scale, the mean
// and variance that normalised it and gradOut, the gradient of the
// normalised output, first masked as relu says when the output went
// through a ReLU (the zero value for none). With inv =
// 1/sqrt(variance[f]+epsilon), xhat = (x-mean[f])*inv, g the (masked)
// gradOut and sums over the M = l.PerFeature() elements of feature f:
//
//	gradOffset[f] = sum(g)
//	gradScale[f]  = sum(g * xhat)
//	gradX         = scale[f] * inv / M * (M*g - gradOffset[f] - xhat*gradScale[f])
//
// x, gradOut and gradX have l.Size() elements; scale, mean, variance,
// gradScale and gradOffset have l.Features. Sums are accumulated in float64.
func BatchNormGradient[T KernelFloat](x, scale, mean, variance, gradOut []T, epsilon float64, l BatchNormLayout, relu BatchNormReLUGrad[T], gradX, gradScale, gradOffset []T) error {
	const op = "BatchNormGradient"
	if err := l.check(op,
		[]bnSized{{"x", len(x)}, {"gradOut", len(gradOut)}, {"gradX", len(gradX)}},
		[]bnSized{{"scale", len(scale)}, {"mean", len(mean)}, {"variance", len(variance)},
			{"gradScale", len(gradScale)}, {"gradOffset", len(gradOffset)}}); err != nil {
		return err
	}
	if err := relu.check(op, l); err != nil {
		return err
	}
	return batchNormGradient(x, scale, mean, variance, gradOut, relu.PreAct, relu.Mask, relu.MaskedGrad, epsilon, l, gradX, gradScale, gradOffset)
}

// bnMasked returns g masked by GoMLX's ReLU gradient rule (see
// BatchNormReLUGrad) on the ReLU mask bits if not nil, else on the ReLU
// input mask[i] if mask is not nil, else g.
func bnMasked[T KernelFloat](g T, mask []T, bits []uint8, i int) T {
	if bits != nil {
		return bnBitMasked(g, bits, i)
	}
	if mask == nil {
		return g
	}
	switch m := mask[i]; {
	case m >= 0:
		return g
	case m < 0:
		return 0
	default:
		return m
	}
}

func batchNormGradient[T KernelFloat](x, scale, mean, variance, gradOut, mask []T, bits []uint8, maskedGrad []T, epsilon float64, l BatchNormLayout, gradX, gradScale, gradOffset []T) error {
	nf, inner := l.Features, l.Inner
	if nf == 0 {
		return nil
	}
	nb := bnBlocks(l)
	scratch, work, coef := bnGetScratch[T]((2*nb+3)*nf, 4*nf)
	defer bnScratchPool.Put(scratch)
	sum1, sum2, mu64, parts := work[:nf], work[nf:2*nf], work[2*nf:3*nf], work[3*nf:]
	for f := range nf {
		mu64[f] = float64(mean[f])
	}
	x32, g32, nv := bnF32(x), bnF32(gradOut), bnVec(nf)
	var m32 *float32
	if mk := bnF32(mask); len(mk) > 0 {
		m32 = &mk[0]
	}
	bnReduce(l, nb, parts, sum1, sum2,
		func(o0, o1 int, s1, s2 []float64) {
			mu := mu64[:nf]
			s1, s2 = s1[:nf], s2[:nf]
			f0 := 0
			if x32 != nil && bits != nil && o1 > o0 {
				bnGradSumsBitsAVX2(&x32[o0*nf], &g32[o0*nf], &bits[o0*nf/8], &mu[0], &s1[0], &s2[0], o1-o0, nf, len(bits)/2)
				return
			}
			if x32 != nil && nv > 0 && o1 > o0 {
				var mk *float32
				if m32 != nil {
					mk = &bnF32(mask)[o0*nf]
				}
				bnGradSumsAVX2(&x32[o0*nf], &g32[o0*nf], mk, &mu[0], &s1[0], &s2[0], o1-o0, nv, nf)
				f0 = nv
			}
			if f0 == nf {
				return
			}
			for o := o0; o < o1; o++ {
				xs, gs := x[o*nf:(o+1)*nf], gradOut[o*nf:(o+1)*nf]
				for f := f0; f < nf; f++ {
					g := float64(bnMasked(gs[f], mask, bits, o*nf+f))
					s1[f] += g
					s2[f] += g * (float64(xs[f]) - mu[f])
				}
			}
		},
		func(f, o0, o1 int) (float64, float64) {
			mu := mu64[f]
			var s1, s2 float64
			for o := o0; o < o1; o++ {
				base := (o*nf + f) * inner
				xs, gs := x[base:base+inner], gradOut[base:base+inner]
				for i, g := range gs {
					g := float64(bnMasked(g, mask, bits, base+i))
					s1 += g
					s2 += g * (float64(xs[i]) - mu)
				}
			}
			return s1, s2
		})
	// gradX = c1*g + c2*(x-mean) + c3, per feature.
	m := float64(l.PerFeature())
	c1, c2, c3, mu := coef[:nf], coef[nf:2*nf], coef[2*nf:3*nf], coef[3*nf:]
	copy(mu, mean)
	for f := range nf {
		inv := 1 / math.Sqrt(float64(variance[f])+epsilon)
		gOff, gScale := sum1[f], sum2[f]*inv
		gradOffset[f] = T(gOff)
		gradScale[f] = T(gScale)
		k := float64(scale[f]) * inv
		c1[f] = T(k)
		c2[f] = T(-k * inv * gScale / m)
		c3[f] = T(-k * gOff / m)
	}
	if inner == 1 {
		y32 := bnF32(gradX)
		Parallel(l.Outer, poolGrain(2*nf), func(lo, hi int) {
			mu, c1, c2, c3 := mu[:nf], c1[:nf], c2[:nf], c3[:nf]
			if x32 != nil && bits != nil && hi > lo {
				var gm *float32
				if gm32 := bnF32(maskedGrad); gm32 != nil {
					gm = &gm32[lo*nf]
				}
				bnGradOutBitsAVX2(&x32[lo*nf], &g32[lo*nf], &bits[lo*nf/8], &y32[lo*nf], gm, &bnF32(mu)[0], &bnF32(c1)[0], &bnF32(c2)[0], &bnF32(c3)[0], hi-lo, nf, len(bits)/2)
				return
			}
			f0 := 0
			if x32 != nil && nv > 0 && maskedGrad == nil { // (this pass does not write maskedGrad)
				var mk *float32
				if m32 != nil {
					mk = &bnF32(mask)[lo*nf]
				}
				bnGradOutAVX2(&x32[lo*nf], &g32[lo*nf], mk, &y32[lo*nf], &bnF32(mu)[0], &bnF32(c1)[0], &bnF32(c2)[0], &bnF32(c3)[0], hi-lo, nv, nf)
				f0 = nv
			}
			if f0 == nf {
				return
			}
			for o := lo; o < hi; o++ {
				xs, gs, ys := x[o*nf:(o+1)*nf], gradOut[o*nf:(o+1)*nf], gradX[o*nf:(o+1)*nf]
				for f := f0; f < nf; f++ {
					g := bnMasked(gs[f], mask, bits, o*nf+f)
					if maskedGrad != nil {
						maskedGrad[o*nf+f] = g
					}
					ys[f] = c1[f]*g + c2[f]*(xs[f]-mu[f]) + c3[f]
				}
			}
		})
		return nil
	}
	Parallel(l.Outer*nf, poolGrain(2*inner), func(lo, hi int) {
		for item := lo; item < hi; item++ {
			f := item % nf
			mu, k1, k2, k3 := mu[f], c1[f], c2[f], c3[f]
			base := item * inner
			xs, gs, ys := x[base:base+inner], gradOut[base:base+inner], gradX[base:base+inner]
			for i, g := range gs {
				g = bnMasked(g, mask, bits, base+i)
				if maskedGrad != nil {
					maskedGrad[base+i] = g
				}
				ys[i] = k1*g + k2*(xs[i]-mu) + k3
			}
		}
	})
	return nil
}
