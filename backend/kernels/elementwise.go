package kernels

import (
	"fmt"
	"math"
)

// Elementwise float32 kernels for hot passes of training (a residual add,
// GoMLX's ReLU gradient), vectorised with AVX2 on amd64 and portable
// elsewhere (or when SetISA selects ISAGo). They work on any contiguous
// range, so a fused pass of backend/cpu calls them per block.

// elemCheck returns an error unless every slice has len(dst) elements.
func elemCheck(op string, dst []float32, srcs ...[]float32) error {
	for i, s := range srcs {
		if len(s) != len(dst) {
			return fmt.Errorf("kernels.%s: operand %d has %d elements, dst has %d", op, i+1, len(s), len(dst))
		}
	}
	return nil
}

// AddF32 sets dst[i] = a[i] + b[i]. All slices have the same length; dst
// may be a or b.
func AddF32(dst, a, b []float32) error {
	if err := elemCheck("AddF32", dst, a, b); err != nil {
		return err
	}
	i := 0
	if n := len(dst) &^ 7; n > 0 && elemSIMD() {
		addAVX2(&dst[0], &a[0], &b[0], n)
		i = n
	}
	for ; i < len(dst); i++ {
		dst[i] = a[i] + b[i]
	}
	return nil
}

// MulNonNegF32 sets dst[i] = g[i] * NonNegativeIndicator(y[i]), where the
// indicator is GoMLX's: 1 for y >= 0 (including -0), 0 for y < 0 and y
// itself for NaN. This is the gradient GoMLX builds through a ReLU: it
// passes g at y = 0 and multiplies by 0 elsewhere (so -g gives -0 and an
// infinite g gives NaN), exactly as the unfused graph. All
// slices have the same length; dst may be g or y.
func MulNonNegF32(dst, g, y []float32) error {
	if err := elemCheck("MulNonNegF32", dst, g, y); err != nil {
		return err
	}
	i := 0
	if n := len(dst) &^ 7; n > 0 && elemSIMD() {
		mulNonNegAVX2(&dst[0], &g[0], &y[0], n)
		i = n
	}
	for ; i < len(dst); i++ {
		dst[i] = g[i] * NonNegIndicatorF32(y[i])
	}
	return nil
}

// NonNegIndicatorF32 is GoMLX's NonNegativeIndicator of one value: 1 for
// y >= 0 (including -0), 0 for y < 0, y itself for NaN. The 0/1 is chosen
// on the bits so that the compiler emits a conditional move (a ReLU input's
// sign is unpredictable; a float-valued select would be a branch), and it
// branches only on NaN, which is rare.
func NonNegIndicatorF32(y float32) float32 {
	var b uint32
	if y >= 0 {
		b = 0x3f800000 // 1.0
	}
	f := math.Float32frombits(b)
	if y != y {
		f = y
	}
	return f
}

// NonNegIndicatorF64 is NonNegIndicatorF32 for float64.
func NonNegIndicatorF64(y float64) float64 {
	var b uint64
	if y >= 0 {
		b = 0x3ff0000000000000 // 1.0
	}
	f := math.Float64frombits(b)
	if y != y {
		f = y
	}
	return f
}
