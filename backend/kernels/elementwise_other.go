//go:build !amd64

package kernels

// elemSIMD reports whether the elementwise kernels use assembly: never on
// this architecture.
func elemSIMD() bool { return false }

func reluAVX2(dst, x *float32, n int)                     { panic("kernels: no assembly") }
func addReLUAVX2(dst, a, b *float32, n int)               { panic("kernels: no assembly") }
func reluGradAVX2(dst, gr, y *float32, n int)             { panic("kernels: no assembly") }
func axpyAVX2(dst *float32, a float32, x *float32, n int) { panic("kernels: no assembly") }
func addAVX2(dst, a, b *float32, n int)                   { panic("kernels: no assembly") }
func mulNonNegAVX2(dst, gr, y *float32, n int)            { panic("kernels: no assembly") }
