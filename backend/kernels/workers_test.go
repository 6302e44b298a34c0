package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// Results must not depend on the number of workers: every reduction splits
// its sums at boundaries fixed by the shapes, and the workers only decide
// who computes which part. These tests run each kernel with GOMAXPROCS
// from 1 to 16 (more than this machine's cores is fine: the split is what
// is tested) and compare the bit patterns of the results.

// workerCounts are the GOMAXPROCS values the tests compare.
var workerCounts = []int{1, 2, 3, 4, 5, 6, 7, 8, 11, 16}

// bitsOf returns the bit patterns of s, as float64 (exact for float32,
// and -0 keeps its sign).
func bitsOf[T gemmFloat](s []T) []uint64 {
	out := make([]uint64, len(s))
	for i, v := range s {
		out[i] = math.Float64bits(float64(v))
	}
	return out
}

// checkWorkerInvariant runs f with GOMAXPROCS set to each of workerCounts
// and reports any result that is not bit-identical to the one with a single
// worker. f returns the result's values.
func checkWorkerInvariant[T gemmFloat](t *testing.T, name string, f func() []T) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var ref []uint64
	var refVals []T
	for _, w := range workerCounts {
		runtime.GOMAXPROCS(w)
		got := f()
		bits := bitsOf(got)
		if ref == nil {
			ref, refVals = bits, slices.Clone(got)
			continue
		}
		diff := 0
		first := -1
		for i := range bits {
			if bits[i] != ref[i] {
				if first < 0 {
					first = i
				}
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("%s: %d of %d elements differ with %d workers from 1 worker (first: [%d] = %g, want %g)",
				name, diff, len(bits), w, first, got[first], refVals[first])
		}
	}
}

// TestGemmWorkerInvariant covers the GEMM's ways of splitting work: row
// chunks claimed dynamically (where the pair kernel must be chosen by the
// problem, not by the chunk), column strips, a shared packed B, the k
// split with its partial sums, and the swapped product of a transposed A.
func TestGemmWorkerInvariant(t *testing.T) {
	cases := []gemmCase{
		{m: 4096, n: 16, k: 144},               // row chunks, narrow strip (pair kernel)
		{m: 4099, n: 40, k: 98},                // row chunks, a partial tile and a narrow last strip
		{m: 16, n: 2000, k: 300},               // column strips
		{m: 2000, n: 300, k: 400},              // shared packed B
		{m: 32, n: 32, k: 8192},                // k split
		{m: 40, n: 24, k: 5000, alpha: 0.5},    // k split, uneven last block
		{m: 64, n: 48, k: 3000, beta: 0.25},    // k split with beta
		{m: 784, n: 256, k: 128, transA: true}, // the MLP's weight gradient (swapped)
		{m: 300, n: 200, k: 2200, transB: true},
	}
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(21, 22))
		for _, tc := range cases {
			if tc.alpha == 0 {
				tc.alpha = 1
			}
			ar, ac, br, bc := tc.m, tc.k, tc.k, tc.n
			if tc.transA {
				ar, ac = ac, ar
			}
			if tc.transB {
				br, bc = bc, br
			}
			a32, b32, c32 := randSlice[float32](r, ar*ac), randSlice[float32](r, br*bc), randSlice[float32](r, tc.m*tc.n)
			checkWorkerInvariant(t, "f32 "+tc.String(), func() []float32 {
				c := slices.Clone(c32)
				if err := GemmF32(tc.transA, tc.transB, tc.m, tc.n, tc.k, float32(tc.alpha), a32, ac, b32, bc, float32(tc.beta), c, tc.n); err != nil {
					t.Fatal(err)
				}
				return c
			})
			a64, b64, c64 := randSlice[float64](r, ar*ac), randSlice[float64](r, br*bc), randSlice[float64](r, tc.m*tc.n)
			checkWorkerInvariant(t, "f64 "+tc.String(), func() []float64 {
				c := slices.Clone(c64)
				if err := GemmF64(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a64, ac, b64, bc, tc.beta, c, tc.n); err != nil {
					t.Fatal(err)
				}
				return c
			})
		}
	})
}

// TestConvWorkerInvariant runs the three convolutions of ResNet layers
// (forward, input gradient, kernel gradient in GoMLX's layouts, read in
// place) and a grouped one.
func TestConvWorkerInvariant(t *testing.T) {
	var cases []*ConvParams
	for _, l := range []struct{ n, h, cin, cout, s int }{
		{32, 8, 16, 16, 1}, {20, 16, 16, 32, 2}, {33, 8, 64, 64, 1}, {6, 32, 3, 16, 1},
	} {
		fwd, dgrad, wgrad := resnetConvs(l.n, l.h, l.cin, l.cout, l.s)
		gradLayouts(wgrad)
		wgrad.SwappedInput = true
		cases = append(cases, fwd, dgrad, wgrad)
	}
	cases = append(cases, &ConvParams{Batch: 8, InSpatial: []int{12, 12}, InChannels: 32, KernelSpatial: []int{3, 3},
		OutChannels: 32, OutSpatial: []int{12, 12}, FeatureGroups: 4, PadLow: []int{1, 1}, PadHigh: []int{1, 1}})
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(23, 24))
		for _, p := range cases {
			ni, nk, no := p.Sizes()
			in, k := randSlice[float32](r, ni), randSlice[float32](r, nk)
			name := fmt.Sprintf("%s swapped=%v", convString(p), p.SwappedInput)
			checkWorkerInvariant(t, name, func() []float32 {
				out := make([]float32, no)
				if err := ConvF32(p, in, k, out); err != nil {
					t.Fatal(err)
				}
				return out
			})
		}
	})
}

// TestBatchNormWorkerInvariant runs the batch-norm statistics and gradient
// sums, channels-last and channels-first, large enough to be split.
func TestBatchNormWorkerInvariant(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(25, 26))
		for _, l := range []BatchNormLayout{{Outer: 64 * 16 * 16, Features: 32, Inner: 1}, {Outer: 24, Features: 12, Inner: 40 * 40}} {
			n, nf := l.Size(), l.Features
			x, g := randSlice[float32](r, n), randSlice[float32](r, n)
			scale, offset := randSlice[float32](r, nf), randSlice[float32](r, nf)
			name := fmt.Sprintf("layout %+v", l)
			checkWorkerInvariant(t, "training "+name, func() []float32 {
				out := make([]float32, n+2*nf)
				if err := BatchNormTraining(x, scale, offset, 1e-5, l, BatchNormEpilogue[float32]{}, out[:n], out[n:n+nf], out[n+nf:]); err != nil {
					t.Fatal(err)
				}
				return out
			})
			mean, variance := randSlice[float32](r, nf), randSlice[float32](r, nf)
			for i := range variance {
				variance[i] = 1 + variance[i]*variance[i]
			}
			checkWorkerInvariant(t, "gradient "+name, func() []float32 {
				out := make([]float32, n+2*nf)
				if err := BatchNormGradient(x, scale, mean, variance, g, 1e-5, l, BatchNormReLUGrad[float32]{}, out[:n], out[n:n+nf], out[n+nf:]); err != nil {
					t.Fatal(err)
				}
				return out
			})
		}
	})
}
