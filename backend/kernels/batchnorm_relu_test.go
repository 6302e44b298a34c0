package kernels

import (
	"fmt"
	"math/rand/v2"
	"strings"
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

// testBatchNormReLU checks the epilogues without a kept ReLU input (ReLU,
// residual add, both) of training and inference against the reference.
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
		ref := computeRefBatchNorm(c.dims, c.axis, x, scale, offset, mean, variance, x, eps)
		relu := func(v []float64) []float64 {
			out := make([]float64, len(v))
			for i, y := range v {
				out[i] = max(y, 0)
			}
			return out
		}
		what := fmt.Sprintf("dims=%v axis=%d", c.dims, c.axis)

		normalized, bMean, bVar := make([]T, n), make([]T, nf), make([]T, nf)
		if err := BatchNormTraining(x, scale, offset, eps, l, BatchNormEpilogue[T]{ReLU: true}, normalized, bMean, bVar); err != nil {
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
		sum, infSum := make([]float64, n), make([]float64, n)
		for i := range sum {
			sum[i] = ref.normalized[i] + float64(residual[i])
			infSum[i] = ref.inference[i] + float64(residual[i])
		}
		added, aMean, aVar := make([]T, n), make([]T, nf), make([]T, nf)
		if err := BatchNormTraining(x, scale, offset, eps, l, BatchNormEpilogue[T]{Residual: residual, ReLU: true}, added, aMean, aVar); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "training+add+relu mean "+what, bnToF64(aMean), ref.mean, tol)
		poolCheck(t, "training+add+relu variance "+what, bnToF64(aVar), ref.variance, tol)
		poolCheck(t, "training+add+relu normalized "+what, bnToF64(added), relu(sum), 10*tol)
		if err := BatchNormTraining(x, scale, offset, eps, l, BatchNormEpilogue[T]{Residual: residual}, added, aMean, aVar); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "training+add normalized "+what, bnToF64(added), sum, 10*tol)

		inf := make([]T, n)
		if err := BatchNormInference(x, scale, offset, mean, variance, eps, l, BatchNormEpilogue[T]{ReLU: true}, inf); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "inference+relu "+what, bnToF64(inf), relu(ref.inference), tol)
		pre := make([]T, n)
		if err := BatchNormInference(x, scale, offset, mean, variance, eps, l, BatchNormEpilogue[T]{Residual: residual, ReLU: true, PreAct: pre}, inf); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "inference+add+relu "+what, bnToF64(inf), relu(infSum), 10*tol)
		poolCheck(t, "inference+add+relu preAct "+what, bnToF64(pre), infSum, 10*tol)
	}
}

func TestBatchNormReLU(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		t.Run("float32", func(t *testing.T) { testBatchNormReLU[float32](t, 2e-5) })
		t.Run("float64", func(t *testing.T) { testBatchNormReLU[float64](t, 1e-11) })
	})
}

// TestBatchNormEpilogueErrors checks the epilogue and ReLU-gradient
// options' consistency checks.
func TestBatchNormEpilogueErrors(t *testing.T) {
	l := BatchNormLayout{Outer: 4, Features: 8, Inner: 1}
	x, f, mask := make([]float32, 32), make([]float32, 8), make([]uint8, ReLUMaskBytes(32))
	for _, c := range []struct {
		name string
		ep   BatchNormEpilogue[float32]
		want string
	}{
		{"short residual", BatchNormEpilogue[float32]{Residual: x[:7], ReLU: true}, "residual has 7 elements"},
		{"preAct without ReLU", BatchNormEpilogue[float32]{PreAct: x}, "without a ReLU"},
		{"mask without ReLU", BatchNormEpilogue[float32]{Mask: mask}, "without a ReLU"},
		{"preAct and mask", BatchNormEpilogue[float32]{ReLU: true, PreAct: x, Mask: mask}, "both"},
	} {
		y := make([]float32, 32)
		if err := BatchNormTraining(x, f, f, 1e-3, l, c.ep, y, f, f); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("training, %s: error %v, want one containing %q", c.name, err, c.want)
		}
		if err := BatchNormInference(x, f, f, f, f, 1e-3, l, c.ep, y); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("inference, %s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		name string
		r    BatchNormReLUGrad[float32]
		want string
	}{
		{"maskedGrad without an input", BatchNormReLUGrad[float32]{MaskedGrad: x}, "without a ReLU input"},
		{"preAct and mask", BatchNormReLUGrad[float32]{PreAct: x, Mask: mask}, "both"},
		{"short maskedGrad", BatchNormReLUGrad[float32]{PreAct: x, MaskedGrad: x[:3]}, "maskedGrad has 3 elements"},
	} {
		if err := BatchNormGradient(x, f, f, f, x, 1e-3, l, c.r, make([]float32, 32), f, f); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("gradient, %s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
