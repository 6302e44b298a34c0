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
	lse := LogSumExp(z)
	if math.IsInf(lse, 0) || math.IsNaN(lse) {
		return 0, fmt.Errorf("stationary threshold: logits must be finite (log-sum-exp is %v)", lse)
	}
	// logsumexp_j(alpha*log p_j) = alpha*(max z - lse) + log sum_j exp(alpha*(z_j - max z)).
	// Every exponent is <= 0 and the largest is 0, so the sum lies in [1, C],
	// and alpha/(alpha-1) is formed first so huge alphas cannot overflow.
	m := rowMax(z)
	var s float64
	for _, v := range z {
		s += math.Exp(alpha * (float64(v) - m))
	}
	return (m-lse)*(alpha/(alpha-1)) + math.Log(s)/(alpha-1), nil
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
