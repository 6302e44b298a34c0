package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// naiveConv is the reference convolution: the XLA ConvGeneralDilated
// definition written out directly, accumulating in float64. Loops: output
// batch, output position, output channel, kernel tap, input channel (with
// the positions and taps iterated over all spatial axes). It also returns
// per output the sum of |input*kernel| terms, which scales the rounding
// error allowed.
func naiveConv[T gemmFloat](p *ConvParams, input, kernel []T) (want, scale []float64) {
	d := len(p.InSpatial)
	fg, bg := max(p.FeatureGroups, 1), max(p.BatchGroups, 1)
	cinG := p.InChannels / fg
	coutFG, coutBG := p.OutChannels/fg, p.OutChannels/bg
	outB := p.Batch / bg
	get := func(s []int, i, def int) int {
		if s == nil {
			return def
		}
		return s[i]
	}
	prod := func(s []int) int {
		n := 1
		for _, v := range s {
			n *= v
		}
		return n
	}
	nOut, nTaps := prod(p.OutSpatial), prod(p.KernelSpatial)
	want = make([]float64, outB*nOut*p.OutChannels)
	scale = make([]float64, len(want))
	o := make([]int, d)
	t := make([]int, d)
	in := make([]int, d)
	for ob := 0; ob < outB; ob++ {
		for op := 0; op < nOut; op++ {
			// Output position op as coordinates o.
			for i, r := d-1, op; i >= 0; i-- {
				o[i] = r % p.OutSpatial[i]
				r /= p.OutSpatial[i]
			}
			for co := 0; co < p.OutChannels; co++ {
				g := co / coutFG         // feature group
				b := co/coutBG*outB + ob // input batch of the batch group
				var sum, abs float64
				for tp := 0; tp < nTaps; tp++ {
					for i, r := d-1, tp; i >= 0; i-- {
						t[i] = r % p.KernelSpatial[i]
						r /= p.KernelSpatial[i]
					}
					inside := true
					for i := 0; i < d; i++ {
						// Position in the padded, dilated input.
						x := o[i]*get(p.Strides, i, 1) + t[i]*get(p.KernelDilation, i, 1) - get(p.PadLow, i, 0)
						ld := get(p.InputDilation, i, 1)
						if x < 0 || x%ld != 0 || x/ld >= p.InSpatial[i] {
							inside = false
							break
						}
						in[i] = x / ld
					}
					if !inside {
						continue
					}
					inPos := 0
					for i := 0; i < d; i++ {
						inPos = inPos*p.InSpatial[i] + in[i]
					}
					for ci := 0; ci < cinG; ci++ {
						x := float64(input[(b*prod(p.InSpatial)+inPos)*p.InChannels+g*cinG+ci])
						w := float64(kernel[(tp*cinG+ci)*p.OutChannels+co])
						sum += x * w
						abs += math.Abs(x * w)
					}
				}
				idx := (ob*nOut+op)*p.OutChannels + co
				want[idx], scale[idx] = sum, abs
			}
		}
	}
	return want, scale
}

// convOut fills p.OutSpatial from the other fields; it returns false if
// some axis has no output.
func convOut(p *ConvParams) bool {
	p.OutSpatial = make([]int, len(p.InSpatial))
	for i := range p.InSpatial {
		padded := convDilatedBound(p.InSpatial[i], convDefault(p.InputDilation, i, 1)) + convDefault(p.PadLow, i, 0) + convDefault(p.PadHigh, i, 0)
		p.OutSpatial[i] = convStridedBound(padded, convDilatedBound(p.KernelSpatial[i], convDefault(p.KernelDilation, i, 1)), convDefault(p.Strides, i, 1))
		if p.OutSpatial[i] <= 0 {
			return false
		}
	}
	return true
}

func convString(p *ConvParams) string {
	return fmt.Sprintf("B=%d in=%v Cin=%d k=%v Cout=%d out=%v s=%v ld=%v kd=%v pad=%v/%v fg=%d bg=%d",
		p.Batch, p.InSpatial, p.InChannels, p.KernelSpatial, p.OutChannels, p.OutSpatial, p.Strides,
		p.InputDilation, p.KernelDilation, p.PadLow, p.PadHigh, p.FeatureGroups, p.BatchGroups)
}

// checkConv runs conv on random data and compares it with naiveConv.
func checkConv[T gemmFloat](t *testing.T, r *rand.Rand, p *ConvParams) {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatalf("%s: %v", convString(p), err)
	}
	ni, nk, no := p.Sizes()
	input, kernel := randSlice[T](r, ni), randSlice[T](r, nk)
	output := make([]T, no)
	for i := range output {
		output[i] = T(math.NaN()) // must be overwritten
	}
	want, scale := naiveConv(p, input, kernel)
	if err := conv(p, input, kernel, output); err != nil {
		t.Fatalf("%s: %v", convString(p), err)
	}
	depth := (ni/max(p.Batch, 1)/max(p.InChannels, 1))*p.InChannels + 4
	tol := 4 * epsOf[T]() * float64(depth)
	for i, w := range want {
		got := float64(output[i])
		if d := math.Abs(got - w); !(d <= tol*scale[i]+1e-300) {
			t.Fatalf("%s: output[%d] = %g, want %g (diff %g)", convString(p), i, got, w, d)
		}
	}
}

// randConv returns a random valid convolution with a non-empty output.
func randConv(r *rand.Rand) *ConvParams {
	for {
		d := r.IntN(4)
		p := &ConvParams{
			Batch: 1 + r.IntN(3), InChannels: 1 + r.IntN(5), OutChannels: 1 + r.IntN(6),
			InSpatial: make([]int, d), KernelSpatial: make([]int, d),
			Strides: make([]int, d), InputDilation: make([]int, d), KernelDilation: make([]int, d),
			PadLow: make([]int, d), PadHigh: make([]int, d),
		}
		maxIn := []int{1, 12, 7, 4}[d]
		for i := 0; i < d; i++ {
			p.InSpatial[i] = 1 + r.IntN(maxIn)
			p.KernelSpatial[i] = 1 + r.IntN(3)
			p.Strides[i] = 1 + r.IntN(3)
			p.InputDilation[i] = 1 + r.IntN(3)
			p.KernelDilation[i] = 1 + r.IntN(2)
			p.PadLow[i] = r.IntN(5) - 2
			p.PadHigh[i] = r.IntN(5) - 2
		}
		switch r.IntN(4) {
		case 0:
			g := 1 + r.IntN(3)
			p.FeatureGroups = g
			p.InChannels *= g
			p.OutChannels *= g
		case 1:
			g := 1 + r.IntN(3)
			p.BatchGroups = g
			p.Batch *= g
			p.OutChannels *= g
		}
		if convOut(p) {
			return p
		}
	}
}

// convCases are hand-picked configurations: the ResNet-20 patterns
// (3x3 pad 1, stride 2, their input- and kernel-gradient convolutions as
// GoMLX builds them), 1x1 pointwise, channel counts that span several micro
// tiles and cache blocks, and negative padding.
func convCases() []*ConvParams {
	cases := []*ConvParams{
		// Forward 3x3, pad 1, stride 1 and 2.
		{Batch: 2, InSpatial: []int{9, 10}, InChannels: 16, KernelSpatial: []int{3, 3}, OutChannels: 16,
			PadLow: []int{1, 1}, PadHigh: []int{1, 1}},
		{Batch: 2, InSpatial: []int{9, 8}, InChannels: 16, KernelSpatial: []int{3, 3}, OutChannels: 32,
			Strides: []int{2, 2}, PadLow: []int{1, 1}, PadHigh: []int{1, 1}},
		// Input gradient of the stride-2 conv: input dilation 2.
		{Batch: 2, InSpatial: []int{4, 4}, InChannels: 32, KernelSpatial: []int{3, 3}, OutChannels: 16,
			InputDilation: []int{2, 2}, PadLow: []int{1, 1}, PadHigh: []int{2, 2}},
		// Kernel gradient of a 3x3 pad-1 conv on 6x6 images, batch 5 as
		// channels, 7 input channels as batch: output = the 3x3 kernel.
		{Batch: 7, InSpatial: []int{6, 6}, InChannels: 5, KernelSpatial: []int{6, 6}, OutChannels: 20,
			PadLow: []int{1, 1}, PadHigh: []int{1, 1}},
		// Kernel gradient of a stride-2 conv: kernel dilation 2.
		{Batch: 3, InSpatial: []int{8, 8}, InChannels: 4, KernelSpatial: []int{4, 4}, OutChannels: 33,
			KernelDilation: []int{2, 2}, PadLow: []int{1, 1}, PadHigh: []int{0, 0}},
		// Pointwise, with many output channels (several strips) and rows.
		{Batch: 3, InSpatial: []int{11, 13}, InChannels: 40, KernelSpatial: []int{1, 1}, OutChannels: 70},
		// Pointwise stride 2 (projection shortcut).
		{Batch: 2, InSpatial: []int{8, 8}, InChannels: 16, KernelSpatial: []int{1, 1}, OutChannels: 32, Strides: []int{2, 2}},
		// Enough rows for the pair kernel (16 output channels, even units).
		{Batch: 3, InSpatial: []int{15, 14}, InChannels: 6, KernelSpatial: []int{3, 3}, OutChannels: 12,
			PadLow: []int{1, 1}, PadHigh: []int{1, 1}},
		// Depth 1200 crosses KC, splitting a merged unit of 5*48 between
		// two k blocks.
		{Batch: 1, InSpatial: []int{6, 6}, InChannels: 48, KernelSpatial: []int{5, 5}, OutChannels: 20,
			PadLow: []int{2, 2}, PadHigh: []int{2, 2}},
		// Deep k: 3x3 with 64 channels.
		{Batch: 1, InSpatial: []int{7, 7}, InChannels: 64, KernelSpatial: []int{3, 3}, OutChannels: 48,
			PadLow: []int{1, 1}, PadHigh: []int{1, 1}},
		// Negative padding (cropping) and dilations.
		{Batch: 2, InSpatial: []int{12, 9}, InChannels: 3, KernelSpatial: []int{2, 3}, OutChannels: 5,
			InputDilation: []int{1, 2}, KernelDilation: []int{3, 1}, PadLow: []int{-2, 1}, PadHigh: []int{-1, -3}, Strides: []int{1, 2}},
		// Depthwise (feature groups = channels) and batch groups.
		{Batch: 2, InSpatial: []int{6, 6}, InChannels: 8, KernelSpatial: []int{3, 3}, OutChannels: 16,
			PadLow: []int{1, 1}, PadHigh: []int{1, 1}, FeatureGroups: 8},
		{Batch: 4, InSpatial: []int{5, 5}, InChannels: 3, KernelSpatial: []int{2, 2}, OutChannels: 8, BatchGroups: 4},
		// 0 spatial axes (a batched matrix product), 1-D and 3-D.
		{Batch: 30, InSpatial: []int{}, InChannels: 20, KernelSpatial: []int{}, OutChannels: 9},
		{Batch: 3, InSpatial: []int{50}, InChannels: 6, KernelSpatial: []int{5}, OutChannels: 7,
			Strides: []int{3}, PadLow: []int{2}, PadHigh: []int{2}},
		{Batch: 2, InSpatial: []int{5, 4, 6}, InChannels: 3, KernelSpatial: []int{2, 3, 3}, OutChannels: 4,
			Strides: []int{1, 2, 1}, InputDilation: []int{2, 1, 1}, PadLow: []int{0, 1, 1}, PadHigh: []int{1, 1, 0}},
		// A 3-D conv with more than 64 taps.
		{Batch: 1, InSpatial: []int{6, 6, 6}, InChannels: 2, KernelSpatial: []int{5, 5, 3}, OutChannels: 3,
			PadLow: []int{2, 2, 1}, PadHigh: []int{2, 2, 1}},
		// More than 64 units: merged last axis (81 outer taps) and per tap
		// (feature groups prevent merging).
		{Batch: 1, InSpatial: []int{9, 9, 3}, InChannels: 2, KernelSpatial: []int{9, 9, 2}, OutChannels: 3,
			PadLow: []int{4, 4, 1}, PadHigh: []int{4, 4, 1}, Strides: []int{2, 2, 1}},
		{Batch: 2, InSpatial: []int{10, 10}, InChannels: 4, KernelSpatial: []int{9, 9}, OutChannels: 4,
			PadLow: []int{4, 3}, PadHigh: []int{4, 3}, FeatureGroups: 2},
		// Kernel taps that never reach some outputs (input dilation 3 > kernel).
		{Batch: 1, InSpatial: []int{4}, InChannels: 2, KernelSpatial: []int{2}, OutChannels: 3,
			InputDilation: []int{3}, PadLow: []int{1}, PadHigh: []int{1}},
	}
	for _, p := range cases {
		if !convOut(p) {
			panic("bad test case " + convString(p))
		}
	}
	return cases
}

func TestConv(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		var cases []*ConvParams
		cases = append(cases, convCases()...)
		for i := 0; i < 300; i++ {
			cases = append(cases, randConv(r))
		}
		t.Run("f32", func(t *testing.T) {
			for _, p := range cases {
				checkConv[float32](t, r, p)
			}
		})
		t.Run("f64", func(t *testing.T) {
			for _, p := range cases {
				checkConv[float64](t, r, p)
			}
		})
	})
}

func TestConvValidate(t *testing.T) {
	good := func() *ConvParams {
		return &ConvParams{Batch: 4, InSpatial: []int{5, 5}, InChannels: 4, KernelSpatial: []int{3, 3}, OutChannels: 6,
			OutSpatial: []int{3, 3}}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("valid params: %v", err)
	}
	bad := map[string]func(p *ConvParams){
		"axes":            func(p *ConvParams) { p.KernelSpatial = []int{3} },
		"out size":        func(p *ConvParams) { p.OutSpatial = []int{3, 4} },
		"stride":          func(p *ConvParams) { p.Strides = []int{0, 1} },
		"input dilation":  func(p *ConvParams) { p.InputDilation = []int{1, -1} },
		"feature groups":  func(p *ConvParams) { p.FeatureGroups = 3 },
		"batch groups":    func(p *ConvParams) { p.BatchGroups = 3 },
		"both groups":     func(p *ConvParams) { p.FeatureGroups, p.BatchGroups = 2, 2 },
		"negative batch":  func(p *ConvParams) { p.Batch = -1 },
		"negative kernel": func(p *ConvParams) { p.KernelSpatial = []int{-1, 3} },
		"pads":            func(p *ConvParams) { p.PadLow = []int{1} },
	}
	for name, f := range bad {
		p := good()
		f(p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %s", name, convString(p))
		}
		if err := ConvF32(p, nil, nil, nil); err == nil {
			t.Errorf("%s: ConvF32 accepted %s", name, convString(p))
		}
	}
	var nilP *ConvParams
	if err := nilP.Validate(); err == nil {
		t.Error("nil params validated")
	}
	p := good()
	ni, nk, no := p.Sizes()
	if err := ConvF32(p, make([]float32, ni), make([]float32, nk), make([]float32, no+1)); err == nil {
		t.Error("ConvF32 accepted a wrong output size")
	}
	if err := ConvF64(p, make([]float64, ni-1), make([]float64, nk), make([]float64, no)); err == nil {
		t.Error("ConvF64 accepted a wrong input size")
	}
}

// TestConvXLAExamples checks conv against results computed by XLA for
// GoMLX's ConvGeneral tests (inputs and kernels are iota tensors in
// channels-first layout: input [N, C, spatial...], kernel [Cin, Cout,
// spatial...], output [N, Cout, spatial...]), an independent check of the
// semantics of batch groups, strides, padding and both dilations.
func TestConvXLAExamples(t *testing.T) {
	tests := []struct {
		name            string
		inDims, kDims   []int // channels-first shapes
		strides, ld, kd []int
		padLow, padHigh []int
		batchGroups     int
		want            []float64 // output, channels-first, flattened
	}{
		{
			name: "1D batch groups", inDims: []int{4, 2, 5}, kDims: []int{2, 4, 2}, batchGroups: 2,
			want: []float64{
				95, 113, 131, 149, 119, 145, 171, 197, 823, 857, 891, 925, 1007, 1049, 1091, 1133,
				275, 293, 311, 329, 379, 405, 431, 457, 1163, 1197, 1231, 1265, 1427, 1469, 1511, 1553},
		},
		{
			name: "3D strides, padding, dilations", inDims: []int{1, 2, 4, 4, 4}, kDims: []int{2, 2, 2, 2, 2},
			strides: []int{2, 1, 1}, ld: []int{1, 2, 1}, kd: []int{1, 1, 2}, padLow: []int{0, 1, 0}, padHigh: []int{0, 1, 0},
			want: []float64{
				6280, 6380, 5624, 5708, 6680, 6780, 5960, 6044, 7080, 7180, 6296, 6380, 7480, 7580, 6632, 6716,
				9480, 9580, 8312, 8396, 9880, 9980, 8648, 8732, 10280, 10380, 8984, 9068, 10680, 10780, 9320, 9404,
				8904, 9068, 8248, 8396, 9560, 9724, 8840, 8988, 10216, 10380, 9432, 9580, 10872, 11036, 10024, 10172,
				14152, 14316, 12984, 13132, 14808, 14972, 13576, 13724, 15464, 15628, 14168, 14316, 16120, 16284, 14760, 14908},
		},
	}
	for _, tt := range tests {
		d := len(tt.inDims) - 2
		p := &ConvParams{Batch: tt.inDims[0], InChannels: tt.inDims[1], InSpatial: tt.inDims[2:],
			OutChannels: tt.kDims[1], KernelSpatial: tt.kDims[2:], Strides: tt.strides,
			InputDilation: tt.ld, KernelDilation: tt.kd, PadLow: tt.padLow, PadHigh: tt.padHigh, BatchGroups: tt.batchGroups}
		if !convOut(p) {
			t.Fatalf("%s: empty output", tt.name)
		}
		spatial := func(s []int) int {
			n := 1
			for _, v := range s {
				n *= v
			}
			return n
		}
		nIn, nK, nOut := spatial(p.InSpatial), spatial(p.KernelSpatial), spatial(p.OutSpatial)
		ni, nk, no := p.Sizes()
		input, kernel, output := make([]float32, ni), make([]float32, nk), make([]float32, no)
		// Channels-first iota to channels-last.
		for b := 0; b < p.Batch; b++ {
			for c := 0; c < p.InChannels; c++ {
				for s := 0; s < nIn; s++ {
					input[(b*nIn+s)*p.InChannels+c] = float32((b*p.InChannels+c)*nIn + s)
				}
			}
		}
		for ci := 0; ci < p.InChannels; ci++ {
			for co := 0; co < p.OutChannels; co++ {
				for s := 0; s < nK; s++ {
					kernel[(s*p.InChannels+ci)*p.OutChannels+co] = float32((ci*p.OutChannels+co)*nK + s)
				}
			}
		}
		if err := ConvF32(p, input, kernel, output); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		outB := p.Batch / max(p.BatchGroups, 1)
		if len(tt.want) != outB*p.OutChannels*nOut {
			t.Fatalf("%s: want has %d values for output %v", tt.name, len(tt.want), p.OutSpatial)
		}
		for b := 0; b < outB; b++ {
			for c := 0; c < p.OutChannels; c++ {
				for s := 0; s < nOut; s++ {
					got := output[(b*nOut+s)*p.OutChannels+c]
					if w := tt.want[(b*p.OutChannels+c)*nOut+s]; float64(got) != w {
						t.Fatalf("%s (%d spatial axes): output[batch %d, channel %d, position %d] = %g, XLA gives %g",
							tt.name, d, b, c, s, got, w)
					}
				}
			}
		}
	}
}
