package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Differential tests of the non-elementwise ops against simplego, and
// reference tests of the ops simplego lacks.

func one(op backends.Op, err error) ([]backends.Op, error) { return []backends.Op{op}, err }

func TestDiffConvertDType(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	all := []dtypes.DType{dtypes.Float32, dtypes.Float64, dtypes.Int8, dtypes.Int32, dtypes.Int64, dtypes.Uint8, dtypes.Uint32, dtypes.Uint64, dtypes.Bool}
	for _, from := range all {
		for _, to := range all {
			lo, hi := -100.0, 100.0
			if from.IsUnsigned() || to.IsUnsigned() {
				lo = 0 // negative to unsigned is implementation-defined
			}
			if from == dtypes.Int8 || to == dtypes.Int8 || to == dtypes.Uint8 || from == dtypes.Uint8 {
				hi = 120
			}
			x := randHost(rng, from, []int{3, 7}, lo, hi)
			to := to
			diffTest(t, fmt.Sprintf("ConvertDType(%s->%s)", from, to), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				return one(b.ConvertDType(p[0], to))
			}, tolFor(to, false), x)
		}
	}
}

func TestDiffWhere(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	cases := [][3][]int{{{5, 3}, {5, 3}, {5, 3}}, {{5, 3}, {}, {5, 3}}, {{5, 3}, {5, 3}, {}}, {{}, {4}, {4}}, {{2, 2}, {}, {}}}
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64, dtypes.Int64, dtypes.Bool} {
		for _, c := range cases {
			cond := randHost(rng, dtypes.Bool, c[0], 0, 1)
			a := randHost(rng, dt, c[1], -5, 5)
			bb := randHost(rng, dt, c[2], -5, 5)
			diffTest(t, fmt.Sprintf("Where(%s,%s,%s)", cond.shape, a.shape, bb.shape), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				return one(b.Where(p[0], p[1], p[2]))
			}, tolExact, cond, a, bb)
		}
	}
}

func TestDiffLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64, dtypes.Int32, dtypes.Bool} {
		x := randHost(rng, dt, []int{2, 3, 1, 5}, -5, 5)
		// Transposes: all permutations of a rank-4 operand.
		for _, perm := range permutations(4) {
			diffTest(t, fmt.Sprintf("Transpose%v", perm), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				return one(b.Transpose(p[0], perm...))
			}, tolExact, x)
		}
		big := randHost(rng, dt, []int{67, 3, 129}, -5, 5) // large enough to run in parallel
		diffTest(t, "Transpose big", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(b.Transpose(p[0], 2, 0, 1))
		}, tolExact, big)
		diffTest(t, "Reshape", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(b.Reshape(p[0], 6, 5))
		}, tolExact, x)
		// Broadcasts.
		v := randHost(rng, dt, []int{3, 1}, -5, 5)
		diffTest(t, "BroadcastInDim", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(b.BroadcastInDim(p[0], shapes.Make(dt, 2, 3, 4), []int{1, 2}))
		}, tolExact, v)
		s := randHost(rng, dt, nil, -5, 5)
		diffTest(t, "BroadcastInDim scalar", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(b.BroadcastInDim(p[0], shapes.Make(dt, 2, 3), nil))
		}, tolExact, s)
		// Slices.
		for _, sl := range [][3][]int{
			{{0, 0, 0, 0}, {2, 3, 1, 5}, {1, 1, 1, 1}}, {{1, 1, 0, 1}, {2, 3, 1, 5}, {1, 1, 1, 2}},
			{{0, 0, 0, 0}, {2, 3, 1, 5}, {2, 2, 1, 3}}, {{0, 2, 0, 4}, {1, 3, 1, 5}, {1, 1, 1, 1}},
		} {
			diffTest(t, fmt.Sprintf("Slice%v", sl), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				return one(b.Slice(p[0], sl[0], sl[1], sl[2]))
			}, tolExact, x)
		}
		// Concatenate along each axis.
		for axis := range 3 {
			dims := []int{2, 3, 4}
			d2 := slices.Clone(dims)
			d2[axis] = 1
			a, c := randHost(rng, dt, dims, -5, 5), randHost(rng, dt, d2, -5, 5)
			diffTest(t, fmt.Sprintf("Concatenate axis %d", axis), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				return one(b.Concatenate(axis, p[0], p[1], p[0]))
			}, tolExact, a, c)
		}
	}
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Int64, dtypes.Uint8} {
		for axis := range 3 {
			diffTest(t, fmt.Sprintf("Iota %s axis %d", dt, axis), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				return one(b.Iota(shapes.Make(dt, 3, 4, 5), axis))
			}, tolExact)
		}
	}
}

// permutations returns all permutations of 0..n-1.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}

func TestDiffReduce(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	axesSets := [][]int{nil, {0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1}}
	ops := map[string][]dtypes.DType{
		"ReduceSum":        {dtypes.Float32, dtypes.Float64, dtypes.Int32, dtypes.Int64},
		"ReduceProduct":    {dtypes.Float64, dtypes.Int64},
		"ReduceMax":        {dtypes.Float32, dtypes.Float64, dtypes.Int32, dtypes.Uint8},
		"ReduceMin":        {dtypes.Float32, dtypes.Float64, dtypes.Int32, dtypes.Uint8},
		"ReduceBitwiseAnd": {dtypes.Int32, dtypes.Uint8}, "ReduceBitwiseOr": {dtypes.Int32}, "ReduceBitwiseXor": {dtypes.Int64},
		"ReduceLogicalAnd": {dtypes.Bool}, "ReduceLogicalOr": {dtypes.Bool}, "ReduceLogicalXor": {dtypes.Bool},
	}
	for op, dts := range ops {
		for _, dt := range dts {
			for _, dims := range [][]int{{4, 7, 5}, {1, 9, 1}, {300, 2, 130}} {
				lo, hi := -3.0, 3.0
				if op == "ReduceProduct" {
					lo, hi = 0.9, 1.1
					if dt.IsInt() {
						lo, hi = -1, 2
					}
				}
				if dt.IsUnsigned() || op == "ReduceBitwiseAnd" {
					lo, hi = 0, 250
				}
				x := randHost(rng, dt, dims, lo, hi)
				for _, axes := range axesSets {
					diffTest(t, fmt.Sprintf("%s%v %s", op, axes, x.shape), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
						return one(callOp(b, op, append([]any{p[0]}, intsAny(axes)...)...))
					}, tolFor(dt, true), x)
				}
			}
		}
	}
	// ArgMinMax, including NaN and ties.
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64, dtypes.Int32} {
		x := randHost(rng, dt, []int{3, 6, 4}, 0, 3)
		if dt.IsFloat() {
			setFromFloat(x.flat, 5, math.NaN(), rng)
		}
		for axis := range 3 {
			for _, isMin := range []bool{false, true} {
				diffTest(t, fmt.Sprintf("ArgMinMax(axis=%d,min=%v) %s", axis, isMin, dt), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
					return one(b.ArgMinMax(p[0], axis, dtypes.Int32, isMin))
				}, tolExact, x)
			}
		}
	}
}

func intsAny(v []int) []any {
	out := make([]any, len(v))
	for i, x := range v {
		out[i] = x
	}
	return out
}

func TestDiffDotGeneral(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	type dg struct {
		l, r           []int
		lc, lb, rc, rb []int
	}
	cases := []dg{
		{[]int{3, 4}, []int{4, 5}, []int{1}, nil, []int{0}, nil},
		{[]int{4, 3}, []int{4, 5}, []int{0}, nil, []int{0}, nil},
		{[]int{3, 4}, []int{5, 4}, []int{1}, nil, []int{1}, nil},
		{[]int{4, 3}, []int{5, 4}, []int{0}, nil, []int{1}, nil},
		{[]int{2, 3, 4}, []int{2, 4, 5}, []int{2}, []int{0}, []int{1}, []int{0}},
		{[]int{3, 2, 4}, []int{5, 4, 2}, []int{2}, []int{1}, []int{1}, []int{2}},
		{[]int{2, 3, 4, 6}, []int{4, 6, 7}, []int{2, 3}, nil, []int{0, 1}, nil},
		{[]int{2, 3, 4, 6}, []int{6, 4, 7}, []int{2, 3}, nil, []int{1, 0}, nil},
		{[]int{7, 2, 9}, []int{9, 2, 1}, []int{2}, []int{1}, []int{0}, []int{1}},
		{[]int{1, 1}, []int{1, 1}, []int{1}, nil, []int{0}, nil},
		{[]int{64, 100}, []int{100, 33}, []int{1}, nil, []int{0}, nil},
		{[]int{9, 8, 6}, []int{9, 6, 7}, []int{2}, []int{0}, []int{1}, []int{0}},
	}
	// simplego's DotGeneral crashes on larger integer products, so integers
	// are checked against a naive reference instead.
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64, dtypes.Int32} {
		for _, c := range cases {
			l, r := randHost(rng, dt, c.l, -3, 3), randHost(rng, dt, c.r, -3, 3)
			name := fmt.Sprintf("DotGeneral(%v%v%v, %v%v%v) %s", c.l, c.lc, c.lb, c.r, c.rc, c.rb, dt)
			fn := func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				return one(b.DotGeneral(p[0], c.lc, c.lb, p[1], c.rc, c.rb))
			}
			if dt.IsFloat() {
				diffTest(t, name, fn, tolFor(dt, true), l, r)
				continue
			}
			got, err := runRaw(mustCPU(t), fn, l, r)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := compareHost(got[0], refDotGeneral(l, r, c.lc, c.lb, c.rc, c.rb), tolExact); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		// Dot: vector·vector, matrix·vector, matrix·matrix.
		for _, d := range [][2][]int{{{5}, {5}}, {{3, 5}, {5}}, {{3, 5}, {5, 2}}} {
			l, r := randHost(rng, dt, d[0], -3, 3), randHost(rng, dt, d[1], -3, 3)
			diffTest(t, fmt.Sprintf("Dot(%v,%v) %s", d[0], d[1], dt), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				return one(b.Dot(p[0], p[1]))
			}, tolFor(dt, true), l, r)
		}
	}
}

func TestDiffGatherScatter(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64, dtypes.Int32} {
		operand := randHost(rng, dt, []int{5, 4, 3}, -5, 5)
		// Rows gather (like graph.Gather): indices [6,1] into axis 0.
		idx := randHost(rng, dtypes.Int32, []int{6, 1}, 0, 5)
		diffTest(t, "Gather rows", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(b.Gather(p[0], p[1], 1, []int{1, 2}, []int{0}, []int{0}, []int{1, 4, 3}, false))
		}, tolExact, operand, idx)
		// Slices gather with clamping: 2-component index vectors, sizes 2x2.
		idx2 := randHost(rng, dtypes.Int64, []int{2, 3, 2}, -1, 6)
		diffTest(t, "Gather slices", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(b.Gather(p[0], p[1], 2, []int{2, 3, 4}, nil, []int{0, 1}, []int{2, 2, 3}, false))
		}, tolExact, operand, idx2)
		// Index vector axis first.
		idx3 := randHost(rng, dtypes.Int32, []int{2, 4}, 0, 3)
		diffTest(t, "Gather indexVectorAxis=0", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(b.Gather(p[0], p[1], 0, []int{1}, []int{0, 2}, []int{2, 0}, []int{1, 4, 1}, false))
		}, tolExact, operand, idx3)
		// Scatters into rows, with repeated indices.
		updates := randHost(rng, dt, []int{6, 4, 3}, -5, 5)
		for _, op := range []string{"ScatterSum", "ScatterMax", "ScatterMin"} {
			diffTest(t, op+" rows", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				return one(callOp(b, op, p[0], p[1], p[2], 1, []int{1, 2}, []int{0}, []int{0}, false, false))
			}, tolFor(dt, true), operand, idx, updates)
		}
		// Scatter of 2x2 windows at 2-d positions (simplego misplaces
		// multi-axis windows, so this is checked against a naive reference).
		upd2 := randHost(rng, dt, []int{4, 2, 2, 3}, -5, 5)
		pos := randHost(rng, dtypes.Int32, []int{4, 2}, 0, 3)
		setFromFloat(pos.flat, 0, 4, rng) // out of bounds: skipped
		got, err := runRaw(mustCPU(t), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(b.ScatterSum(p[0], p[1], p[2], 1, []int{1, 2, 3}, nil, []int{0, 1}, false, false))
		}, operand, pos, upd2)
		if err != nil {
			t.Fatal(err)
		}
		want := &hostT{operand.shape, makeSlice(dt, operand.shape.Size())}
		copyFlat(want.flat, operand.flat)
		for u := range 4 {
			r0, c0 := scalarAsInt(pos.flat, 2*u), scalarAsInt(pos.flat, 2*u+1)
			if r0+2 > 5 || c0+2 > 4 {
				continue
			}
			for i := range 2 {
				for j := range 2 {
					for k := range 3 {
						o := ((r0+i)*4+(c0+j))*3 + k
						v := scalarAsFloat64(want.flat, o) + scalarAsFloat64(upd2.flat, ((u*2+i)*2+j)*3+k)
						setFromFloat(want.flat, o, v, rng)
					}
				}
			}
		}
		if err := compareHost(got[0], want, tolFor(dt, true)); err != nil {
			t.Errorf("ScatterSum windows %s: %v", dt, err)
		}
	}
}

func TestDiffReduceWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	type rw struct {
		dims, win, str, bdil, wdil []int
		pad                        [][2]int
	}
	cases := []rw{
		{[]int{2, 8, 8, 3}, []int{1, 2, 2, 1}, []int{1, 2, 2, 1}, nil, nil, nil},
		{[]int{2, 3, 9, 7}, []int{1, 1, 3, 3}, []int{1, 1, 2, 2}, nil, nil, [][2]int{{0, 0}, {0, 0}, {1, 1}, {1, 0}}},
		{[]int{9}, []int{3}, []int{1}, nil, nil, [][2]int{{2, 1}}},
		{[]int{5, 6}, []int{2, 3}, []int{1, 2}, []int{2, 1}, []int{1, 2}, [][2]int{{1, 0}, {0, 2}}},
	}
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64, dtypes.Int32} {
		for _, c := range cases {
			x := randHost(rng, dt, c.dims, -5, 5)
			for _, red := range []backends.ReduceOpType{backends.ReduceOpSum, backends.ReduceOpMax, backends.ReduceOpMin, backends.ReduceOpProduct} {
				diffTest(t, fmt.Sprintf("ReduceWindow %s %+v %s", red, c, dt), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
					return one(b.ReduceWindow(p[0], red, c.win, c.str, c.bdil, c.wdil, c.pad))
				}, tolFor(dt, true), x)
			}
		}
	}
}

func TestDiffRNG(t *testing.T) {
	state := &hostT{shapes.Make(dtypes.Uint64, 3), []uint64{42, 7, 0}}
	for _, s := range []shapes.Shape{shapes.Make(dtypes.Uint32, 5, 7), shapes.Make(dtypes.Uint64, 3), shapes.Make(dtypes.Uint8, 13)} {
		fn := func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			st, v, err := b.RNGBitGenerator(p[0], s)
			if err != nil {
				return nil, err
			}
			// Chain a second draw from the new state.
			_, v2, err := b.RNGBitGenerator(st, s)
			if err != nil {
				return nil, err
			}
			first, err := b.Slice(st, []int{0}, []int{2}, []int{1}) // the third word is not part of simplego's state
			return []backends.Op{first, v, v2}, err
		}
		diffTest(t, fmt.Sprintf("RNGBitGenerator %s", s), fn, tolExact, state)
	}
}

// refDotGeneral is a naive DotGeneral on int32 operands.
func refDotGeneral(l, r *hostT, lc, lb, rc, rb []int) *hostT {
	ld, rd := l.shape.Dimensions, r.shape.Dimensions
	lf, _ := freeAxes("lhs", l.shape, lc, lb)
	rf, _ := freeAxes("rhs", r.shape, rc, rb)
	var outDims, cDims []int
	for _, a := range lb {
		outDims = append(outDims, ld[a])
	}
	for _, a := range lf {
		outDims = append(outDims, ld[a])
	}
	for _, a := range rf {
		outDims = append(outDims, rd[a])
	}
	for _, a := range lc {
		cDims = append(cDims, ld[a])
	}
	ls, rs := rowMajorStrides(ld), rowMajorStrides(rd)
	out := make([]int32, sizeOf(outDims))
	oIdx := make([]int, len(outDims))
	cIdx := make([]int, len(cDims))
	for o := range out {
		rem := o
		for k := len(outDims) - 1; k >= 0; k-- {
			oIdx[k] = rem % outDims[k]
			rem /= outDims[k]
		}
		var acc int32
		for c := range sizeOf(cDims) {
			rem := c
			for k := len(cDims) - 1; k >= 0; k-- {
				cIdx[k] = rem % cDims[k]
				rem /= cDims[k]
			}
			lo, ro := 0, 0
			for i, a := range lb {
				lo += oIdx[i] * ls[a]
				ro += oIdx[i] * rs[rb[i]]
			}
			for i, a := range lf {
				lo += oIdx[len(lb)+i] * ls[a]
			}
			for i, a := range rf {
				ro += oIdx[len(lb)+len(lf)+i] * rs[a]
			}
			for i := range lc {
				lo += cIdx[i] * ls[lc[i]]
				ro += cIdx[i] * rs[rc[i]]
			}
			acc += l.flat.([]int32)[lo] * r.flat.([]int32)[ro]
		}
		out[o] = acc
	}
	return &hostT{shapes.Make(dtypes.Int32, outDims...), out}
}
