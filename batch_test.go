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
