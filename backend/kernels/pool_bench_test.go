package kernels

import (
	"math/rand/v2"
	"testing"
)

// ResNet-sized pooling benchmarks: a batch of 128 images of 32x32 with 16
// channels (ResNet-20 on CIFAR), in NHWC and NCHW, float32.

type poolBench struct {
	dims []int
	cfg  WindowConfig
}

func nhwcPool(win, stride int, pad [2]int) poolBench {
	return poolBench{
		dims: []int{128, 32, 32, 16},
		cfg: WindowConfig{Window: []int{1, win, win, 1}, Strides: []int{1, stride, stride, 1},
			Paddings: [][2]int{{}, pad, pad, {}}},
	}
}

func nchwPool(win, stride int, pad [2]int) poolBench {
	return poolBench{
		dims: []int{128, 16, 32, 32},
		cfg: WindowConfig{Window: []int{1, 1, win, win}, Strides: []int{1, 1, stride, stride},
			Paddings: [][2]int{{}, {}, pad, pad}},
	}
}

func benchReduceWindow(b *testing.B, pb poolBench, op ReduceOp) {
	p, err := NewWindowPlan(pb.dims, pb.cfg)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	x := poolRandSlice[float32](rng, p.InSize(), -1, 1)
	out := make([]float32, p.OutSize())
	b.SetBytes(int64(4 * (p.InSize() + p.OutSize())))
	b.ResetTimer()
	for b.Loop() {
		if err := ReduceWindow(p, op, x, out); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSelectAndScatter(b *testing.B, pb poolBench) {
	p, err := NewWindowPlan(pb.dims, pb.cfg)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	x := poolRandSlice[float32](rng, p.InSize(), -1, 1)
	src := poolRandSlice[float32](rng, p.OutSize(), -1, 1)
	out := make([]float32, p.InSize())
	b.SetBytes(int64(4 * (2*p.InSize() + p.OutSize())))
	b.ResetTimer()
	for b.Loop() {
		if err := SelectAndScatter(p, ReduceMax, x, src, out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMaxPool3x3s2NHWC(b *testing.B) {
	benchReduceWindow(b, nhwcPool(3, 2, [2]int{1, 1}), ReduceMax)
}

func BenchmarkMaxPool3x3s2NCHW(b *testing.B) {
	benchReduceWindow(b, nchwPool(3, 2, [2]int{1, 1}), ReduceMax)
}

func BenchmarkSumPool2x2NHWC(b *testing.B) {
	benchReduceWindow(b, nhwcPool(2, 2, [2]int{}), ReduceSum)
}

func BenchmarkSumPool2x2NCHW(b *testing.B) {
	benchReduceWindow(b, nchwPool(2, 2, [2]int{}), ReduceSum)
}

func BenchmarkSelectAndScatterMax3x3s2NHWC(b *testing.B) {
	benchSelectAndScatter(b, nhwcPool(3, 2, [2]int{1, 1}))
}

func BenchmarkSelectAndScatterMax3x3s2NCHW(b *testing.B) {
	benchSelectAndScatter(b, nchwPool(3, 2, [2]int{1, 1}))
}

func BenchmarkSelectAndScatterMax2x2NHWC(b *testing.B) {
	benchSelectAndScatter(b, nhwcPool(2, 2, [2]int{}))
}
