//go:build !amd64

package kernels

// elemSIMD reports whether the elementwise kernels use assembly: never on
// this architecture.
func elemSIMD() bool { return false }

func addAVX2(dst, a, b *float32, n int)        { panic("kernels: no assembly") }
func mulNonNegAVX2(dst, gr, y *float32, n int) { panic("kernels: no assembly") }
