package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Tests of ops simplego does not implement, against direct references.

func runCPU(t *testing.T, name string, fn rawFn, inputs ...*hostT) []*hostT {
	t.Helper()
	out, err := runRaw(mustCPU(t), fn, inputs...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func checkHost(t *testing.T, name string, got, want *hostT, tl tol) {
	t.Helper()
	if err := compareHost(got, want, tl); err != nil {
		t.Errorf("%s: %v", name, err)
	}
}

func TestPad(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	x := randHost(rng, dtypes.Float32, []int{3, 4}, -5, 5)
	fill := &hostT{shapesF32(), []float32{7}}
	for _, cfg := range [][]backends.PadAxis{
		{{Start: 1, End: 2}, {Start: 0, End: 1}},
		{{Start: 0, End: 0, Interior: 2}, {Start: 2, End: 1, Interior: 1}},
		{{Start: -1, End: 0}, {Start: 1, End: -2, Interior: 1}},
		{{Start: -2, End: -1, Interior: 3}, {Start: -3, End: -3, Interior: 1}},
		{{Start: 1}},
	} {
		name := fmt.Sprintf("Pad%v", cfg)
		got := runCPU(t, name, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(b.Pad(p[0], p[1], cfg...))
		}, x, fill)[0]
		checkHost(t, name, got, refPad(x, 7, cfg), tolExact)
	}
}

// refPad pads a rank-2 float32 operand following the definition: output
// position lo + i*(interior+1) holds x[i]; everything else is fill.
func refPad(x *hostT, fill float32, cfg []backends.PadAxis) *hostT {
	c := make([]backends.PadAxis, 2)
	copy(c, cfg)
	d := x.shape.Dimensions
	od := make([]int, 2)
	for k := range 2 {
		od[k] = c[k].Start + c[k].End + d[k] + max(d[k]-1, 0)*c[k].Interior
	}
	out := make([]float32, od[0]*od[1])
	for i := range out {
		out[i] = fill
	}
	for i := range d[0] {
		for j := range d[1] {
			r, cc := c[0].Start+i*(c[0].Interior+1), c[1].Start+j*(c[1].Interior+1)
			if r >= 0 && r < od[0] && cc >= 0 && cc < od[1] {
				out[r*od[1]+cc] = x.flat.([]float32)[i*d[1]+j]
			}
		}
	}
	return &hostT{shapesF32(od...), out}
}

func TestReverse(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	x := randHost(rng, dtypes.Int32, []int{2, 3, 4}, -50, 50)
	for _, axes := range [][]int{{0}, {1}, {2}, {0, 2}, {0, 1, 2}, {}} {
		got := runCPU(t, "Reverse", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(b.Reverse(p[0], axes...))
		}, x)[0]
		want := &hostT{x.shape, make([]int32, 24)}
		for i := range 2 {
			for j := range 3 {
				for k := range 4 {
					ii, jj, kk := i, j, k
					for _, a := range axes {
						switch a {
						case 0:
							ii = 1 - i
						case 1:
							jj = 2 - j
						case 2:
							kk = 3 - k
						}
					}
					want.flat.([]int32)[(ii*3+jj)*4+kk] = x.flat.([]int32)[(i*3+j)*4+k]
				}
			}
		}
		checkHost(t, fmt.Sprintf("Reverse%v", axes), got, want, tolExact)
	}
}

func TestClamp(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	x := randHost(rng, dtypes.Float64, []int{5, 7}, -5, 5)
	lo := randHost(rng, dtypes.Float64, []int{5, 7}, -3, 0)
	hi := &hostT{shapes.Make(dtypes.Float64), []float64{1.5}}
	got := runCPU(t, "Clamp", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		return one(b.Clamp(p[0], p[1], p[2]))
	}, lo, x, hi)[0]
	want := &hostT{x.shape, make([]float64, 35)}
	for i, v := range x.flat.([]float64) {
		want.flat.([]float64)[i] = math.Min(math.Max(v, lo.flat.([]float64)[i]), 1.5)
	}
	checkHost(t, "Clamp", got, want, tolExact)
}

func TestDynamicSlices(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	x := randHost(rng, dtypes.Float32, []int{5, 6}, -5, 5)
	upd := randHost(rng, dtypes.Float32, []int{2, 3}, -5, 5)
	for _, start := range [][2]int32{{0, 0}, {1, 2}, {4, 5}, {-3, 9}} {
		s0 := &hostT{shapes.Make(dtypes.Int32), []int32{start[0]}}
		s1 := &hostT{shapes.Make(dtypes.Int32), []int32{start[1]}}
		r0 := max(0, min(int(start[0]), 5-2))
		r1 := max(0, min(int(start[1]), 6-3))
		out := runCPU(t, "DynamicSlice", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			ds, err := b.DynamicSlice(p[0], []backends.Op{p[2], p[3]}, []int{2, 3})
			if err != nil {
				return nil, err
			}
			dus, err := b.DynamicUpdateSlice(p[0], p[1], []backends.Op{p[2], p[3]})
			return []backends.Op{ds, dus}, err
		}, x, upd, s0, s1)
		wantDS := &hostT{shapesF32(2, 3), make([]float32, 6)}
		wantDUS := &hostT{x.shape, make([]float32, 30)}
		copy(wantDUS.flat.([]float32), x.flat.([]float32))
		for i := range 2 {
			for j := range 3 {
				wantDS.flat.([]float32)[i*3+j] = x.flat.([]float32)[(r0+i)*6+r1+j]
				wantDUS.flat.([]float32)[(r0+i)*6+r1+j] = upd.flat.([]float32)[i*3+j]
			}
		}
		checkHost(t, fmt.Sprintf("DynamicSlice%v", start), out[0], wantDS, tolExact)
		checkHost(t, fmt.Sprintf("DynamicUpdateSlice%v", start), out[1], wantDUS, tolExact)
	}
}

func TestTotalOrderComparisons(t *testing.T) {
	nan := math.NaN()
	// Values in increasing total order.
	ordered := []float64{math.Copysign(nan, -1), math.Inf(-1), -2, math.Copysign(0, -1), 0, 1e-30, 3, math.Inf(1), nan}
	n := len(ordered)
	ops := map[string]func(i, j int) bool{
		"EqualTotalOrder": func(i, j int) bool { return i == j }, "NotEqualTotalOrder": func(i, j int) bool { return i != j },
		"LessThanTotalOrder": func(i, j int) bool { return i < j }, "LessOrEqualTotalOrder": func(i, j int) bool { return i <= j },
		"GreaterThanTotalOrder": func(i, j int) bool { return i > j }, "GreaterOrEqualTotalOrder": func(i, j int) bool { return i >= j },
	}
	for _, dt := range []dtypes.DType{dtypes.Float64, dtypes.Float32} {
		ah := &hostT{shapes.Make(dt, n*n), makeSlice(dt, n*n)}
		bh := &hostT{shapes.Make(dt, n*n), makeSlice(dt, n*n)}
		for i := range n {
			for j := range n {
				setFromFloat(ah.flat, i*n+j, ordered[i], nil)
				setFromFloat(bh.flat, i*n+j, ordered[j], nil)
			}
		}
		for op, want := range ops {
			got := runCPU(t, op, binaryFn(op), ah, bh)[0].flat.([]bool)
			for i := range n {
				for j := range n {
					if got[i*n+j] != want(i, j) {
						t.Errorf("%s %s(%g, %g) = %v, want %v", dt, op, ordered[i], ordered[j], got[i*n+j], want(i, j))
					}
				}
			}
		}
	}
}

func TestShiftsAndIntegerEdgeCases(t *testing.T) {
	x := &hostT{shapes.Make(dtypes.Int8, 6), []int8{1, -128, -1, 64, 5, -7}}
	s := &hostT{shapes.Make(dtypes.Int8, 6), []int8{1, 1, 7, 2, 8, 100}}
	want := map[string][]int8{
		"ShiftLeft":            {2, 0, -128, 0, 0, 0},
		"ShiftRightArithmetic": {0, -64, -1, 16, 0, -1},
		"ShiftRightLogical":    {0, 64, 1, 16, 0, 0},
	}
	for op, w := range want {
		got := runCPU(t, op, binaryFn(op), x, s)[0]
		checkHost(t, op, got, &hostT{x.shape, w}, tolExact)
	}
	// Integer division by zero and overflow follow XLA.
	a := &hostT{shapes.Make(dtypes.Int32, 4), []int32{7, -7, math.MinInt32, 9}}
	d := &hostT{shapes.Make(dtypes.Int32, 4), []int32{0, 0, -1, -4}}
	checkHost(t, "Div", runCPU(t, "Div", binaryFn("Div"), a, d)[0], &hostT{a.shape, []int32{-1, -1, math.MinInt32, -2}}, tolExact)
	checkHost(t, "Rem", runCPU(t, "Rem", binaryFn("Rem"), a, d)[0], &hostT{a.shape, []int32{7, -7, 0, 1}}, tolExact)
	// Saturating float to integer conversion.
	f := &hostT{shapes.Make(dtypes.Float32, 5), []float32{300, -300, float32(math.NaN()), 12.7, -3.9}}
	conv := runCPU(t, "ConvertDType", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		return one(b.ConvertDType(p[0], dtypes.Int8))
	}, f)[0]
	checkHost(t, "ConvertDType saturating", conv, &hostT{shapes.Make(dtypes.Int8, 5), []int8{127, -128, 0, 12, -3}}, tolExact)
}

// TestZeroSize runs ops on tensors with a zero-sized axis.
func TestZeroSize(t *testing.T) {
	x := &hostT{shapesF32(0, 3), []float32{}}
	y := &hostT{shapesF32(3, 0), []float32{}}
	out := runCPU(t, "zero-size", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		e, _ := b.Exp(p[0])
		tr, _ := b.Transpose(p[0], 1, 0)
		s, _ := b.ReduceSum(p[0], 0) // [3] of zeros
		m, _ := b.ReduceMax(p[1], 1) // [3] of -Inf
		d, err := b.Dot(p[1], p[0])  // [3,3] of zeros (empty contraction)
		if err != nil {
			return nil, err
		}
		c, err := b.Concatenate(0, p[0], p[0])
		return []backends.Op{e, tr, s, m, d, c}, err
	}, x, y)
	if out[0].shape.Size() != 0 || out[1].shape.Dimensions[0] != 3 || out[5].shape.Dimensions[0] != 0 {
		t.Errorf("wrong zero-size shapes: %v %v %v", out[0].shape, out[1].shape, out[5].shape)
	}
	checkHost(t, "ReduceSum of empty", out[2], &hostT{shapesF32(3), []float32{0, 0, 0}}, tolExact)
	inf := float32(math.Inf(-1))
	checkHost(t, "ReduceMax of empty", out[3], &hostT{shapesF32(3), []float32{inf, inf, inf}}, tolExact)
	checkHost(t, "empty Dot", out[4], &hostT{shapesF32(3, 3), make([]float32, 9)}, tolExact)
}

// TestBatchNormForward checks batch-norm training statistics and
// normalisation, and inference, against the formulas.
func TestBatchNormForward(t *testing.T) {
	rng := rand.New(rand.NewPCG(39, 40))
	dims, axis := []int{3, 4, 5}, 1
	x := randHost(rng, dtypes.Float64, dims, -3, 3)
	scale := randHost(rng, dtypes.Float64, []int{4}, 0.5, 2)
	offset := randHost(rng, dtypes.Float64, []int{4}, -1, 1)
	mean := randHost(rng, dtypes.Float64, []int{4}, -1, 1)
	variance := randHost(rng, dtypes.Float64, []int{4}, 0.5, 2)
	const eps = 1e-3
	out := runCPU(t, "batch norm", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		n, m, v, err := b.BatchNormForTraining(p[0], p[1], p[2], eps, axis)
		if err != nil {
			return nil, err
		}
		inf, err := b.BatchNormForInference(p[0], p[1], p[2], p[3], p[4], eps, axis)
		return []backends.Op{n, m, v, inf}, err
	}, x, scale, offset, mean, variance)
	xf := x.flat.([]float64)
	at := func(i, f, k int) int { return (i*4+f)*5 + k }
	wantMean, wantVar := make([]float64, 4), make([]float64, 4)
	for f := range 4 {
		for i := range 3 {
			for k := range 5 {
				wantMean[f] += xf[at(i, f, k)] / 15
			}
		}
		for i := range 3 {
			for k := range 5 {
				d := xf[at(i, f, k)] - wantMean[f]
				wantVar[f] += d * d / 15
			}
		}
	}
	norm := make([]float64, 60)
	inf := make([]float64, 60)
	sc, of, mu, va := scale.flat.([]float64), offset.flat.([]float64), mean.flat.([]float64), variance.flat.([]float64)
	for i := range 3 {
		for f := range 4 {
			for k := range 5 {
				j := at(i, f, k)
				norm[j] = (xf[j]-wantMean[f])*sc[f]/math.Sqrt(wantVar[f]+eps) + of[f]
				inf[j] = (xf[j]-mu[f])*sc[f]/math.Sqrt(va[f]+eps) + of[f]
			}
		}
	}
	f64 := func(d []int, v []float64) *hostT { return &hostT{shapes.Make(dtypes.Float64, d...), v} }
	tl := tol{1e-9, 1e-10}
	checkHost(t, "normalized", out[0], f64(dims, norm), tl)
	checkHost(t, "mean", out[1], f64([]int{4}, wantMean), tl)
	checkHost(t, "variance", out[2], f64([]int{4}, wantVar), tl)
	checkHost(t, "inference", out[3], f64(dims, inf), tl)
}
