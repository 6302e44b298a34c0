package kernels

import "testing"

// mlpGemmShapes are the GEMMs of one training step of the MLP (784 -> 256
// -> 10, batch 128): the two forward products, the weight gradients (A
// transposed) and the hidden-layer gradient (B transposed).
var mlpGemmShapes = []struct {
	name           string
	transA, transB bool
	m, n, k        int
}{
	{"fwd1_m128_n256_k784", false, false, 128, 256, 784},
	{"fwd2_m128_n10_k256", false, false, 128, 10, 256},
	{"dW1_m784_n256_k128_tA", true, false, 784, 256, 128},
	{"dW2_m256_n10_k128_tA", true, false, 256, 10, 128},
	{"dH_m128_n256_k10_tB", false, true, 128, 256, 10},
}

// BenchmarkGemmMLP runs the MLP step's GEMMs (see mlpGemmShapes).
func BenchmarkGemmMLP(b *testing.B) {
	for _, s := range mlpGemmShapes {
		b.Run(s.name, func(b *testing.B) { benchGemm[float32](b, s.transA, s.transB, s.m, s.n, s.k) })
	}
}
