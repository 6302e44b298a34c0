package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// refBatchNorm holds the reference results of the three batch-norm ops for
// an operand of dimensions dims with the given feature axis, computed
// directly from the definitions in float64 with multi-indices.
type refBatchNorm struct {
	mean, variance, normalized, inference []float64
	gradX, gradScale, gradOffset          []float64
}

func computeRefBatchNorm[T KernelFloat](dims []int, axis int, x, scale, offset, mean, variance, gradOut []T, eps float64) refBatchNorm {
	nf := dims[axis]
	n := poolProd(dims)
	m := float64(n / max(1, nf))
	r := refBatchNorm{
		mean: make([]float64, nf), variance: make([]float64, nf),
		normalized: make([]float64, n), inference: make([]float64, n),
		gradX: make([]float64, n), gradScale: make([]float64, nf), gradOffset: make([]float64, nf),
	}
	feature := func(i int) int { return poolUnflatten(i, dims)[axis] }
	for i := range n {
		r.mean[feature(i)] += float64(x[i])
	}
	for f := range nf {
		r.mean[f] /= m
	}
	for i := range n {
		d := float64(x[i]) - r.mean[feature(i)]
		r.variance[feature(i)] += d * d
	}
	for f := range nf {
		r.variance[f] /= m
	}
	for i := range n {
		f := feature(i)
		r.normalized[i] = (float64(x[i])-r.mean[f])/math.Sqrt(r.variance[f]+eps)*float64(scale[f]) + float64(offset[f])
		r.inference[i] = (float64(x[i])-float64(mean[f]))/math.Sqrt(float64(variance[f])+eps)*float64(scale[f]) + float64(offset[f])
	}
	// Gradient, XLA's batch_norm_grad with the given mean and variance.
	xhat := make([]float64, n)
	for i := range n {
		f := feature(i)
		xhat[i] = (float64(x[i]) - float64(mean[f])) / math.Sqrt(float64(variance[f])+eps)
		r.gradOffset[f] += float64(gradOut[i])
		r.gradScale[f] += float64(gradOut[i]) * xhat[i]
	}
	for i := range n {
		f := feature(i)
		r.gradX[i] = float64(scale[f]) / math.Sqrt(float64(variance[f])+eps) / m *
			(m*float64(gradOut[i]) - r.gradOffset[f] - xhat[i]*r.gradScale[f])
	}
	return r
}

func bnToF64[T KernelFloat](x []T) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func testBatchNormRandom[T KernelFloat](t *testing.T, tol float64) {
	rng := rand.New(rand.NewPCG(21, 22))
	const eps = 1e-3
	for iter := range 150 {
		dims := make([]int, 1+rng.IntN(4))
		for a := range dims {
			dims[a] = 1 + rng.IntN(6)
		}
		if iter%10 == 0 {
			// Larger operands, split over blocks and goroutines.
			dims = [][]int{{16, 9, 9, 8}, {16, 8, 9, 9}, {300, 70}, {7, 3000}}[iter/10%4]
		}
		axis := rng.IntN(len(dims))
		l, err := NewBatchNormLayout(dims, axis)
		if err != nil {
			t.Fatal(err)
		}
		nf, n := dims[axis], poolProd(dims)
		center := 4 * rng.Float64()
		x := poolRandSlice[T](rng, n, center-2, center+2)
		scale := poolRandSlice[T](rng, nf, 0.5, 2)
		offset := poolRandSlice[T](rng, nf, -1, 1)
		mean := poolRandSlice[T](rng, nf, -1, 1)
		variance := poolRandSlice[T](rng, nf, 0.2, 2)
		gradOut := poolRandSlice[T](rng, n, -1, 1)
		ref := computeRefBatchNorm(dims, axis, x, scale, offset, mean, variance, gradOut, eps)
		what := fmt.Sprintf("dims=%v axis=%d", dims, axis)

		normalized, bMean, bVar := make([]T, n), make([]T, nf), make([]T, nf)
		if err := BatchNormTraining(x, scale, offset, eps, l, BatchNormEpilogue[T]{}, normalized, bMean, bVar); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "training mean "+what, bnToF64(bMean), ref.mean, tol)
		poolCheck(t, "training variance "+what, bnToF64(bVar), ref.variance, tol)
		poolCheck(t, "training normalized "+what, bnToF64(normalized), ref.normalized, 10*tol)

		inf := make([]T, n)
		if err := BatchNormInference(x, scale, offset, mean, variance, eps, l, BatchNormEpilogue[T]{}, inf); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "inference "+what, bnToF64(inf), ref.inference, tol)

		gradX, gradScale, gradOffset := make([]T, n), make([]T, nf), make([]T, nf)
		if err := BatchNormGradient(x, scale, mean, variance, gradOut, eps, l, BatchNormReLUGrad[T]{}, gradX, gradScale, gradOffset); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, "gradOffset "+what, bnToF64(gradOffset), ref.gradOffset, tol)
		poolCheck(t, "gradScale "+what, bnToF64(gradScale), ref.gradScale, tol)
		poolCheck(t, "gradX "+what, bnToF64(gradX), ref.gradX, 10*tol)
	}
}

func TestBatchNormRandom(t *testing.T) {
	t.Run("float32", func(t *testing.T) { testBatchNormRandom[float32](t, 2e-5) })
	t.Run("float64", func(t *testing.T) { testBatchNormRandom[float64](t, 1e-11) })
}

// TestBatchNormTrainingLargeMean checks that the statistics stay accurate for
// float32 data whose mean is much larger than its spread, where a float32 or
// sum-of-squares accumulation loses most digits of the variance.
func TestBatchNormTrainingLargeMean(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, axis := range []int{1, 3} {
		dims := []int{64, 8, 16, 8}
		l, err := NewBatchNormLayout(dims, axis)
		if err != nil {
			t.Fatal(err)
		}
		nf, n := dims[axis], poolProd(dims)
		x := poolRandSlice[float32](rng, n, 3000-0.01, 3000+0.01)
		ones, zeros := make([]float32, nf), make([]float32, nf)
		for f := range ones {
			ones[f] = 1
		}
		normalized, mean, variance := make([]float32, n), make([]float32, nf), make([]float32, nf)
		if err := BatchNormTraining(x, ones, zeros, 0, l, BatchNormEpilogue[float32]{}, normalized, mean, variance); err != nil {
			t.Fatal(err)
		}
		ref := computeRefBatchNorm(dims, axis, x, ones, zeros, mean, variance, x, 0)
		poolCheck(t, fmt.Sprintf("axis %d variance", axis), bnToF64(variance), ref.variance, 1e-5)
		poolCheck(t, fmt.Sprintf("axis %d normalized", axis), bnToF64(normalized), ref.normalized, 1e-5)
	}
}

// TestBatchNormGradientIsTrainingGradient checks by central differences that
// BatchNormGradient, fed with BatchNormTraining's batch mean and variance,
// is the gradient of sum(w * normalized) with respect to x, scale and offset,
// for every feature axis.
func TestBatchNormGradientIsTrainingGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	const eps, h = 1e-2, 1e-5
	dims := []int{3, 4, 2, 3}
	for axis := range dims {
		l, err := NewBatchNormLayout(dims, axis)
		if err != nil {
			t.Fatal(err)
		}
		nf, n := dims[axis], poolProd(dims)
		x := poolRandSlice[float64](rng, n, -2, 2)
		scale := poolRandSlice[float64](rng, nf, 0.5, 2)
		offset := poolRandSlice[float64](rng, nf, -1, 1)
		w := poolRandSlice[float64](rng, n, -1, 1)
		normalized, mean, variance := make([]float64, n), make([]float64, nf), make([]float64, nf)
		loss := func() float64 {
			if err := BatchNormTraining(x, scale, offset, eps, l, BatchNormEpilogue[float64]{}, normalized, mean, variance); err != nil {
				t.Fatal(err)
			}
			s := 0.0
			for i, v := range normalized {
				s += w[i] * v
			}
			return s
		}
		loss()
		gradX, gradScale, gradOffset := make([]float64, n), make([]float64, nf), make([]float64, nf)
		if err := BatchNormGradient(x, scale, mean, variance, w, eps, l, BatchNormReLUGrad[float64]{}, gradX, gradScale, gradOffset); err != nil {
			t.Fatal(err)
		}
		fd := func(v []float64, i int) float64 {
			v0 := v[i]
			v[i] = v0 + h
			up := loss()
			v[i] = v0 - h
			down := loss()
			v[i] = v0
			return (up - down) / (2 * h)
		}
		for i := range x {
			if d := fd(x, i); !poolClose(gradX[i], d, 1e-6) {
				t.Fatalf("axis %d: dL/dx[%d] = %v, finite difference %v", axis, i, gradX[i], d)
			}
		}
		for f := range nf {
			if d := fd(scale, f); !poolClose(gradScale[f], d, 1e-6) {
				t.Fatalf("axis %d: dL/dscale[%d] = %v, finite difference %v", axis, f, gradScale[f], d)
			}
			if d := fd(offset, f); !poolClose(gradOffset[f], d, 1e-6) {
				t.Fatalf("axis %d: dL/doffset[%d] = %v, finite difference %v", axis, f, gradOffset[f], d)
			}
		}
	}
}

func TestBatchNormLayout(t *testing.T) {
	for _, tc := range []struct {
		dims []int
		axis int
		want BatchNormLayout
	}{
		{[]int{8, 32, 32, 16}, 3, BatchNormLayout{8 * 32 * 32, 16, 1}},
		{[]int{8, 16, 32, 32}, 1, BatchNormLayout{8, 16, 32 * 32}},
		{[]int{5}, 0, BatchNormLayout{1, 5, 1}},
		{[]int{2, 3, 4}, 0, BatchNormLayout{1, 2, 12}},
	} {
		got, err := NewBatchNormLayout(tc.dims, tc.axis)
		if err != nil || got != tc.want {
			t.Errorf("NewBatchNormLayout(%v, %d) = %+v, %v; want %+v", tc.dims, tc.axis, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		dims []int
		axis int
		want string
	}{
		{[]int{2, 3}, 2, "feature axis 2 out of range"},
		{[]int{2, 3}, -1, "feature axis -1 out of range"},
		{[]int{2, -3}, 0, "dimension 1 is -3"},
	} {
		if _, err := NewBatchNormLayout(tc.dims, tc.axis); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewBatchNormLayout(%v, %d) error = %v, want it to contain %q", tc.dims, tc.axis, err, tc.want)
		}
	}
}

func TestBatchNormErrors(t *testing.T) {
	l := BatchNormLayout{Outer: 2, Features: 3, Inner: 2}
	x, f := make([]float32, 12), make([]float32, 3)
	if err := BatchNormTraining(x[:11], f, f, 1e-3, l, BatchNormEpilogue[float32]{}, x, f, f); err == nil || !strings.Contains(err.Error(), "x has 11 elements, want 12") {
		t.Errorf("short x: error = %v", err)
	}
	if err := BatchNormInference(x, f, f[:2], f, f, 1e-3, l, BatchNormEpilogue[float32]{}, x); err == nil || !strings.Contains(err.Error(), "offset has 2 elements, want 3") {
		t.Errorf("short offset: error = %v", err)
	}
	if err := BatchNormGradient(x, f, f, f, x, 1e-3, l, BatchNormReLUGrad[float32]{}, x[:1], f, f); err == nil || !strings.Contains(err.Error(), "gradX has 1 elements, want 12") {
		t.Errorf("short gradX: error = %v", err)
	}
	if err := BatchNormGradient(x, f, f, f, x, 1e-3, BatchNormLayout{-1, 3, 2}, BatchNormReLUGrad[float32]{}, x, f, f); err == nil || !strings.Contains(err.Error(), "invalid layout") {
		t.Errorf("negative layout: error = %v", err)
	}
}

// TestBatchNormEmpty checks operands without elements: no features, or
// features without elements (whose gradients of scale and offset are zero).
func TestBatchNormEmpty(t *testing.T) {
	for _, dims := range [][]int{{4, 0}, {0, 3}, {2, 3, 0}} {
		l, err := NewBatchNormLayout(dims, 1)
		if err != nil {
			t.Fatal(err)
		}
		nf := l.Features
		f := func() []float64 { return make([]float64, nf) }
		mean, variance := f(), f()
		if err := BatchNormTraining(nil, f(), f(), 1e-3, l, BatchNormEpilogue[float64]{}, nil, mean, variance); err != nil {
			t.Fatalf("%v: %v", dims, err)
		}
		if err := BatchNormInference(nil, f(), f(), f(), f(), 1e-3, l, BatchNormEpilogue[float64]{}, nil); err != nil {
			t.Fatalf("%v: %v", dims, err)
		}
		gradScale, gradOffset := f(), f()
		for i := range gradScale {
			gradScale[i], gradOffset[i] = 5, 5
		}
		if err := BatchNormGradient(nil, f(), f(), f(), nil, 1e-3, l, BatchNormReLUGrad[float64]{}, nil, gradScale, gradOffset); err != nil {
			t.Fatalf("%v: %v", dims, err)
		}
		poolCheck(t, fmt.Sprintf("%v gradScale", dims), gradScale, f(), 0)
		poolCheck(t, fmt.Sprintf("%v gradOffset", dims), gradOffset, f(), 0)
	}
}
