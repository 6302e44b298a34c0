package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

// refIndicator is NonNegativeIndicator written from its definition,
// Sign(Sign(y) + 1): Sign keeps ±0 and NaN, so -0 and +0 give Sign(1) = 1.
func refIndicator(y float64) float64 {
	sign := func(v float64) float64 {
		switch {
		case v > 0:
			return 1
		case v < 0:
			return -1
		}
		return v // ±0 and NaN
	}
	return sign(sign(y) + 1)
}

// specialValues returns n values mixing normal numbers with ±0, ±Inf and
// NaN (one in ten special).
func specialValues(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
		switch rng.IntN(40) {
		case 0:
			v[i] = 0
		case 1:
			v[i] = math.Copysign(0, -1)
		case 2:
			v[i] = math.NaN()
		case 3:
			v[i] = math.Inf(1)
		case 4:
			v[i] = math.Inf(-1)
		}
	}
	return v
}

// TestMaskedMulKernelBits checks the ReLU-gradient kernels (indicator and
// masked multiply) bit for bit against the definition, in float32 and
// float64, on data with signed zeros, infinities and NaNs in both operands.
func TestMaskedMulKernelBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 4099
	ys, gs := specialValues(rng, n), specialValues(rng, n)
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		ind, err := nonNegIndicatorKernel(dt)
		if err != nil {
			t.Fatal(err)
		}
		mul, err := maskedMulKernel(dt)
		if err != nil {
			t.Fatal(err)
		}
		y, g := fromF64(dt, ys), fromF64(dt, gs)
		di, dm := makeSlice(dt, n), makeSlice(dt, n)
		ind(di, []any{y})
		mul(dm, []any{g, y})
		for i := range n {
			// The reference in the operands' own precision.
			var wantI, wantM, gotI, gotM uint64
			switch dt {
			case dtypes.Float32:
				yv, gv := y.([]float32)[i], g.([]float32)[i]
				r := float32(refIndicator(float64(yv)))
				if yv != yv {
					r = yv
				}
				wantI, wantM = uint64(math.Float32bits(r)), uint64(math.Float32bits(gv*r))
				gotI, gotM = uint64(math.Float32bits(di.([]float32)[i])), uint64(math.Float32bits(dm.([]float32)[i]))
			default:
				yv, gv := y.([]float64)[i], g.([]float64)[i]
				r := refIndicator(yv)
				if yv != yv {
					r = yv
				}
				wantI, wantM = math.Float64bits(r), math.Float64bits(gv*r)
				gotI, gotM = math.Float64bits(di.([]float64)[i]), math.Float64bits(dm.([]float64)[i])
			}
			if gotI != wantI || gotM != wantM {
				t.Fatalf("%s element %d (y=%v, g=%v): indicator bits %#x want %#x, masked product %#x want %#x",
					dt, i, ys[i], gs[i], gotI, wantI, gotM, wantM)
			}
		}
	}
}

// BenchmarkMaskedMul is the ReLU-gradient instruction on one fused block of
// normal values (signs at random, as for ReLU inputs).
func BenchmarkMaskedMul(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		b.Run(fmt.Sprint(dt), func(b *testing.B) {
			fn, err := maskedMulKernel(dt)
			if err != nil {
				b.Fatal(err)
			}
			ys, gs := make([]float64, fuseBlock), make([]float64, fuseBlock)
			for i := range ys {
				ys[i], gs[i] = rng.NormFloat64(), rng.NormFloat64()
			}
			y, g := fromF64(dt, ys), fromF64(dt, gs)
			d := makeSlice(dt, fuseBlock)
			args := []any{g, y}
			for b.Loop() {
				fn(d, args)
			}
		})
	}
}
