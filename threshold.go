package sgt

import (
	"errors"
	"fmt"
	"math"
)

// ErrThresholdUndefined is returned by the stationary-threshold functions at
// alpha = 1, where the tampered distribution equals p and no threshold exists.
var ErrThresholdUndefined = errors.New("stationary threshold is undefined at alpha = 1")

// LogStationaryThreshold returns log t for the logits z of one example, where
// t = (sum_j p_j^alpha)^(1/(alpha-1)) is the paper's stationary threshold: for
// alpha in [0, 1) tampering raises exactly the probabilities p_i <= t
// (Lemma 1). It is computed in log space as
//
//	log t = logsumexp(alpha * log p) / (alpha - 1),  log p = z - logsumexp(z),
//
// so probabilities that underflow to zero are handled. At alpha = 1 it returns
// ErrThresholdUndefined (the limit there is exp(-entropy(p))).
func LogStationaryThreshold[T Float](z []T, alpha float64) (float64, error) {
	if err := ValidateAlpha(alpha); err != nil {
		return 0, err
	}
	if alpha == 1 {
		return 0, ErrThresholdUndefined
	}
	if len(z) == 0 {
		return 0, errEmptyRow
	}
	m := rowMax(z)
	if math.IsInf(m, 0) || math.IsNaN(m) {
		return 0, fmt.Errorf("stationary threshold: logits must be finite (the row maximum is %v)", m)
	}
	// log p_j = (z_j - m) - logS1 with logS1 = log sum_j exp(z_j - m), so
	// log sum_j p_j^alpha = logSA - alpha*logS1 with logSA = log sum_j
	// exp(alpha*(z_j - m)). Both sums lie in [1, C]: nothing overflows, huge
	// logits lose no precision (m - logsumexp(z) would round to 0 for
	// [1e17, 1e17]), and alpha/(alpha-1) is formed first so huge alphas
	// cannot overflow.
	logS1 := logSumExpGaps(z, m, 1)
	logSA := logSumExpGaps(z, m, alpha)
	if math.IsNaN(logS1) || math.IsNaN(logSA) {
		return 0, errors.New("stationary threshold: logits must be finite")
	}
	return -logS1*(alpha/(alpha-1)) + logSA/(alpha-1), nil
}

// StationaryThreshold returns the stationary threshold t =
// (sum_j p_j^alpha)^(1/(alpha-1)) for the logits z of one example; see
// LogStationaryThreshold. The result lies in [0, 1]; it can underflow to zero
// only for extreme logits.
func StationaryThreshold[T Float](z []T, alpha float64) (float64, error) {
	lt, err := LogStationaryThreshold(z, alpha)
	if err != nil {
		return 0, err
	}
	return math.Exp(lt), nil
}
