package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// elemInputs returns n random values in [-2, 2) with NaN, -0, +0, +Inf and
// -Inf sprinkled in.
func elemInputs(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	specials := []float32{float32(math.NaN()), float32(math.Copysign(0, -1)), 0, float32(math.Inf(1)), float32(math.Inf(-1))}
	for i := range x {
		if r.IntN(7) == 0 {
			x[i] = specials[r.IntN(len(specials))]
		} else {
			x[i] = 4*r.Float32() - 2
		}
	}
	return x
}

// sameF32 reports whether a and b are equal or both NaN.
func sameF32(a, b float32) bool {
	return a == b || (a != a && b != b)
}

func TestElementwise(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(41, 42))
		for _, n := range []int{0, 1, 7, 8, 9, 16, 31, 1000, 1027} {
			a, b, g := elemInputs(r, n), elemInputs(r, n), elemInputs(r, n)
			dst := make([]float32, n)

			if err := ReLUF32(dst, a); err != nil {
				t.Fatal(err)
			}
			for i := range dst {
				want := a[i]
				if a[i] < 0 {
					want = 0
				}
				if !sameF32(dst[i], want) {
					t.Fatalf("n=%d: ReLU(%v) = %v, want %v", n, a[i], dst[i], want)
				}
			}

			if err := AddReLUF32(dst, a, b); err != nil {
				t.Fatal(err)
			}
			for i := range dst {
				want := a[i] + b[i]
				if want < 0 {
					want = 0
				}
				if !sameF32(dst[i], want) {
					t.Fatalf("n=%d: AddReLU(%v, %v) = %v, want %v", n, a[i], b[i], dst[i], want)
				}
			}

			if err := ReLUGradF32(dst, g, a); err != nil {
				t.Fatal(err)
			}
			for i := range dst {
				var want float32
				if a[i] > 0 {
					want = g[i]
				}
				if !sameF32(dst[i], want) || math.Signbit(float64(dst[i])) != math.Signbit(float64(want)) {
					t.Fatalf("n=%d: ReLUGrad(g=%v, y=%v) = %v, want %v", n, g[i], a[i], dst[i], want)
				}
			}

			if err := AddF32(dst, a, b); err != nil {
				t.Fatal(err)
			}
			for i := range dst {
				if want := a[i] + b[i]; !sameF32(dst[i], want) {
					t.Fatalf("n=%d: Add(%v, %v) = %v, want %v", n, a[i], b[i], dst[i], want)
				}
			}

			if err := MulNonNegF32(dst, g, a); err != nil {
				t.Fatal(err)
			}
			for i := range dst {
				// GoMLX's ReLU gradient: g * NonNegativeIndicator(y).
				var ind float32
				switch {
				case a[i] >= 0:
					ind = 1
				case math.IsNaN(float64(a[i])):
					ind = a[i]
				}
				want := g[i] * ind
				if !sameF32(dst[i], want) || math.Signbit(float64(dst[i])) != math.Signbit(float64(want)) && !math.IsNaN(float64(want)) {
					t.Fatalf("n=%d: MulNonNeg(g=%v, y=%v) = %v, want %v", n, g[i], a[i], dst[i], want)
				}
			}

			// Axpy on finite values, against float64.
			for i := range a {
				a[i], b[i] = 4*r.Float32()-2, 4*r.Float32()-2
			}
			copy(dst, b)
			const alpha = -0.37
			if err := AxpyF32(dst, alpha, a); err != nil {
				t.Fatal(err)
			}
			for i := range dst {
				want := float64(b[i]) + alpha*float64(a[i])
				if d := math.Abs(float64(dst[i]) - want); d > 4e-7*(math.Abs(want)+1) {
					t.Fatalf("n=%d: axpy: %v + %v*%v = %v, want %v", n, b[i], float32(alpha), a[i], dst[i], want)
				}
			}
		}
	})
}

func TestElementwiseInPlaceAndErrors(t *testing.T) {
	x := []float32{-1, 2, -3, 4, -5, 6, -7, 8, -9, 10}
	if err := ReLUF32(x, x); err != nil {
		t.Fatal(err)
	}
	for i, v := range x {
		if v < 0 || (i%2 == 1 && v != float32(i+1)) {
			t.Fatalf("in-place ReLU: x[%d] = %v", i, v)
		}
	}
	short := make([]float32, 3)
	if ReLUF32(x, short) == nil || AddReLUF32(x, x, short) == nil || ReLUGradF32(x, short, x) == nil || AxpyF32(x, 1, short) == nil ||
		AddF32(x, short, x) == nil || MulNonNegF32(x, x, short) == nil {
		t.Error("a length mismatch was accepted")
	}
}

// BenchmarkReLUGradF32 times the ReLU gradient on a ResNet-20 stage-1
// activation (128x32x32x16 float32); compare with ISA go via
// BenchmarkReLUGradF32Portable.
func BenchmarkReLUGradF32(b *testing.B) { benchReLUGrad(b) }

func BenchmarkReLUGradF32Portable(b *testing.B) { withISA(b, ISAGo, benchReLUGrad) }

func benchReLUGrad(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	n := 128 * 32 * 32 * 16
	g, y := elemInputs(r, n), elemInputs(r, n)
	dst := make([]float32, n)
	b.SetBytes(int64(12 * n))
	for b.Loop() {
		if err := ReLUGradF32(dst, g, y); err != nil {
			b.Fatal(err)
		}
	}
}
