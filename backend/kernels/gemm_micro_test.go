package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// checkMicro runs one micro-kernel on random segments and compares the
// stored tile with a direct computation of its contract (see gemmMicroArgs).
func checkMicro[T gemmFloat](t *testing.T, r *rand.Rand, name string, fn func(*gemmMicroArgs), mr, nr int, pair bool) {
	t.Helper()
	var es T
	size := int(unsafe.Sizeof(es))
	for trial := 0; trial < 40; trial++ {
		nseg := r.IntN(4)
		ks := make([]int, nseg)
		total := 0
		for s := range ks {
			ks[s] = r.IntN(40)
			if pair {
				ks[s] &^= 1
			}
			total += ks[s]
		}
		// A: one buffer holding every row of every segment (a few rows are
		// left at the zero row), at random offsets.
		const ld = 64
		a := randSlice[T](r, (nseg*mr+1)*ld)
		zeroRow := nseg * mr * ld
		clear(a[zeroRow:])
		segs := make([]int, max(nseg, 1)*(1+mr))
		rowStart := make([][]int, nseg)
		for s := 0; s < nseg; s++ {
			segs[s*(1+mr)] = ks[s]
			rowStart[s] = make([]int, mr)
			for i := 0; i < mr; i++ {
				start := (s*mr+i)*ld + r.IntN(ld-ks[s]+1)
				if r.IntN(8) == 0 {
					start = zeroRow
				}
				rowStart[s][i] = start
				segs[s*(1+mr)+1+i] = start * size
			}
		}
		b := randSlice[T](r, max(total, 1)*nr)
		bArg := b
		if pair {
			bArg = make([]T, len(b))
			off := 0
			for _, k := range ks {
				gemmPairPack(bArg[off*nr:], b[off*nr:], k)
				off += k
			}
		}
		gotMR, gotNR := 1+r.IntN(mr), 1+r.IntN(nr)
		const ldc = 40
		c := randSlice[T](r, mr*ldc)
		orig := append([]T(nil), c...)
		coffs := make([]int, mr)
		perm := r.Perm(mr)
		for i := range coffs {
			coffs[i] = perm[i] * ldc * size
		}
		alpha, beta := T(r.Float64()*2-1), T(r.Float64()*2-1)
		useBeta := r.IntN(2)
		if useBeta == 0 {
			// C must not be read: NaN would propagate.
			for i := range c {
				c[i] = T(math.NaN())
			}
		}
		args := gemmMicroArgs{segs: unsafe.Pointer(&segs[0]), nseg: nseg, abase: unsafe.Pointer(&a[0]),
			b: unsafe.Pointer(&bArg[0]), cbase: unsafe.Pointer(&c[0]), coffs: unsafe.Pointer(&coffs[0]),
			mr: gotMR, nr: gotNR, alpha32: float32(alpha), beta32: float32(beta),
			alpha64: float64(alpha), beta64: float64(beta), useBeta: useBeta}
		fn(&args)
		for i := 0; i < mr; i++ {
			row := perm[i]
			for j := 0; j < ldc; j++ {
				got := c[row*ldc+j]
				if i >= gotMR || j >= gotNR {
					if useBeta == 1 && got != orig[row*ldc+j] || useBeta == 0 && !math.IsNaN(float64(got)) {
						t.Fatalf("%s: element (%d, %d) outside the %dx%d tile was written", name, i, j, gotMR, gotNR)
					}
					continue
				}
				var acc, abs float64
				off := 0
				for s, k := range ks {
					for p := 0; p < k; p++ {
						v := float64(a[rowStart[s][i]+p]) * float64(b[(off+p)*nr+j])
						acc += v
						abs += math.Abs(v)
					}
					off += k
				}
				want := float64(alpha) * acc
				bound := math.Abs(float64(alpha)) * abs
				if useBeta == 1 {
					want += float64(beta) * float64(orig[row*ldc+j])
					bound += math.Abs(float64(beta) * float64(orig[row*ldc+j]))
				}
				if d := math.Abs(float64(got) - want); !(d <= 4*epsOf[T]()*float64(total+4)*bound+1e-300) {
					t.Fatalf("%s: trial %d: C[%d][%d] = %g, want %g", name, trial, i, j, got, want)
				}
			}
		}
	}
}

// TestGemmMicroKernels checks every micro-kernel of every available family
// directly: several segments of random (possibly zero) length, zero rows,
// partial tiles, scattered C rows, alpha and beta.
func TestGemmMicroKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, isa := range gemmISAs {
		for _, k := range []struct {
			name string
			kern gemmKernel
			f32  bool
		}{{isa.name + "/f32", isa.f32, true}, {isa.name + "/f64", isa.f64, false}} {
			kinds := []struct {
				name string
				fn   func(*gemmMicroArgs)
				nr   int
				pair bool
			}{{"wide", k.kern.wide, k.kern.nrW, false}, {"narrow", k.kern.narrow, k.kern.nrN, false}}
			if k.kern.pair != nil {
				kinds = append(kinds, struct {
					name string
					fn   func(*gemmMicroArgs)
					nr   int
					pair bool
				}{"pair", k.kern.pair, k.kern.nrN, true})
			}
			for _, kind := range kinds {
				name := k.name + "/" + kind.name
				if k.f32 {
					checkMicro[float32](t, r, name, kind.fn, k.kern.mr, kind.nr, kind.pair)
				} else {
					checkMicro[float64](t, r, name, kind.fn, k.kern.mr, kind.nr, kind.pair)
				}
			}
		}
	}
}
