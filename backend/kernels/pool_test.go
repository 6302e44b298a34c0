package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// poolCase is a WindowConfig with every field spelled out, as the naive
// references use it.
type poolCase struct {
	dims, win, stride, bdil, wdil []int
	pads                          [][2]int
}

func (w poolCase) config() WindowConfig {
	return WindowConfig{Window: w.win, Strides: w.stride, BaseDilations: w.bdil, WindowDilations: w.wdil, Paddings: w.pads}
}

func (w poolCase) String() string {
	return fmt.Sprintf("dims=%v win=%v stride=%v bdil=%v wdil=%v pads=%v", w.dims, w.win, w.stride, w.bdil, w.wdil, w.pads)
}

// outDims is XLA's output shape formula, written independently of the plan.
func (w poolCase) outDims() []int {
	out := make([]int, len(w.dims))
	for a, d := range w.dims {
		padded := (d-1)*w.bdil[a] + 1 + w.pads[a][0] + w.pads[a][1]
		span := (w.win[a]-1)*w.wdil[a] + 1
		if span <= padded {
			out[a] = (padded-span)/w.stride[a] + 1
		}
	}
	return out
}

func poolProd(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// poolUnflatten returns the row-major multi-index of flat index i.
func poolUnflatten(i int, dims []int) []int {
	idx := make([]int, len(dims))
	for a := len(dims) - 1; a >= 0; a-- {
		idx[a] = i % dims[a]
		i /= dims[a]
	}
	return idx
}

func poolFlatten(idx, dims []int) int {
	i := 0
	for a := range dims {
		i = i*dims[a] + idx[a]
	}
	return i
}

// operandIndex maps an output index and a window index to the operand index
// they read, or returns false for padding and base-dilation holes.
func (w poolCase) operandIndex(outIdx, winIdx []int) ([]int, bool) {
	in := make([]int, len(w.dims))
	for a := range w.dims {
		pos := outIdx[a]*w.stride[a] + winIdx[a]*w.wdil[a] - w.pads[a][0]
		if pos < 0 || pos%w.bdil[a] != 0 || pos/w.bdil[a] >= w.dims[a] {
			return nil, false
		}
		in[a] = pos / w.bdil[a]
	}
	return in, true
}

// refReduceWindow is the definition of ReduceWindow, written directly.
func refReduceWindow[T KernelFloat](w poolCase, op ReduceOp, x []T) []T {
	od := w.outDims()
	out := make([]T, poolProd(od))
	for i := range out {
		outIdx := poolUnflatten(i, od)
		var acc T
		switch op {
		case ReduceMax:
			acc = T(math.Inf(-1))
		case ReduceMin:
			acc = T(math.Inf(1))
		case ReduceSum:
			acc = 0
		case ReduceProduct:
			acc = 1
		}
		for j := range poolProd(w.win) {
			in, ok := w.operandIndex(outIdx, poolUnflatten(j, w.win))
			if !ok {
				continue
			}
			v := x[poolFlatten(in, w.dims)]
			switch op {
			case ReduceMax:
				if v > acc || v != v {
					acc = v
				}
			case ReduceMin:
				if v < acc || v != v {
					acc = v
				}
			case ReduceSum:
				acc += v
			case ReduceProduct:
				acc *= v
			}
		}
		out[i] = acc
	}
	return out
}

// refSelectAndScatter is the definition of XLA's SelectAndScatter with
// select GE (max) or LE (min) and scatter add, written directly.
func refSelectAndScatter[T KernelFloat](w poolCase, isMax bool, x, source []T) []T {
	od := w.outDims()
	out := make([]T, len(x))
	for i := range source {
		outIdx := poolUnflatten(i, od)
		selected := -1
		var best T
		for j := range poolProd(w.win) {
			in, ok := w.operandIndex(outIdx, poolUnflatten(j, w.win))
			if !ok {
				continue
			}
			pos := poolFlatten(in, w.dims)
			v := x[pos]
			keep := best >= v
			if !isMax {
				keep = best <= v
			}
			if selected < 0 || !keep {
				selected, best = pos, v
			}
		}
		if selected >= 0 {
			out[selected] += source[i]
		}
	}
	return out
}

// poolRandCase draws a random window configuration; axes are often made
// trivial so the outer/inner fast paths are exercised. dilations enables
// base and window dilations.
func poolRandCase(rng *rand.Rand, dilations bool) poolCase {
	rank := rng.IntN(6)
	w := poolCase{
		dims: make([]int, rank), win: make([]int, rank), stride: make([]int, rank),
		bdil: make([]int, rank), wdil: make([]int, rank), pads: make([][2]int, rank),
	}
	for a := range rank {
		w.dims[a] = 1 + rng.IntN(7)
		w.win[a], w.stride[a], w.bdil[a], w.wdil[a] = 1, 1, 1, 1
		if rng.IntN(5) < 2 {
			continue // trivial axis
		}
		w.win[a] = 1 + rng.IntN(4)
		w.stride[a] = 1 + rng.IntN(3)
		if dilations && rng.IntN(3) == 0 {
			w.bdil[a] = 1 + rng.IntN(3)
		}
		if dilations && rng.IntN(3) == 0 {
			w.wdil[a] = 1 + rng.IntN(3)
		}
		if rng.IntN(2) == 0 {
			w.pads[a] = [2]int{rng.IntN(4), rng.IntN(4)}
		}
	}
	return w
}

func poolRandSlice[T KernelFloat](rng *rand.Rand, n int, lo, hi float64) []T {
	x := make([]T, n)
	for i := range x {
		x[i] = T(lo + (hi-lo)*rng.Float64())
	}
	return x
}

// poolClose compares a and b with a relative and absolute tolerance,
// treating equal infinities and NaNs as equal.
func poolClose(a, b, tol float64) bool {
	if a == b || (math.IsNaN(a) && math.IsNaN(b)) {
		return true
	}
	return math.Abs(a-b) <= tol*(1+math.Abs(b))
}

func poolCheck[T KernelFloat](t *testing.T, what string, got, want []T, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d elements, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !poolClose(float64(got[i]), float64(want[i]), tol) {
			t.Fatalf("%s: element %d = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func testReduceWindowRandom[T KernelFloat](t *testing.T, tol float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	ops := []ReduceOp{ReduceMax, ReduceMin, ReduceSum, ReduceProduct}
	for iter := range 400 {
		w := poolRandCase(rng, true)
		op := ops[iter%len(ops)]
		lo, hi := -2.0, 2.0
		if op == ReduceProduct {
			lo, hi = 0.7, 1.3
		}
		x := poolRandSlice[T](rng, poolProd(w.dims), lo, hi)
		p, err := NewWindowPlan(w.dims, w.config())
		if err != nil {
			t.Fatalf("%v: %v", w, err)
		}
		if got, want := p.OutDims(), w.outDims(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%v: OutDims()=%v, want %v", w, got, want)
		}
		out := make([]T, p.OutSize())
		for i := range out {
			out[i] = 12345 // must be overwritten
		}
		if err := ReduceWindow(p, op, x, out); err != nil {
			t.Fatalf("%v: %v", w, err)
		}
		poolCheck(t, fmt.Sprintf("ReduceWindow %v %v", op, w), out, refReduceWindow(w, op, x), tol)
	}
}

func TestReduceWindowRandom(t *testing.T) {
	t.Run("float32", func(t *testing.T) { testReduceWindowRandom[float32](t, 1e-5) })
	t.Run("float64", func(t *testing.T) { testReduceWindowRandom[float64](t, 1e-12) })
}

// TestReduceWindowPooling checks the common pooling configurations (the
// 2-D fast paths) on larger inputs, in NHWC and NCHW.
func TestReduceWindowPooling(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type pool struct {
		name        string
		win, stride int
		pad         [2]int
		op          ReduceOp
	}
	pools := []pool{
		{"max3x3s2", 3, 2, [2]int{1, 1}, ReduceMax},
		{"avg2x2", 2, 2, [2]int{0, 0}, ReduceSum},
		{"min3x3s1same", 3, 1, [2]int{1, 1}, ReduceMin},
		{"max2x2s2odd", 2, 2, [2]int{0, 1}, ReduceMax},
	}
	for _, pl := range pools {
		for _, nchw := range []bool{false, true} {
			n, h, wd, c := 3, 9, 11, 13
			w := poolCase{
				win: []int{1, pl.win, pl.win, 1}, stride: []int{1, pl.stride, pl.stride, 1},
				bdil: []int{1, 1, 1, 1}, wdil: []int{1, 1, 1, 1}, pads: [][2]int{{}, pl.pad, pl.pad, {}},
				dims: []int{n, h, wd, c},
			}
			if nchw {
				w.dims = []int{n, c, h, wd}
				w.win = []int{1, 1, pl.win, pl.win}
				w.stride = []int{1, 1, pl.stride, pl.stride}
				w.pads = [][2]int{{}, {}, pl.pad, pl.pad}
			}
			x := poolRandSlice[float32](rng, poolProd(w.dims), -1, 1)
			p, err := NewWindowPlan(w.dims, w.config())
			if err != nil {
				t.Fatal(err)
			}
			out := make([]float32, p.OutSize())
			if err := ReduceWindow(p, pl.op, x, out); err != nil {
				t.Fatal(err)
			}
			poolCheck(t, fmt.Sprintf("%s nchw=%v", pl.name, nchw), out, refReduceWindow(w, pl.op, x), 1e-5)

			src := poolRandSlice[float32](rng, p.OutSize(), -1, 1)
			if pl.op == ReduceSum {
				continue
			}
			grad := make([]float32, len(x))
			if err := SelectAndScatter(p, pl.op, x, src, grad); err != nil {
				t.Fatal(err)
			}
			poolCheck(t, fmt.Sprintf("SelectAndScatter %s nchw=%v", pl.name, nchw), grad, refSelectAndScatter(w, pl.op == ReduceMax, x, src), 1e-5)
		}
	}
}

func TestReduceWindowNaNAndEmptyWindows(t *testing.T) {
	// A window entirely in padding yields the identity; NaN propagates.
	x := []float64{1, math.NaN(), 3}
	for _, tc := range []struct {
		op       ReduceOp
		identity float64
	}{
		{ReduceMax, math.Inf(-1)},
		{ReduceMin, math.Inf(1)},
		{ReduceSum, 0},
		{ReduceProduct, 1},
	} {
		p, err := NewWindowPlan([]int{3}, WindowConfig{Window: []int{2}, Strides: []int{2}, Paddings: [][2]int{{3, 0}}})
		if err != nil {
			t.Fatal(err)
		}
		// Padded: [p p p 1 NaN 3]: windows [p p] [p 1] [NaN 3] -> 3 outputs.
		out := make([]float64, p.OutSize())
		if err := ReduceWindow(p, tc.op, x, out); err != nil {
			t.Fatal(err)
		}
		want := []float64{tc.identity, 1, math.NaN()}
		poolCheck(t, tc.op.String(), out, want, 0)
	}
}

func testSelectAndScatterRandom[T KernelFloat](t *testing.T, tol float64) {
	rng := rand.New(rand.NewPCG(5, 6))
	for iter := range 400 {
		w := poolRandCase(rng, false)
		isMax := iter%2 == 0
		op := ReduceMin
		if isMax {
			op = ReduceMax
		}
		// Small integers give many ties, which the first-selected rule decides;
		// a few NaNs check that every path applies XLA's comparison the same way.
		x := make([]T, poolProd(w.dims))
		for i := range x {
			x[i] = T(rng.IntN(3))
			if iter%4 == 1 && rng.IntN(10) == 0 {
				x[i] = T(math.NaN())
			}
		}
		p, err := NewWindowPlan(w.dims, w.config())
		if err != nil {
			t.Fatalf("%v: %v", w, err)
		}
		src := poolRandSlice[T](rng, p.OutSize(), -1, 1)
		out := make([]T, len(x))
		for i := range out {
			out[i] = 777 // must be cleared
		}
		if err := SelectAndScatter(p, op, x, src, out); err != nil {
			t.Fatalf("%v: %v", w, err)
		}
		poolCheck(t, fmt.Sprintf("SelectAndScatter %v %v", op, w), out, refSelectAndScatter(w, isMax, x, src), tol)
	}
}

func TestSelectAndScatterRandom(t *testing.T) {
	t.Run("float32", func(t *testing.T) { testSelectAndScatterRandom[float32](t, 1e-5) })
	t.Run("float64", func(t *testing.T) { testSelectAndScatterRandom[float64](t, 1e-12) })
}

// TestSelectAndScatterWideInner covers inner sizes above the channel block.
func TestSelectAndScatterWideInner(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	w := poolCase{
		dims: []int{2, 5, 4, scatterBlock + 7}, win: []int{1, 3, 2, 1}, stride: []int{1, 2, 1, 1},
		bdil: []int{1, 1, 1, 1}, wdil: []int{1, 1, 1, 1}, pads: [][2]int{{}, {1, 1}, {0, 1}, {}},
	}
	x := make([]float64, poolProd(w.dims))
	for i := range x {
		x[i] = float64(rng.IntN(4))
	}
	p, err := NewWindowPlan(w.dims, w.config())
	if err != nil {
		t.Fatal(err)
	}
	src := poolRandSlice[float64](rng, p.OutSize(), -1, 1)
	out := make([]float64, len(x))
	for _, op := range []ReduceOp{ReduceMax, ReduceMin} {
		if err := SelectAndScatter(p, op, x, src, out); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, op.String(), out, refSelectAndScatter(w, op == ReduceMax, x, src), 1e-12)
	}
}

// TestSelectAndScatterIsPoolingGradient checks by central differences that
// SelectAndScatter(x, s) is the gradient of sum(s * ReduceWindow(x)) for max
// and min pooling, on operands with distinct values.
func TestSelectAndScatterIsPoolingGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const h = 1e-4
	for iter := 0; iter < 40; iter++ {
		w := poolRandCase(rng, false)
		for a := range w.pads {
			// Keep at least one operand element in every window.
			w.pads[a][0] = min(w.pads[a][0], w.win[a]-1)
			w.pads[a][1] = min(w.pads[a][1], w.win[a]-1)
		}
		op := []ReduceOp{ReduceMax, ReduceMin}[iter%2]
		n := poolProd(w.dims)
		x := make([]float64, n)
		for i, v := range rng.Perm(n) {
			x[i] = float64(v) * 0.01 // distinct, gaps of 0.01 >> h
		}
		p, err := NewWindowPlan(w.dims, w.config())
		if err != nil {
			t.Fatal(err)
		}
		if p.OutSize() == 0 {
			continue
		}
		src := poolRandSlice[float64](rng, p.OutSize(), -1, 1)
		pooled := make([]float64, p.OutSize())
		loss := func() float64 {
			if err := ReduceWindow(p, op, x, pooled); err != nil {
				t.Fatal(err)
			}
			s := 0.0
			for i, v := range pooled {
				s += src[i] * v
			}
			return s
		}
		grad := make([]float64, n)
		if err := SelectAndScatter(p, op, x, src, grad); err != nil {
			t.Fatal(err)
		}
		for i := range x {
			x0 := x[i]
			x[i] = x0 + h
			up := loss()
			x[i] = x0 - h
			down := loss()
			x[i] = x0
			if fd := (up - down) / (2 * h); !poolClose(grad[i], fd, 1e-6) {
				t.Fatalf("%v %v: d/dx[%d]: SelectAndScatter %v, finite difference %v", op, w, i, grad[i], fd)
			}
		}
	}
}

func TestWindowPlanErrors(t *testing.T) {
	for _, tc := range []struct {
		dims []int
		cfg  WindowConfig
		want string
	}{
		{[]int{4, 4}, WindowConfig{Window: []int{2}}, "Window has 1 entries"},
		{[]int{4, 4}, WindowConfig{Window: []int{2, 0}}, "Window[1]=0"},
		{[]int{4, 4}, WindowConfig{Strides: []int{1, -1}}, "Strides[1]=-1"},
		{[]int{4, 4}, WindowConfig{BaseDilations: []int{0, 1}}, "BaseDilations[0]=0"},
		{[]int{4, 4}, WindowConfig{WindowDilations: []int{1, 1, 1}}, "WindowDilations has 3 entries"},
		{[]int{4, 4}, WindowConfig{Paddings: [][2]int{{0, 0}, {-1, 0}}}, "Paddings[1]=[-1 0]"},
		{[]int{4, -4}, WindowConfig{}, "dimension 1 is -4"},
	} {
		_, err := NewWindowPlan(tc.dims, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewWindowPlan(%v, %+v) error = %v, want it to contain %q", tc.dims, tc.cfg, err, tc.want)
		}
	}

	p, err := NewWindowPlan([]int{4, 4}, WindowConfig{Window: []int{2, 2}})
	if err != nil {
		t.Fatal(err)
	}
	x, out := make([]float32, 16), make([]float32, 4)
	if err := ReduceWindow(p, ReduceOp(9), x, out); err == nil || !strings.Contains(err.Error(), "unknown reduction") {
		t.Errorf("bad op: error = %v", err)
	}
	if err := ReduceWindow(p, ReduceMax, x[:15], out); err == nil || !strings.Contains(err.Error(), "operand has 15 elements, want 16") {
		t.Errorf("short operand: error = %v", err)
	}
	if err := ReduceWindow(p, ReduceMax, x, out[:3]); err == nil || !strings.Contains(err.Error(), "output has 3 elements, want 4") {
		t.Errorf("short output: error = %v", err)
	}
	if err := SelectAndScatter(p, ReduceSum, x, out, x); err == nil || !strings.Contains(err.Error(), "max or min") {
		t.Errorf("sum selection: error = %v", err)
	}
	if err := SelectAndScatter(p, ReduceMax, x, out[:1], x); err == nil || !strings.Contains(err.Error(), "source has 1 elements, want 4") {
		t.Errorf("short source: error = %v", err)
	}
	if err := ReduceWindow[float32](nil, ReduceMax, x, out); err == nil {
		t.Errorf("nil plan: no error")
	}
	dil, err := NewWindowPlan([]int{4, 4}, WindowConfig{Window: []int{2, 2}, WindowDilations: []int{2, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := SelectAndScatter(dil, ReduceMax, x, make([]float32, dil.OutSize()), make([]float32, 16)); err == nil || !strings.Contains(err.Error(), "dilations") {
		t.Errorf("dilated SelectAndScatter: error = %v", err)
	}
}

// TestReduceWindowZeroSized checks operands with a zero dimension and
// windows larger than the operand (empty output).
func TestReduceWindowZeroSized(t *testing.T) {
	p, err := NewWindowPlan([]int{2, 0, 3}, WindowConfig{Window: []int{1, 2, 1}, Paddings: [][2]int{{}, {1, 1}, {}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(p.OutDims()); got != "[2 1 3]" {
		t.Fatalf("OutDims()=%s, want [2 1 3]", got)
	}
	out := make([]float32, p.OutSize())
	if err := ReduceWindow(p, ReduceProduct, nil, out); err != nil {
		t.Fatal(err)
	}
	poolCheck(t, "all-padding poolProd", out, []float32{1, 1, 1, 1, 1, 1}, 0)
	if err := SelectAndScatter(p, ReduceMax, nil, out, nil); err != nil {
		t.Fatal(err)
	}

	big, err := NewWindowPlan([]int{3}, WindowConfig{Window: []int{5}})
	if err != nil {
		t.Fatal(err)
	}
	if big.OutSize() != 0 {
		t.Fatalf("window larger than operand: OutSize()=%d, want 0", big.OutSize())
	}
	if err := ReduceWindow(big, ReduceSum, []float64{1, 2, 3}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestPoolingParallel runs inputs large enough to be split over several
// chunks and goroutines, in NHWC and NCHW, against the references.
func TestPoolingParallel(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, nchw := range []bool{false, true} {
		w := poolCase{
			dims: []int{6, 24, 24, 16}, win: []int{1, 3, 3, 1}, stride: []int{1, 2, 2, 1},
			bdil: []int{1, 1, 1, 1}, wdil: []int{1, 1, 1, 1}, pads: [][2]int{{}, {1, 1}, {1, 1}, {}},
		}
		if nchw {
			w.dims, w.win, w.stride = []int{6, 16, 24, 24}, []int{1, 1, 3, 3}, []int{1, 1, 2, 2}
			w.pads = [][2]int{{}, {}, {1, 1}, {1, 1}}
		}
		x := poolRandSlice[float32](rng, poolProd(w.dims), -1, 1)
		p, err := NewWindowPlan(w.dims, w.config())
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range []ReduceOp{ReduceMax, ReduceSum} {
			out := make([]float32, p.OutSize())
			if err := ReduceWindow(p, op, x, out); err != nil {
				t.Fatal(err)
			}
			poolCheck(t, fmt.Sprintf("%v nchw=%v", op, nchw), out, refReduceWindow(w, op, x), 1e-5)
		}
		src := poolRandSlice[float32](rng, p.OutSize(), -1, 1)
		grad := make([]float32, len(x))
		if err := SelectAndScatter(p, ReduceMax, x, src, grad); err != nil {
			t.Fatal(err)
		}
		poolCheck(t, fmt.Sprintf("SelectAndScatter nchw=%v", nchw), grad, refSelectAndScatter(w, true, x, src), 1e-5)
	}
}
