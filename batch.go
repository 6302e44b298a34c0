package sgt

import (
	"errors"
	"fmt"
	"math"
)

// Result holds everything SGT computes for one batch, in float64.
type Result struct {
	// Probs holds p = softmax(z), one row per example.
	Probs [][]float64
	// TamperedProbs holds p' = softmax(alpha*z), one row per example.
	TamperedProbs [][]float64
	// Targets holds the (possibly label-smoothed) targets q.
	Targets [][]float64
	// Grad holds the tampered gradient of the batch-mean loss, (p' - q)/N.
	Grad [][]float64
	// Loss is the mean cross-entropy of p against q over the batch (the
	// forward value, untouched by tampering).
	Loss float64
	// StationaryThreshold holds the stationary threshold t of each example;
	// it is nil when alpha == 1, where the threshold is undefined.
	StationaryThreshold []float64
}

// softTargetTolerance is how far a soft target row may sum away from 1.
const softTargetTolerance = 1e-6

// validateLogits checks that logits is a non-empty rectangular matrix of
// finite values with at least one column and returns its number of columns.
func validateLogits(logits [][]float64) (int, error) {
	if len(logits) == 0 {
		return 0, errors.New("logits: empty batch, need at least one row")
	}
	c := len(logits[0])
	if c == 0 {
		return 0, errors.New("logits row 0: empty, need at least one class")
	}
	for i, row := range logits {
		if len(row) != c {
			return 0, fmt.Errorf("logits row %d: has %d values, want %d like row 0", i, len(row), c)
		}
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("logits[%d][%d] = %v: must be finite", i, j, v)
			}
		}
	}
	return c, nil
}

// Compute runs SGT on a batch of logits with integer labels: it returns the
// probabilities, the tampered probabilities, the label-smoothed targets
// q = (1-eps)*onehot + eps/C, the tampered gradient (p' - q)/N of the
// batch-mean cross-entropy, the loss and the stationary thresholds. It rejects
// an empty batch, ragged rows, non-finite logits, labels out of range, and
// invalid alpha or eps, naming the offending row or value; and logits whose
// loss is not a float64 number (a row spanning more than the float64 range,
// such as [1e308, -1e308], against a target on its far end), naming the
// logit. Every value of a returned Result is finite.
func Compute(logits [][]float64, labels []int, alpha, eps float64) (*Result, error) {
	if err := ValidateAlpha(alpha); err != nil {
		return nil, err
	}
	if err := ValidateLabelSmoothing(eps); err != nil {
		return nil, err
	}
	c, err := validateLogits(logits)
	if err != nil {
		return nil, err
	}
	if len(labels) != len(logits) {
		return nil, fmt.Errorf("labels: got %d, want one per logits row (%d)", len(labels), len(logits))
	}
	targets := make([][]float64, len(logits))
	for i, l := range labels {
		if l < 0 || l >= c {
			return nil, fmt.Errorf("labels[%d] = %d: out of range [0, %d)", i, l, c)
		}
		q, err := Target[float64](nil, c, l, eps)
		if err != nil {
			return nil, fmt.Errorf("labels[%d]: %w", i, err)
		}
		targets[i] = q
	}
	return compute(logits, targets, alpha)
}

// ComputeSoft is Compute with given soft targets instead of integer labels.
// Each target row must have one non-negative finite value per class and sum
// to 1 (within 1e-6). Label smoothing, if wanted, is applied by the caller
// (see SmoothTarget).
func ComputeSoft(logits, targets [][]float64, alpha float64) (*Result, error) {
	if err := ValidateAlpha(alpha); err != nil {
		return nil, err
	}
	c, err := validateLogits(logits)
	if err != nil {
		return nil, err
	}
	if len(targets) != len(logits) {
		return nil, fmt.Errorf("targets: got %d rows, want one per logits row (%d)", len(targets), len(logits))
	}
	for i, row := range targets {
		if len(row) != c {
			return nil, fmt.Errorf("targets row %d: has %d values, want %d", i, len(row), c)
		}
		var s float64
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return nil, fmt.Errorf("targets[%d][%d] = %v: must be finite and >= 0", i, j, v)
			}
			s += v
		}
		if math.Abs(s-1) > softTargetTolerance {
			return nil, fmt.Errorf("targets row %d: sums to %v, want 1", i, s)
		}
	}
	return compute(logits, targets, alpha)
}

// compute does the work of Compute and ComputeSoft on validated input.
func compute(logits, targets [][]float64, alpha float64) (*Result, error) {
	n := len(logits)
	res := &Result{
		Probs:         make([][]float64, n),
		TamperedProbs: make([][]float64, n),
		Targets:       targets,
		Grad:          make([][]float64, n),
	}
	if alpha != 1 {
		res.StationaryThreshold = make([]float64, n)
	}
	nf := float64(n)
	var loss float64
	for i, z := range logits {
		q := targets[i]
		res.Probs[i] = Softmax(nil, z)
		pt := TamperedSoftmax(nil, z, alpha)
		res.TamperedProbs[i] = pt
		g := make([]float64, len(z))
		for j := range g {
			g[j] = (pt[j] - q[j]) / nf
		}
		res.Grad[i] = g
		ce, bad := crossEntropy(z, q)
		if bad >= 0 {
			return nil, fmt.Errorf("logits[%d][%d] = %v: %w", i, bad, z[bad], errLossOverflow(rowMax(z)))
		}
		// Average as we go: every term is finite, and so is their mean
		// (a sum first could overflow).
		loss += ce / nf
		if res.StationaryThreshold != nil {
			t, err := StationaryThreshold(z, alpha)
			if err != nil {
				return nil, fmt.Errorf("row %d: %w", i, err)
			}
			res.StationaryThreshold[i] = t
		}
	}
	if math.IsInf(loss, 0) {
		return nil, errors.New("logits: the mean cross-entropy overflows float64")
	}
	res.Loss = loss
	return res, nil
}
