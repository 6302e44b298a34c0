package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestBatchNormAllISAs runs the random batch-norm checks with every
// instruction set selected: the assembly row passes (channels-last float32
// with 8 or more features) and the portable loops.
func TestBatchNormAllISAs(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		testBatchNormRandom[float32](t, 2e-5)
	})
}

// bnReluDims are operands that exercise the assembly passes (features a
// multiple of 8, or with a Go tail) and the portable layouts.
var bnReluDims = []struct {
	dims []int
	axis int
}{
	{[]int{4, 5, 5, 16}, 3},
	{[]int{3, 7, 7, 20}, 3},
	{[]int{2, 4, 4, 64}, 3},
	{[]int{64, 8, 8, 8}, 3}, // split over blocks and goroutines
	{[]int{50, 3}, 1},
	{[]int{4, 6, 5, 5}, 1}, // channels-first
}

func testBatchNormReLU[T KernelFloat](t *testing.T, tol float64) {
	rng := rand.New(rand.NewPCG(31, 32))
	const eps = 1e-3
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
		reluOut := poolRandSlice[T](rng, n, -1, 1)
		for i := range reluOut {
			switch {
			case reluOut[i] < 0:
				reluOut[i] = 0 // a ReLU output is never negative
			case i%7 == 0:
				reluOut[i] = 1e-30 // tiny but positive: passes
			}
		}
		masked := make([]T, n)
		for i := range masked {
			if reluOut[i] > 0 {
				masked[i] = gradOut[i]
			}
		}
		ref := computeRefBatchNorm(c.dims, c.axis, x, scale, offset, mean, variance, masked, eps)
		relu := func(v []float64) []float64 {
			out := make([]float64, len(v))
			for i, y := range v {
				out[i] = max(y, 0)
			}
			return out
		}
		what := fmt.Sprintf("dims=%v axis=%d", c.dims, c.axis)

		normalized, bMean, bVar := make([]T, n), make([]T, nf), make([]T, nf)
		if err := BatchNormTrainingReLU(x, scale, offset, eps, l, normalized, bMean, bVar); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "training+relu mean "+what, bnToF64(bMean), ref.mean, tol)
		poolCheck(t, "training+relu variance "+what, bnToF64(bVar), ref.variance, tol)
		poolCheck(t, "training+relu normalized "+what, bnToF64(normalized), relu(ref.normalized), 10*tol)
		negatives := 0
		for _, v := range ref.normalized {
			if v < 0 {
				negatives++
			}
		}
		if negatives == 0 {
			t.Fatalf("%s: test data has no negative normalized values, the ReLU is not exercised", what)
		}

		residual := poolRandSlice[T](rng, n, -2, 2)
		sum := make([]float64, n)
		for i, v := range ref.normalized {
			sum[i] = v + float64(residual[i])
		}
		added, aMean, aVar := make([]T, n), make([]T, nf), make([]T, nf)
		if err := BatchNormTrainingAddReLU(x, residual, scale, offset, eps, l, added, aMean, aVar); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "training+add+relu mean "+what, bnToF64(aMean), ref.mean, tol)
		poolCheck(t, "training+add+relu variance "+what, bnToF64(aVar), ref.variance, tol)
		poolCheck(t, "training+add+relu normalized "+what, bnToF64(added), relu(sum), 10*tol)

		inf := make([]T, n)
		if err := BatchNormInferenceReLU(x, scale, offset, mean, variance, eps, l, inf); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "inference+relu "+what, bnToF64(inf), relu(ref.inference), tol)

		gradX, gradScale, gradOffset := make([]T, n), make([]T, nf), make([]T, nf)
		if err := BatchNormGradientReLU(x, scale, mean, variance, gradOut, reluOut, eps, l, gradX, gradScale, gradOffset); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "relu gradOffset "+what, bnToF64(gradOffset), ref.gradOffset, tol)
		poolCheck(t, "relu gradScale "+what, bnToF64(gradScale), ref.gradScale, tol)
		poolCheck(t, "relu gradX "+what, bnToF64(gradX), ref.gradX, 10*tol)
	}
}

func TestBatchNormReLU(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		t.Run("float32", func(t *testing.T) { testBatchNormReLU[float32](t, 2e-5) })
		t.Run("float64", func(t *testing.T) { testBatchNormReLU[float64](t, 1e-11) })
	})
}

func TestBatchNormReLUErrors(t *testing.T) {
	l := BatchNormLayout{Outer: 4, Features: 2, Inner: 1}
	x, f := make([]float32, 8), make([]float32, 2)
	if err := BatchNormGradientReLU(x, f, f, f, x, x[:7], 1e-3, l, x, f, f); err == nil {
		t.Error("BatchNormGradientReLU accepted a short reluOut")
	}
	if err := BatchNormTrainingAddReLU(x, x[:7], f, f, 1e-3, l, x, f, f); err == nil {
		t.Error("BatchNormTrainingAddReLU accepted a short residual")
	}
	if err := BatchNormTrainingReLU(x[:7], f, f, 1e-3, l, x, f, f); err == nil {
		t.Error("BatchNormTrainingReLU accepted a short x")
	}
}
