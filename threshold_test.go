package sgt

import (
	"errors"
	"math"
	"testing"
)

// TestLemma1 checks that for alpha in [0, 1) tampering raises exactly the
// probabilities at or below the stationary threshold: p'_i >= p_i iff
// p_i <= t. Entries within rounding distance of the threshold are skipped.
func TestLemma1(t *testing.T) {
	checked, above, below := 0, 0, 0
	randomCases(t, func(z []float64) {
		p := Softmax(nil, z)
		lp := LogSoftmax(nil, z)
		for _, a := range []float64{0, 0.05, 0.25, 0.5, 0.92, 0.99} {
			pt := TamperedSoftmax(nil, z, a)
			lt, err := LogStationaryThreshold(z, a)
			if err != nil {
				t.Fatal(err)
			}
			for i := range p {
				gap := lp[i] - lt
				if math.Abs(gap) < 1e-6*math.Max(1, math.Abs(lt)) {
					continue // too close to the threshold to decide in float64
				}
				if p[i] < 1e-290 && pt[i] < 1e-290 {
					continue // both (nearly) underflow: too few bits to compare
				}
				checked++
				if gap < 0 {
					below++
					if pt[i] < p[i] {
						t.Fatalf("C=%d alpha=%v: p[%d]=%v below t=%v but p'=%v < p", len(z), a, i, p[i], math.Exp(lt), pt[i])
					}
				} else {
					above++
					if pt[i] >= p[i] {
						t.Fatalf("C=%d alpha=%v: p[%d]=%v above t=%v but p'=%v >= p", len(z), a, i, p[i], math.Exp(lt), pt[i])
					}
				}
			}
		}
	})
	if above < 100 || below < 100 {
		t.Fatalf("too few decisive entries: %d above and %d below the threshold (of %d)", above, below, checked)
	}
}

// TestProposition1 checks that at alpha = 0 the threshold is 1/C and p' is
// uniform.
func TestProposition1(t *testing.T) {
	randomCases(t, func(z []float64) {
		c := float64(len(z))
		th, err := StationaryThreshold(z, 0)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(th-1/c) > 1e-14/c {
			t.Fatalf("C=%v: t(0) = %v, want 1/C = %v", c, th, 1/c)
		}
		for i, v := range TamperedSoftmax(nil, z, 0) {
			if math.Abs(v-1/c) > 1e-15 {
				t.Fatalf("C=%v: p'[%d] at alpha=0 = %v, want %v", c, i, v, 1/c)
			}
		}
	})
}

// TestTheorem1 checks that the threshold does not decrease as alpha grows
// over [0, 1), and that it approaches exp(-entropy(p)) near alpha = 1.
func TestTheorem1(t *testing.T) {
	randomCases(t, func(z []float64) {
		// Rounding of log-sum-exp is about ulp(max |z|), amplified by
		// 1/(1-alpha) in log t.
		maxAbs := 0.0
		for _, v := range z {
			maxAbs = math.Max(maxAbs, math.Abs(v))
		}
		prev := math.Inf(-1)
		for k := 0; k < 100; k++ {
			a := float64(k) / 100
			lt, err := LogStationaryThreshold(z, a)
			if err != nil {
				t.Fatal(err)
			}
			tol := 1e-12*math.Max(1, math.Abs(prev)) + 4e-16*math.Max(1, maxAbs)/(1-a)
			if lt < prev-tol {
				t.Fatalf("C=%d: log t decreases from %v to %v at alpha=%v", len(z), prev, lt, a)
			}
			prev = lt
		}
		// Limit at alpha -> 1 is -entropy(p).
		lp := LogSoftmax(nil, z)
		p := Softmax(nil, z)
		var negH float64
		for i := range p {
			negH += p[i] * lp[i]
		}
		lt, err := LogStationaryThreshold(z, 1-1e-7)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(lt-negH) > 1e-5*math.Max(1, math.Abs(negH)) {
			t.Fatalf("C=%d: log t near alpha=1 is %v, want -H(p) = %v", len(z), lt, negH)
		}
	})
}

// TestThresholdDirect checks the log-space threshold against the direct
// formula (sum p^alpha)^(1/(alpha-1)) on logits that do not underflow, and
// checks extreme logits and the alpha = 1 error.
func TestThresholdDirect(t *testing.T) {
	z := []float64{2, -1, 0.5, 3, 0}
	p := Softmax(nil, z)
	for _, a := range []float64{0, 0.3, 0.92, 1.5, 3} {
		var s float64
		for _, v := range p {
			s += math.Pow(v, a)
		}
		want := math.Pow(s, 1/(a-1))
		got, err := StationaryThreshold(z, a)
		if err != nil {
			t.Fatal(err)
		}
		if !relClose(got, want, 1e-13) {
			t.Errorf("alpha=%v: t = %v, want %v", a, got, want)
		}
	}
	if _, err := StationaryThreshold(z, 1); !errors.Is(err, ErrThresholdUndefined) {
		t.Errorf("alpha=1: error %v, want ErrThresholdUndefined", err)
	}
	if _, err := StationaryThreshold(z, -1); err == nil {
		t.Error("alpha=-1: want error")
	}
	if _, err := StationaryThreshold([]float64{}, 0.5); err == nil {
		t.Error("empty row: want error")
	}
	// +-1000 logits: p = (1, 0) in float64, yet t is finite and exact.
	// log p = (0, -2000); log t = log(1 + e^(-2000 a)) / (a - 1) ~ 0 for a > 0;
	// at a = 0, t = 1/2.
	ext := []float64{1000, -1000}
	for _, a := range []float64{0, 0.5} {
		lt, err := LogStationaryThreshold(ext, a)
		if err != nil || math.IsNaN(lt) {
			t.Fatalf("alpha=%v: log t = %v, %v", a, lt, err)
		}
		want := math.Log1p(math.Exp(-2000*a)) / (a - 1)
		if !relClose(lt, want, 1e-15) {
			t.Errorf("alpha=%v: log t = %v, want %v", a, lt, want)
		}
	}
	// Huge alpha: no overflow, t tends to max p.
	lt, err := LogStationaryThreshold(z, 1e300)
	if err != nil || !relClose(lt, LogSoftmax(nil, z)[3], 1e-12) {
		t.Errorf("alpha=1e300: log t = %v, %v; want log max p = %v", lt, err, LogSoftmax(nil, z)[3])
	}
}
