package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// refPrec is the precision, in bits, of the math/big reference.
const refPrec = 160

func newBig(x float64) *big.Float { return new(big.Float).SetPrec(refPrec).SetFloat64(x) }

// bigExp returns e^x by halving the argument below 2^-12, summing the Taylor
// series and squaring back.
func bigExp(x *big.Float) *big.Float {
	a := new(big.Float).SetPrec(refPrec).Abs(x)
	k := 0
	limit := newBig(math.Ldexp(1, -12))
	for a.Cmp(limit) > 0 {
		a.Quo(a, newBig(2))
		k++
	}
	sum, term := newBig(1), newBig(1)
	for n := 1; ; n++ {
		term.Mul(term, a)
		term.Quo(term, newBig(float64(n)))
		sum.Add(sum, term)
		if term.Sign() == 0 || term.MantExp(nil) < -refPrec-8 {
			break
		}
	}
	for range k {
		sum.Mul(sum, sum)
	}
	if x.Sign() < 0 {
		sum.Quo(newBig(1), sum)
	}
	return sum
}

// bigLog returns log y for y > 0 by Halley iterations on bigExp from a
// float64 start.
func bigLog(y *big.Float) *big.Float {
	mant := new(big.Float)
	e := y.MantExp(mant)
	m, _ := mant.Float64()
	x := newBig(math.Log(m) + float64(e)*math.Ln2)
	for range 3 {
		ex := bigExp(x)
		num := new(big.Float).SetPrec(refPrec).Sub(y, ex)
		den := new(big.Float).SetPrec(refPrec).Add(y, ex)
		num.Quo(num, den)
		x.Add(x, num.Mul(num, newBig(2)))
	}
	return x
}

// reference is the expected output of sgt grad, computed directly from the
// definitions in 160-bit arithmetic: p = e^z / sum e^z, p' = e^(alpha z) /
// sum e^(alpha z), q = (1-eps) onehot + eps/C, grad = (p' - q)/N, loss =
// -mean sum q log p, t = (sum p^alpha)^(1/(alpha-1)).
type reference struct {
	probs, tampered, grad [][]float64
	loss                  float64
	threshold             []float64
}

func bigReference(logits [][]float64, labels []int, alpha, eps float64) reference {
	n := len(logits)
	ref := reference{}
	loss := newBig(0)
	bigN := newBig(float64(n))
	for r, z := range logits {
		c := len(z)
		e := make([]*big.Float, c)
		ea := make([]*big.Float, c)
		s, sa := newBig(0), newBig(0)
		for i, v := range z {
			e[i] = bigExp(newBig(v))
			s.Add(s, e[i])
			ea[i] = bigExp(new(big.Float).SetPrec(refPrec).Mul(newBig(alpha), newBig(v)))
			sa.Add(sa, ea[i])
		}
		logS := bigLog(s)
		off := new(big.Float).SetPrec(refPrec).Quo(newBig(eps), newBig(float64(c)))
		pRow, ptRow, gRow := make([]float64, c), make([]float64, c), make([]float64, c)
		for i, v := range z {
			p := new(big.Float).SetPrec(refPrec).Quo(e[i], s)
			pt := new(big.Float).SetPrec(refPrec).Quo(ea[i], sa)
			pRow[i], _ = p.Float64()
			ptRow[i], _ = pt.Float64()
			q := new(big.Float).SetPrec(refPrec).Set(off)
			if i == labels[r] {
				q.Add(q, new(big.Float).SetPrec(refPrec).Sub(newBig(1), newBig(eps)))
			}
			g := new(big.Float).SetPrec(refPrec).Sub(pt, q)
			gRow[i], _ = g.Quo(g, bigN).Float64()
			if q.Sign() != 0 {
				logP := new(big.Float).SetPrec(refPrec).Sub(newBig(v), logS)
				loss.Sub(loss, logP.Mul(logP, q))
			}
		}
		ref.probs = append(ref.probs, pRow)
		ref.tampered = append(ref.tampered, ptRow)
		ref.grad = append(ref.grad, gRow)
		if alpha != 1 {
			// log sum p^alpha = log(sum e^(alpha z)) - alpha log(sum e^z).
			lt := new(big.Float).SetPrec(refPrec).Mul(newBig(alpha), logS)
			lt.Sub(bigLog(sa), lt)
			lt.Quo(lt, newBig(alpha-1))
			t, _ := bigExp(lt).Float64()
			ref.threshold = append(ref.threshold, t)
		}
	}
	ref.loss, _ = loss.Quo(loss, bigN).Float64()
	return ref
}

// gradResult mirrors sgt grad's output; decoding with unknown fields
// disallowed also checks that no other keys appear.
type gradResult struct {
	Probs               [][]float64     `json:"probs"`
	TamperedProbs       [][]float64     `json:"tampered_probs"`
	Grad                [][]float64     `json:"grad"`
	Loss                *float64        `json:"loss"`
	StationaryThreshold json.RawMessage `json:"stationary_threshold"`
}

// runGradCmd runs "sgt grad" with the given stdin through run.
func runGradCmd(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(append([]string{"grad"}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// close9 reports agreement to 1e-9: absolute for values below 1, relative
// above.
func close9(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

func TestBigReferenceSelfCheck(t *testing.T) {
	for _, x := range []float64{-2000, -700, -1, -1e-5, 0, 0.3, 1, 10, 700} {
		got, _ := bigExp(newBig(x)).Float64()
		if want := math.Exp(x); math.Abs(got-want) > 1e-15*want {
			t.Errorf("bigExp(%v) = %v, want %v", x, got, want)
		}
		if x > -700 {
			back, _ := bigLog(bigExp(newBig(x))).Float64()
			if math.Abs(back-x) > 1e-15*math.Max(1, math.Abs(x)) {
				t.Errorf("bigLog(bigExp(%v)) = %v", x, back)
			}
		}
	}
}

// TestGradAgreesWithReference runs sgt grad on batches with logits of +-1000
// and 1000 classes for every alpha and label smoothing of interest and
// compares every output to the math/big reference to 1e-9 (and, where p does
// not underflow, the tampered probabilities to the direct p^alpha / sum
// p^alpha in float64).
func TestGradAgreesWithReference(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	wide := make([][]float64, 2)
	for i := range wide {
		wide[i] = make([]float64, 1000)
		for j := range wide[i] {
			wide[i][j] = 1000 * (2*r.Float64() - 1)
		}
	}
	wide[1][17] = 1000 // an exact extreme
	wide[1][999] = -1000
	moderate := make([]float64, 1000)
	for j := range moderate {
		moderate[j] = 5 * r.NormFloat64()
	}
	batches := []struct {
		name   string
		logits [][]float64
		labels []int
	}{
		{"extremes", [][]float64{
			{1000, -1000, 0, 999.5, -3},
			{-1000, -1000, -1000, -1000, -1000},
			{0.1, -0.2, 0.3, 2, -1},
			{1000, 1000, -1000, 3, 12.5},
		}, []int{1, 2, 4, 2}},
		{"1000 classes", append(wide, moderate), []int{3, 999, 500}},
	}
	for _, b := range batches {
		for _, eps := range []float64{0, 0.1} {
			for _, alpha := range []float64{0, 0.05, 0.25, 0.3, 0.5, 0.92, 1} {
				name := fmt.Sprintf("%s eps=%v alpha=%v", b.name, eps, alpha)
				in, err := json.Marshal(map[string]any{
					"alpha": alpha, "label_smoothing": eps, "logits": b.logits, "labels": b.labels,
				})
				if err != nil {
					t.Fatal(err)
				}
				code, stdout, stderr := runGradCmd(string(in))
				if code != 0 {
					t.Fatalf("%s: exit %d, stderr %q", name, code, stderr)
				}
				var got gradResult
				dec := json.NewDecoder(strings.NewReader(stdout))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&got); err != nil {
					t.Fatalf("%s: decoding output: %v", name, err)
				}
				if got.Loss == nil || got.StationaryThreshold == nil {
					t.Fatalf("%s: output lacks loss or stationary_threshold: %s", name, stdout)
				}
				want := bigReference(b.logits, b.labels, alpha, eps)
				compareGrad(t, name, got, want)
				checkPowerFormula(t, name, got, alpha)
			}
		}
	}
}

// compareGrad checks every field of got against the reference.
func compareGrad(t *testing.T, name string, got gradResult, want reference) {
	t.Helper()
	matrices := []struct {
		field     string
		got, want [][]float64
	}{
		{"probs", got.Probs, want.probs},
		{"tampered_probs", got.TamperedProbs, want.tampered},
		{"grad", got.Grad, want.grad},
	}
	for _, m := range matrices {
		if len(m.got) != len(m.want) {
			t.Fatalf("%s: %s has %d rows, want %d", name, m.field, len(m.got), len(m.want))
		}
		for i := range m.want {
			if len(m.got[i]) != len(m.want[i]) {
				t.Fatalf("%s: %s row %d has %d values, want %d", name, m.field, i, len(m.got[i]), len(m.want[i]))
			}
			var rowSum float64
			for j, w := range m.want[i] {
				g := m.got[i][j]
				rowSum += g
				if !close9(g, w) {
					t.Fatalf("%s: %s[%d][%d] = %v, want %v", name, m.field, i, j, g, w)
				}
				// Probabilities carry no cancellation: also hold them to 1e-9
				// relative wherever they are normal float64 numbers.
				if m.field != "grad" && w > 1e-300 && math.Abs(g-w) > 1e-9*w {
					t.Fatalf("%s: %s[%d][%d] = %v, want %v (relative)", name, m.field, i, j, g, w)
				}
			}
			wantSum := 1.0
			if m.field == "grad" {
				wantSum = 0
			}
			if math.Abs(rowSum-wantSum) > 1e-12 {
				t.Fatalf("%s: %s row %d sums to %v, want %v", name, m.field, i, rowSum, wantSum)
			}
		}
	}
	if !close9(*got.Loss, want.loss) {
		t.Fatalf("%s: loss %v, want %v", name, *got.Loss, want.loss)
	}
	var th []float64
	if err := json.Unmarshal(got.StationaryThreshold, &th); err != nil {
		t.Fatalf("%s: stationary_threshold: %v", name, err)
	}
	if want.threshold == nil {
		if string(got.StationaryThreshold) != "null" {
			t.Fatalf("%s: stationary_threshold = %s, want null at alpha = 1", name, got.StationaryThreshold)
		}
		return
	}
	if len(th) != len(want.threshold) {
		t.Fatalf("%s: %d thresholds, want %d", name, len(th), len(want.threshold))
	}
	for i, w := range want.threshold {
		if !close9(th[i], w) || (w > 1e-300 && math.Abs(th[i]-w) > 1e-9*w) {
			t.Fatalf("%s: stationary_threshold[%d] = %v, want %v", name, i, th[i], w)
		}
	}
}

// checkPowerFormula checks p' = p^alpha / sum p^alpha in plain float64 for
// rows whose probabilities do not underflow.
func checkPowerFormula(t *testing.T, name string, got gradResult, alpha float64) {
	t.Helper()
	for i, p := range got.Probs {
		if slices.Min(p) < 1e-250 {
			continue
		}
		var s float64
		pow := make([]float64, len(p))
		for j, v := range p {
			pow[j] = math.Pow(v, alpha)
			s += pow[j]
		}
		for j := range p {
			if w := pow[j] / s; math.Abs(got.TamperedProbs[i][j]-w) > 1e-9*w {
				t.Fatalf("%s: tampered_probs[%d][%d] = %v, direct p^alpha/sum = %v", name, i, j, got.TamperedProbs[i][j], w)
			}
		}
	}
}

// TestGradRejectsBadInput checks that bad input exits with status 2, writes
// nothing on stdout and one line on stderr naming the problem.
func TestGradRejectsBadInput(t *testing.T) {
	const okRest = `"logits": [[1, 2, 3], [0, 0, 1]], "labels": [2, 0]`
	for _, tc := range []struct {
		name, stdin, msg string
	}{
		{"empty", "", "empty input"},
		{"malformed", `{"alpha": 0.3, `, "reading input"},
		{"not an object", `[1, 2]`, "want a JSON object, got array"},
		{"unknown field", `{"alpha": 0.3, "beta": 1, ` + okRest + `}`, `unknown field "beta"`},
		{"missing alpha", `{` + okRest + `}`, `missing field "alpha"`},
		{"missing logits", `{"alpha": 0.3, "labels": [0]}`, `missing field "logits"`},
		{"missing labels", `{"alpha": 0.3, "logits": [[1, 2]]}`, `missing field "labels"`},
		{"null alpha", `{"alpha": null, ` + okRest + `}`, "alpha: want a number, got null"},
		{"string alpha", `{"alpha": "0.3", ` + okRest + `}`, "alpha: want a number, got a string"},
		{"negative alpha", `{"alpha": -0.5, ` + okRest + `}`, "alpha -0.5: must be >= 0"},
		{"overflowing alpha", `{"alpha": 1e999, ` + okRest + `}`, "alpha = 1e999: overflows float64"},
		{"NaN alpha", `{"alpha": NaN, ` + okRest + `}`, "invalid character 'N'"},
		{"eps one", `{"alpha": 0.3, "label_smoothing": 1, ` + okRest + `}`, "label smoothing 1: must be in [0, 1)"},
		{"eps negative", `{"alpha": 0.3, "label_smoothing": -0.1, ` + okRest + `}`, "label smoothing -0.1"},
		{"eps bool", `{"alpha": 0.3, "label_smoothing": true, ` + okRest + `}`, "label_smoothing: want a number, got a boolean"},
		{"logits not array", `{"alpha": 0.3, "logits": "x", "labels": [0]}`, "logits: want an array, got a string"},
		{"logits row not array", `{"alpha": 0.3, "logits": [[1, 2], 3], "labels": [0, 0]}`, "logits[1]: want an array, got 3"},
		{"empty logits", `{"alpha": 0.3, "logits": [], "labels": []}`, "empty batch"},
		{"ragged", `{"alpha": 0.3, "logits": [[1, 2], [3]], "labels": [0, 0]}`, "logits row 1: has 1 values, want 2"},
		{"overflowing logit", `{"alpha": 0.3, "logits": [[1, -1e400]], "labels": [0]}`, "logits[0][1] = -1e400: overflows float64"},
		{"string logit", `{"alpha": 0.3, "logits": [[1, "2"]], "labels": [0]}`, "logits[0][1]: want a number, got a string"},
		{"label out of range", `{"alpha": 0.3, "logits": [[1, 2], [3, 4]], "labels": [0, 2]}`, "labels[1] = 2: out of range [0, 2)"},
		{"negative label", `{"alpha": 0.3, "logits": [[1, 2]], "labels": [-1]}`, "labels[0] = -1: out of range"},
		{"fractional label", `{"alpha": 0.3, "logits": [[1, 2]], "labels": [0.5]}`, "labels[0] = 0.5: not an integer"},
		{"huge label", `{"alpha": 0.3, "logits": [[1, 2]], "labels": [1e300]}`, "labels[0] = 1e300: out of range"},
		{"label count", `{"alpha": 0.3, "logits": [[1, 2], [3, 4]], "labels": [0]}`, "labels: got 1, want one per logits row (2)"},
		{"trailing garbage", `{"alpha": 0.3, ` + okRest + `} x`, "trailing data after the JSON object"},
		{"second object", `{"alpha": 0.3, ` + okRest + `} {}`, "trailing data after the JSON object"},
	} {
		code, stdout, stderr := runGradCmd(tc.stdin)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2 (stderr %q)", tc.name, code, stderr)
			continue
		}
		if stdout != "" {
			t.Errorf("%s: wrote %q on stdout", tc.name, stdout)
		}
		if !strings.Contains(stderr, tc.msg) || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "sgt grad: ") {
			t.Errorf("%s: stderr %q, want one line naming %q", tc.name, stderr, tc.msg)
		}
	}
	if code, _, _ := runGradCmd("{}", "extra"); code != 2 {
		t.Errorf("positional argument: exit %d, want 2", code)
	}
	if code, _, stderr := runGradCmd("", "-h"); code != 0 || !strings.Contains(stderr, "tampered_probs") {
		t.Errorf("-h: exit %d, usage %q", code, stderr)
	}
}

// TestGradOptionalSmoothingAndWhitespace checks that label_smoothing defaults
// to 0 and that surrounding whitespace is accepted.
func TestGradOptionalSmoothingAndWhitespace(t *testing.T) {
	code, with, stderr := runGradCmd(`{"alpha": 0.5, "label_smoothing": 0, "logits": [[1, 2, 3]], "labels": [1]}`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, without, stderr := runGradCmd("\n  {\"labels\": [1], \"logits\": [[1, 2, 3]], \"alpha\": 0.5}\n\n")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if with != without {
		t.Errorf("output with label_smoothing 0:\n%s\nwithout:\n%s", with, without)
	}
}

// TestGradExtremeLogits reproduces issue 11 item 5 through the command:
// [[1e17, 1e17]] must give the loss ln 2 (it gave 0), and [[1e308, -1e308]]
// at alpha 0 must give finite, JSON-encodable output (its thresholds and
// tampered probabilities were 0*Inf = NaN, and encoding failed) or, where
// the loss itself is not a float64 number, a one-line error naming the value.
func TestGradExtremeLogits(t *testing.T) {
	decode := func(name, stdout string) gradResult {
		t.Helper()
		var got gradResult
		dec := json.NewDecoder(strings.NewReader(stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil || got.Loss == nil {
			t.Fatalf("%s: decoding output %q: %v", name, stdout, err)
		}
		return got
	}
	code, stdout, stderr := runGradCmd(`{"alpha": 0.3, "logits": [[1e17, 1e17]], "labels": [0]}`)
	if code != 0 {
		t.Fatalf("[[1e17, 1e17]]: exit %d: %s", code, stderr)
	}
	got := decode("[[1e17, 1e17]]", stdout)
	if math.Abs(*got.Loss-math.Ln2) > 1e-15 {
		t.Errorf("[[1e17, 1e17]]: loss %v, want ln 2 = %v", *got.Loss, math.Ln2)
	}
	var th []float64
	if err := json.Unmarshal(got.StationaryThreshold, &th); err != nil || len(th) != 1 || math.Abs(th[0]-0.5) > 1e-15 {
		t.Errorf("[[1e17, 1e17]]: stationary_threshold %s, want [0.5]", got.StationaryThreshold)
	}

	code, stdout, stderr = runGradCmd(`{"alpha": 0, "logits": [[1e308, -1e308]], "labels": [0]}`)
	if code != 0 {
		t.Fatalf("[[1e308, -1e308]] alpha 0: exit %d: %s", code, stderr)
	}
	got = decode("[[1e308, -1e308]]", stdout)
	if *got.Loss != 0 || !slices.Equal(got.TamperedProbs[0], []float64{0.5, 0.5}) ||
		!slices.Equal(got.Grad[0], []float64{-0.5, 0.5}) || string(got.StationaryThreshold) != "[0.5]" {
		t.Errorf("[[1e308, -1e308]] alpha 0: got %s; want loss 0, uniform tampered probabilities, grad [-0.5 0.5], threshold [0.5]", stdout)
	}

	for _, in := range []string{
		`{"alpha": 0, "logits": [[1e308, -1e308]], "labels": [1]}`,
		`{"alpha": 0.3, "label_smoothing": 0.1, "logits": [[1e308, -1e308]], "labels": [0]}`,
	} {
		code, stdout, stderr = runGradCmd(in)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 ||
			!strings.Contains(stderr, "logits[0][1] = -1e+308") || !strings.Contains(stderr, "overflows float64") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and one line naming logits[0][1]", in, code, stdout, stderr)
		}
	}
}

// refLoss is the mean cross-entropy from its definition, -log p_i = log
// sum_j exp(z_j - z_i), with every difference z_j - z_i formed in math/big
// (exact enough at 2200 bits) before it is rounded to float64, and each
// log-sum-exp shifted by its own maximum. It is +Inf where the loss is not a
// float64 number.
func refLoss(logits [][]float64, labels []int, eps float64) float64 {
	var loss float64
	for r, z := range logits {
		c := len(z)
		var row float64
		for i := range z {
			q := eps / float64(c)
			if i == labels[r] {
				q += 1 - eps
			}
			if q == 0 {
				continue
			}
			d := make([]float64, c)
			m := math.Inf(-1)
			for j := range z {
				diff := new(big.Float).SetPrec(2200).SetFloat64(z[j])
				diff.Sub(diff, new(big.Float).SetFloat64(z[i]))
				d[j], _ = diff.Float64()
				m = max(m, d[j])
			}
			if math.IsInf(m, 1) {
				return math.Inf(1)
			}
			var s float64
			for _, v := range d {
				s += math.Exp(v - m)
			}
			row += q * (m + math.Log(s))
		}
		loss += row / float64(len(logits))
	}
	return loss
}

// fuzzLayouts are the batch shapes (rows, classes) that FuzzGrad builds from
// its four logits.
var fuzzLayouts = [][2]int{{1, 1}, {1, 2}, {1, 3}, {1, 4}, {2, 1}, {2, 2}, {4, 1}}

// FuzzGrad runs sgt grad on arbitrary alpha, label smoothing, logits (any
// float64, NaN and infinities included) and labels. Invalid input must exit
// 2 with one line on stderr and nothing on stdout; valid input must exit 0
// with finite, JSON-encoded values whose loss matches refLoss, or, only where
// refLoss overflows, exit 2 naming the overflow.
func FuzzGrad(f *testing.F) {
	f.Add(0.3, 0.0, 1e17, 1e17, 0.0, 0.0, uint8(1), uint8(0))
	f.Add(0.0, 0.0, 1e308, -1e308, 0.0, 0.0, uint8(1), uint8(0))
	f.Add(0.0, 0.0, 1e308, -1e308, 0.0, 0.0, uint8(1), uint8(1))
	f.Add(0.25, 0.1, 1.5, -2.0, 0.3, 4.0, uint8(5), uint8(0b0100))
	f.Add(1.0, 0.0, -3.0, 700.0, -700.0, 1e-300, uint8(3), uint8(3))
	f.Add(2.0, 0.5, math.MaxFloat64, -math.MaxFloat64, 1.0, -1.0, uint8(2), uint8(2))
	f.Add(1e-310, 0.0, 1e308, -1e308, 5.0, 5.0, uint8(3), uint8(0))
	f.Add(0.3, 0.0, math.NaN(), 1.0, 2.0, 3.0, uint8(3), uint8(0))
	f.Add(-0.1, 0.0, 1.0, 2.0, 3.0, 4.0, uint8(3), uint8(0))
	f.Fuzz(func(t *testing.T, alpha, eps, z0, z1, z2, z3 float64, layout, labelBits uint8) {
		shape := fuzzLayouts[int(layout)%len(fuzzLayouts)]
		rows, cols := shape[0], shape[1]
		values := []float64{z0, z1, z2, z3}
		logits := make([][]float64, rows)
		labels := make([]int, rows)
		valid := !math.IsNaN(alpha) && !math.IsInf(alpha, 0) && alpha >= 0 &&
			!math.IsNaN(eps) && !math.IsInf(eps, 0) && eps >= 0 && eps < 1
		num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
		var rowText []string
		for r := range rows {
			logits[r] = values[r*cols : (r+1)*cols]
			var cells []string
			for _, v := range logits[r] {
				valid = valid && !math.IsNaN(v) && !math.IsInf(v, 0)
				cells = append(cells, num(v))
			}
			rowText = append(rowText, "["+strings.Join(cells, ", ")+"]")
			labels[r] = int(labelBits>>(2*r)) & 3
			valid = valid && labels[r] < cols
		}
		labelText := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(labels)), ", "), "[]")
		in := fmt.Sprintf(`{"alpha": %s, "label_smoothing": %s, "logits": [%s], "labels": [%s]}`,
			num(alpha), num(eps), strings.Join(rowText, ", "), labelText)

		code, stdout, stderr := runGradCmd(in)
		if code != 0 && code != 2 {
			t.Fatalf("%s: exit %d, stderr %q", in, code, stderr)
		}
		if code == 2 {
			if stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "sgt grad: ") {
				t.Fatalf("%s: rejected with stdout %q, stderr %q; want one line on stderr only", in, stdout, stderr)
			}
			if valid {
				if ref := refLoss(logits, labels, eps); !(ref > math.MaxFloat64/2) || !strings.Contains(stderr, "overflows") {
					t.Fatalf("%s: valid input rejected (%q) although the loss %v is a float64 number", in, stderr, ref)
				}
			}
			return
		}
		if !valid {
			t.Fatalf("%s: invalid input accepted: %s", in, stdout)
		}
		var got struct {
			Probs               [][]float64 `json:"probs"`
			TamperedProbs       [][]float64 `json:"tampered_probs"`
			Grad                [][]float64 `json:"grad"`
			Loss                *float64    `json:"loss"`
			StationaryThreshold []float64   `json:"stationary_threshold"`
		}
		dec := json.NewDecoder(strings.NewReader(stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil || got.Loss == nil {
			t.Fatalf("%s: output %q does not decode: %v", in, stdout, err)
		}
		ref := refLoss(logits, labels, eps)
		if math.Abs(*got.Loss-ref) > 1e-12*math.Abs(ref)+1e-14 {
			t.Fatalf("%s: loss %v, reference %v", in, *got.Loss, ref)
		}
		if len(got.Probs) != rows || len(got.TamperedProbs) != rows || len(got.Grad) != rows {
			t.Fatalf("%s: output has the wrong number of rows: %s", in, stdout)
		}
		for r := range rows {
			var sp, st, sg float64
			for j := range cols {
				p, pt := got.Probs[r][j], got.TamperedProbs[r][j]
				if !(p >= 0 && p <= 1) || !(pt >= 0 && pt <= 1) {
					t.Fatalf("%s: probability out of [0, 1]: %s", in, stdout)
				}
				if alpha == 0 && math.Abs(pt-1/float64(cols)) > 1e-15 {
					t.Fatalf("%s: alpha 0 gives tampered probabilities %v, want uniform", in, got.TamperedProbs[r])
				}
				sp, st, sg = sp+p, st+pt, sg+got.Grad[r][j]
			}
			if math.Abs(sp-1) > 1e-12 || math.Abs(st-1) > 1e-12 || math.Abs(sg) > 1e-12 {
				t.Fatalf("%s: row %d sums: probs %v, tampered %v, grad %v", in, r, sp, st, sg)
			}
		}
		if alpha == 1 {
			if got.StationaryThreshold != nil {
				t.Fatalf("%s: thresholds %v at alpha 1, want null", in, got.StationaryThreshold)
			}
		} else {
			for _, th := range got.StationaryThreshold {
				if !(th >= 0 && th <= 1+1e-12) {
					t.Fatalf("%s: stationary threshold %v outside [0, 1]", in, th)
				}
			}
		}
	})
}
