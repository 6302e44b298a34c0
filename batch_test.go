package sgt

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestComputeMatchesRowFunctions checks Compute against a direct evaluation
// of every output from its definition on a random batch.
func TestComputeMatchesRowFunctions(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const n, c = 6, 9
	logits := make([][]float64, n)
	labels := make([]int, n)
	for i := range logits {
		logits[i] = randomRow(r, c, 4)
		labels[i] = r.IntN(c)
	}
	for _, eps := range []float64{0, 0.1} {
		for _, a := range testAlphas {
			res, err := Compute(logits, labels, a, eps)
			if err != nil {
				t.Fatal(err)
			}
			var loss float64
			for i, z := range logits {
				var s, sa float64
				for _, v := range z {
					s += math.Exp(v)
					sa += math.Exp(a * v)
				}
				var gsum float64
				for j, v := range z {
					p := math.Exp(v) / s
					pt := math.Exp(a*v) / sa
					q := eps / c
					if j == labels[i] {
						q += 1 - eps
					}
					loss -= q * math.Log(p) / n
					if !relClose(res.Probs[i][j], p, 1e-13) || !relClose(res.TamperedProbs[i][j], pt, 1e-13) ||
						!relClose(res.Targets[i][j], q, 1e-15) || !relClose(res.Grad[i][j], (pt-q)/n, 1e-13) {
						t.Fatalf("eps=%v alpha=%v [%d][%d]: got p=%v p'=%v q=%v g=%v, want %v %v %v %v", eps, a, i, j,
							res.Probs[i][j], res.TamperedProbs[i][j], res.Targets[i][j], res.Grad[i][j], p, pt, q, (pt-q)/n)
					}
					gsum += res.Grad[i][j]
				}
				if math.Abs(gsum) > 1e-15 {
					t.Fatalf("grad row %d sums to %v", i, gsum)
				}
				if a == 1 {
					if res.StationaryThreshold != nil {
						t.Fatalf("alpha=1: thresholds %v, want nil", res.StationaryThreshold)
					}
					continue
				}
				var sp float64
				for _, v := range z {
					sp += math.Pow(math.Exp(v)/s, a)
				}
				if want := math.Pow(sp, 1/(a-1)); !relClose(res.StationaryThreshold[i], want, 1e-12) {
					t.Fatalf("alpha=%v row %d: threshold %v, want %v", a, i, res.StationaryThreshold[i], want)
				}
			}
			if !relClose(res.Loss, loss, 1e-13) {
				t.Fatalf("eps=%v alpha=%v: loss %v, want %v", eps, a, res.Loss, loss)
			}
		}
	}
}

func TestComputeSoft(t *testing.T) {
	logits := [][]float64{{1, 2, 3}, {0, -1, 5}}
	targets := [][]float64{{0.2, 0.3, 0.5}, {1, 0, 0}}
	res, err := ComputeSoft(logits, targets, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	// Same as Compute where the soft target is one-hot.
	hard, err := Compute(logits[1:], []int{0}, 0.5, 0)
	if err != nil {
		t.Fatal(err)
	}
	for j := range 3 {
		if !relClose(res.Grad[1][j], hard.Grad[0][j]/2, 1e-15) {
			t.Errorf("soft one-hot grad %v, want half of %v", res.Grad[1], hard.Grad[0])
		}
	}
	ce, _ := CrossEntropy(logits[0], targets[0])
	if !relClose(res.Loss, (ce+hard.Loss)/2, 1e-14) {
		t.Errorf("loss %v, want %v", res.Loss, (ce+hard.Loss)/2)
	}
	bad := []struct {
		targets [][]float64
		msg     string
	}{
		{[][]float64{{0.5, 0.5, 0.5}, {1, 0, 0}}, "targets row 0: sums to"},
		{[][]float64{{1, 0, 0}}, "targets: got 1 rows"},
		{[][]float64{{1, 0, 0}, {1, 0}}, "targets row 1: has 2"},
		{[][]float64{{1, 0, 0}, {1.5, -0.5, 0}}, "targets[1][1] = -0.5"},
	}
	for _, b := range bad {
		_, err := ComputeSoft(logits, b.targets, 0.5)
		if err == nil || !strings.Contains(err.Error(), b.msg) {
			t.Errorf("ComputeSoft(%v): error %v, want one containing %q", b.targets, err, b.msg)
		}
	}
}

func TestComputeRejectsBadInput(t *testing.T) {
	ok := [][]float64{{1, 2}, {3, 4}}
	for _, tc := range []struct {
		name   string
		logits [][]float64
		labels []int
		alpha  float64
		eps    float64
		msg    string
	}{
		{"empty", nil, nil, 0.5, 0, "empty batch"},
		{"empty row", [][]float64{{}}, []int{0}, 0.5, 0, "row 0: empty"},
		{"ragged", [][]float64{{1, 2}, {3}}, []int{0, 0}, 0.5, 0, "logits row 1: has 1 values, want 2"},
		{"nan", [][]float64{{1, 2}, {3, math.NaN()}}, []int{0, 0}, 0.5, 0, "logits[1][1] = NaN"},
		{"inf", [][]float64{{math.Inf(-1), 2}, {3, 4}}, []int{0, 0}, 0.5, 0, "logits[0][0] = -Inf"},
		{"label high", ok, []int{0, 2}, 0.5, 0, "labels[1] = 2: out of range [0, 2)"},
		{"label negative", ok, []int{-1, 0}, 0.5, 0, "labels[0] = -1"},
		{"label count", ok, []int{0}, 0.5, 0, "labels: got 1, want one per logits row (2)"},
		{"alpha", ok, []int{0, 1}, -0.5, 0, "alpha -0.5"},
		{"eps", ok, []int{0, 1}, 0.5, 1, "label smoothing 1"},
	} {
		_, err := Compute(tc.logits, tc.labels, tc.alpha, tc.eps)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.msg)
		}
	}
}

func BenchmarkCompute128x1000(b *testing.B) {
	r := rand.New(rand.NewPCG(13, 14))
	logits := make([][]float64, 128)
	labels := make([]int, 128)
	for i := range logits {
		logits[i] = randomRow(r, 1000, 10)
		labels[i] = r.IntN(1000)
	}
	for b.Loop() {
		if _, err := Compute(logits, labels, 0.3, 0.1); err != nil {
			b.Fatal(err)
		}
	}
}

// TestComputeHugeLogits reproduces issue 11 item 5: logits so large that
// max + log(sum) rounds back to max. [[1e17, 1e17]] has p = [1/2, 1/2], so
// the loss is ln 2 (not 0) and every log-probability is -ln 2; the
// stationary threshold of a uniform pair is 1/2 at every alpha.
func TestComputeHugeLogits(t *testing.T) {
	for _, v := range []float64{1e17, -1e17, 1e300, math.MaxFloat64} {
		z := []float64{v, v}
		res, err := Compute([][]float64{z}, []int{0}, 0.3, 0)
		if err != nil {
			t.Fatalf("%v: %v", z, err)
		}
		if !relClose(res.Loss, math.Ln2, 1e-15) {
			t.Errorf("%v: loss %v, want ln 2 = %v", z, res.Loss, math.Ln2)
		}
		if !relClose(res.StationaryThreshold[0], 0.5, 1e-15) {
			t.Errorf("%v: stationary threshold %v, want 0.5", z, res.StationaryThreshold[0])
		}
		for _, ls := range LogSoftmax(nil, z) {
			if !relClose(ls, -math.Ln2, 1e-15) {
				t.Errorf("%v: log softmax %v, want -ln 2", z, ls)
			}
		}
		// A gap of 1 between huge logits: loss of the larger is log(1+e^-1).
		big := []float64{v, v - 1}
		if math.IsInf(v-1, 0) || v-1 == v {
			continue
		}
		ce, err := CrossEntropy(big, []float64{1, 0})
		if want := math.Log1p(math.Exp(-1)); err != nil || !relClose(ce, want, 1e-14) {
			t.Errorf("%v: cross-entropy %v (%v), want %v", big, ce, err, want)
		}
	}
}

// TestComputeExtremeSpread reproduces the second case of issue 11 item 5:
// [[1e308, -1e308]], whose difference overflows float64. At alpha 0 the
// tampered probabilities are uniform (never 0*Inf = NaN); for small alpha
// they follow alpha*(z - max z) without overflow; the loss against label 0
// is 0. Against label 1 the loss itself (2e308) is not a float64: that is
// an error naming the row and the value, never NaN or Inf in the result.
func TestComputeExtremeSpread(t *testing.T) {
	z := [][]float64{{1e308, -1e308}}
	for _, alpha := range []float64{0, 1e-310, 1e-308, 0.3, 1, 2} {
		res, err := Compute(z, []int{0}, alpha, 0)
		if err != nil {
			t.Fatalf("alpha %v: %v", alpha, err)
		}
		// softmax(alpha*z) = [1/(1+e^(-2e308*alpha)), ...]; the exponent is
		// -2e308*alpha, computed exactly here as -2*(1e308*alpha).
		e := math.Exp(-2 * (1e308 * alpha))
		wantPt := []float64{1 / (1 + e), e / (1 + e)}
		if res.Loss != 0 || res.Probs[0][0] != 1 || res.Probs[0][1] != 0 {
			t.Errorf("alpha %v: loss %v, probs %v; want 0 and [1 0]", alpha, res.Loss, res.Probs[0])
		}
		for j, w := range wantPt {
			if !relClose(res.TamperedProbs[0][j], w, 1e-15) || !relClose(res.Grad[0][j], w-[]float64{1, 0}[j], 1e-15) {
				t.Errorf("alpha %v: tampered %v, grad %v; want %v", alpha, res.TamperedProbs[0], res.Grad[0], wantPt)
			}
		}
		if alpha != 1 {
			// t = (sum p^alpha)^(1/(alpha-1)) with p_0 = 1 (to float64
			// precision) and p_1^alpha = e^(-2e308*alpha): (1+e)^(1/(alpha-1)),
			// 1/2 at alpha 0 and 1 once alpha is not tiny.
			want := math.Pow(1+e, 1/(alpha-1))
			if th := res.StationaryThreshold[0]; !relClose(th, want, 1e-15) {
				t.Errorf("alpha %v: stationary threshold %v, want %v", alpha, th, want)
			}
		}
	}
	for _, eps := range []float64{0, 0.1} {
		labels := []int{1}
		if eps > 0 {
			labels = []int{0}
		}
		_, err := Compute(z, labels, 0, eps)
		if err == nil || !strings.Contains(err.Error(), "logits[0][1] = -1e+308") || !strings.Contains(err.Error(), "overflows") {
			t.Errorf("eps %v labels %v: error %v, want one naming logits[0][1] and the overflow", eps, labels, err)
		}
	}
}
