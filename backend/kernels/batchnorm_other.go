//go:build !amd64

package kernels

// bnSIMD reports whether the batch-norm passes use assembly: never on this
// architecture.
func bnSIMD() bool { return false }

func bnAffineAVX2(x, res, y, pre, hi, lo, coef, add *float32, rows, ncols, ld, relu int) {
	panic("kernels: bnAffineAVX2 called without assembly support")
}

func bnGradOutAVX2(x, gr, mask, y, mu, c1, c2, c3 *float32, rows, ncols, ld int) {
	panic("kernels: bnGradOutAVX2 called without assembly support")
}

func bnStatsAVX2(x *float32, k, s1, s2 *float64, rows, ncols, ld int) {
	panic("kernels: bnStatsAVX2 called without assembly support")
}

func bnGradSumsAVX2(x, gr, mask *float32, mu, s1, s2 *float64, rows, ncols, ld int) {
	panic("kernels: bnGradSumsAVX2 called without assembly support")
}

func bnAffineBitsAVX2(x, res, y *float32, bits *uint8, hi, lo, coef, add *float32, rows, ncols, nanOff int) {
	panic("kernels: bnAffineBitsAVX2 called without assembly support")
}

func bnGradOutBitsAVX2(x, gr *float32, bits *uint8, y, gm, mu, c1, c2, c3 *float32, rows, ncols, nanOff int) {
	panic("kernels: bnGradOutBitsAVX2 called without assembly support")
}

func bnGradSumsBitsAVX2(x, gr *float32, bits *uint8, mu, s1, s2 *float64, rows, ncols, nanOff int) {
	panic("kernels: bnGradSumsBitsAVX2 called without assembly support")
}
