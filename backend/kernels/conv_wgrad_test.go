package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// swapInput returns the canonical input [Batch, spatial..., InChannels] of
// p stored as [InChannels, spatial..., Batch] (SwappedInput's layout).
func swapInput[T gemmFloat](t *testing.T, p *ConvParams, input []T) []T {
	t.Helper()
	// Swapping the first and last axes is its own inverse: the permutation
	// from the swapped layout to the canonical one also goes back.
	_, perm := swappedToCanonical(p)
	dims := slices.Concat([]int{p.Batch}, p.InSpatial, []int{p.InChannels})
	out := make([]T, len(input))
	if err := Transpose(input, out, dims, perm); err != nil {
		t.Fatal(err)
	}
	return out
}

// gradLayouts sets on p the layouts GoMLX's kernel gradient of a
// channels-last convolution uses: the output gradient [images, kernel
// spatial..., cols] as the kernel, and the result written as [output
// spatial..., rows, cols].
func gradLayouts(p *ConvParams) {
	d := len(p.InSpatial)
	kst := stridesOf(slices.Concat([]int{p.InChannels}, p.KernelSpatial, []int{p.OutChannels}))
	p.KernelLayout = &ConvKernelLayout{Spatial: kst[1 : 1+d], In: kst[0], Out: 1}
	ost := stridesOf(slices.Concat(p.OutSpatial, []int{p.Batch, p.OutChannels}))
	p.OutputLayout = &ConvOutputLayout{Batch: ost[d], Spatial: ost[:d]}
}

// checkConvSwapped compares the convolution p with SwappedInput (and,
// when grad is set, GoMLX's kernel-gradient layouts) against naiveConv.
func checkConvSwapped[T gemmFloat](t *testing.T, r *rand.Rand, p *ConvParams, grad bool) {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatalf("%s: %v", convString(p), err)
	}
	ni, nk, no := p.Sizes()
	input, kernel := randSlice[T](r, ni), randSlice[T](r, nk)
	want, scale := naiveConv(p, input, kernel)
	q := *p
	q.SwappedInput = true
	stored := kernel
	if grad {
		gradLayouts(&q)
		// The kernel in the output-gradient layout, from the canonical one.
		kdims := slices.Concat(p.KernelSpatial, []int{p.InChannels, p.OutChannels})
		stored = make([]T, nk)
		idx := make([]int, len(kdims))
		d := len(p.InSpatial)
		for i := range kernel {
			off := idx[d]*q.KernelLayout.In + idx[d+1]
			for a, s := range q.KernelLayout.Spatial {
				off += idx[a] * s
			}
			stored[off] = kernel[i]
			transposeNext(idx, kdims)
		}
	}
	output := make([]T, no)
	for i := range output {
		output[i] = T(math.NaN())
	}
	if err := conv(&q, swapInput(t, p, input), stored, output); err != nil {
		t.Fatalf("%s: %v", convString(p), err)
	}
	depth := (ni/max(p.Batch, 1)/max(p.InChannels, 1))*p.InChannels + 4
	tol := 4 * epsOf[T]() * float64(depth)
	odims := slices.Concat([]int{p.Batch}, p.OutSpatial, []int{p.OutChannels})
	idx := make([]int, len(odims))
	ol := q.OutputLayout
	for i, w := range want {
		off := i
		if ol != nil {
			off = idx[0]*ol.Batch + idx[len(idx)-1]
			for a, s := range ol.Spatial {
				off += idx[1+a] * s
			}
		}
		got := float64(output[off])
		if d := math.Abs(got - w); !(d <= tol*scale[i]+1e-300) {
			t.Fatalf("%s (swapped input, grad layouts %v, direct %v): output %v = %g, want %g",
				convString(p), grad, q.SwappedInputDirect(), idx, got, w)
		}
		transposeNext(idx, odims)
	}
}

// swappedCases are kernel-gradient convolutions (and a few others) for the
// swapped-input tests: the direct path (rows and columns multiples of 16)
// and the transposing fallback.
func swappedCases() []*ConvParams {
	var cases []*ConvParams
	for _, l := range []struct{ n, h, cin, cout, s int }{
		{3, 8, 16, 16, 1}, {2, 8, 16, 32, 2}, {5, 6, 32, 16, 1}, {2, 7, 16, 16, 2}, {4, 5, 48, 32, 1},
		{2, 6, 3, 16, 1},  // the stem: 3 rows, padded to the row tile
		{3, 5, 20, 16, 2}, // 20 rows: a padded last tile
		{2, 6, 1, 32, 1},  // 1 row
		{2, 6, 16, 12, 1}, // 12 columns: transposed, the general path
	} {
		_, _, wgrad := resnetConvs(l.n, l.h, l.cin, l.cout, l.s)
		cases = append(cases, wgrad)
	}
	// One spatial axis, three spatial axes, pointwise, kernel dilation 3
	// with an uneven padding, and one image.
	cases = append(cases,
		&ConvParams{Batch: 16, InSpatial: []int{9}, InChannels: 3, KernelSpatial: []int{7}, OutChannels: 16, PadLow: []int{1}, PadHigh: []int{1}},
		&ConvParams{Batch: 16, InSpatial: []int{4, 3, 5}, InChannels: 2, KernelSpatial: []int{3, 2, 4}, OutChannels: 32,
			PadLow: []int{1, 0, 1}, PadHigh: []int{0, 1, 0}},
		&ConvParams{Batch: 32, InSpatial: []int{5, 5}, InChannels: 4, KernelSpatial: []int{5, 5}, OutChannels: 16},
		&ConvParams{Batch: 16, InSpatial: []int{11, 10}, InChannels: 2, KernelSpatial: []int{3, 4}, OutChannels: 16,
			KernelDilation: []int{3, 2}, Strides: []int{2, 1}, PadLow: []int{2, 0}, PadHigh: []int{1, 3}},
		&ConvParams{Batch: 16, InSpatial: []int{6, 6}, InChannels: 1, KernelSpatial: []int{6, 6}, OutChannels: 16,
			PadLow: []int{1, 1}, PadHigh: []int{1, 1}},
	)
	for _, p := range cases {
		if !convOut(p) {
			panic("bad swapped case " + convString(p))
		}
	}
	return cases
}

func TestConvSwappedInput(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, p := range swappedCases() {
			for _, grad := range []bool{false, true} {
				checkConvSwapped[float32](t, r, p, grad)
				checkConvSwapped[float64](t, r, p, grad)
			}
		}
	})
}

func TestSwappedInputDirect(t *testing.T) {
	_, _, wgrad := resnetConvs(4, 8, 16, 32, 2)
	for _, rows := range []int{16, 15, 3, 40} {
		q := *wgrad
		q.Batch = rows
		if !q.SwappedInputDirect() {
			t.Errorf("%s: not direct", convString(&q))
		}
	}
	for _, c := range []struct {
		name string
		edit func(p *ConvParams)
	}{
		{"24 columns", func(p *ConvParams) { p.OutChannels = 24 }},
		{"feature groups", func(p *ConvParams) { p.FeatureGroups = 2; p.InChannels = 4; p.OutChannels = 32 }},
		{"reversed kernel", func(p *ConvParams) {
			gradLayouts(p)
			p.KernelLayout.Reverse = []bool{true, false}
		}},
		{"kernel columns not innermost", func(p *ConvParams) {
			kst := stridesOf(slices.Concat([]int{p.OutChannels}, p.KernelSpatial, []int{p.InChannels}))
			p.KernelLayout = &ConvKernelLayout{Spatial: kst[1:3], In: 1, Out: kst[0]}
		}},
		{"invalid", func(p *ConvParams) { p.OutSpatial = []int{1, 1} }},
	} {
		q := *wgrad
		c.edit(&q)
		if q.SwappedInputDirect() {
			t.Errorf("%s: %s reported direct", c.name, convString(&q))
		}
	}
}

// TestWgradMicroKernels checks every kernel-gradient micro-kernel against
// a direct evaluation of its contract, on random segments with arbitrary
// strides (including negative and zero ones) and a C tile with a row
// stride.
func TestWgradMicroKernels(t *testing.T) {
	kernels := map[string]*wgradKernel{"go": wgradPortable}
	for _, isa := range gemmISAs {
		if isa.wgrad32 != nil {
			kernels[isa.name] = isa.wgrad32
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	for name, wk := range kernels {
		for trial := range 50 {
			const size = 4
			a, b := randSlice[float32](r, 4000), randSlice[float32](r, 4000)
			astep, bstep := (r.IntN(40)-10)*size, (r.IntN(40)-10)*size
			var segs []int
			for range r.IntN(5) {
				k := r.IntN(9)
				// Offsets keeping every step inside a and b.
				aoff := (1000 + r.IntN(1000)) * size
				boff := (1000 + r.IntN(1000)) * size
				segs = append(segs, k, aoff, boff)
			}
			ldc := (wgradNR + r.IntN(8)) * size
			c := randSlice[float32](r, wk.mr*ldc/size)
			want := make([]float64, len(c))
			for i, v := range c {
				want[i] = float64(v)
			}
			for s := 0; s+2 < len(segs); s += 3 {
				for p := 0; p < segs[s]; p++ {
					ao, bo := (segs[s+1]+p*astep)/size, (segs[s+2]+p*bstep)/size
					for i := 0; i < wk.mr; i++ {
						for j := 0; j < wgradNR; j++ {
							want[i*ldc/size+j] += float64(a[ao+i]) * float64(b[bo+j])
						}
					}
				}
			}
			args := wgradMicroArgs{nseg: len(segs) / 3, abase: unsafe.Pointer(&a[0]), bbase: unsafe.Pointer(&b[0]),
				astep: astep, bstep: bstep, c: unsafe.Pointer(&c[0]), ldc: ldc}
			if len(segs) > 0 {
				args.segs = unsafe.Pointer(&segs[0])
			}
			wk.fn(&args)
			for i, w := range want {
				if d := math.Abs(float64(c[i]) - w); d > 1e-5*(1+math.Abs(w)) {
					t.Fatalf("%s trial %d: c[%d] = %g, want %g (segments %v, steps %d %d)", name, trial, i, c[i], w, segs, astep, bstep)
				}
			}
		}
	}
}

func TestWgradMicroArgsLayout(t *testing.T) {
	var a wgradMicroArgs
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"segs", unsafe.Offsetof(a.segs), 0}, {"nseg", unsafe.Offsetof(a.nseg), 8},
		{"abase", unsafe.Offsetof(a.abase), 16}, {"bbase", unsafe.Offsetof(a.bbase), 24},
		{"astep", unsafe.Offsetof(a.astep), 32}, {"bstep", unsafe.Offsetof(a.bstep), 40},
		{"c", unsafe.Offsetof(a.c), 48}, {"ldc", unsafe.Offsetof(a.ldc), 56},
	} {
		if f.got != f.want {
			t.Errorf("wgradMicroArgs.%s at offset %d, the assembly reads %d", f.name, f.got, f.want)
		}
	}
}

// BenchmarkConvWgradF32 compares the kernel gradients of the ResNet-20
// layers at batch 128 with the input read in place (the direct path) and
// transposed first (the general path).
func BenchmarkConvWgradF32(b *testing.B) {
	const batch = 128
	for _, l := range resnet20Layers {
		fwd, _, wgrad := resnetConvs(batch, l.h, l.cin, l.cout, l.stride)
		flops := 2 * float64(batch*fwd.OutSpatial[0]*fwd.OutSpatial[1]*l.cout*l.cin*9)
		for _, swapped := range []bool{true, false} {
			q := *wgrad
			gradLayouts(&q)
			q.SwappedInput = swapped
			b.Run(fmt.Sprintf("%s/swapped=%v", l.name, swapped), func(b *testing.B) {
				benchConv[float32](b, &q, flops)
			})
		}
	}
}
