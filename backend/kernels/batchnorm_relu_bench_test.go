package kernels

import "testing"

// withISA runs f with the kernel family name selected (the portable "go"
// family shows the speed of the Go loops the assembly passes replace).
func withISA(b *testing.B, name string, f func(b *testing.B)) {
	if err := SetISA(name); err != nil {
		b.Skip(err)
	}
	defer func() {
		if err := SetISA(""); err != nil {
			b.Fatal(err)
		}
	}()
	f(b)
}

func BenchmarkBatchNormTrainingNHWCPortable(b *testing.B) {
	withISA(b, ISAGo, func(b *testing.B) { benchBNTraining(b, bnNHWC, 3) })
}

func BenchmarkBatchNormGradientNHWCPortable(b *testing.B) {
	withISA(b, ISAGo, func(b *testing.B) { benchBNGradient(b, bnNHWC, 3) })
}

func BenchmarkBatchNormTrainingReLUNHWC(b *testing.B) {
	s := newBNBench(b, bnNHWC, 3)
	b.SetBytes(int64(8 * s.l.Size()))
	b.ReportAllocs()
	for b.Loop() {
		if err := BatchNormTraining(s.x, s.scale, s.offset, 1e-5, s.l, BatchNormEpilogue[float32]{ReLU: true}, s.y, s.mean, s.variance); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBatchNormTrainingReLUPreNHWC(b *testing.B) {
	s := newBNBench(b, bnNHWC, 3)
	pre := make([]float32, s.l.Size())
	b.SetBytes(int64(12 * s.l.Size()))
	b.ReportAllocs()
	for b.Loop() {
		if err := BatchNormTraining(s.x, s.scale, s.offset, 1e-5, s.l, BatchNormEpilogue[float32]{ReLU: true, PreAct: pre}, s.y, s.mean, s.variance); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBatchNormTrainingReLUMaskNHWC(b *testing.B) {
	s := newBNBench(b, bnNHWC, 3)
	mask := make([]uint8, ReLUMaskBytes(s.l.Size()))
	b.SetBytes(int64(8 * s.l.Size()))
	b.ReportAllocs()
	for b.Loop() {
		if err := BatchNormTraining(s.x, s.scale, s.offset, 1e-5, s.l, BatchNormEpilogue[float32]{ReLU: true, Mask: mask}, s.y, s.mean, s.variance); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBatchNormGradientReLUPreNHWC(b *testing.B) {
	s := newBNBench(b, bnNHWC, 3)
	b.SetBytes(int64(16 * s.l.Size()))
	b.ReportAllocs()
	for b.Loop() {
		if err := BatchNormGradient(s.x, s.scale, s.mean, s.variance, s.gradOut, 1e-5, s.l, BatchNormReLUGrad[float32]{PreAct: s.x}, s.gradX, s.g1, s.g2); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBatchNormGradientReLUMaskNHWC(b *testing.B) {
	s := newBNBench(b, bnNHWC, 3)
	mask := make([]uint8, ReLUMaskBytes(s.l.Size()))
	for i := range mask[:len(mask)/2] {
		mask[i] = uint8(i * 37)
	}
	b.SetBytes(int64(12 * s.l.Size()))
	b.ReportAllocs()
	for b.Loop() {
		if err := BatchNormGradient(s.x, s.scale, s.mean, s.variance, s.gradOut, 1e-5, s.l, BatchNormReLUGrad[float32]{Mask: mask}, s.gradX, s.g1, s.g2); err != nil {
			b.Fatal(err)
		}
	}
}
