// Package sgt implements Softmax Gradient Tampering (SGT, arXiv 2111.12495),
// also called the PowerGrad Transform.
//
// The forward pass of a softmax classifier is unchanged: logits z,
// probabilities p = softmax(z) and the cross-entropy loss against a target
// distribution q (one-hot, or label-smoothed q = (1-eps)*onehot + eps/C). Only
// the backward pass changes: the logits gradient p - q is replaced by p' - q,
// where p'_i = p_i^alpha / sum_j p_j^alpha = softmax(alpha*z). With 0 <= alpha
// < 1 the tampered distribution is smoother than p; alpha = 1 is plain
// training.
//
// The package has two halves: framework-free float32/float64 math on slices
// (this file, threshold.go and batch.go), and a GoMLX loss whose backward pass
// is tampered (graph.go).
package sgt

import (
	"errors"
	"fmt"
	"math"
)

// Float is the set of floating-point element types the slice functions accept.
// Internally every computation is carried out in float64 and rounded to the
// element type on store.
type Float interface {
	~float32 | ~float64
}

// ValidateAlpha checks that alpha is a usable tampering exponent: finite and
// non-negative. Values above 1 are accepted (they sharpen the distribution
// instead of smoothing it) but lie outside the paper's range; see
// AlphaOutsidePaperRange.
func ValidateAlpha(alpha float64) error {
	if math.IsNaN(alpha) || math.IsInf(alpha, 0) {
		return fmt.Errorf("alpha %v: must be a finite number", alpha)
	}
	if alpha < 0 {
		return fmt.Errorf("alpha %v: must be >= 0", alpha)
	}
	return nil
}

// AlphaOutsidePaperRange reports whether a valid alpha lies outside the range
// [0, 1] studied in the paper (alpha > 1 sharpens the tampered distribution).
// Callers typically record a warning when it returns true.
func AlphaOutsidePaperRange(alpha float64) bool {
	return alpha > 1
}

// ValidateLabelSmoothing checks that the label-smoothing amount eps lies in
// [0, 1).
func ValidateLabelSmoothing(eps float64) error {
	if math.IsNaN(eps) || math.IsInf(eps, 0) {
		return fmt.Errorf("label smoothing %v: must be a finite number", eps)
	}
	if eps < 0 || eps >= 1 {
		return fmt.Errorf("label smoothing %v: must be in [0, 1)", eps)
	}
	return nil
}

// errEmptyRow is returned by row functions given no logits.
var errEmptyRow = errors.New("empty row: need at least one class")

// rowMax returns the largest element of z as float64 (-Inf for an empty row).
func rowMax[T Float](z []T) float64 {
	m := math.Inf(-1)
	for _, v := range z {
		if f := float64(v); f > m {
			m = f
		}
	}
	return m
}

// LogSumExp returns log(sum_i exp(z_i)) computed stably by subtracting the
// maximum first. It returns -Inf for an empty row or a row of -Inf values and
// +Inf if any element is +Inf.
func LogSumExp[T Float](z []T) float64 {
	m := rowMax(z)
	if math.IsInf(m, 0) {
		return m
	}
	return m + logSumExpGaps(z, m, 1)
}

// scaledGap returns alpha*(v - m) for v <= m, the exponent of one term of a
// tampered softmax shifted by its maximum m. It never forms 0*Inf and never
// overflows to a wrong value: v - m itself overflows to -Inf when the logits
// span more than the float64 range (v = -1e308, m = 1e308), and then alpha
// 0 still gives 0 (uniform probabilities), a fractional alpha is applied to v
// and m separately (both products finite), and alpha >= 1 gives -Inf (a
// weight of exactly 0).
func scaledGap(v, m, alpha float64) float64 {
	d := v - m
	if !math.IsInf(d, -1) {
		return alpha * d
	}
	switch {
	case alpha == 0:
		return 0
	case alpha < 1:
		return alpha*v - alpha*m
	default:
		return math.Inf(-1)
	}
}

// logSumExpGaps returns log(sum_i exp(alpha*(z_i - m))) for the row maximum
// m of z (finite). The largest term is exp(0) = 1, so the sum lies in [1,
// len(z)] and the result in [0, log len(z)].
func logSumExpGaps[T Float](z []T, m, alpha float64) float64 {
	var s float64
	for _, v := range z {
		s += math.Exp(scaledGap(float64(v), m, alpha))
	}
	return math.Log(s)
}

// ensureLen returns dst resliced to n elements, allocating when it is too
// short.
func ensureLen[T Float](dst []T, n int) []T {
	if cap(dst) < n {
		return make([]T, n)
	}
	return dst[:n]
}

// Softmax writes softmax(z) into dst (allocated when too short; it may alias
// z) and returns it. The maximum is subtracted first, so logits of any finite
// size work; probabilities that underflow become exactly zero.
func Softmax[T Float](dst, z []T) []T {
	return TamperedSoftmax(dst, z, 1)
}

// TamperedSoftmax writes the tampered probabilities p' = softmax(alpha*z) =
// p^alpha / sum_j p_j^alpha into dst (allocated when too short; it may alias
// z) and returns it. It evaluates exp(alpha*(z_i - max z)), which never
// overflows for finite z and any finite alpha >= 0, also when z spans more
// than the float64 range (see scaledGap); at alpha = 0 the result is
// uniform.
func TamperedSoftmax[T Float](dst, z []T, alpha float64) []T {
	out := ensureLen(dst, len(z))
	if f64, ok := any(out).([]float64); ok {
		tamperedSoftmax64(f64, z, alpha)
		return out
	}
	// Narrower element type: sum in float64 first, then round each
	// normalised value once.
	m := rowMax(z)
	var s float64
	for _, v := range z {
		s += math.Exp(scaledGap(float64(v), m, alpha))
	}
	for i, v := range z {
		out[i] = T(math.Exp(scaledGap(float64(v), m, alpha)) / s)
	}
	return out
}

// tamperedSoftmax64 writes softmax(alpha*z) into out (len(out) == len(z); it
// may alias z) in float64.
func tamperedSoftmax64[T Float](out []float64, z []T, alpha float64) {
	m := rowMax(z)
	var s float64
	for i, v := range z {
		e := math.Exp(scaledGap(float64(v), m, alpha))
		out[i] = e
		s += e
	}
	for i := range out {
		out[i] /= s
	}
}

// LogSoftmax writes log softmax(z) = (z - max z) - log sum exp(z - max z)
// into dst (allocated when too short; it may alias z) and returns it. Entries
// are finite for finite z even where the probability underflows to zero,
// unless z spans more than the float64 range (then the far entries are
// -Inf). Subtracting the maximum before the logarithm keeps huge logits
// exact: [1e17, 1e17] gives [-ln 2, -ln 2], where z - logsumexp(z) would give
// 0 because 1e17 + ln 2 rounds to 1e17.
func LogSoftmax[T Float](dst, z []T) []T {
	m := rowMax(z)
	logS := logSumExpGaps(z, m, 1)
	out := ensureLen(dst, len(z))
	for i, v := range z {
		out[i] = T((float64(v) - m) - logS)
	}
	return out
}

// Target writes the training target for one example into dst (allocated when
// too short) and returns it: the one-hot vector of label over numClasses
// classes, label-smoothed to q = (1-eps)*onehot + eps/numClasses.
func Target[T Float](dst []T, numClasses, label int, eps float64) ([]T, error) {
	if numClasses < 1 {
		return nil, fmt.Errorf("number of classes %d: must be >= 1", numClasses)
	}
	if label < 0 || label >= numClasses {
		return nil, fmt.Errorf("label %d out of range [0, %d)", label, numClasses)
	}
	if err := ValidateLabelSmoothing(eps); err != nil {
		return nil, err
	}
	out := ensureLen(dst, numClasses)
	off := eps / float64(numClasses)
	for i := range out {
		out[i] = T(off)
	}
	out[label] = T(1 - eps + off)
	return out, nil
}

// SmoothTarget writes (1-eps)*q + eps/C into dst (allocated when too short; it
// may alias q) and returns it, where C = len(q). It is label smoothing applied
// to a given soft target.
func SmoothTarget[T Float](dst, q []T, eps float64) []T {
	out := ensureLen(dst, len(q))
	off := eps / float64(len(q))
	for i, v := range q {
		out[i] = T((1-eps)*float64(v) + off)
	}
	return out
}

// CrossEntropy returns the cross-entropy -sum_i q_i log softmax(z)_i of one
// example, computed with log-sum-exp on logits shifted by their maximum, so
// that large logits and zero probabilities are handled (terms with q_i = 0
// contribute nothing). z and q must have the same length. It returns an
// error naming the logit when the loss is not a float64 number: z spans more
// than the float64 range and that logit has a target weight.
func CrossEntropy[T Float](z, q []T) (float64, error) {
	if len(z) == 0 {
		return 0, errEmptyRow
	}
	if len(z) != len(q) {
		return 0, fmt.Errorf("cross-entropy: %d logits but %d targets", len(z), len(q))
	}
	loss, bad := crossEntropy(z, q)
	if bad >= 0 {
		return 0, fmt.Errorf("z[%d] = %v: %w", bad, float64(z[bad]), errLossOverflow(rowMax(z)))
	}
	return loss, nil
}

// errLossOverflow is the reason given when a cross-entropy overflows.
func errLossOverflow(m float64) error {
	return fmt.Errorf("the cross-entropy overflows float64 (the row maximum is %v; logits that far apart have no finite loss)", m)
}

// crossEntropy computes the cross-entropy of one non-empty row. When the
// result is not finite (or z holds non-finite values) it returns the index
// of the smallest logit with a target weight as bad, else bad is -1.
func crossEntropy[T Float](z, q []T) (loss float64, bad int) {
	m := rowMax(z)
	logS := logSumExpGaps(z, m, 1)
	for i, v := range z {
		if qi := float64(q[i]); qi != 0 {
			loss -= qi * ((float64(v) - m) - logS)
		}
	}
	if !math.IsInf(loss, 0) && !math.IsNaN(loss) {
		return loss, -1
	}
	bad = -1
	for i, v := range z {
		if q[i] != 0 && (bad < 0 || !(v >= z[bad])) {
			bad = i
		}
	}
	if bad < 0 {
		bad = 0
	}
	return loss, bad
}

// TamperedGradient writes the tampered logits gradient scale*(p' - q) of one
// example into dst (allocated when too short) and returns it, where p' =
// softmax(alpha*z). For the gradient of a batch-mean loss over N examples use
// scale = 1/N.
func TamperedGradient[T Float](dst, z, q []T, alpha, scale float64) ([]T, error) {
	if len(z) == 0 {
		return nil, errEmptyRow
	}
	if len(z) != len(q) {
		return nil, fmt.Errorf("tampered gradient: %d logits but %d targets", len(z), len(q))
	}
	if err := ValidateAlpha(alpha); err != nil {
		return nil, err
	}
	pt := make([]float64, len(z))
	tamperedSoftmax64(pt, z, alpha)
	out := ensureLen(dst, len(z))
	for i := range out {
		out[i] = T(scale * (pt[i] - float64(q[i])))
	}
	return out, nil
}
