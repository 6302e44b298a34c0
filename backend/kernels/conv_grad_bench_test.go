package kernels

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkConvKernelGrad compares two ways to run GoMLX's kernel-gradient
// convolution of a ResNet-20 layer at batch 128 (x [128, h, h, cin], output
// gradient v [128, oh, oh, cout], result [3, 3, cin, cout]):
//
//   - transposes: what backend/cpu did, x -> [cin, h, h, N] and v -> [oh, oh,
//     N, cout] into the canonical layouts, the conv, and the result
//     [cin, 3, 3, cout] -> [3, 3, cin, cout];
//   - layouts: x -> [cin, h, h, N] only, with v read and the result written
//     in place through KernelLayout and OutputLayout.
//
// Transposes use Transpose. GFLOP/s counts the conv's multiply-adds.
func BenchmarkConvKernelGrad(b *testing.B) {
	const n = 128
	for _, l := range resnet20Layers[1:] {
		_, _, wgrad := resnetConvs(n, l.h, l.cin, l.cout, l.stride)
		oh := wgrad.KernelSpatial[0]
		r := rand.New(rand.NewPCG(1, 1))
		x := randSlice[float32](r, n*l.h*l.h*l.cin)
		v := randSlice[float32](r, n*oh*oh*l.cout)
		xt := make([]float32, len(x))
		vt := make([]float32, len(v))
		canon := make([]float32, 9*l.cin*l.cout)
		out := make([]float32, len(canon))
		flops := 2 * float64(n*oh*oh) * float64(l.cout*l.cin*9)
		lay := *wgrad
		lay.KernelLayout = &ConvKernelLayout{Spatial: []int{oh * l.cout, l.cout}, In: oh * oh * l.cout, Out: 1}
		lay.OutputLayout = &ConvOutputLayout{Batch: l.cout, Spatial: []int{3 * l.cin * l.cout, l.cin * l.cout}}
		b.Run(l.name+"/transposes", func(b *testing.B) {
			cpu0 := processCPUTime()
			for b.Loop() {
				must(b, Transpose(x, xt, []int{n, l.h, l.h, l.cin}, []int{3, 1, 2, 0}))
				must(b, Transpose(v, vt, []int{n, oh, oh, l.cout}, []int{1, 2, 0, 3}))
				must(b, ConvF32(wgrad, xt, vt, canon))
				must(b, Transpose(canon, out, []int{l.cin, 3, 3, l.cout}, []int{1, 2, 0, 3}))
			}
			reportFlops(b, flops, cpu0)
		})
		b.Run(l.name+"/layouts", func(b *testing.B) {
			cpu0 := processCPUTime()
			for b.Loop() {
				must(b, Transpose(x, xt, []int{n, l.h, l.h, l.cin}, []int{3, 1, 2, 0}))
				must(b, ConvF32(&lay, xt, v, out))
			}
			reportFlops(b, flops, cpu0)
		})
	}
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
