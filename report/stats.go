package report

import (
	"math"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// SignificanceLevel is the two-sided p-value below which a difference is
// said to exceed the seed-to-seed noise.
const SignificanceLevel = 0.05

// TargetPower is the power at which SeedsForPower sizes an experiment.
const TargetPower = 0.8

// maxSeeds caps SeedsForPower's answer.
const maxSeeds = 100000

// meanSD returns the mean and the sample standard deviation (n-1
// denominator) of xs: NaN, NaN for no values and sd 0 for one.
func meanSD(xs []float64) (mean, sd float64) {
	switch len(xs) {
	case 0:
		return math.NaN(), math.NaN()
	case 1:
		return xs[0], 0
	}
	return stat.MeanStdDev(xs, nil)
}

// Welch is the result of Welch's unequal-variance t-test of two samples.
type Welch struct {
	// Diff is mean(a) - mean(b).
	Diff float64
	// SE is the standard error of Diff, sqrt(s_a^2/n_a + s_b^2/n_b).
	SE float64
	// T is Diff/SE and DF the Welch-Satterthwaite degrees of freedom.
	T, DF float64
	// P is the two-sided p-value.
	P float64
	// OK is false when a sample has fewer than 2 values, so no test is made.
	OK bool
}

// WelchTest compares the means of a and b with Welch's t-test. When both
// samples have zero variance, P is 1 for equal means and 0 otherwise.
func WelchTest(a, b []float64) Welch {
	ma, sa := meanSD(a)
	mb, sb := meanSD(b)
	w := Welch{Diff: ma - mb}
	// Rounding makes equal values differ in their last bits; differences
	// and spreads below that are none.
	tiny := 1e-12 * math.Max(math.Abs(ma), math.Abs(mb))
	if math.Abs(w.Diff) <= tiny {
		w.Diff = 0
	}
	if len(a) < 2 || len(b) < 2 {
		return w
	}
	w.OK = true
	va, vb := sa*sa/float64(len(a)), sb*sb/float64(len(b))
	w.SE = math.Sqrt(va + vb)
	if w.SE <= tiny {
		w.SE, va, vb = 0, 0, 0
	}
	if w.SE == 0 {
		w.T = math.Inf(1)
		if w.Diff == 0 {
			w.T, w.P = 0, 1
		}
		w.DF = float64(len(a) + len(b) - 2)
		return w
	}
	w.T = w.Diff / w.SE
	w.DF = (va + vb) * (va + vb) / (va*va/float64(len(a)-1) + vb*vb/float64(len(b)-1))
	w.P = StudentTTwoSided(w.T, w.DF)
	return w
}

// Significant reports whether the test was made and p < SignificanceLevel.
func (w Welch) Significant() bool { return w.OK && w.P < SignificanceLevel }

// StudentTTwoSided returns P(|T| >= |t|) for Student's t distribution with
// df degrees of freedom.
func StudentTTwoSided(t, df float64) float64 {
	if math.IsInf(t, 0) {
		return 0
	}
	return 2 * distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Survival(math.Abs(t))
}

// PooledSD returns the pooled standard deviation of two samples,
// sqrt(((n_a-1) s_a^2 + (n_b-1) s_b^2) / (n_a + n_b - 2)); NaN with fewer
// than 3 values in all.
func PooledSD(a, b []float64) float64 {
	na, nb := len(a), len(b)
	if na+nb < 3 || na == 0 || nb == 0 {
		return math.NaN()
	}
	_, sa := meanSD(a)
	_, sb := meanSD(b)
	return math.Sqrt((float64(na-1)*sa*sa + float64(nb-1)*sb*sb) / float64(na+nb-2))
}

// SeedsForPower estimates how many seeds per setting a two-sided
// two-sample t-test at SignificanceLevel needs to detect a true difference
// diff between two settings whose runs spread with standard deviation sd,
// with probability TargetPower: the smallest n >= 2 with
//
//	n >= 2 (t_{1-a/2, 2n-2} + t_{power, 2n-2})^2 (sd/diff)^2,
//
// the usual t-approximation of the power of Student's two-sample t-test
// (for the effect sizes 0.5, 0.8 and 1 it gives Cohen's 64, 26 and 17
// seeds). ok is false when no estimate can be made (diff = 0 or sd not
// positive and finite); n is capped at 100000.
func SeedsForPower(diff, sd float64) (n int, ok bool) {
	if diff == 0 || !(sd > 0) || !isFinite(diff) || !isFinite(sd) {
		return 0, false
	}
	ratio := sd / math.Abs(diff)
	enough := func(n int) bool {
		t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(2*n - 2)}
		q := t.Quantile(1-SignificanceLevel/2) + t.Quantile(TargetPower)
		return float64(n) >= 2*q*q*ratio*ratio
	}
	// Start from the normal approximation and walk to the smallest n.
	z := distuv.UnitNormal.Quantile(1-SignificanceLevel/2) + distuv.UnitNormal.Quantile(TargetPower)
	start := 2 * z * z * ratio * ratio
	if start > maxSeeds {
		return maxSeeds, true
	}
	n = max(2, int(math.Ceil(start)))
	for !enough(n) && n < maxSeeds {
		n++
	}
	for n > 2 && enough(n-1) {
		n--
	}
	return n, true
}

// LeastSquares is a straight line y = Intercept + Slope*x fitted by
// ordinary least squares, with its coefficient of determination R2.
type LeastSquares struct {
	Slope, Intercept, R2 float64
}

// FitLine fits a straight line to the points (xs[i], ys[i]); ok is false
// with fewer than two distinct x values. R2 is 1 when every y is equal.
func FitLine(xs, ys []float64) (fit LeastSquares, ok bool) {
	if len(xs) < 2 || len(xs) != len(ys) {
		return fit, false
	}
	distinct := false
	for _, x := range xs[1:] {
		distinct = distinct || x != xs[0]
	}
	if !distinct {
		return fit, false
	}
	fit.Intercept, fit.Slope = stat.LinearRegression(xs, ys, nil, false)
	if _, vy := stat.MeanVariance(ys, nil); vy == 0 {
		fit.R2 = 1
	} else {
		fit.R2 = stat.RSquared(xs, ys, nil, fit.Intercept, fit.Slope)
	}
	return fit, true
}
