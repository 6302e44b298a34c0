package report

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestStatistics(t *testing.T) {
	// Closed forms: df = 1 is the Cauchy distribution, P(|T| >= 1) = 1/2;
	// df = 2 has P(|T| >= t) = 1 - t/sqrt(2+t^2).
	if p := StudentTTwoSided(1, 1); math.Abs(p-0.5) > 1e-12 {
		t.Errorf("df 1: %v", p)
	}
	for _, tv := range []float64{0.5, 2, 7} {
		if p, want := StudentTTwoSided(tv, 2), 1-tv/math.Sqrt(2+tv*tv); math.Abs(p-want) > 1e-12 {
			t.Errorf("df 2, t %v: %v want %v", tv, p, want)
		}
		if p, want := StudentTTwoSided(tv, 4), p4(tv); math.Abs(p-want) > 1e-12 {
			t.Errorf("df 4, t %v: %v want %v", tv, p, want)
		}
		if p, want := StudentTTwoSided(-tv, 4), p4(tv); math.Abs(p-want) > 1e-12 {
			t.Errorf("df 4, t -%v: %v want %v", tv, p, want)
		}
	}
	// Tabulated critical value: t = 2.228139 at df = 10 gives p = 0.05.
	if p := StudentTTwoSided(2.228139, 10); math.Abs(p-0.05) > 1e-5 {
		t.Errorf("df 10: %v", p)
	}
	if p := StudentTTwoSided(0, 7); p != 1 {
		t.Errorf("t = 0: %v", p)
	}
	w := WelchTest([]float64{1, 2, 3}, []float64{1, 2, 3})
	if !w.OK || w.P != 1 || w.Significant() {
		t.Errorf("equal samples: %+v", w)
	}
	if w := WelchTest([]float64{1}, []float64{1, 2}); w.OK {
		t.Errorf("one value: %+v", w)
	}
	if w := WelchTest([]float64{2, 2}, []float64{1, 1}); !w.Significant() {
		t.Errorf("zero variance, different means: %+v", w)
	}
	// Welch-Satterthwaite by hand: a = 1, 2, 3, 4 (var 5/3), b = 2, 4
	// (var 2): va = 5/12, vb = 1; df = (17/12)^2 / ((5/12)^2/3 + 1).
	w = WelchTest([]float64{1, 2, 3, 4}, []float64{2, 4})
	if want := (17.0 / 12) * (17.0 / 12) / ((5.0/12)*(5.0/12)/3 + 1); math.Abs(w.DF-want) > 1e-12 {
		t.Errorf("Welch df %v, want %v", w.DF, want)
	}
	if math.Abs(w.T-(-0.5/math.Sqrt(17.0/12))) > 1e-12 {
		t.Errorf("Welch t %v", w.T)
	}
	fit, ok := FitLine([]float64{0, 1, 2, 3}, []float64{2, 5, 8, 11})
	if !ok || math.Abs(fit.Slope-3) > 1e-12 || math.Abs(fit.Intercept-2) > 1e-12 || math.Abs(fit.R2-1) > 1e-12 {
		t.Errorf("fit %+v", fit)
	}
	fit, _ = FitLine([]float64{0, 1, 2, 3}, []float64{1, 0, 1, 4})
	// Sxx = 5, Sxy = 5 -> slope 1, intercept 1.5 - 1.5 = 0; Syy = 9 -> R2 = 25/45.
	if math.Abs(fit.Slope-1) > 1e-12 || math.Abs(fit.Intercept) > 1e-12 || math.Abs(fit.R2-25.0/45) > 1e-12 {
		t.Errorf("noisy fit %+v", fit)
	}
	if _, ok := FitLine([]float64{1, 1}, []float64{1, 2}); ok {
		t.Error("constant x: want no fit")
	}
	if fit, ok := FitLine([]float64{1, 2}, []float64{3, 3}); !ok || fit.R2 != 1 || fit.Slope != 0 {
		t.Errorf("constant y: %+v", fit)
	}
	// Pooled sd of (1, 3) (var 2) and (2, 4, 6) (var 4): sqrt((2 + 8)/3).
	if got, want := PooledSD([]float64{1, 3}, []float64{2, 4, 6}), math.Sqrt(10.0/3); math.Abs(got-want) > 1e-12 {
		t.Errorf("pooled sd %v, want %v", got, want)
	}
}

// TestSeedsForPower checks the seed estimate against Cohen's table of
// two-sample t-test sizes (alpha 0.05 two-sided, power 0.8) and against
// simulation: with the estimated seeds, a Welch test of normal samples
// detects the difference about 80% of the time, and with one seed fewer
// it does not reach 80%.
func TestSeedsForPower(t *testing.T) {
	for _, c := range []struct {
		effect float64
		want   int
	}{{0.5, 64}, {0.8, 26}, {1, 17}} {
		if n, ok := SeedsForPower(c.effect, 1); !ok || n != c.want {
			t.Errorf("effect %v: %d seeds, want %d (Cohen)", c.effect, n, c.want)
		}
	}
	// Only the ratio of difference to spread matters, and its sign does
	// not.
	a, _ := SeedsForPower(0.8, 1)
	b, _ := SeedsForPower(-2.4, 3)
	if a != b {
		t.Errorf("scale invariance: %d vs %d", a, b)
	}
	for _, bad := range [][2]float64{{0, 1}, {1, 0}, {math.NaN(), 1}, {1, math.Inf(1)}} {
		if _, ok := SeedsForPower(bad[0], bad[1]); ok {
			t.Errorf("SeedsForPower(%v, %v): want no estimate", bad[0], bad[1])
		}
	}
	if n, ok := SeedsForPower(1e-6, 1); !ok || n != maxSeeds {
		t.Errorf("tiny effect: %d, want the cap %d", n, maxSeeds)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	power := func(effect float64, n int) float64 {
		const sims = 20000
		hits := 0
		x, y := make([]float64, n), make([]float64, n)
		for range sims {
			for i := range n {
				x[i] = rng.NormFloat64() + effect
				y[i] = rng.NormFloat64()
			}
			if WelchTest(x, y).Significant() {
				hits++
			}
		}
		return float64(hits) / sims
	}
	for _, effect := range []float64{0.8, 1.5, 2, 3} {
		n, _ := SeedsForPower(effect, 1)
		// Simulation error is about 0.003; the approximation is good to
		// about 0.01 at these sizes.
		if p := power(effect, n); p < TargetPower-0.015 {
			t.Errorf("effect %v: %d seeds give power %.3f, want about %.1f or more", effect, n, p, TargetPower)
		}
		if p := power(effect, n-1); p > TargetPower+0.01 {
			t.Errorf("effect %v: %d seeds already give power %.3f: the estimate is not the smallest", effect, n-1, p)
		}
	}
}
