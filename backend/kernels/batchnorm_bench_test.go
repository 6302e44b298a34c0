package kernels

import (
	"math/rand/v2"
	"testing"
)

// ResNet-20-sized batch-norm benchmarks: 128 images of 32x32 with 16
// channels, float32, NHWC (feature axis 3) and NCHW (feature axis 1).

type bnBench struct {
	l                                 BatchNormLayout
	x, gradOut, y, gradX              []float32
	scale, offset, mean, variance, g1 []float32
	g2                                []float32
}

func newBNBench(b *testing.B, dims []int, axis int) *bnBench {
	l, err := NewBatchNormLayout(dims, axis)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	n, nf := l.Size(), l.Features
	return &bnBench{
		l: l, x: poolRandSlice[float32](rng, n, -1, 1), gradOut: poolRandSlice[float32](rng, n, -1, 1),
		y: make([]float32, n), gradX: make([]float32, n),
		scale: poolRandSlice[float32](rng, nf, 0.5, 2), offset: poolRandSlice[float32](rng, nf, -1, 1),
		mean: make([]float32, nf), variance: poolRandSlice[float32](rng, nf, 0.5, 2),
		g1: make([]float32, nf), g2: make([]float32, nf),
	}
}

var (
	bnNHWC = []int{128, 32, 32, 16}
	bnNCHW = []int{128, 16, 32, 32}
)

func benchBNTraining(b *testing.B, dims []int, axis int) {
	s := newBNBench(b, dims, axis)
	b.SetBytes(int64(8 * s.l.Size()))
	b.ResetTimer()
	for b.Loop() {
		if err := BatchNormTraining(s.x, s.scale, s.offset, 1e-5, s.l, BatchNormEpilogue[float32]{}, s.y, s.mean, s.variance); err != nil {
			b.Fatal(err)
		}
	}
}

func benchBNInference(b *testing.B, dims []int, axis int) {
	s := newBNBench(b, dims, axis)
	b.SetBytes(int64(8 * s.l.Size()))
	b.ResetTimer()
	for b.Loop() {
		if err := BatchNormInference(s.x, s.scale, s.offset, s.mean, s.variance, 1e-5, s.l, BatchNormEpilogue[float32]{}, s.y); err != nil {
			b.Fatal(err)
		}
	}
}

func benchBNGradient(b *testing.B, dims []int, axis int) {
	s := newBNBench(b, dims, axis)
	b.SetBytes(int64(12 * s.l.Size()))
	b.ResetTimer()
	for b.Loop() {
		if err := BatchNormGradient(s.x, s.scale, s.mean, s.variance, s.gradOut, 1e-5, s.l, BatchNormReLUGrad[float32]{}, s.gradX, s.g1, s.g2); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBatchNormTrainingNHWC(b *testing.B)  { benchBNTraining(b, bnNHWC, 3) }
func BenchmarkBatchNormTrainingNCHW(b *testing.B)  { benchBNTraining(b, bnNCHW, 1) }
func BenchmarkBatchNormInferenceNHWC(b *testing.B) { benchBNInference(b, bnNHWC, 3) }
func BenchmarkBatchNormInferenceNCHW(b *testing.B) { benchBNInference(b, bnNCHW, 1) }
func BenchmarkBatchNormGradientNHWC(b *testing.B)  { benchBNGradient(b, bnNHWC, 3) }
func BenchmarkBatchNormGradientNCHW(b *testing.B)  { benchBNGradient(b, bnNCHW, 1) }
