package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// reluMaskOf builds the ReLU mask of pre-activations (the reference for
// what the training variants record).
func reluMaskOf[T KernelFloat](pre []T) []uint8 {
	mask := make([]uint8, ReLUMaskBytes(len(pre)))
	half := len(mask) / 2
	for i, v := range pre {
		switch {
		case v >= 0:
			mask[i/8] |= 1 << (i % 8)
		case v != v:
			mask[half+i/8] |= 1 << (i % 8)
		}
	}
	return mask
}

// sameBits reports whether a and b are equal, or both NaN.
func sameBits[T KernelFloat](a, b T) bool { return a == b || (a != a && b != b) }

// testBatchNormReLUMask checks the epilogue and gradient with a ReLU mask
// against those with the pre-activation: the same outputs, bit for bit, and a mask that
// records exactly the signs (and NaNs) of the pre-activations.
func testBatchNormReLUMask[T KernelFloat](t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	const eps = 1e-3
	for _, dims := range [][]int{{5, 3, 16}, {7, 24}, {2, 2, 3, 64}, {1, 8}} {
		axis := len(dims) - 1
		l, err := NewBatchNormLayout(dims, axis)
		if err != nil {
			t.Fatal(err)
		}
		nf, n := dims[axis], poolProd(dims)
		what := fmt.Sprintf("dims=%v", dims)
		x := poolRandSlice[T](rng, n, -1, 3)
		x[n/2] = T(math.NaN()) // one feature's statistics and outputs are NaN
		scale := poolRandSlice[T](rng, nf, 0.5, 2)
		offset := poolRandSlice[T](rng, nf, -1, 1)
		residual := poolRandSlice[T](rng, n, -2, 2)

		for _, add := range []bool{false, true} {
			wantY, pre, wantMean, wantVar := make([]T, n), make([]T, n), make([]T, nf), make([]T, nf)
			gotY, gotMean, gotVar := make([]T, n), make([]T, nf), make([]T, nf)
			mask := make([]uint8, ReLUMaskBytes(n))
			for i := range mask {
				mask[i] = 0xa5 // must be overwritten
			}
			var res []T
			if add {
				res = residual
			}
			if err := BatchNormTraining(x, scale, offset, eps, l, BatchNormEpilogue[T]{Residual: res, ReLU: true, PreAct: pre}, wantY, wantMean, wantVar); err != nil {
				t.Fatal(err)
			}
			if err := BatchNormTraining(x, scale, offset, eps, l, BatchNormEpilogue[T]{Residual: res, ReLU: true, Mask: mask}, gotY, gotMean, gotVar); err != nil {
				t.Fatal(err)
			}
			for i := range wantY {
				if !sameBits(gotY[i], wantY[i]) {
					t.Fatalf("%s add=%v: normalized[%d] = %v, want %v", what, add, i, gotY[i], wantY[i])
				}
			}
			for f := range nf {
				if !sameBits(gotMean[f], wantMean[f]) || !sameBits(gotVar[f], wantVar[f]) {
					t.Fatalf("%s add=%v: feature %d statistics %v %v, want %v %v", what, add, f, gotMean[f], gotVar[f], wantMean[f], wantVar[f])
				}
			}
			want := reluMaskOf(pre)
			for i := range want {
				if mask[i] != want[i] {
					t.Fatalf("%s add=%v: mask byte %d = %08b, want %08b", what, add, i, mask[i], want[i])
				}
			}
		}

		// The gradient, with exact zeros, negative zeros, NaN and +Inf
		// among the pre-activations.
		pre := poolRandSlice[T](rng, n, -1, 1)
		for i := range pre {
			switch i % 7 {
			case 0:
				pre[i] = 0
			case 1:
				pre[i] = T(math.Copysign(0, -1))
			}
		}
		pre[n-1] = T(math.NaN())
		pre[n/3] = T(math.Inf(1))
		xs := poolRandSlice[T](rng, n, -1, 3)
		mean := poolRandSlice[T](rng, nf, -1, 1)
		variance := poolRandSlice[T](rng, nf, 0.2, 2)
		gradOut := poolRandSlice[T](rng, n, -1, 1)
		wantX, wantScale, wantOffset := make([]T, n), make([]T, nf), make([]T, nf)
		gotX, gotScale, gotOffset := make([]T, n), make([]T, nf), make([]T, nf)
		if err := BatchNormGradient(xs, scale, mean, variance, gradOut, eps, l, BatchNormReLUGrad[T]{PreAct: pre}, wantX, wantScale, wantOffset); err != nil {
			t.Fatal(err)
		}
		masked := make([]T, n)
		if err := BatchNormGradient(xs, scale, mean, variance, gradOut, eps, l, BatchNormReLUGrad[T]{Mask: reluMaskOf(pre), MaskedGrad: masked}, gotX, gotScale, gotOffset); err != nil {
			t.Fatal(err)
		}
		for i, p := range pre {
			var want T
			switch {
			case p >= 0:
				want = gradOut[i]
			case p != p:
				want = p
			}
			if !sameBits(masked[i], want) {
				t.Fatalf("%s: maskedGrad[%d] = %v, want %v (pre-activation %v)", what, i, masked[i], want, p)
			}
		}
		// Without maskedGrad, the same gradients.
		againX, againScale, againOffset := make([]T, n), make([]T, nf), make([]T, nf)
		if err := BatchNormGradient(xs, scale, mean, variance, gradOut, eps, l, BatchNormReLUGrad[T]{Mask: reluMaskOf(pre)}, againX, againScale, againOffset); err != nil {
			t.Fatal(err)
		}
		for i := range againX {
			if !sameBits(againX[i], gotX[i]) {
				t.Fatalf("%s: gradX[%d] without maskedGrad = %v, with = %v", what, i, againX[i], gotX[i])
			}
		}
		for i := range wantX {
			if !sameBits(gotX[i], wantX[i]) {
				t.Fatalf("%s: gradX[%d] = %v, want %v", what, i, gotX[i], wantX[i])
			}
		}
		for f := range nf {
			if !sameBits(gotScale[f], wantScale[f]) || !sameBits(gotOffset[f], wantOffset[f]) {
				t.Fatalf("%s: feature %d gradients %v %v, want %v %v", what, f, gotScale[f], gotOffset[f], wantScale[f], wantOffset[f])
			}
		}
	}
}

func TestBatchNormReLUMask(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		t.Run("float32", testBatchNormReLUMask[float32])
		t.Run("float64", testBatchNormReLUMask[float64])
	})
}

func TestBatchNormReLUMaskErrors(t *testing.T) {
	good := BatchNormLayout{Outer: 4, Features: 8, Inner: 1}
	x, f, mask := make([]float32, 48), make([]float32, 8), make([]uint8, ReLUMaskBytes(32))
	for _, c := range []struct {
		name string
		l    BatchNormLayout
		mask []uint8
	}{
		{"12 features", BatchNormLayout{Outer: 4, Features: 12, Inner: 1}, mask},
		{"features not innermost", BatchNormLayout{Outer: 1, Features: 8, Inner: 4}, mask},
		{"short mask", good, mask[:7]},
	} {
		ff := make([]float32, c.l.Features)
		if err := BatchNormTraining(x[:c.l.Size()], ff, ff, 1e-3, c.l, BatchNormEpilogue[float32]{ReLU: true, Mask: c.mask}, x[:c.l.Size()], ff, ff); err == nil {
			t.Errorf("%s: BatchNormTraining accepted the mask", c.name)
		}
		if err := BatchNormGradient(x[:c.l.Size()], ff, ff, ff, x[:c.l.Size()], 1e-3, c.l, BatchNormReLUGrad[float32]{Mask: c.mask}, x[:c.l.Size()], ff, ff); err == nil {
			t.Errorf("%s: BatchNormGradient accepted the mask", c.name)
		}
	}
	if err := BatchNormTraining(x[:32], f, f, 1e-3, good, BatchNormEpilogue[float32]{Residual: x[:31], ReLU: true, Mask: mask}, x[:32], f, f); err == nil {
		t.Error("BatchNormTraining accepted a short residual")
	}
	if err := BatchNormGradient(x[:32], f, f, f, x[:32], 1e-3, good, BatchNormReLUGrad[float32]{Mask: mask, MaskedGrad: x[:31]}, x[:32], f, f); err == nil {
		t.Error("BatchNormGradient accepted a short maskedGrad")
	}
}
