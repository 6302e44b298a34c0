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
		}
	})
}

func TestElementwiseInPlaceAndErrors(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		x := []float32{-1, 2, -3, 4, -5, 6, -7, 8, -9, 10}
		y := []float32{1, 1, 1, 1, 1, 1, 1, 1, 1, -1}
		if err := AddF32(x, x, y); err != nil {
			t.Fatal(err)
		}
		if err := MulNonNegF32(y, x, y); err != nil {
			t.Fatal(err)
		}
		for i := range x {
			want := float32(i+1) + 1
			if i%2 == 0 {
				want = -float32(i+1) + 1
			}
			if i == 9 {
				want = 9
			}
			if x[i] != want {
				t.Fatalf("in-place Add: x[%d] = %v, want %v", i, x[i], want)
			}
			wantY := want
			if i == 9 {
				wantY = 0
			}
			if y[i] != wantY {
				t.Fatalf("in-place MulNonNeg: y[%d] = %v, want %v", i, y[i], wantY)
			}
		}
	})
	x, short := make([]float32, 10), make([]float32, 3)
	if AddF32(x, short, x) == nil || AddF32(x, x, short) == nil || MulNonNegF32(x, x, short) == nil || MulNonNegF32(short, x, x) == nil {
		t.Error("a length mismatch was accepted")
	}
}

// BenchmarkMulNonNegF32 times GoMLX's ReLU gradient on a ResNet-20 stage-1
// activation (128x32x32x16 float32); compare with ISA go via
// BenchmarkMulNonNegF32Portable.
func BenchmarkMulNonNegF32(b *testing.B) { benchMulNonNeg(b) }

func BenchmarkMulNonNegF32Portable(b *testing.B) { withISA(b, ISAGo, benchMulNonNeg) }

func benchMulNonNeg(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	n := 128 * 32 * 32 * 16
	g, y := elemInputs(r, n), elemInputs(r, n)
	dst := make([]float32, n)
	b.SetBytes(int64(12 * n))
	for b.Loop() {
		if err := MulNonNegF32(dst, g, y); err != nil {
			b.Fatal(err)
		}
	}
}
