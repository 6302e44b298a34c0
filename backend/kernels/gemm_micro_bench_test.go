package kernels

import (
	"testing"
	"unsafe"
)

// BenchmarkGemmMicro measures the bare micro-kernels (one core, operands in
// cache): one MR x NR tile over k = 256, reported in GFLOP/s.
func BenchmarkGemmMicro(b *testing.B) {
	defer SetISA("")
	for _, isa := range AvailableISAs() {
		if err := SetISA(isa); err != nil {
			b.Fatal(err)
		}
		kern := gemmKernelFor[float32]()
		for _, wide := range []bool{true, false} {
			name := isa + "/narrow"
			fn, nr := kern.narrow, kern.nrN
			if wide {
				name, fn, nr = isa+"/wide", kern.wide, kern.nrW
			}
			b.Run(name, func(b *testing.B) {
				const k = 256
				mr := kern.mr
				a := make([]float32, mr*k)
				bp := make([]float32, k*nr)
				c := make([]float32, mr*nr)
				segs := make([]int, 1+mr)
				segs[0] = k
				coffs := make([]int, mr)
				for i := 0; i < mr; i++ {
					segs[1+i] = i * k * 4
					coffs[i] = i * nr * 4
				}
				args := gemmMicroArgs{segs: unsafe.Pointer(&segs[0]), nseg: 1, abase: unsafe.Pointer(&a[0]),
					b: unsafe.Pointer(&bp[0]), cbase: unsafe.Pointer(&c[0]), coffs: unsafe.Pointer(&coffs[0]),
					mr: mr, nr: nr, alpha32: 1}
				for i := 0; i < b.N; i++ {
					fn(&args)
				}
				b.ReportMetric(2*float64(mr*nr*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
