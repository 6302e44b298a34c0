package kernels

import (
	"fmt"
	"math"
)

// Elementwise float32 kernels for the hottest passes of training (ReLU, its
// gradient, the residual add + ReLU, the optimizer's axpy), vectorised with
// AVX2 on amd64 and portable elsewhere (or when SetISA selects ISAGo).
//
// For backend/cpu: they work on any contiguous range, so a fused pass can
// call them per block (e.g. on its 1024-element block buffers) when its
// instruction matches: Max(x, 0) -> ReLUF32, Max(Add(a, b), 0) ->
// AddReLUF32, the ReLU gradient g * indicator(y > 0) (or Select(y > 0, g,
// 0)) -> ReLUGradF32, and w + a*x -> AxpyF32. NaN handling matches Go's
// comparisons: ReLU keeps NaN, ReLUGrad passes g only where y > 0 (false for
// NaN).

// elemCheck returns an error unless every slice has len(dst) elements.
func elemCheck(op string, dst []float32, srcs ...[]float32) error {
	for i, s := range srcs {
		if len(s) != len(dst) {
			return fmt.Errorf("kernels.%s: operand %d has %d elements, dst has %d", op, i+1, len(s), len(dst))
		}
	}
	return nil
}

// ReLUF32 sets dst[i] = max(x[i], 0) (NaN stays NaN). dst and x have the
// same length and may be the same slice.
func ReLUF32(dst, x []float32) error {
	if err := elemCheck("ReLUF32", dst, x); err != nil {
		return err
	}
	i := 0
	if n := len(dst) &^ 7; n > 0 && elemSIMD() {
		reluAVX2(&dst[0], &x[0], n)
		i = n
	}
	for ; i < len(dst); i++ {
		dst[i] = bnReLU(x[i])
	}
	return nil
}

// AddReLUF32 sets dst[i] = max(a[i] + b[i], 0) (NaN stays NaN): a residual
// block's add and ReLU. All slices have the same length; dst may be a or b.
func AddReLUF32(dst, a, b []float32) error {
	if err := elemCheck("AddReLUF32", dst, a, b); err != nil {
		return err
	}
	i := 0
	if n := len(dst) &^ 7; n > 0 && elemSIMD() {
		addReLUAVX2(&dst[0], &a[0], &b[0], n)
		i = n
	}
	for ; i < len(dst); i++ {
		dst[i] = bnReLU(a[i] + b[i])
	}
	return nil
}

// ReLUGradF32 sets dst[i] = g[i] where y[i] > 0 and 0 elsewhere: the
// gradient through a ReLU whose output (or input) is y. All slices have the
// same length; dst may be g or y.
func ReLUGradF32(dst, g, y []float32) error {
	if err := elemCheck("ReLUGradF32", dst, g, y); err != nil {
		return err
	}
	i := 0
	if n := len(dst) &^ 7; n > 0 && elemSIMD() {
		reluGradAVX2(&dst[0], &g[0], &y[0], n)
		i = n
	}
	for ; i < len(dst); i++ {
		if y[i] > 0 {
			dst[i] = g[i]
		} else {
			dst[i] = 0
		}
	}
	return nil
}

// AxpyF32 sets dst[i] += a*x[i] (fused multiply-add on the assembly path,
// so the last bit may differ from the portable a*x+dst). dst and x have the
// same length.
func AxpyF32(dst []float32, a float32, x []float32) error {
	if err := elemCheck("AxpyF32", dst, x); err != nil {
		return err
	}
	i := 0
	if n := len(dst) &^ 7; n > 0 && elemSIMD() {
		axpyAVX2(&dst[0], a, &x[0], n)
		i = n
	}
	for ; i < len(dst); i++ {
		dst[i] += a * x[i]
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
// itself for NaN. This is the gradient GoMLX builds through a ReLU; unlike
// ReLUGradF32 it passes g at y = 0 and multiplies by 0 elsewhere (so -g
// gives -0 and an infinite g gives NaN), exactly as the unfused graph. All
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
