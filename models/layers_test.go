package models

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// img is a dense NHWC float64 image batch used by the reference implementations.
type img struct {
	n, h, w, c int
	data       []float64
}

func (m img) at(n, y, x, c int) float64 { return m.data[((n*m.h+y)*m.w+x)*m.c+c] }

func randImg(rng *rand.Rand, n, h, w, c int) img {
	m := img{n, h, w, c, make([]float64, n*h*w*c)}
	for i := range m.data {
		m.data[i] = rng.NormFloat64()
	}
	return m
}

func (m img) tensor() *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(m.data, m.n, m.h, m.w, m.c)
}

// exec runs fn once on the pure-Go backend with ctx and returns its outputs.
func exec(t *testing.T, ctx *context.Context, fn any, args ...any) []*tensors.Tensor {
	t.Helper()
	e, err := context.NewExecAny(goBackend(t), ctx, fn)
	if err != nil {
		t.Fatalf("NewExec: %v", err)
	}
	defer e.Finalize()
	out, err := e.Exec(args...)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	return out
}

func flat(t *testing.T, x *tensors.Tensor) []float64 {
	t.Helper()
	v, err := tensors.CopyFlatData[float64](x)
	if err != nil {
		t.Fatalf("reading tensor %s: %v", x.Shape(), err)
	}
	return v
}

func variable(t *testing.T, ctx *context.Context, scope, name string) []float64 {
	t.Helper()
	v := ctx.InspectVariable(scope, name)
	if v == nil {
		t.Fatalf("no variable %s/%s", scope, name)
	}
	return flat(t, v.MustValue())
}

func assertClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tol*(1+math.Abs(want[i])) || math.IsNaN(got[i]) {
			t.Fatalf("%s: value %d is %g, want %g", what, i, got[i], want[i])
		}
	}
}

// refConv is a direct 2D convolution with PyTorch semantics (symmetric zero
// padding pad, stride), kernel [k, k, cin, cout], plus bias (may be nil).
func refConv(x img, kernel []float64, k, cout, stride, pad int, bias []float64) img {
	oh := (x.h+2*pad-k)/stride + 1
	ow := (x.w+2*pad-k)/stride + 1
	out := img{x.n, oh, ow, cout, make([]float64, x.n*oh*ow*cout)}
	i := 0
	for n := range x.n {
		for oy := range oh {
			for ox := range ow {
				for co := range cout {
					s := 0.0
					if bias != nil {
						s = bias[co]
					}
					for ky := range k {
						for kx := range k {
							y, xx := oy*stride+ky-pad, ox*stride+kx-pad
							if y < 0 || y >= x.h || xx < 0 || xx >= x.w {
								continue
							}
							for ci := range x.c {
								s += x.at(n, y, xx, ci) * kernel[((ky*k+kx)*x.c+ci)*cout+co]
							}
						}
					}
					out.data[i] = s
					i++
				}
			}
		}
	}
	return out
}

func TestConv2DMatchesPyTorchPadding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct{ h, w, cin, cout, k, stride int }{
		{7, 8, 3, 4, 3, 2}, // odd and even sizes, stride 2: padding must be 1 on both sides.
		{9, 9, 2, 3, 7, 2}, // ImageNet stem kernel.
		{5, 6, 3, 2, 1, 2}, // projection shortcut.
		{6, 5, 2, 2, 3, 1},
	}
	for _, tc := range cases {
		x := randImg(rng, 2, tc.h, tc.w, tc.cin)
		ctx := context.New()
		out := exec(t, ctx, func(ctx *context.Context, x *graph.Node) *graph.Node {
			return conv2d(ctx.In("c"), precisionOf(x.DType()), x, tc.cout, tc.k, tc.stride, true, kaimingNormalStd(tc.k*tc.k*tc.cout))
		}, x.tensor())[0]
		kernel := variable(t, ctx, "/c", "weights")
		bias := variable(t, ctx, "/c", "biases")
		want := refConv(x, kernel, tc.k, tc.cout, tc.stride, tc.k/2, bias)
		if d := out.Shape().Dimensions; d[1] != want.h || d[2] != want.w || d[3] != want.c {
			t.Fatalf("%+v: output shape %s, want [2 %d %d %d]", tc, out.Shape(), want.h, want.w, want.c)
		}
		assertClose(t, "conv2d", flat(t, out), want.data, 1e-12)
		// Kaiming-normal fan-out initialisation: the kernel's spread is close to sqrt(2/(k*k*cout)).
		if tc.k == 7 {
			ss := 0.0
			for _, v := range kernel {
				ss += v * v
			}
			std, wantStd := math.Sqrt(ss/float64(len(kernel))), kaimingNormalStd(tc.k*tc.k*tc.cout)
			if math.Abs(std-wantStd) > 0.2*wantStd {
				t.Errorf("kernel std %g, want about %g", std, wantStd)
			}
		}
	}
}

func TestMaxPoolStem(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range [][2]int{{8, 8}, {7, 9}} {
		x := randImg(rng, 2, size[0], size[1], 3) // negative values: padding must not win the max.
		out := exec(t, nil, func(_ *context.Context, x *graph.Node) *graph.Node { return maxPool3x3s2(x) }, x.tensor())[0]
		oh, ow := (x.h+2-3)/2+1, (x.w+2-3)/2+1
		var want []float64
		for n := range x.n {
			for oy := range oh {
				for ox := range ow {
					for c := range x.c {
						m := math.Inf(-1)
						for ky := range 3 {
							for kx := range 3 {
								y, xx := 2*oy+ky-1, 2*ox+kx-1
								if y >= 0 && y < x.h && xx >= 0 && xx < x.w {
									m = max(m, x.at(n, y, xx, c))
								}
							}
						}
						want = append(want, m)
					}
				}
			}
		}
		assertClose(t, "max pool", flat(t, out), want, 0)
	}
}

func TestShortcutA(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct{ h, w, cin, cout, stride int }{{8, 8, 4, 8, 2}, {7, 5, 3, 6, 2}, {4, 4, 5, 5, 1}, {4, 4, 2, 5, 1}} {
		x := randImg(rng, 2, tc.h, tc.w, tc.cin)
		out := exec(t, nil, func(_ *context.Context, x *graph.Node) *graph.Node { return shortcutA(x, tc.cout, tc.stride) }, x.tensor())[0]
		before := (tc.cout - tc.cin) / 2
		oh, ow := (tc.h+tc.stride-1)/tc.stride, (tc.w+tc.stride-1)/tc.stride
		var want []float64
		for n := range x.n {
			for oy := range oh {
				for ox := range ow {
					for c := range tc.cout {
						v := 0.0
						if c >= before && c < before+tc.cin {
							v = x.at(n, oy*tc.stride, ox*tc.stride, c-before)
						}
						want = append(want, v)
					}
				}
			}
		}
		assertClose(t, "shortcut A", flat(t, out), want, 0)
	}
}

// TestGraphBatchNorm checks the training-mode batch norm used on backends
// without fused batch-norm ops: normalisation, moving averages (equal to the
// batch statistics after the first step, so inference then reproduces the
// training output), and its gradient against finite differences.
func TestGraphBatchNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randImg(rng, 3, 2, 3, 4)
	for i := range x.data {
		x.data[i] = 3*x.data[i] + float64(i%4) // per-channel offsets
	}
	coef := randImg(rng, 3, 2, 3, 4)
	ctx := context.New()
	bn := func(training bool) func(ctx *context.Context, x, coef *graph.Node) []*graph.Node {
		return func(ctx *context.Context, x, coef *graph.Node) []*graph.Node {
			ctx.SetTraining(x.Graph(), training)
			y := batchNorm(ctx.In("bn"), precisionOf(x.DType()), x)
			loss := graph.ReduceAllSum(graph.Mul(y, coef))
			return []*graph.Node{y, loss, graph.Gradient(loss, x)[0]}
		}
	}
	out := exec(t, ctx, bn(true), x.tensor(), coef.tensor())
	y, grad := flat(t, out[0]), flat(t, out[2])

	// Reference: per-channel batch statistics (biased variance), eps 1e-5.
	const eps = 1e-5
	mean, variance := make([]float64, x.c), make([]float64, x.c)
	count := float64(len(x.data) / x.c)
	for i, v := range x.data {
		mean[i%x.c] += v / count
	}
	for i, v := range x.data {
		variance[i%x.c] += (v - mean[i%x.c]) * (v - mean[i%x.c]) / count
	}
	want := make([]float64, len(x.data))
	for i, v := range x.data {
		want[i] = (v - mean[i%x.c]) / math.Sqrt(variance[i%x.c]+eps)
	}
	assertClose(t, "normalised", y, want, 1e-9)
	assertClose(t, "moving mean", variable(t, ctx, "/bn/batch_normalization", "mean"), mean, 1e-12)
	assertClose(t, "moving variance", variable(t, ctx, "/bn/batch_normalization", "variance"), variance, 1e-12)

	// Inference with the moving averages reproduces the training output.
	inf := exec(t, ctx.Reuse(), bn(false), x.tensor(), coef.tensor())
	assertClose(t, "inference", flat(t, inf[0]), want, 1e-9)

	// Gradient against central finite differences, one coordinate at a time.
	lossAt := func(data []float64) float64 {
		xx := img{x.n, x.h, x.w, x.c, data}
		return flat(t, exec(t, context.New(), bn(true), xx.tensor(), coef.tensor())[1])[0]
	}
	const h = 1e-5
	for _, i := range []int{0, 5, 17, 30, 71} {
		plus := append([]float64(nil), x.data...)
		minus := append([]float64(nil), x.data...)
		plus[i] += h
		minus[i] -= h
		fd := (lossAt(plus) - lossAt(minus)) / (2 * h)
		if math.Abs(fd-grad[i]) > 1e-5*(1+math.Abs(fd)) {
			t.Errorf("d loss/d x[%d] = %g, finite differences give %g", i, grad[i], fd)
		}
	}
}

// TestSEChannels checks the hidden width of the squeeze-and-excitation
// blocks against timm's make_divisible(channels/r, 8, round_limit=0),
// worked out by hand: v rounded to the nearest multiple of 8 (halves up),
// at least 8.
func TestSEChannels(t *testing.T) {
	for _, tc := range []struct{ channels, r, want int }{
		{64, 16, 8}, // v = 4: the floor of 8 (the plain C/r would be 4)
		{128, 16, 8},
		{256, 16, 16},
		{512, 16, 32},
		{2048, 16, 128},
		{8, 4, 8},     // v = 2
		{40, 4, 8},    // v = 10 rounds down to 8
		{48, 4, 16},   // v = 12, a half, rounds up to 16
		{200, 16, 16}, // v = 12.5
		{180, 16, 8},  // v = 11.25
		{100, 1, 104}, // v = 100
	} {
		if got := seChannels(tc.channels, tc.r); got != tc.want {
			t.Errorf("seChannels(%d, %d) = %d, want %d", tc.channels, tc.r, got, tc.want)
		}
	}
}

// TestSqueezeExcite compares the block with a direct evaluation and checks
// its initialisation: weights Kaiming-normal with fan-out (timm's 1x1
// convolutions), biases within PyTorch's ±1/sqrt(fanIn).
func TestSqueezeExcite(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	x := randImg(rng, 2, 3, 3, 48)
	ctx := context.New()
	ctx.SetParam(ParamSEReduction, 4)
	out := flat(t, exec(t, ctx, func(ctx *context.Context, x *graph.Node) *graph.Node {
		return squeezeExcite(ctx.In("se"), precisionOf(x.DType()), x)
	}, x.tensor())[0])
	w1, b1 := variable(t, ctx, "/se/reduce/dense", "weights"), variable(t, ctx, "/se/reduce/dense", "biases")
	w2, b2 := variable(t, ctx, "/se/expand/dense", "weights"), variable(t, ctx, "/se/expand/dense", "biases")
	if len(b1) != 16 || len(b2) != 48 {
		t.Fatalf("SE hidden width %d, output %d; want 16 (48/4 = 12 rounded to a multiple of 8) and 48", len(b1), len(b2))
	}
	for _, v := range []struct {
		name   string
		w, b   []float64
		fanIn  int
		fanOut int
	}{{"reduce", w1, b1, 48, 16}, {"expand", w2, b2, 16, 48}} {
		var ss float64
		for _, w := range v.w {
			ss += w * w
		}
		if std, want := math.Sqrt(ss/float64(len(v.w))), math.Sqrt(2/float64(v.fanOut)); math.Abs(std-want) > 0.15*want {
			t.Errorf("%s weights: std %g, want about sqrt(2/%d) = %g", v.name, std, v.fanOut, want)
		}
		for _, b := range v.b {
			if math.Abs(b) > 1/math.Sqrt(float64(v.fanIn)) {
				t.Errorf("%s bias %g outside ±1/sqrt(%d)", v.name, b, v.fanIn)
			}
		}
	}
	var want []float64
	for n := range x.n {
		pooled := make([]float64, x.c)
		for y := range x.h {
			for xx := range x.w {
				for c := range x.c {
					pooled[c] += x.at(n, y, xx, c) / float64(x.h*x.w)
				}
			}
		}
		hidden := append([]float64(nil), b1...)
		for j := range hidden {
			for c := range x.c {
				hidden[j] += pooled[c] * w1[c*len(b1)+j]
			}
			hidden[j] = max(hidden[j], 0)
		}
		gate := append([]float64(nil), b2...)
		for c := range gate {
			for j := range hidden {
				gate[c] += hidden[j] * w2[j*x.c+c]
			}
			gate[c] = 1 / (1 + math.Exp(-gate[c]))
		}
		for y := range x.h {
			for xx := range x.w {
				for c := range x.c {
					want = append(want, x.at(n, y, xx, c)*gate[c])
				}
			}
		}
	}
	assertClose(t, "squeeze-excite", out, want, 1e-12)
}

// TestBatchNormFusedMatchesGraph compares, on a backend with fused batch-norm
// ops (our CPU backend), the fused path (batchnorm.New) with the graph-op path
// in training mode (output, input gradient, moving averages) and then in
// inference mode.
func TestBatchNormFusedMatchesGraph(t *testing.T) {
	bs := testBackends(t)
	b := bs[len(bs)-1]
	skipUnlessOps(t, b, backends.OpTypeBatchNormForTraining, backends.OpTypeBatchNormGradient, backends.OpTypeBatchNormForInference)
	rng := rand.New(rand.NewPCG(17, 18))
	x, coef := randImg(rng, 4, 3, 2, 5), randImg(rng, 4, 3, 2, 5)
	for i := range x.data {
		x.data[i] = 2*x.data[i] - float64(i%5)
	}
	results := map[bool][][]float64{}
	for _, fused := range []bool{true, false} {
		ctx := context.New()
		ctx.SetParam(ParamBatchNormFused, fused)
		fn := func(training bool) func(ctx *context.Context, x, coef *graph.Node) []*graph.Node {
			return func(ctx *context.Context, x, coef *graph.Node) []*graph.Node {
				ctx.SetTraining(x.Graph(), training)
				y := batchNorm(ctx.In("bn"), precisionOf(x.DType()), x)
				if !training {
					return []*graph.Node{y}
				}
				loss := graph.ReduceAllSum(graph.Mul(y, coef))
				return []*graph.Node{y, graph.Gradient(loss, x)[0]}
			}
		}
		var got [][]float64
		for step := range 2 { // two steps: the second exercises the moving-average weights
			c := ctx
			if step > 0 {
				c = ctx.Reuse()
			}
			e, err := context.NewExecAny(b, c, fn(true))
			if err != nil {
				t.Fatal(err)
			}
			xs := x
			if step == 1 {
				xs = img{x.n, x.h, x.w, x.c, make([]float64, len(x.data))}
				for i, v := range x.data {
					xs.data[i] = 0.5*v + 1
				}
			}
			out, err := e.Exec(xs.tensor(), coef.tensor())
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, flat(t, out[0]), flat(t, out[1]))
			e.Finalize()
		}
		got = append(got, variable(t, ctx, "/bn/batch_normalization", "mean"), variable(t, ctx, "/bn/batch_normalization", "variance"))
		e, err := context.NewExecAny(b, ctx.Reuse(), fn(false))
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.Exec(x.tensor(), coef.tensor())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, flat(t, out[0]))
		e.Finalize()
		results[fused] = got
	}
	names := []string{"output 1", "gradient 1", "output 2", "gradient 2", "moving mean", "moving variance", "inference output"}
	for i, name := range names {
		assertClose(t, name, results[false][i], results[true][i], 1e-9)
	}
}
