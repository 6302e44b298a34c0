package sgt

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/train/losses"
)

// newTestBackend returns GoMLX's pure-Go backend, with XLA auto-install off,
// running its ops one at a time (its parallel executor has data races in
// GoMLX v0.26 that the race detector reports).
func newTestBackend(t *testing.T) backends.Backend {
	t.Helper()
	t.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	be, err := backends.NewWithConfig("go:ops_sequential")
	if err != nil {
		t.Fatalf("creating the go backend: %v", err)
	}
	t.Cleanup(be.Finalize)
	return be
}

// flat64 returns the values of a float32 or float64 tensor as float64.
func flat64(t *testing.T, x *tensors.Tensor) []float64 {
	t.Helper()
	switch x.DType() {
	case dtypes.Float32:
		v := tensors.MustCopyFlatData[float32](x)
		out := make([]float64, len(v))
		for i, f := range v {
			out[i] = float64(f)
		}
		return out
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](x)
	default:
		t.Fatalf("unexpected dtype %s", x.DType())
		return nil
	}
}

// lossAndGrad builds loss = build(logits, labels), runs it and returns the
// loss and d loss / d logits, flattened.
func lossAndGrad(t *testing.T, be backends.Backend, build func(z, l *graph.Node) *graph.Node,
	logits, labels *tensors.Tensor) (float64, []float64) {
	t.Helper()
	exec, err := graph.NewExec(be, func(z, l *graph.Node) (*graph.Node, *graph.Node) {
		loss := build(z, l)
		return loss, graph.Gradient(loss, z)[0]
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	out, err := exec.Exec(logits, labels)
	if err != nil {
		t.Fatalf("running the loss graph: %v", err)
	}
	return flat64(t, out[0])[0], flat64(t, out[1])
}

// testBatch is a batch of logits and labels in float64 and as tensors.
type testBatch struct {
	rows   [][]float64
	labels []int
	logits *tensors.Tensor // [N, C] of the requested dtype
	sparse *tensors.Tensor // int32 [N]
	column *tensors.Tensor // int32 [N, 1]
}

// makeBatch draws a random batch; rows hold exactly the values in the tensor.
func makeBatch(r *rand.Rand, n, c int, scale float64, dtype dtypes.DType) testBatch {
	b := testBatch{rows: make([][]float64, n), labels: make([]int, n)}
	flat32 := make([]float32, 0, n*c)
	flat := make([]float64, 0, n*c)
	lab := make([]int32, n)
	col := make([][]int32, n)
	for i := range n {
		row := randomRow(r, c, scale)
		if dtype == dtypes.Float32 {
			for j, v := range row {
				row[j] = float64(float32(v))
				flat32 = append(flat32, float32(v))
			}
		}
		flat = append(flat, row...)
		b.rows[i] = row
		b.labels[i] = r.IntN(c)
		lab[i] = int32(b.labels[i])
		col[i] = []int32{lab[i]}
	}
	if dtype == dtypes.Float32 {
		b.logits = tensors.FromFlatDataAndDimensions(flat32, n, c)
	} else {
		b.logits = tensors.FromFlatDataAndDimensions(flat, n, c)
	}
	b.sparse = tensors.FromValue(lab)
	b.column = tensors.FromValue(col)
	return b
}

// tolFor returns the comparison tolerance for a dtype.
func tolFor(dtype dtypes.DType) float64 {
	if dtype == dtypes.Float32 {
		return 2e-6
	}
	return 1e-13
}

// TestGraphGradientIsTampered checks that graph.Gradient of CrossEntropyLoss
// equals the library's (p'-q)/N and that the loss value is plain CE, in
// float32 and float64, for several alpha and label smoothing values, with
// labels of shape [N] and [N, 1], including logits of +-1000.
func TestGraphGradientIsTampered(t *testing.T) {
	be := newTestBackend(t)
	r := rand.New(rand.NewPCG(21, 22))
	for _, dtype := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		for _, scale := range []float64{3, 1000} {
			b := makeBatch(r, 5, 7, scale, dtype)
			for _, eps := range []float64{0, 0.1} {
				for _, alpha := range []float64{0, 0.3, 0.92, 1, 1.5} {
					want, err := Compute(b.rows, b.labels, alpha, eps)
					if err != nil {
						t.Fatal(err)
					}
					for li, labels := range []*tensors.Tensor{b.sparse, b.column} {
						loss, grad := lossAndGrad(t, be, func(z, l *graph.Node) *graph.Node {
							return CrossEntropyLoss(z, l, alpha, eps)
						}, b.logits, labels)
						tol := tolFor(dtype)
						if !relClose(loss, want.Loss, tol) {
							t.Errorf("%s scale=%v eps=%v alpha=%v labels#%d: loss %v, want %v", dtype, scale, eps, alpha, li, loss, want.Loss)
						}
						for k, g := range grad {
							w := want.Grad[k/7][k%7]
							if math.IsNaN(g) || math.Abs(g-w) > tol {
								t.Fatalf("%s scale=%v eps=%v alpha=%v labels#%d: grad[%d] = %v, want (p'-q)/N = %v",
									dtype, scale, eps, alpha, li, k, g, w)
							}
						}
					}
				}
			}
		}
	}
}

// TestGraphSoftTargets checks SoftCrossEntropyLoss against ComputeSoft.
func TestGraphSoftTargets(t *testing.T) {
	be := newTestBackend(t)
	rows := [][]float64{{1, 2, 3, 0}, {0, -1, 5, 2}, {-3, 0.5, 0.5, 1}}
	targets := [][]float64{{0.2, 0.3, 0.5, 0}, {1, 0, 0, 0}, {0.25, 0.25, 0.25, 0.25}}
	for _, eps := range []float64{0, 0.1} {
		for _, alpha := range []float64{0.25, 1} {
			q := make([][]float64, len(targets))
			for i := range targets {
				q[i] = SmoothTarget(nil, targets[i], eps)
			}
			want, err := ComputeSoft(rows, q, alpha)
			if err != nil {
				t.Fatal(err)
			}
			loss, grad := lossAndGrad(t, be, func(z, tg *graph.Node) *graph.Node {
				return SoftCrossEntropyLoss(z, tg, alpha, eps)
			}, tensors.FromValue(rows), tensors.FromValue(targets))
			if !relClose(loss, want.Loss, 1e-13) {
				t.Errorf("eps=%v alpha=%v: loss %v, want %v", eps, alpha, loss, want.Loss)
			}
			for k, g := range grad {
				if w := want.Grad[k/4][k%4]; math.Abs(g-w) > 1e-13 {
					t.Fatalf("eps=%v alpha=%v: grad[%d] = %v, want %v", eps, alpha, k, g, w)
				}
			}
		}
	}
}

// TestGraphExactUnderScaling checks that the tampered gradient follows any
// upstream scaling: k*mean gives k*(p'-q)/N, a sum gives p'-q, a weighted sum
// gives w_n*(p'-q), and a rank-3 batch averages over all examples.
func TestGraphExactUnderScaling(t *testing.T) {
	be := newTestBackend(t)
	r := rand.New(rand.NewPCG(23, 24))
	const n, c, alpha, eps = 4, 6, 0.3, 0.1
	b := makeBatch(r, n, c, 5, dtypes.Float64)
	want, err := Compute(b.rows, b.labels, alpha, eps)
	if err != nil {
		t.Fatal(err)
	}
	weights := []float64{0.5, 2, 0, -1}
	cases := []struct {
		name  string
		build func(z, l *graph.Node) *graph.Node
		scale func(row int) float64 // gradient = scale(row) * (p'-q)/N
	}{
		{"mean*3.7", func(z, l *graph.Node) *graph.Node {
			return graph.MulScalar(CrossEntropyLoss(z, l, alpha, eps), 3.7)
		}, func(int) float64 { return 3.7 }},
		{"mean*N^2", func(z, l *graph.Node) *graph.Node {
			return graph.MulScalar(CrossEntropyLoss(z, l, alpha, eps), n*n)
		}, func(int) float64 { return n * n }},
		{"mean*-2", func(z, l *graph.Node) *graph.Node {
			return graph.MulScalar(CrossEntropyLoss(z, l, alpha, eps), -2)
		}, func(int) float64 { return -2 }},
		{"sum", func(z, l *graph.Node) *graph.Node {
			return graph.ReduceAllSum(PerExampleCrossEntropy(z, LabelTargets(z, l, eps), alpha))
		}, func(int) float64 { return n }},
		{"weighted", func(z, l *graph.Node) *graph.Node {
			w := graph.Const(z.Graph(), weights)
			return graph.ReduceAllSum(graph.Mul(w, PerExampleCrossEntropy(z, LabelTargets(z, l, eps), alpha)))
		}, func(row int) float64 { return n * weights[row] }},
	}
	for _, tc := range cases {
		loss, grad := lossAndGrad(t, be, tc.build, b.logits, b.sparse)
		if tc.name == "sum" && !relClose(loss, n*want.Loss, 1e-13) {
			t.Errorf("%s: loss %v, want %v", tc.name, loss, n*want.Loss)
		}
		for k, g := range grad {
			w := tc.scale(k/c) * want.Grad[k/c][k%c]
			if math.Abs(g-w) > 1e-13*math.Max(1, math.Abs(w)) {
				t.Fatalf("%s: grad[%d] = %v, want %v", tc.name, k, g, w)
			}
		}
	}

	// Rank-3 logits [2, 2, C] with labels [2, 2]: mean over all 4 examples.
	flat := make([]float64, 0, n*c)
	for _, row := range b.rows {
		flat = append(flat, row...)
	}
	z3 := tensors.FromFlatDataAndDimensions(flat, 2, 2, c)
	l3 := tensors.FromValue([][]int32{{int32(b.labels[0]), int32(b.labels[1])}, {int32(b.labels[2]), int32(b.labels[3])}})
	loss, grad := lossAndGrad(t, be, func(z, l *graph.Node) *graph.Node {
		return CrossEntropyLoss(z, l, alpha, eps)
	}, z3, l3)
	if !relClose(loss, want.Loss, 1e-13) {
		t.Errorf("rank 3: loss %v, want %v", loss, want.Loss)
	}
	for k, g := range grad {
		if w := want.Grad[k/c][k%c]; math.Abs(g-w) > 1e-13 {
			t.Fatalf("rank 3: grad[%d] = %v, want %v", k, g, w)
		}
	}
}

// TestGraphForwardIsPlain checks by central finite differences of the graph's
// forward loss that its numerical gradient is the plain p - q (the forward is
// untouched by tampering) and, at alpha = 1, equals the analytic gradient.
func TestGraphForwardIsPlain(t *testing.T) {
	be := newTestBackend(t)
	r := rand.New(rand.NewPCG(25, 26))
	const n, c, eps, h = 3, 5, 0.1, 1e-6
	b := makeBatch(r, n, c, 2, dtypes.Float64)
	plain, err := Compute(b.rows, b.labels, 1, eps)
	if err != nil {
		t.Fatal(err)
	}
	for _, alpha := range []float64{0.3, 1} {
		exec, err := graph.NewExec(be, func(z, l *graph.Node) (*graph.Node, *graph.Node) {
			loss := CrossEntropyLoss(z, l, alpha, eps)
			return loss, graph.Gradient(loss, z)[0]
		})
		if err != nil {
			t.Fatal(err)
		}
		run := func(rows [][]float64) (float64, []float64) {
			out, err := exec.Exec(tensors.FromValue(rows), b.sparse)
			if err != nil {
				t.Fatal(err)
			}
			return flat64(t, out[0])[0], flat64(t, out[1])
		}
		_, analytic := run(b.rows)
		for i := range n {
			for j := range c {
				shift := func(d float64) [][]float64 {
					rows := make([][]float64, n)
					for k := range rows {
						rows[k] = append([]float64(nil), b.rows[k]...)
					}
					rows[i][j] += d
					return rows
				}
				fp, _ := run(shift(h))
				fm, _ := run(shift(-h))
				num := (fp - fm) / (2 * h)
				if math.Abs(num-plain.Grad[i][j]) > 1e-8 {
					t.Errorf("alpha=%v: numerical dL/dz[%d][%d] = %v, want plain (p-q)/N = %v", alpha, i, j, num, plain.Grad[i][j])
				}
				if alpha == 1 && math.Abs(num-analytic[i*c+j]) > 1e-8 {
					t.Errorf("alpha=1: numerical %v vs analytic %v at [%d][%d]", num, analytic[i*c+j], i, j)
				}
			}
		}
		exec.Finalize()
	}
}

// TestGraphAlphaOneBitIdentical checks that at alpha = 1 the loss and its
// gradient are bit-identical to GoMLX's own cross-entropy losses, and that
// the hook path evaluated at alpha = 1 agrees with them to rounding.
func TestGraphAlphaOneBitIdentical(t *testing.T) {
	be := newTestBackend(t)
	r := rand.New(rand.NewPCG(27, 28))
	for _, dtype := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		const n, c = 6, 10
		b := makeBatch(r, n, c, 4, dtype)
		// Without smoothing: SparseCategoricalCrossEntropyLogits with [N, 1] labels.
		lossA, gradA := lossAndGrad(t, be, func(z, l *graph.Node) *graph.Node {
			return CrossEntropyLoss(z, l, 1, 0)
		}, b.logits, b.sparse)
		lossB, gradB := lossAndGrad(t, be, func(z, l *graph.Node) *graph.Node {
			return losses.SparseCategoricalCrossEntropyLogits([]*graph.Node{l}, []*graph.Node{z})
		}, b.logits, b.column)
		assertBitIdentical(t, dtype.String()+" eps=0", lossA, lossB, gradA, gradB)

		// With smoothing: CategoricalCrossEntropyLogits on smoothed targets
		// built here in plain Go with the same two roundings.
		const eps = 0.1
		q := make([]float64, n*c)
		q32 := make([]float32, n*c)
		for i, l := range b.labels {
			for j := range c {
				on := 0.0
				if j == l {
					on = 1
				}
				q[i*c+j] = on*(1-eps) + eps/c
				q32[i*c+j] = float32(on)*float32(1-eps) + float32(eps/c)
			}
		}
		qt := tensors.FromFlatDataAndDimensions(q, n, c)
		if dtype == dtypes.Float32 {
			qt = tensors.FromFlatDataAndDimensions(q32, n, c)
		}
		lossA, gradA = lossAndGrad(t, be, func(z, l *graph.Node) *graph.Node {
			return CrossEntropyLoss(z, l, 1, eps)
		}, b.logits, b.sparse)
		exec, err := graph.NewExec(be, func(z, qq *graph.Node) (*graph.Node, *graph.Node) {
			loss := losses.CategoricalCrossEntropyLogits([]*graph.Node{qq}, []*graph.Node{z})
			return loss, graph.Gradient(loss, z)[0]
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Exec(b.logits, qt)
		if err != nil {
			t.Fatal(err)
		}
		exec.Finalize()
		assertBitIdentical(t, dtype.String()+" eps=0.1", lossA, flat64(t, out[0])[0], gradA, flat64(t, out[1]))

		// LabelTargets gives exactly those smoothed targets.
		tg, err := graph.ExecOnce(be, func(z, l *graph.Node) *graph.Node { return LabelTargets(z, l, eps) }, b.logits, b.sparse)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range flat64(t, tg) {
			if w := flat64(t, qt)[k]; v != w {
				t.Fatalf("%s: LabelTargets[%d] = %v, want %v", dtype, k, v, w)
			}
		}

		// The hook path at alpha = 1 agrees with GoMLX to rounding.
		_, gradHook := lossAndGrad(t, be, func(z, l *graph.Node) *graph.Node {
			return graph.ReduceAllMean(tamperedPerExample(z, LabelTargets(z, l, eps), 1))
		}, b.logits, b.sparse)
		for k := range gradHook {
			if math.Abs(gradHook[k]-gradA[k]) > tolFor(dtype) {
				t.Fatalf("%s: hook path at alpha=1 grad[%d] = %v, GoMLX %v", dtype, k, gradHook[k], gradA[k])
			}
		}
	}
}

// assertBitIdentical fails unless both losses and gradients are equal bit for bit.
func assertBitIdentical(t *testing.T, name string, lossA, lossB float64, gradA, gradB []float64) {
	t.Helper()
	if math.Float64bits(lossA) != math.Float64bits(lossB) {
		t.Errorf("%s: loss %v, GoMLX %v", name, lossA, lossB)
	}
	if len(gradA) != len(gradB) {
		t.Fatalf("%s: %d gradient values, GoMLX %d", name, len(gradA), len(gradB))
	}
	for k := range gradA {
		if math.Float64bits(gradA[k]) != math.Float64bits(gradB[k]) {
			t.Fatalf("%s: grad[%d] = %v, GoMLX %v (not bit-identical)", name, k, gradA[k], gradB[k])
		}
	}
}

// TestGraphBadInput checks that misuse surfaces as an Exec error naming the
// problem.
func TestGraphBadInput(t *testing.T) {
	be := newTestBackend(t)
	z := tensors.FromValue([][]float32{{1, 2}, {3, 4}})
	for _, tc := range []struct {
		name   string
		labels *tensors.Tensor
		alpha  float64
		eps    float64
		msg    string
	}{
		{"float labels", tensors.FromValue([]float32{0, 1}), 0.5, 0, "labels dtype"},
		{"wrong labels shape", tensors.FromValue([]int32{0, 1, 1}), 0.5, 0, "labels shape"},
		{"bad alpha", tensors.FromValue([]int32{0, 1}), -1, 0, "alpha -1"},
		{"bad eps", tensors.FromValue([]int32{0, 1}), 0.5, 1.5, "label smoothing 1.5"},
	} {
		_, err := graph.ExecOnce(be, func(z, l *graph.Node) *graph.Node {
			return CrossEntropyLoss(z, l, tc.alpha, tc.eps)
		}, z, tc.labels)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.msg)
		}
	}
	_, err := graph.ExecOnce(be, func(z, q *graph.Node) *graph.Node {
		return SoftCrossEntropyLoss(z, q, 0.5, 0)
	}, z, tensors.FromValue([][]float32{{1, 0, 0}, {0, 1, 0}}))
	if err == nil || !strings.Contains(err.Error(), "targets shape") {
		t.Errorf("soft targets of the wrong shape: error %v", err)
	}
}

// TestGraphTrainingLearns trains a softmax regression with the tampered
// gradient (alpha = 0.3) by plain gradient descent and
// checks that the loss falls and the data become separated.
func TestGraphTrainingLearns(t *testing.T) {
	be := newTestBackend(t)
	r := rand.New(rand.NewPCG(29, 30))
	const n, d, c, steps, lr = 60, 4, 3, 150, 2.0
	// Three Gaussian blobs in 4-D.
	centers := [][]float64{{2, 0, 0, 1}, {-2, 1, 0, 0}, {0, -2, 2, 0}}
	x := make([][]float32, n)
	y := make([]int32, n)
	for i := range x {
		y[i] = int32(i % c)
		x[i] = make([]float32, d)
		for k := range d {
			x[i][k] = float32(centers[y[i]][k] + 0.5*r.NormFloat64())
		}
	}
	exec, err := graph.NewExec(be, func(xs, ys, w *graph.Node) (*graph.Node, *graph.Node, *graph.Node) {
		logits := graph.MatMul(xs, w)
		loss := CrossEntropyLoss(logits, ys, 0.3, 0)
		pred := graph.ArgMax(logits, -1, dtypes.Int32)
		acc := graph.ReduceAllMean(graph.ConvertDType(graph.Equal(pred, ys), dtypes.Float32))
		return loss, graph.Gradient(loss, w)[0], acc
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	w := make([]float32, d*c)
	xt, yt := tensors.FromValue(x), tensors.FromValue(y)
	var first, last, acc float64
	for step := range steps {
		out, err := exec.Exec(xt, yt, tensors.FromFlatDataAndDimensions(w, d, c))
		if err != nil {
			t.Fatal(err)
		}
		loss := flat64(t, out[0])[0]
		if step == 0 {
			first = loss
		}
		last, acc = loss, flat64(t, out[2])[0]
		for k, g := range flat64(t, out[1]) {
			w[k] -= float32(lr * g)
		}
	}
	t.Logf("loss %.4f -> %.4f, accuracy %.3f", first, last, acc)
	if !(last < 0.3*first) || acc < 0.95 {
		t.Fatalf("training did not learn: loss %v -> %v, accuracy %v", first, last, acc)
	}
}

// benchmarkLossGrad measures one forward+backward execution of a loss on a
// [128, 1000] float32 batch on the pure-Go backend.
func benchmarkLossGrad(b *testing.B, build func(z, l *graph.Node) *graph.Node) {
	b.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	be, err := backends.NewWithConfig("go")
	if err != nil {
		b.Fatal(err)
	}
	defer be.Finalize()
	batch := makeBatch(rand.New(rand.NewPCG(31, 32)), 128, 1000, 10, dtypes.Float32)
	exec, err := graph.NewExec(be, func(z, l *graph.Node) (*graph.Node, *graph.Node) {
		loss := build(z, l)
		return loss, graph.Gradient(loss, z)[0]
	})
	if err != nil {
		b.Fatal(err)
	}
	defer exec.Finalize()
	for b.Loop() {
		out, err := exec.Exec(batch.logits, batch.sparse)
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range out {
			o.FinalizeAll()
		}
	}
}

func BenchmarkCrossEntropyLossTampered(b *testing.B) {
	benchmarkLossGrad(b, func(z, l *graph.Node) *graph.Node { return CrossEntropyLoss(z, l, 0.3, 0.1) })
}

func BenchmarkCrossEntropyLossPlainGoMLX(b *testing.B) {
	benchmarkLossGrad(b, func(z, l *graph.Node) *graph.Node { return CrossEntropyLoss(z, l, 1, 0.1) })
}

// TestGraphTamperedProbs checks the graph's softmax(alpha*z) against the
// slice implementation on logits of +-1000.
func TestGraphTamperedProbs(t *testing.T) {
	be := newTestBackend(t)
	rows := [][]float64{{1000, -1000, 999, 0}, {0.5, -0.25, 3, 1}}
	for _, alpha := range []float64{0, 0.3, 1, 2} {
		out, err := graph.ExecOnce(be, func(z *graph.Node) *graph.Node { return TamperedProbs(z, alpha) }, rows)
		if err != nil {
			t.Fatal(err)
		}
		got := flat64(t, out)
		for i, row := range rows {
			want := TamperedSoftmax(nil, row, alpha)
			for j, w := range want {
				if g := got[i*4+j]; math.IsNaN(g) || math.Abs(g-w) > 1e-15 {
					t.Fatalf("alpha=%v: TamperedProbs[%d][%d] = %v, want %v", alpha, i, j, g, w)
				}
			}
		}
	}
}

// TestGraphBFloat16Logits feeds bfloat16 logits to the losses: the loss must
// be a float32 scalar equal to the float64 cross-entropy of those logits to
// float32 accuracy (a bfloat16 softmax would be off by about 1e-2), the
// logits must receive their gradient in bfloat16, and that gradient must be
// the float32 tampered gradient (softmax(alpha z) - q)/N rounded once to
// bfloat16. TamperedProbs of bfloat16 logits is float32.
func TestGraphBFloat16Logits(t *testing.T) {
	be := newTestBackend(t)
	if !be.Capabilities().DTypes[dtypes.BFloat16] {
		t.Skipf("backend %s has no bfloat16", be.Name())
	}
	r := rand.New(rand.NewPCG(31, 32))
	const n, c = 6, 7
	zb := make([]bfloat16.BFloat16, n*c)
	z := make([]float64, n*c) // the exact values of zb
	for i := range zb {
		zb[i] = bfloat16.FromFloat64(6 * r.NormFloat64())
		z[i] = float64(zb[i].Float32())
	}
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(r.IntN(c))
	}
	logits := tensors.FromFlatDataAndDimensions(zb, n, c)
	labelsT := tensors.FromFlatDataAndDimensions(labels, n)
	for _, alpha := range []float64{1, 0.3, 0} {
		for _, eps := range []float64{0, 0.1} {
			name := fmt.Sprintf("alpha %v eps %v", alpha, eps)
			exec, err := graph.NewExec(be, func(z, l *graph.Node) []*graph.Node {
				loss := CrossEntropyLoss(z, l, alpha, eps)
				return []*graph.Node{loss, graph.Gradient(loss, z)[0], TamperedProbs(z, alpha)}
			})
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Exec(logits, labelsT)
			exec.Finalize()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if out[0].DType() != dtypes.Float32 || out[1].DType() != dtypes.BFloat16 || out[2].DType() != dtypes.Float32 {
				t.Fatalf("%s: loss %s, gradient %s, tampered probabilities %s; want float32, bfloat16, float32",
					name, out[0].DType(), out[1].DType(), out[2].DType())
			}
			loss := float64(tensors.ToScalar[float32](out[0]))
			grad := tensors.MustCopyFlatData[bfloat16.BFloat16](out[1])
			probs := tensors.MustCopyFlatData[float32](out[2])
			var wantLoss float64
			for i := range n {
				row := z[i*c : (i+1)*c]
				q, _ := Target[float64](nil, c, int(labels[i]), eps)
				ce, _ := CrossEntropy(row, q)
				wantLoss += ce / n
				pt := TamperedSoftmax(nil, row, alpha)
				for j := range c {
					if math.Abs(float64(probs[i*c+j])-pt[j]) > 1e-6*pt[j]+1e-12 {
						t.Fatalf("%s: tampered probability [%d][%d] = %v, want %v", name, i, j, probs[i*c+j], pt[j])
					}
					// The float32 gradient, rounded to bfloat16 as the
					// backend converts (truncation on this backend, to
					// nearest elsewhere): within 2^-7 relative.
					want := (pt[j] - q[j]) / n
					got := float64(grad[i*c+j].Float32())
					if math.Abs(got-want) > math.Ldexp(math.Abs(want), -7)+1e-9 {
						t.Fatalf("%s: gradient [%d][%d] = %v, want %v", name, i, j, got, want)
					}
				}
			}
			if math.Abs(loss-wantLoss) > 2e-6*wantLoss {
				t.Errorf("%s: loss %v, want %v (float32 accuracy)", name, loss, wantLoss)
			}
		}
	}
}
