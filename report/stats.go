package report

import (
	"math"

	"github.com/sgt-dev/sgt/experiment"
)

// SignificanceLevel is the two-sided p-value below which a difference is
// said to exceed the seed-to-seed noise.
const SignificanceLevel = 0.05

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
	ma, sa := experiment.MeanSD(a)
	mb, sb := experiment.MeanSD(b)
	w := Welch{Diff: ma - mb}
	if len(a) < 2 || len(b) < 2 {
		return w
	}
	w.OK = true
	va, vb := sa*sa/float64(len(a)), sb*sb/float64(len(b))
	w.SE = math.Sqrt(va + vb)
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
// df degrees of freedom: the regularised incomplete beta function
// I_{df/(df+t^2)}(df/2, 1/2).
func StudentTTwoSided(t, df float64) float64 {
	if math.IsInf(t, 0) {
		return 0
	}
	x := df / (df + t*t)
	return regIncBeta(df/2, 0.5, x)
}

// regIncBeta is the regularised incomplete beta function I_x(a, b),
// evaluated with its continued fraction (modified Lentz's method), using the
// symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges slowly.
func regIncBeta(a, b, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	lga, _ := math.Lgamma(a)
	lgb, _ := math.Lgamma(b)
	lgab, _ := math.Lgamma(a + b)
	front := math.Exp(lgab - lga - lgb + a*math.Log(x) + b*math.Log1p(-x))
	if x > (a+1)/(a+b+2) {
		return 1 - front*betaFraction(b, a, 1-x)/b
	}
	return front * betaFraction(a, b, x) / a
}

// betaFraction evaluates the continued fraction of the incomplete beta
// function, 1/(1+ d1/(1+ d2/(1+ ...))) with d_{2m+1} = -(a+m)(a+b+m)x /
// ((a+2m)(a+2m+1)) and d_{2m} = m(b-m)x / ((a+2m-1)(a+2m)).
func betaFraction(a, b, x float64) float64 {
	const tiny = 1e-300
	fix := func(v float64) float64 {
		if math.Abs(v) < tiny {
			return tiny
		}
		return v
	}
	c, d := 1.0, 1/fix(1-(a+b)*x/(a+1))
	h := d
	for m := 1; m <= 300; m++ {
		fm := float64(m)
		even := fm * (b - fm) * x / ((a + 2*fm - 1) * (a + 2*fm))
		d = 1 / fix(1+even*d)
		c = fix(1 + even/c)
		h *= d * c
		odd := -(a + fm) * (a + b + fm) * x / ((a + 2*fm) * (a + 2*fm + 1))
		d = 1 / fix(1+odd*d)
		c = fix(1 + odd/c)
		delta := d * c
		h *= delta
		if math.Abs(delta-1) < 1e-15 {
			break
		}
	}
	return h
}

// LeastSquares fits y = Intercept + Slope*x by ordinary least squares and
// returns the fit and its coefficient of determination R2. It needs two
// distinct x values.
type LeastSquares struct {
	Slope, Intercept, R2 float64
}

// FitLine fits a straight line to the points (xs[i], ys[i]); ok is false
// with fewer than two distinct x values.
func FitLine(xs, ys []float64) (fit LeastSquares, ok bool) {
	n := float64(len(xs))
	if len(xs) < 2 || len(xs) != len(ys) {
		return fit, false
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= n
	my /= n
	var sxx, sxy, syy float64
	for i := range xs {
		dx, dy := xs[i]-mx, ys[i]-my
		sxx += dx * dx
		sxy += dx * dy
		syy += dy * dy
	}
	if sxx == 0 {
		return fit, false
	}
	fit.Slope = sxy / sxx
	fit.Intercept = my - fit.Slope*mx
	if syy == 0 {
		fit.R2 = 1
	} else {
		fit.R2 = sxy * sxy / (sxx * syy)
	}
	return fit, true
}
