package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestConvGradientLayouts runs the two gradient convolutions of a
// channels-last 2-D convolution (x [N, H, W, Cin], kernel [KH, KW, Cin,
// Cout], output [N, Ho, Wo, Cout], stride s, padding pl) the way
// ConvKernelLayout's doc tells backend/cpu to call them, on GoMLX's
// operands in place, and checks them against the gradients written out
// directly:
//
//	dK[kh, kw, ci, co] = sum_{n, oh, ow} x[n, oh*s+kh-pl, ow*s+kw-pl, ci] * v[n, oh, ow, co]
//	dx[n, h, w, ci]    = sum over (oh, ow, kh, kw) with oh*s+kh-pl = h, ow*s+kw-pl = w of kernel[kh, kw, ci, co] * v[n, oh, ow, co]
func TestConvGradientLayouts(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, c := range []struct{ n, h, w, cin, cout, k, s, pl int }{
			{4, 8, 8, 16, 16, 3, 1, 1},
			{3, 9, 8, 16, 32, 3, 2, 1},
			{2, 7, 7, 5, 6, 1, 2, 0},
			{2, 10, 6, 3, 16, 5, 1, 2},
		} {
			ho := (c.h+2*c.pl-c.k)/c.s + 1
			wo := (c.w+2*c.pl-c.k)/c.s + 1
			x := randSlice[float32](r, c.n*c.h*c.w*c.cin)
			kern := randSlice[float32](r, c.k*c.k*c.cin*c.cout)
			v := randSlice[float32](r, c.n*ho*wo*c.cout)
			xAt := func(n, h, w, ci int) (float64, bool) {
				if h < 0 || h >= c.h || w < 0 || w >= c.w {
					return 0, false
				}
				return float64(x[((n*c.h+h)*c.w+w)*c.cin+ci]), true
			}
			// Reference gradients, with the sums of |terms| for tolerances.
			dK, dKs := make([]float64, len(kern)), make([]float64, len(kern))
			dx, dxs := make([]float64, len(x)), make([]float64, len(x))
			for n := range c.n {
				for oh := range ho {
					for ow := range wo {
						for kh := range c.k {
							for kw := range c.k {
								h, w := oh*c.s+kh-c.pl, ow*c.s+kw-c.pl
								for ci := range c.cin {
									xv, ok := xAt(n, h, w, ci)
									if !ok {
										continue
									}
									for co := range c.cout {
										vv := float64(v[((n*ho+oh)*wo+ow)*c.cout+co])
										ki := ((kh*c.k+kw)*c.cin+ci)*c.cout + co
										dK[ki] += xv * vv
										dKs[ki] += math.Abs(xv * vv)
										xi := ((n*c.h+h)*c.w+w)*c.cin + ci
										dx[xi] += float64(kern[ki]) * vv
										dxs[xi] += math.Abs(float64(kern[ki]) * vv)
									}
								}
							}
						}
					}
				}
			}
			tol := 8 * epsOf[float32]() * float64(c.n*ho*wo+c.k*c.k*c.cout)
			check := func(what string, got []float32, want, scale []float64) {
				t.Helper()
				for i := range want {
					if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol*scale[i]+1e-30) {
						t.Fatalf("%+v: %s[%d] = %g, want %g", c, what, i, got[i], want[i])
					}
				}
			}

			// Kernel gradient: GoMLX's ConvGeneral(x, v) with x's batch and
			// channel roles swapped; x goes to [Cin, H, W, N], v and the
			// result [KH, KW, Cin, Cout] stay in place.
			xt := make([]float32, len(x))
			if err := Transpose(x, xt, []int{c.n, c.h, c.w, c.cin}, []int{3, 1, 2, 0}); err != nil {
				t.Fatal(err)
			}
			pk := &ConvParams{
				Batch: c.cin, InSpatial: []int{c.h, c.w}, InChannels: c.n,
				KernelSpatial: []int{ho, wo}, OutChannels: c.cout, OutSpatial: []int{c.k, c.k},
				KernelDilation: []int{c.s, c.s}, PadLow: []int{c.pl, c.pl},
				KernelLayout: &ConvKernelLayout{Spatial: []int{wo * c.cout, c.cout}, In: ho * wo * c.cout, Out: 1},
				OutputLayout: &ConvOutputLayout{Batch: c.cout, Spatial: []int{c.k * c.cin * c.cout, c.cin * c.cout}},
			}
			// GoMLX pads the high end so the output is exactly the kernel
			// size; any consistent PadHigh gives the same sums.
			pk.PadHigh = []int{c.k + (ho-1)*c.s - c.h - c.pl, c.k + (wo-1)*c.s - c.w - c.pl}
			gotK := make([]float32, len(kern))
			if err := ConvF32(pk, xt, v, gotK); err != nil {
				t.Fatalf("%+v: kernel gradient: %v", c, err)
			}
			check("dK", gotK, dK, dKs)

			// Input gradient: GoMLX's ConvGeneral(v, Reverse(kernel)) with
			// the kernel's channel roles swapped and input dilation s; the
			// kernel is read in place, reversed, with In = its Cout axis.
			padLo := c.k - 1 - c.pl
			pi := &ConvParams{
				Batch: c.n, InSpatial: []int{ho, wo}, InChannels: c.cout,
				KernelSpatial: []int{c.k, c.k}, OutChannels: c.cin, OutSpatial: []int{c.h, c.w},
				InputDilation: []int{c.s, c.s}, PadLow: []int{padLo, padLo},
				KernelLayout: &ConvKernelLayout{Spatial: []int{c.k * c.cin * c.cout, c.cin * c.cout}, In: 1, Out: c.cout,
					Reverse: []bool{true, true}},
			}
			pi.PadHigh = []int{c.h + c.k - 1 - (ho-1)*c.s - 1 - padLo, c.w + c.k - 1 - (wo-1)*c.s - 1 - padLo}
			gotX := make([]float32, len(x))
			if err := ConvF32(pi, v, kern, gotX); err != nil {
				t.Fatalf("%+v: input gradient: %v", c, err)
			}
			check("dx", gotX, dx, dxs)
		}
	})
}
