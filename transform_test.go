package sgt

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// testAlphas are the exponents most property tests sweep.
var testAlphas = []float64{0, 0.05, 0.25, 0.3, 0.5, 0.92, 0.999, 1}

// randomRow returns c logits drawn uniformly from [-scale, scale].
func randomRow(r *rand.Rand, c int, scale float64) []float64 {
	z := make([]float64, c)
	for i := range z {
		z[i] = scale * (2*r.Float64() - 1)
	}
	return z
}

// randomCases yields many random logit rows of various sizes and scales,
// including the extremes C = 2 and C = 1000 and logits up to +-1000.
func randomCases(t *testing.T, fn func(z []float64)) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []int{2, 3, 7, 10, 100, 1000} {
		for _, scale := range []float64{0.01, 1, 10, 100, 1000} {
			reps := 6
			if c == 1000 {
				reps = 2
			}
			for range reps {
				fn(randomRow(r, c, scale))
			}
		}
	}
}

// relClose reports whether a and b agree to within tol relative to the
// larger magnitude (absolute for values below 1).
func relClose(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func TestValidateAlpha(t *testing.T) {
	for _, a := range []float64{0, 0.3, 1, 2.5} {
		if err := ValidateAlpha(a); err != nil {
			t.Errorf("ValidateAlpha(%v) = %v, want nil", a, err)
		}
	}
	for _, a := range []float64{-0.1, math.NaN(), math.Inf(1), math.Inf(-1)} {
		err := ValidateAlpha(a)
		if err == nil || !strings.Contains(err.Error(), "alpha") {
			t.Errorf("ValidateAlpha(%v) = %v, want an error naming alpha", a, err)
		}
	}
	if AlphaOutsidePaperRange(1) || AlphaOutsidePaperRange(0) || !AlphaOutsidePaperRange(1.5) {
		t.Errorf("AlphaOutsidePaperRange: want false at 0 and 1, true at 1.5")
	}
}

func TestValidateLabelSmoothing(t *testing.T) {
	for _, e := range []float64{0, 0.1, 0.999} {
		if err := ValidateLabelSmoothing(e); err != nil {
			t.Errorf("ValidateLabelSmoothing(%v) = %v, want nil", e, err)
		}
	}
	for _, e := range []float64{-0.01, 1, 1.5, math.NaN(), math.Inf(1)} {
		err := ValidateLabelSmoothing(e)
		if err == nil || !strings.Contains(err.Error(), "label smoothing") {
			t.Errorf("ValidateLabelSmoothing(%v) = %v, want an error naming label smoothing", e, err)
		}
	}
}

func TestSoftmaxExtremeLogits(t *testing.T) {
	z := []float64{1000, -1000, 999, 0, -1000}
	p := Softmax(nil, z)
	want0 := 1 / (1 + math.Exp(-1))
	if !relClose(p[0], want0, 1e-15) || !relClose(p[2], 1-want0, 1e-15) {
		t.Errorf("Softmax(%v) = %v: want p0=%v p2=%v", z, p, want0, 1-want0)
	}
	for i, v := range p {
		if math.IsNaN(v) || v < 0 {
			t.Errorf("p[%d] = %v", i, v)
		}
	}
	if p[1] != 0 || p[3] != 0 {
		t.Errorf("underflowing probabilities should be exactly 0, got %v", p)
	}
	for _, a := range testAlphas {
		pt := TamperedSoftmax(nil, z, a)
		var s float64
		for i, v := range pt {
			if math.IsNaN(v) || v < 0 {
				t.Fatalf("alpha=%v: p'[%d] = %v", a, i, v)
			}
			s += v
		}
		if !relClose(s, 1, 1e-15) {
			t.Errorf("alpha=%v: p' sums to %v", a, s)
		}
	}
	// log-softmax stays finite where p underflows.
	lp := LogSoftmax(nil, z)
	if !relClose(lp[1], -2000-math.Log1p(math.Exp(-1)), 1e-15) {
		t.Errorf("LogSoftmax[1] = %v, want about -2000.31", lp[1])
	}
	// Huge alpha sharpens towards one-hot without overflow.
	pt := TamperedSoftmax(nil, z, 1e300)
	if pt[0] != 1 || pt[2] != 0 {
		t.Errorf("alpha=1e300: p' = %v, want one-hot on class 0", pt)
	}
}

// TestTamperedMatchesPowerFormula checks p' = p^alpha / sum p^alpha wherever p
// does not underflow, and that both p and p' are distributions.
func TestTamperedMatchesPowerFormula(t *testing.T) {
	checked := 0
	randomCases(t, func(z []float64) {
		p := Softmax(nil, z)
		minP := math.Inf(1)
		for _, v := range p {
			minP = math.Min(minP, v)
		}
		for _, a := range testAlphas {
			pt := TamperedSoftmax(nil, z, a)
			var sp, spt float64
			for i := range p {
				sp += p[i]
				spt += pt[i]
			}
			if !relClose(sp, 1, 1e-12) || !relClose(spt, 1, 1e-12) {
				t.Fatalf("C=%d alpha=%v: rows sum to %v and %v", len(z), a, sp, spt)
			}
			if minP < 1e-250 {
				continue
			}
			checked++
			var s float64
			pw := make([]float64, len(p))
			for i, v := range p {
				pw[i] = math.Pow(v, a)
				s += pw[i]
			}
			for i := range p {
				want := pw[i] / s
				if math.Abs(pt[i]-want) > 1e-10*want {
					t.Fatalf("C=%d alpha=%v: p'[%d] = %v, want %v", len(z), a, i, pt[i], want)
				}
			}
		}
	})
	if checked < 100 {
		t.Fatalf("only %d cases without underflow were checked", checked)
	}
}

func TestTarget(t *testing.T) {
	q, err := Target[float64](nil, 4, 2, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0.025, 0.025, 0.925, 0.025}
	for i := range q {
		if !relClose(q[i], want[i], 1e-15) {
			t.Errorf("Target = %v, want %v", q, want)
			break
		}
	}
	q32, err := Target[float32](nil, 3, 0, 0)
	if err != nil || q32[0] != 1 || q32[1] != 0 || q32[2] != 0 {
		t.Errorf("Target float32 one-hot = %v, %v", q32, err)
	}
	for _, tc := range []struct {
		c, label int
		eps      float64
		msg      string
	}{
		{4, 4, 0, "label 4"},
		{4, -1, 0, "label -1"},
		{0, 0, 0, "number of classes"},
		{4, 1, 1, "label smoothing"},
	} {
		_, err := Target[float64](nil, tc.c, tc.label, tc.eps)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Target(%d, %d, %v) error = %v, want one containing %q", tc.c, tc.label, tc.eps, err, tc.msg)
		}
	}
	sq := SmoothTarget(nil, []float64{0.5, 0.5, 0, 0}, 0.2)
	if !relClose(sq[0], 0.45, 1e-15) || !relClose(sq[3], 0.05, 1e-15) {
		t.Errorf("SmoothTarget = %v", sq)
	}
}

// TestCrossEntropyForwardIsPlain checks CrossEntropy against the direct
// formula on moderate logits and, by central finite differences, that its
// gradient is the untampered p - q.
func TestCrossEntropyForwardIsPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []int{2, 5, 30} {
		for _, eps := range []float64{0, 0.1} {
			z := randomRow(r, c, 3)
			q, err := Target[float64](nil, c, r.IntN(c), eps)
			if err != nil {
				t.Fatal(err)
			}
			var s float64
			for _, v := range z {
				s += math.Exp(v)
			}
			var direct float64
			for i, v := range z {
				direct -= q[i] * math.Log(math.Exp(v)/s)
			}
			ce, err := CrossEntropy(z, q)
			if err != nil {
				t.Fatal(err)
			}
			if !relClose(ce, direct, 1e-12) {
				t.Errorf("C=%d eps=%v: CrossEntropy = %v, direct %v", c, eps, ce, direct)
			}
			p := Softmax(nil, z)
			const h = 1e-5
			for i := range z {
				zp := append([]float64(nil), z...)
				zm := append([]float64(nil), z...)
				zp[i] += h
				zm[i] -= h
				fp, _ := CrossEntropy(zp, q)
				fm, _ := CrossEntropy(zm, q)
				num := (fp - fm) / (2 * h)
				if math.Abs(num-(p[i]-q[i])) > 1e-8 {
					t.Errorf("C=%d eps=%v: dCE/dz[%d] = %v numerically, want p-q = %v", c, eps, i, num, p[i]-q[i])
				}
			}
		}
	}
	// Huge logits: the loss is the logit gap, with no overflow.
	ce, err := CrossEntropy([]float64{1000, -1000}, []float64{0, 1})
	if err != nil || !relClose(ce, 2000, 1e-15) {
		t.Errorf("CrossEntropy at +-1000 = %v, %v; want 2000", ce, err)
	}
	if _, err := CrossEntropy([]float64{1, 2}, []float64{1}); err == nil {
		t.Error("CrossEntropy with mismatched lengths: want error")
	}
}

// TestTamperedGradientRowsSumToZero checks that (p' - q) rows sum to zero for
// one-hot and smoothed targets and that the gradient matches scale*(p'-q).
func TestTamperedGradientRowsSumToZero(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	randomCases(t, func(z []float64) {
		c := len(z)
		for _, eps := range []float64{0, 0.1} {
			q, err := Target[float64](nil, c, r.IntN(c), eps)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range testAlphas {
				g, err := TamperedGradient(nil, z, q, a, 0.25)
				if err != nil {
					t.Fatal(err)
				}
				pt := TamperedSoftmax(nil, z, a)
				var s float64
				for i, v := range g {
					s += v
					if v != 0.25*(pt[i]-q[i]) {
						t.Fatalf("grad[%d] = %v, want %v", i, v, 0.25*(pt[i]-q[i]))
					}
				}
				if math.Abs(s) > 1e-13 {
					t.Fatalf("C=%d eps=%v alpha=%v: gradient row sums to %v", c, eps, a, s)
				}
			}
		}
	})
	if _, err := TamperedGradient(nil, []float64{1, 2}, []float64{1, 0}, -1, 1); err == nil {
		t.Error("TamperedGradient with alpha=-1: want error")
	}
}

// TestFloat32MatchesFloat64 checks the float32 instantiation against float64.
func TestFloat32MatchesFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, scale := range []float64{1, 1000} {
		z64 := randomRow(r, 50, scale)
		z32 := make([]float32, len(z64))
		for i, v := range z64 {
			z32[i] = float32(v)
			z64[i] = float64(z32[i]) // same inputs in both precisions
		}
		for _, a := range testAlphas {
			p64 := TamperedSoftmax(nil, z64, a)
			p32 := TamperedSoftmax(nil, z32, a)
			for i := range p64 {
				if math.Abs(float64(p32[i])-p64[i]) > 1e-7*math.Max(p64[i], 1e-30) {
					t.Fatalf("scale=%v alpha=%v: float32 p'[%d] = %v, float64 %v", scale, a, i, p32[i], p64[i])
				}
			}
			lt64, err64 := LogStationaryThreshold(z64, a)
			lt32, err32 := LogStationaryThreshold(z32, a)
			if (err64 == nil) != (err32 == nil) || lt64 != lt32 {
				t.Fatalf("alpha=%v: log threshold float32 %v,%v vs float64 %v,%v", a, lt32, err32, lt64, err64)
			}
		}
	}
}

// TestInPlace checks that dst may alias z.
func TestInPlace(t *testing.T) {
	z := []float64{1, 2, 3, -4}
	want := TamperedSoftmax(nil, z, 0.3)
	got := TamperedSoftmax(z, z, 0.3)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("in-place TamperedSoftmax = %v, want %v", got, want)
		}
	}
	z32 := []float32{1, 2, 3, -4}
	want32 := TamperedSoftmax(nil, z32, 0.3)
	got32 := TamperedSoftmax(z32, z32, 0.3)
	for i := range want32 {
		if got32[i] != want32[i] {
			t.Fatalf("in-place float32 TamperedSoftmax = %v, want %v", got32, want32)
		}
	}
}

func BenchmarkTamperedSoftmax1000(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 10))
	z := randomRow(r, 1000, 10)
	dst := make([]float64, len(z))
	for b.Loop() {
		TamperedSoftmax(dst, z, 0.3)
	}
}
