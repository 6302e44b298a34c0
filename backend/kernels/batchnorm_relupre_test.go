package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// testBatchNormReLUPre checks the ReLU epilogue that keeps its input, and
// the gradient with GoMLX's ReLU gradient rule (pass where the
// pre-activation is >= 0), against the reference: exact zeros, negative
// zeros and negatives in the pre-activation, and the pre-activation the
// training epilogue writes.
func testBatchNormReLUPre[T KernelFloat](t *testing.T, tol float64) {
	rng := rand.New(rand.NewPCG(41, 42))
	const eps = 1e-3
	negZero := T(math.Copysign(0, -1))
	for _, c := range bnReluDims {
		l, err := NewBatchNormLayout(c.dims, c.axis)
		if err != nil {
			t.Fatal(err)
		}
		nf, n := c.dims[c.axis], poolProd(c.dims)
		x := poolRandSlice[T](rng, n, -1, 3)
		scale := poolRandSlice[T](rng, nf, 0.5, 2)
		offset := poolRandSlice[T](rng, nf, -1, 1)
		mean := poolRandSlice[T](rng, nf, -1, 1)
		variance := poolRandSlice[T](rng, nf, 0.2, 2)
		gradOut := poolRandSlice[T](rng, n, -1, 1)
		pre := poolRandSlice[T](rng, n, -1, 1)
		for i := range pre {
			switch i % 5 {
			case 0:
				pre[i] = 0 // GoMLX passes the gradient at 0 ...
			case 1:
				pre[i] = negZero // ... and at -0
			}
		}
		masked := make([]T, n)
		zeros, negatives := 0, 0
		for i := range masked {
			if pre[i] >= 0 {
				masked[i] = gradOut[i]
			}
			if pre[i] == 0 {
				zeros++
			}
			if pre[i] < 0 {
				negatives++
			}
		}
		if zeros == 0 || negatives == 0 {
			t.Fatalf("dims=%v: test data lacks zeros or negatives", c.dims)
		}
		ref := computeRefBatchNorm(c.dims, c.axis, x, scale, offset, mean, variance, masked, eps)
		what := fmt.Sprintf("dims=%v axis=%d", c.dims, c.axis)

		gradX, gradScale, gradOffset := make([]T, n), make([]T, nf), make([]T, nf)
		if err := BatchNormGradient(x, scale, mean, variance, gradOut, eps, l, BatchNormReLUGrad[T]{PreAct: pre}, gradX, gradScale, gradOffset); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "relu-pre gradOffset "+what, bnToF64(gradOffset), ref.gradOffset, tol)
		poolCheck(t, "relu-pre gradScale "+what, bnToF64(gradScale), ref.gradScale, tol)
		poolCheck(t, "relu-pre gradX "+what, bnToF64(gradX), ref.gradX, 10*tol)

		// With maskedGrad (which the assembly pass does not write: the
		// portable loops run), the same gradients and the masked gradient.
		mX, mScale, mOffset, mGrad := make([]T, n), make([]T, nf), make([]T, nf), make([]T, n)
		if err := BatchNormGradient(x, scale, mean, variance, gradOut, eps, l, BatchNormReLUGrad[T]{PreAct: pre, MaskedGrad: mGrad}, mX, mScale, mOffset); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "relu-pre+maskedGrad gradOffset "+what, bnToF64(mOffset), ref.gradOffset, tol)
		poolCheck(t, "relu-pre+maskedGrad gradScale "+what, bnToF64(mScale), ref.gradScale, tol)
		poolCheck(t, "relu-pre+maskedGrad gradX "+what, bnToF64(mX), ref.gradX, 10*tol)
		for i := range mGrad {
			if mGrad[i] != masked[i] {
				t.Fatalf("%s: maskedGrad[%d] = %v, want %v (pre-activation %v)", what, i, mGrad[i], masked[i], pre[i])
			}
		}

		refT := computeRefBatchNorm(c.dims, c.axis, x, scale, offset, mean, variance, gradOut, eps)
		relu := func(v []float64) []float64 {
			out := make([]float64, len(v))
			for i, y := range v {
				out[i] = max(y, 0)
			}
			return out
		}
		normalized, preOut, bMean, bVar := make([]T, n), make([]T, n), make([]T, nf), make([]T, nf)
		if err := BatchNormTraining(x, scale, offset, eps, l, BatchNormEpilogue[T]{ReLU: true, PreAct: preOut}, normalized, bMean, bVar); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "training+relu-pre mean "+what, bnToF64(bMean), refT.mean, tol)
		poolCheck(t, "training+relu-pre variance "+what, bnToF64(bVar), refT.variance, tol)
		poolCheck(t, "training+relu-pre preAct "+what, bnToF64(preOut), refT.normalized, 10*tol)
		poolCheck(t, "training+relu-pre normalized "+what, bnToF64(normalized), relu(refT.normalized), 10*tol)

		residual := poolRandSlice[T](rng, n, -2, 2)
		sum := make([]float64, n)
		for i, v := range refT.normalized {
			sum[i] = v + float64(residual[i])
		}
		added, addPre := make([]T, n), make([]T, n)
		if err := BatchNormTraining(x, scale, offset, eps, l, BatchNormEpilogue[T]{Residual: residual, ReLU: true, PreAct: addPre}, added, bMean, bVar); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "training+add+relu-pre preAct "+what, bnToF64(addPre), sum, 10*tol)
		poolCheck(t, "training+add+relu-pre normalized "+what, bnToF64(added), relu(sum), 10*tol)
		for i := range added {
			if added[i] != max(addPre[i], 0) {
				t.Fatalf("%s: normalized[%d] = %v, want max(preAct, 0) = %v", what, i, added[i], max(addPre[i], 0))
			}
		}
	}
}

func TestBatchNormReLUPre(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		t.Run("float32", func(t *testing.T) { testBatchNormReLUPre[float32](t, 2e-5) })
		t.Run("float64", func(t *testing.T) { testBatchNormReLUPre[float64](t, 1e-11) })
	})
}

// TestBatchNormReLUPreNaN checks GoMLX's NaN rule: a NaN pre-activation
// gives a NaN gradient (Sign(NaN) is NaN), which the sums spread over its
// feature, while +Inf passes the gradient like any positive value.
func TestBatchNormReLUPreNaN(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		const nf, rows = 16, 6
		l := BatchNormLayout{Outer: rows, Features: nf, Inner: 1}
		n := l.Size()
		x, g, pre := make([]float32, n), make([]float32, n), make([]float32, n)
		scale, mean, variance := make([]float32, nf), make([]float32, nf), make([]float32, nf)
		for i := range x {
			x[i] = float32(i%7) - 3
			g[i] = float32(i%5) - 2
			pre[i] = -1
		}
		for f := range nf {
			scale[f], variance[f] = 1, 1
		}
		pre[2*nf+3] = float32(math.NaN())
		pre[1*nf+5] = float32(math.Inf(1))
		pre[4*nf+12] = float32(math.NaN()) // the Go tail is not reached: nf is a multiple of 8
		gradX, gradScale, gradOffset := make([]float32, n), make([]float32, nf), make([]float32, nf)
		if err := BatchNormGradient(x, scale, mean, variance, g, 1e-3, l, BatchNormReLUGrad[float32]{PreAct: pre}, gradX, gradScale, gradOffset); err != nil {
			t.Fatal(err)
		}
		for f := range nf {
			nan := f == 3 || f == 12
			if got := math.IsNaN(float64(gradOffset[f])); got != nan {
				t.Errorf("feature %d: gradOffset %v, want NaN: %v", f, gradOffset[f], nan)
			}
		}
		if want := g[1*nf+5]; gradOffset[5] != want {
			t.Errorf("feature 5 (+Inf pre-activation): gradOffset %v, want %v", gradOffset[5], want)
		}
		if gradOffset[0] != 0 {
			t.Errorf("feature 0 (all negative): gradOffset %v, want 0", gradOffset[0])
		}
	})
}

func TestBatchNormReLUPreErrors(t *testing.T) {
	l := BatchNormLayout{Outer: 4, Features: 2, Inner: 1}
	x, f := make([]float32, 8), make([]float32, 2)
	if err := BatchNormGradient(x, f, f, f, x, 1e-3, l, BatchNormReLUGrad[float32]{PreAct: x[:7]}, x, f, f); err == nil {
		t.Error("BatchNormGradient accepted a short preAct")
	}
	if err := BatchNormTraining(x, f, f, 1e-3, l, BatchNormEpilogue[float32]{ReLU: true, PreAct: x[:7]}, x, f, f); err == nil {
		t.Error("BatchNormTraining accepted a short preAct")
	}
	if err := BatchNormTraining(x, f, f, 1e-3, l, BatchNormEpilogue[float32]{Residual: x[:7], ReLU: true, PreAct: x}, x, f, f); err == nil {
		t.Error("BatchNormTraining accepted a short residual")
	}
}
