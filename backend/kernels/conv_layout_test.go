package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// stridesOf returns the row-major element strides of dims.
func stridesOf(dims []int) []int {
	st := make([]int, len(dims))
	s := 1
	for a := len(dims) - 1; a >= 0; a-- {
		st[a] = s
		s *= dims[a]
	}
	return st
}

// layoutConv returns a copy of p with a random KernelLayout (a random order
// of the kernel's axes, random reversed spatial axes) and OutputLayout (a
// random order of the output's batch and spatial axes), and the kernel
// stored in that layout, built element by element from the canonical one.
func layoutConv[T gemmFloat](r *rand.Rand, p *ConvParams, kernel []T) (*ConvParams, []T) {
	d := len(p.InSpatial)
	q := *p
	cinG := p.InChannels / max(p.FeatureGroups, 1)
	// Kernel axes: spatial..., in, out; stored in order kperm.
	kdims := slices.Concat(p.KernelSpatial, []int{cinG, p.OutChannels})
	kperm := r.Perm(d + 2)
	stored := make([]int, d+2)
	for a, ax := range kperm {
		stored[a] = kdims[ax]
	}
	sst := stridesOf(stored)
	kst := make([]int, d+2) // stride of canonical axis ax
	for a, ax := range kperm {
		kst[ax] = sst[a]
	}
	kl := &ConvKernelLayout{Spatial: kst[:d], In: kst[d], Out: kst[d+1], Reverse: make([]bool, d)}
	for i := range kl.Reverse {
		kl.Reverse[i] = r.IntN(2) == 0
	}
	q.KernelLayout = kl
	out := make([]T, len(kernel))
	idx := make([]int, d+2)
	for i := range kernel {
		off := 0
		for a, v := range idx {
			if a < d && kl.Reverse[a] {
				v = kdims[a] - 1 - v
			}
			off += v * kst[a]
		}
		out[off] = kernel[i]
		transposeNext(idx, kdims)
	}
	// Output axes: batch, spatial..., then channels innermost.
	odims := slices.Concat([]int{p.Batch / max(p.BatchGroups, 1)}, p.OutSpatial)
	operm := r.Perm(d + 1)
	ostored := make([]int, d+1)
	for a, ax := range operm {
		ostored[a] = odims[ax] * 1
	}
	ost := stridesOf(append(ostored, p.OutChannels))
	ol := &ConvOutputLayout{Spatial: make([]int, d)}
	for a, ax := range operm {
		if ax == 0 {
			ol.Batch = ost[a]
		} else {
			ol.Spatial[ax-1] = ost[a]
		}
	}
	q.OutputLayout = ol
	return &q, out
}

// checkConvLayout runs conv with random kernel and output layouts and
// compares with naiveConv on the canonical kernel.
func checkConvLayout[T gemmFloat](t *testing.T, r *rand.Rand, p *ConvParams) {
	t.Helper()
	ni, nk, no := p.Sizes()
	input, kernel := randSlice[T](r, ni), randSlice[T](r, nk)
	want, scale := naiveConv(p, input, kernel)
	q, stored := layoutConv(r, p, kernel)
	if err := q.Validate(); err != nil {
		t.Fatalf("%s with layouts %+v %+v: %v", convString(p), *q.KernelLayout, *q.OutputLayout, err)
	}
	output := make([]T, no)
	for i := range output {
		output[i] = T(math.NaN())
	}
	if err := conv(q, input, stored, output); err != nil {
		t.Fatalf("%s: %v", convString(p), err)
	}
	depth := (ni/max(p.Batch, 1)/max(p.InChannels, 1))*p.InChannels + 4
	tol := 4 * epsOf[T]() * float64(depth)
	odims := slices.Concat([]int{p.Batch / max(p.BatchGroups, 1)}, p.OutSpatial, []int{p.OutChannels})
	idx := make([]int, len(odims))
	for i, w := range want {
		off := idx[0]*q.OutputLayout.Batch + idx[len(idx)-1]
		for a, s := range q.OutputLayout.Spatial {
			off += idx[1+a] * s
		}
		got := float64(output[off])
		if d := math.Abs(got - w); !(d <= tol*scale[i]+1e-300) {
			t.Fatalf("%s, kernel layout %+v, output layout %+v: output %v = %g, want %g", convString(p), *q.KernelLayout, *q.OutputLayout, idx, got, w)
		}
		transposeNext(idx, odims)
	}
}

func TestConvLayouts(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		cases := convCases()
		for range 100 {
			cases = append(cases, randConv(r))
		}
		for _, p := range cases {
			checkConvLayout[float32](t, r, p)
			checkConvLayout[float64](t, r, p)
		}
	})
}

func TestConvLayoutValidate(t *testing.T) {
	base := ConvParams{Batch: 2, InSpatial: []int{5, 5}, InChannels: 3, KernelSpatial: []int{3, 3}, OutChannels: 4, OutSpatial: []int{3, 3}}
	for _, c := range []struct {
		name string
		kl   *ConvKernelLayout
		ol   *ConvOutputLayout
	}{
		{"kernel axes", &ConvKernelLayout{Spatial: []int{36}, In: 4, Out: 1}, nil},
		{"kernel reverse axes", &ConvKernelLayout{Spatial: []int{36, 12}, In: 4, Out: 1, Reverse: []bool{true}}, nil},
		{"kernel zero stride", &ConvKernelLayout{Spatial: []int{36, 12}, In: 0, Out: 1}, nil},
		{"kernel out of range", &ConvKernelLayout{Spatial: []int{36, 12}, In: 4, Out: 2}, nil},
		{"output axes", nil, &ConvOutputLayout{Batch: 36, Spatial: []int{12}}},
		{"output zero stride", nil, &ConvOutputLayout{Batch: 0, Spatial: []int{12, 4}}},
		{"output out of range", nil, &ConvOutputLayout{Batch: 40, Spatial: []int{12, 4}}},
	} {
		p := base
		p.KernelLayout, p.OutputLayout = c.kl, c.ol
		if err := p.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v %+v", c.name, c.kl, c.ol)
		}
	}
	p := base
	p.KernelLayout = &ConvKernelLayout{Spatial: []int{36, 12}, In: 4, Out: 1, Reverse: []bool{true, false}}
	p.OutputLayout = &ConvOutputLayout{Batch: 36, Spatial: []int{12, 4}}
	if err := p.Validate(); err != nil {
		t.Errorf("valid layouts rejected: %v", err)
	}
}
