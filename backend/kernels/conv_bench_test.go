package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// resnetConvs returns the three convolutions of one 3x3, pad-1 ResNet layer
// (batch n, h x h input, cin -> cout channels, stride s) in the canonical
// layout, as GoMLX's autodiff builds them: the forward conv; the input
// gradient (output gradient convolved with the reversed, transposed kernel,
// input dilation s); and the kernel gradient (channels and batch swapped:
// batch cin, channels n, the output gradient as an oh x oh kernel with
// dilation s, output the 3x3 kernel).
func resnetConvs(n, h, cin, cout, s int) (fwd, dgrad, wgrad *ConvParams) {
	oh := (h+2-3)/s + 1
	fwd = &ConvParams{Batch: n, InSpatial: []int{h, h}, InChannels: cin, KernelSpatial: []int{3, 3}, OutChannels: cout,
		Strides: []int{s, s}, PadLow: []int{1, 1}, PadHigh: []int{1, 1}}
	ph := h - (oh-1)*s
	dgrad = &ConvParams{Batch: n, InSpatial: []int{oh, oh}, InChannels: cout, KernelSpatial: []int{3, 3}, OutChannels: cin,
		InputDilation: []int{s, s}, PadLow: []int{1, 1}, PadHigh: []int{ph, ph}}
	eff := (oh-1)*s + 1
	wgrad = &ConvParams{Batch: cin, InSpatial: []int{h, h}, InChannels: n, KernelSpatial: []int{oh, oh}, OutChannels: cout,
		KernelDilation: []int{s, s}, PadLow: []int{1, 1}, PadHigh: []int{eff + 1 - h, eff + 1 - h}}
	for _, p := range []*ConvParams{fwd, dgrad, wgrad} {
		if !convOut(p) {
			panic("bad resnet conv " + convString(p))
		}
	}
	return fwd, dgrad, wgrad
}

// resnet20Layers are the distinct conv layers of ResNet-20 (CIFAR, 32x32).
var resnet20Layers = []struct {
	name                 string
	h, cin, cout, stride int
}{
	{"stem_32x32x3to16", 32, 3, 16, 1},
	{"s1_32x32x16", 32, 16, 16, 1},
	{"s2_32x32x16to32_stride2", 32, 16, 32, 2},
	{"s2_16x16x32", 16, 32, 32, 1},
	{"s3_16x16x32to64_stride2", 16, 32, 64, 2},
	{"s3_8x8x64", 8, 64, 64, 1},
}

// BenchmarkConvF32 runs the ResNet-20 conv layers at batch 128: forward,
// input gradient and kernel gradient, and the input gradient as backend/cpu
// runs it (dgrad_inplace: the forward kernel read in place, reversed, see
// ConvKernelLayout). GFLOP/s counts the forward conv's 2*N*OH*OW*Cout*Cin*9
// multiply-adds for all of them (the useful work).
func BenchmarkConvF32(b *testing.B) {
	const batch = 128
	for _, l := range resnet20Layers {
		fwd, dgrad, wgrad := resnetConvs(batch, l.h, l.cin, l.cout, l.stride)
		flops := 2 * float64(batch*fwd.OutSpatial[0]*fwd.OutSpatial[1]*l.cout*l.cin*9)
		inplace := *dgrad
		inplace.KernelLayout = &ConvKernelLayout{Spatial: []int{3 * l.cin * l.cout, l.cin * l.cout}, In: 1, Out: l.cout,
			Reverse: []bool{true, true}}
		for _, c := range []struct {
			kind string
			p    *ConvParams
		}{{"fwd", fwd}, {"dgrad", dgrad}, {"wgrad", wgrad}, {"dgrad_inplace", &inplace}} {
			b.Run(fmt.Sprintf("%s/%s", l.name, c.kind), func(b *testing.B) {
				benchConv[float32](b, c.p, flops)
			})
		}
	}
}

// BenchmarkConvF64 runs the forward float64 conv of two ResNet-20 layers
// at batch 32.
func BenchmarkConvF64(b *testing.B) {
	const batch = 32
	for _, l := range []int{1, 5} {
		layer := resnet20Layers[l]
		fwd, _, _ := resnetConvs(batch, layer.h, layer.cin, layer.cout, layer.stride)
		flops := 2 * float64(batch*fwd.OutSpatial[0]*fwd.OutSpatial[1]*layer.cout*layer.cin*9)
		b.Run(layer.name+"/fwd", func(b *testing.B) { benchConv[float64](b, fwd, flops) })
	}
}

func benchConv[T gemmFloat](b *testing.B, p *ConvParams, flops float64) {
	r := rand.New(rand.NewPCG(7, 8))
	ni, nk, no := p.Sizes()
	input, kernel, output := randSlice[T](r, ni), randSlice[T](r, nk), make([]T, no)
	// One untimed call faults in the output pages and fills the buffer pool.
	if err := conv(p, input, kernel, output); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := processCPUTime()
	for i := 0; i < b.N; i++ {
		if err := conv(p, input, kernel, output); err != nil {
			b.Fatal(err)
		}
	}
	reportFlops(b, flops, cpu0)
}
