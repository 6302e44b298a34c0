package kernels

import (
	"fmt"
	"unsafe"
)

// convDilatedBound is XLA's DilatedBound: the size of n elements with
// dilation-1 holes inserted between them.
func convDilatedBound(n, dilation int) int {
	if n <= 0 {
		return 0
	}
	return (n-1)*dilation + 1
}

// convStridedBound is XLA's StridedBound: the number of windows of the given
// size that fit in bound with the given stride.
func convStridedBound(bound, window, stride int) int {
	if window > bound {
		return 0
	}
	return (bound-window)/stride + 1
}

// convDefault returns s[d], or def when s is empty (nil means all default).
func convDefault(s []int, d, def int) int {
	if len(s) == 0 {
		return def
	}
	return s[d]
}

// Validate checks that p describes a valid convolution: consistent numbers of
// spatial axes, positive strides and dilations, channel and batch counts
// divisible by the group counts, and OutSpatial equal to the size XLA's
// shape inference gives. Strides, InputDilation, KernelDilation, PadLow and
// PadHigh may be nil (all 1, or all 0 for paddings); FeatureGroups and
// BatchGroups of 0 mean 1.
func (p *ConvParams) Validate() error {
	if p == nil {
		return fmt.Errorf("kernels: conv: nil ConvParams")
	}
	d := len(p.InSpatial)
	for _, f := range []struct {
		name     string
		s        []int
		optional bool
	}{
		{"KernelSpatial", p.KernelSpatial, false},
		{"OutSpatial", p.OutSpatial, false},
		{"Strides", p.Strides, true},
		{"InputDilation", p.InputDilation, true},
		{"KernelDilation", p.KernelDilation, true},
		{"PadLow", p.PadLow, true},
		{"PadHigh", p.PadHigh, true},
	} {
		if len(f.s) != d && !(f.optional && len(f.s) == 0) {
			return fmt.Errorf("kernels: conv: %s has %d axes, want %d (the number of InSpatial axes)", f.name, len(f.s), d)
		}
	}
	if p.Batch < 0 || p.InChannels < 0 || p.OutChannels < 0 {
		return fmt.Errorf("kernels: conv: negative size (Batch=%d, InChannels=%d, OutChannels=%d)", p.Batch, p.InChannels, p.OutChannels)
	}
	fg, bg := max(p.FeatureGroups, 1), max(p.BatchGroups, 1)
	if p.FeatureGroups < 0 || p.BatchGroups < 0 {
		return fmt.Errorf("kernels: conv: negative group count (FeatureGroups=%d, BatchGroups=%d)", p.FeatureGroups, p.BatchGroups)
	}
	if fg > 1 && bg > 1 {
		return fmt.Errorf("kernels: conv: FeatureGroups=%d and BatchGroups=%d cannot both be > 1", fg, bg)
	}
	if p.InChannels%fg != 0 || p.OutChannels%fg != 0 {
		return fmt.Errorf("kernels: conv: InChannels=%d and OutChannels=%d must be divisible by FeatureGroups=%d", p.InChannels, p.OutChannels, fg)
	}
	if p.Batch%bg != 0 || p.OutChannels%bg != 0 {
		return fmt.Errorf("kernels: conv: Batch=%d and OutChannels=%d must be divisible by BatchGroups=%d", p.Batch, p.OutChannels, bg)
	}
	for i := 0; i < d; i++ {
		s, ld, kd := convDefault(p.Strides, i, 1), convDefault(p.InputDilation, i, 1), convDefault(p.KernelDilation, i, 1)
		if s < 1 || ld < 1 || kd < 1 {
			return fmt.Errorf("kernels: conv: spatial axis %d: stride %d, input dilation %d and kernel dilation %d must be >= 1", i, s, ld, kd)
		}
		if p.InSpatial[i] < 0 || p.KernelSpatial[i] < 0 {
			return fmt.Errorf("kernels: conv: spatial axis %d: negative size (input %d, kernel %d)", i, p.InSpatial[i], p.KernelSpatial[i])
		}
		padded := convDilatedBound(p.InSpatial[i], ld) + convDefault(p.PadLow, i, 0) + convDefault(p.PadHigh, i, 0)
		want := convStridedBound(padded, convDilatedBound(p.KernelSpatial[i], kd), s)
		if p.OutSpatial[i] != want {
			return fmt.Errorf("kernels: conv: spatial axis %d: OutSpatial is %d, want %d (input %d, input dilation %d, padding [%d, %d], kernel %d, kernel dilation %d, stride %d)",
				i, p.OutSpatial[i], want, p.InSpatial[i], ld, convDefault(p.PadLow, i, 0), convDefault(p.PadHigh, i, 0), p.KernelSpatial[i], kd, s)
		}
	}
	if err := p.validateLayouts(); err != nil {
		return err
	}
	return nil
}

// validateLayouts checks KernelLayout and OutputLayout: one stride per axis,
// positive strides and every element inside the tensor.
func (p *ConvParams) validateLayouts() error {
	d := len(p.InSpatial)
	_, nk, no := p.Sizes()
	if kl := p.KernelLayout; kl != nil {
		if len(kl.Spatial) != d || (len(kl.Reverse) != 0 && len(kl.Reverse) != d) {
			return fmt.Errorf("kernels: conv: KernelLayout has %d spatial strides and %d reverse flags, want %d", len(kl.Spatial), len(kl.Reverse), d)
		}
		last := (p.InChannels/max(p.FeatureGroups, 1)-1)*kl.In + (p.OutChannels-1)*kl.Out
		if kl.In < 1 || kl.Out < 1 {
			return fmt.Errorf("kernels: conv: KernelLayout strides In=%d and Out=%d must be >= 1", kl.In, kl.Out)
		}
		for i, st := range kl.Spatial {
			if st < 1 {
				return fmt.Errorf("kernels: conv: KernelLayout spatial stride %d is %d, must be >= 1", i, st)
			}
			last += (p.KernelSpatial[i] - 1) * st
		}
		if nk > 0 && last >= nk {
			return fmt.Errorf("kernels: conv: KernelLayout %+v addresses element %d of a kernel of %d elements", *kl, last, nk)
		}
	}
	if ol := p.OutputLayout; ol != nil {
		if len(ol.Spatial) != d {
			return fmt.Errorf("kernels: conv: OutputLayout has %d spatial strides, want %d", len(ol.Spatial), d)
		}
		if ol.Batch < 1 {
			return fmt.Errorf("kernels: conv: OutputLayout batch stride %d must be >= 1", ol.Batch)
		}
		last := (p.Batch/max(p.BatchGroups, 1)-1)*ol.Batch + p.OutChannels - 1
		for i, st := range ol.Spatial {
			if st < 1 {
				return fmt.Errorf("kernels: conv: OutputLayout spatial stride %d is %d, must be >= 1", i, st)
			}
			last += (p.OutSpatial[i] - 1) * st
		}
		if no > 0 && last >= no {
			return fmt.Errorf("kernels: conv: OutputLayout %+v addresses element %d of an output of %d elements", *ol, last, no)
		}
	}
	return nil
}

// Sizes returns the number of elements of the input, kernel and output
// tensors p describes (p must be valid).
func (p *ConvParams) Sizes() (input, kernel, output int) {
	input, kernel, output = p.Batch*p.InChannels, p.InChannels/max(p.FeatureGroups, 1)*p.OutChannels, p.Batch/max(p.BatchGroups, 1)*p.OutChannels
	for i := range p.InSpatial {
		input *= p.InSpatial[i]
		kernel *= p.KernelSpatial[i]
		output *= p.OutSpatial[i]
	}
	return input, kernel, output
}

// ConvF32 computes the float32 convolution p describes into output,
// overwriting it. It returns an error if p is invalid or a slice does not
// have the size p implies.
//
// The semantics are XLA's ConvGeneralDilated, in the layouts of ConvParams'
// doc: output[b, o..., co] is the sum over kernel taps t... and input
// channels ci < InChannels/FeatureGroups of
//
//	input[b', x..., g*InChannels/FeatureGroups + ci] * kernel[t..., ci, co]
//
// where along each spatial axis the position in the padded, dilated input
// o*stride + t*kernelDilation - padLow must be a multiple of the input
// dilation, x is that position divided by it, and positions outside the
// input count as zero. The feature group is g = co / (OutChannels /
// FeatureGroups), and the input batch is b' = bg*(Batch/BatchGroups) + b
// with the batch group bg = co / (OutChannels/BatchGroups): output channel
// chunk bg is computed from input batch chunk bg.
//
// The convolution is lowered to the blocked GEMM of GemmF32 with an implicit
// im2col: the micro-kernels read the input in place, a window row of
// channels at a time, so no patch matrix is materialised. Input dilation
// (the input gradient of strided convolutions) is first split into phases
// of output positions that see the same kernel taps, so no multiplication by
// an inserted zero is done; 1x1 stride-1 convolutions are a plain GEMM.
func ConvF32(p *ConvParams, input, kernel, output []float32) error {
	return conv(p, input, kernel, output)
}

// ConvF64 is ConvF32 for float64 tensors.
func ConvF64(p *ConvParams, input, kernel, output []float64) error {
	return conv(p, input, kernel, output)
}

func conv[T gemmFloat](p *ConvParams, input, kernel, output []T) error {
	if err := p.Validate(); err != nil {
		return err
	}
	ni, nk, no := p.Sizes()
	if len(input) != ni || len(kernel) != nk || len(output) != no {
		return fmt.Errorf("kernels: conv: got input, kernel and output of %d, %d and %d elements, want %d, %d and %d",
			len(input), len(kernel), len(output), ni, nk, no)
	}
	if no == 0 {
		return nil
	}
	if ni == 0 || nk == 0 {
		// No input or no kernel taps: every output is an empty sum.
		clear(output)
		return nil
	}
	if p.SwappedInput {
		return convSwapped(p, input, kernel, output)
	}
	plan := newConvPlan(p)
	subs := convProblems(plan, input, kernel, output)
	run := func(sp *convSub[T]) {
		if sp.zero {
			sp.clearRows()
			return
		}
		gemmRun(&sp.gemmProblem)
	}
	// Many small independent problems (e.g. grouped convolutions) run in
	// parallel with each other; big ones parallelise internally. Either way
	// each is computed as gemmRun would (the result does not depend on the
	// split).
	small := len(subs) >= 2*Workers()
	for _, sp := range subs {
		if 2*float64(sp.m)*float64(sp.n)*float64(sp.k) > 4*gemmMinParallelFlops {
			small = false
		}
	}
	if small {
		Parallel(len(subs), 1, func(lo, hi int) {
			for _, sp := range subs[lo:hi] {
				if sp.zero {
					sp.clearRows()
					continue
				}
				ws := gemmGetWorkspace[T]()
				gemmRunWith(&sp.gemmProblem, ws, 1)
				gemmPutWorkspace(ws)
			}
		})
		return nil
	}
	for _, sp := range subs {
		run(sp)
	}
	return nil
}

// convPlan is a validated convolution with defaults filled in.
type convPlan struct {
	d                   int
	outBatch            int // output batch size
	cin, cinG           int
	cout, coutG         int
	groups              int
	featureGroups       bool // groups are feature groups (else batch groups)
	in, k, out          []int
	stride, ld, kd, pad []int
	inStride, outStride []int // element strides of the spatial axes
	kStride             []int // tap strides of the kernel spatial axes
	outBatchStride      int   // elements per output batch
	// Kernel element strides: taps per spatial axis (negative when
	// reversed, with kFirst the offset of tap 0), input and output channel.
	kTap          []int
	kFirst        int
	kIn, kOut     int
	canonicalKOut bool // kernel and output in the canonical layouts
}

func newConvPlan(p *ConvParams) *convPlan {
	d := len(p.InSpatial)
	pl := &convPlan{
		d: d, cin: p.InChannels, cout: p.OutChannels,
		in: p.InSpatial, k: p.KernelSpatial, out: p.OutSpatial,
		stride: make([]int, d), ld: make([]int, d), kd: make([]int, d), pad: make([]int, d),
		inStride: make([]int, d), outStride: make([]int, d), kStride: make([]int, d),
	}
	fg, bg := max(p.FeatureGroups, 1), max(p.BatchGroups, 1)
	pl.groups, pl.featureGroups = fg, true
	if bg > 1 {
		pl.groups, pl.featureGroups = bg, false
	}
	pl.cinG, pl.coutG = p.InChannels/fg, p.OutChannels/pl.groups
	pl.outBatch = p.Batch / bg
	is, os, ks := p.InChannels, p.OutChannels, 1
	for i := d - 1; i >= 0; i-- {
		pl.stride[i] = convDefault(p.Strides, i, 1)
		pl.ld[i] = convDefault(p.InputDilation, i, 1)
		pl.kd[i] = convDefault(p.KernelDilation, i, 1)
		pl.pad[i] = convDefault(p.PadLow, i, 0)
		pl.inStride[i], pl.outStride[i], pl.kStride[i] = is, os, ks
		is *= p.InSpatial[i]
		os *= p.OutSpatial[i]
		ks *= p.KernelSpatial[i]
	}
	pl.outBatchStride = os
	pl.kIn, pl.kOut = pl.cout, 1
	pl.kTap = make([]int, d)
	for i := range d {
		pl.kTap[i] = pl.kStride[i] * pl.cinG * pl.cout
	}
	pl.canonicalKOut = p.KernelLayout == nil && p.OutputLayout == nil
	if kl := p.KernelLayout; kl != nil {
		pl.kIn, pl.kOut = kl.In, kl.Out
		for i := range d {
			pl.kTap[i] = kl.Spatial[i]
			if len(kl.Reverse) > 0 && kl.Reverse[i] {
				pl.kFirst += (p.KernelSpatial[i] - 1) * kl.Spatial[i]
				pl.kTap[i] = -kl.Spatial[i]
			}
		}
	}
	if ol := p.OutputLayout; ol != nil {
		pl.outBatchStride = ol.Batch
		copy(pl.outStride, ol.Spatial)
	}
	return pl
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func mod(a, m int) int {
	r := a % m
	if r < 0 {
		r += m
	}
	return r
}

// convAxisPhase is one spatial axis of a sub-convolution without input
// dilation: output positions r + P*j for j < J read input position
// j*stride + u*dil - pad for kernel taps t0 + Q*u, u < U.
type convAxisPhase struct {
	r, P, J   int
	t0, Q, U  int
	stride    int
	dil       int
	pad       int
	in        int
	inStride  int
	outStride int
}

// axisPhases splits spatial axis i by input dilation into the phases of
// output positions that see the same subset of kernel taps.
func (pl *convPlan) axisPhases(i int) []convAxisPhase {
	s, ld, kd, pad := pl.stride[i], pl.ld[i], pl.kd[i], pl.pad[i]
	P := ld / gcd(s, ld)
	Q := ld / gcd(kd, ld)
	var phases []convAxisPhase
	for r := 0; r < P && r < pl.out[i]; r++ {
		ph := convAxisPhase{
			r: r, P: P, J: (pl.out[i] - r + P - 1) / P, Q: Q,
			stride: s * P / ld, dil: kd * Q / ld,
			in: pl.in[i], inStride: pl.inStride[i], outStride: pl.outStride[i],
		}
		// Taps t with r*s + t*kd - pad divisible by ld.
		ph.t0 = -1
		for t := 0; t < Q; t++ {
			if mod(r*s+t*kd-pad, ld) == 0 {
				ph.t0 = t
				break
			}
		}
		if ph.t0 >= 0 && ph.t0 < pl.k[i] {
			ph.U = (pl.k[i] - ph.t0 + Q - 1) / Q
			// Input position of j = 0, u = 0 is (r*s + t0*kd - pad)/ld.
			ph.pad = -(r*s + ph.t0*kd - pad) / ld
		} else {
			ph.t0 = 0
		}
		phases = append(phases, ph)
	}
	return phases
}

// convSub is one GEMM of a convolution: one group and one input-dilation
// phase.
type convSub[T gemmFloat] struct {
	gemmProblem[T]
	zero bool // no kernel tap reaches these outputs: they are zero
}

// clearRows zeroes the output rows and columns of a sub-problem, rows in
// parallel (on many cores a serial clear of a large output would be a
// sizeable serial part of the step).
func (sp *convSub[T]) clearRows() {
	base := sp.c.base()
	Parallel(sp.m, poolGrain(sp.n), func(lo, hi int) {
		var off [1]int
		for i := lo; i < hi; i++ {
			sp.c.rowOffsets(i, off[:])
			clear(unsafe.Slice((*T)(unsafe.Add(base, off[0])), sp.n))
		}
	})
}
