package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchGemm benchmarks one GEMM shape with the active micro-kernels and
// reports GFLOP/s.
func benchGemm[T gemmFloat](b *testing.B, transA, transB bool, m, n, k int) {
	r := rand.New(rand.NewPCG(3, 4))
	a := randSlice[T](r, m*k)
	bb := randSlice[T](r, k*n)
	c := make([]T, m*n)
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	// One untimed call faults in C's pages and fills the buffer pool.
	if err := gemm(transA, transB, m, n, k, 1, a, lda, bb, ldb, 0, c, n); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := processCPUTime()
	for i := 0; i < b.N; i++ {
		if err := gemm(transA, transB, m, n, k, 1, a, lda, bb, ldb, 0, c, n); err != nil {
			b.Fatal(err)
		}
	}
	reportFlops(b, 2*float64(m)*float64(n)*float64(k), cpu0)
}

// reportFlops reports the throughput of b.N operations of flops each, as
// GFLOP/s of wall time and as GFLOP per second of process CPU time
// (GFLOP/cpu-s, about a per-core figure that other load on the machine
// does not deflate; 0 where CPU time is not measurable).
func reportFlops(b *testing.B, flops float64, cpu0 time.Duration) {
	total := flops * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu := processCPUTime() - cpu0; cpu > 0 {
		b.ReportMetric(total/cpu.Seconds()/1e9, "GFLOP/cpu-s")
	}
}

// gemmBenchShapes are the square reference and the GEMMs a ResNet-20 conv
// layer at batch 128 lowers to: forward/input-gradient (huge m, n = output
// channels, k = 9*input channels) and kernel-gradient (A transposed, huge k).
var gemmBenchShapes = []struct {
	name           string
	transA, transB bool
	m, n, k        int
}{
	{"2048x2048x2048", false, false, 2048, 2048, 2048},
	{"fwd_m131072_n16_k144", false, false, 128 * 32 * 32, 16, 144},
	{"fwd_m32768_n32_k288", false, false, 128 * 16 * 16, 32, 288},
	{"fwd_m8192_n64_k576", false, false, 128 * 8 * 8, 64, 576},
	{"kgrad_m144_n16_k131072", true, false, 144, 16, 128 * 32 * 32},
	{"kgrad_m576_n64_k8192", true, false, 576, 64, 128 * 8 * 8},
	{"bgrad_m131072_n144_k16", false, true, 128 * 32 * 32, 144, 16},
}

func BenchmarkGemmF32(b *testing.B) {
	for _, s := range gemmBenchShapes {
		b.Run(s.name, func(b *testing.B) { benchGemm[float32](b, s.transA, s.transB, s.m, s.n, s.k) })
	}
}

func BenchmarkGemmF64(b *testing.B) {
	for _, s := range gemmBenchShapes[:3] {
		b.Run(s.name, func(b *testing.B) { benchGemm[float64](b, s.transA, s.transB, s.m, s.n, s.k) })
	}
}

// BenchmarkGemmISA compares the micro-kernel families on the 2048 square
// and a skinny convolution shape.
func BenchmarkGemmISA(b *testing.B) {
	defer SetISA("")
	for _, isa := range AvailableISAs() {
		for _, s := range gemmBenchShapes[:2] {
			b.Run(fmt.Sprintf("%s/%s", isa, s.name), func(b *testing.B) {
				if err := SetISA(isa); err != nil {
					b.Fatal(err)
				}
				benchGemm[float32](b, s.transA, s.transB, s.m, s.n, s.k)
			})
		}
	}
}
