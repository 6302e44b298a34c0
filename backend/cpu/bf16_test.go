package cpu

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// refBF16 rounds x (finite, with |x| zero or in the normal range of
// BFloat16, below its overflow threshold) to 8 significant bits, ties to
// even, with math/big.
func refBF16(x float64) uint16 {
	f, _ := new(big.Float).SetPrec(8).SetMode(big.ToNearestEven).SetFloat64(x).Float32()
	return uint16(math.Float32bits(f) >> 16)
}

// convertOne converts the values of in (a Go slice) to dtype to on our
// backend.
func convertOne(t *testing.T, in any, to dtypes.DType) any {
	t.Helper()
	dt, n, err := flatDType(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runRaw(mustCPU(t), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		return one(b.ConvertDType(p[0], to))
	}, &hostT{shapes.Make(dt, n), in})
	if err != nil {
		t.Fatalf("ConvertDType %s -> %s: %v", dt, to, err)
	}
	return out[0].flat
}

func bf16Bits(flat any) []uint16 {
	s := flat.([]bfloat16.BFloat16)
	b := make([]uint16, len(s))
	for i, v := range s {
		b[i] = uint16(v)
	}
	return b
}

// TestConvertToBF16 checks rounding to nearest even from float32, float64
// and 64-bit integers: ties, values just off a tie (which a float64 to
// float32 to BFloat16 double rounding gets wrong), overflow, NaN, zeros,
// subnormals, and random values against math/big.
func TestConvertToBF16(t *testing.T) {
	f32 := math.Float32frombits
	f32Cases := []struct {
		x    float32
		want uint16
	}{
		{1, 0x3f80},
		{f32(0x3f808000), 0x3f80}, // tie, even below
		{f32(0x3f818000), 0x3f82}, // tie, even above
		{f32(0x3f808001), 0x3f81}, // just above the tie
		{f32(0x3f807fff), 0x3f80}, // just below the tie
		{-1.5, 0xbfc0},
		{float32(math.Copysign(0, -1)), 0x8000},
		{math.MaxFloat32, 0x7f80},  // overflow to +Inf
		{-math.MaxFloat32, 0xff80}, // and -Inf
		{f32(0x7f7f7fff), 0x7f7f},  // largest below the overflow threshold
		{float32(math.Inf(1)), 0x7f80},
		{f32(0x00008000), 0x0000}, // subnormal tie to 0 (even)
		{f32(0x00018000), 0x0002}, // subnormal tie to 2 (even)
		{f32(0x00000001), 0x0000},
	}
	var in []float32
	for _, c := range f32Cases {
		in = append(in, c.x)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		in = append(in, float32(math.Ldexp(rng.Float64()+0.5, rng.IntN(200)-100))*float32(1-2*rng.IntN(2)))
	}
	in = append(in, float32(math.NaN()), float32(math.Copysign(math.NaN(), -1)))
	got := bf16Bits(convertOne(t, in, dtypes.BFloat16))
	for i, x := range in {
		var want uint16
		switch {
		case i < len(f32Cases):
			want = f32Cases[i].want
		case x != x:
			if got[i]&0x7fff <= 0x7f80 || got[i]>>15 != uint16(math.Float32bits(x)>>31) {
				t.Errorf("float32 NaN (bits %#x) -> %#04x, want a NaN of the same sign", math.Float32bits(x), got[i])
			}
			continue
		default:
			want = refBF16(float64(x))
		}
		if got[i] != want {
			t.Errorf("float32 %g (bits %#08x) -> %#04x, want %#04x", x, math.Float32bits(x), got[i], want)
		}
	}

	// float64: just above and below ties between BFloat16 neighbours; the
	// offsets are lost when rounding to float32 first.
	var in64 []float64
	var want64 []uint16
	for _, c := range []struct {
		x    float64
		want uint16
	}{
		{1 + math.Ldexp(1, -8) + math.Ldexp(1, -40), 0x3f81},
		{1 + math.Ldexp(1, -8) - math.Ldexp(1, -40), 0x3f80},
		{1 + 3*math.Ldexp(1, -8) - math.Ldexp(1, -40), 0x3f81},
		{1 + math.Ldexp(1, -8), 0x3f80},
		{-(1 + math.Ldexp(1, -8) + math.Ldexp(1, -40)), 0xbf81},
		{1e300, 0x7f80},
		{-1e300, 0xff80},
		{1e-300, 0x0000},
		{math.Inf(-1), 0xff80},
	} {
		in64 = append(in64, c.x)
		want64 = append(want64, c.want)
	}
	for range 3000 {
		x := math.Ldexp(rng.Float64()+0.5, rng.IntN(200)-100) * float64(1-2*rng.IntN(2))
		in64 = append(in64, x)
		want64 = append(want64, refBF16(x))
	}
	got = bf16Bits(convertOne(t, in64, dtypes.BFloat16))
	for i, x := range in64 {
		if got[i] != want64[i] {
			t.Errorf("float64 %.17g -> %#04x, want %#04x", x, got[i], want64[i])
		}
	}

	// 64-bit integers beyond float64's exact range.
	i64 := []int64{0, -3, 257, 1<<60 + 1<<52 + 1, 1<<60 + 1<<52, -(1<<60 + 1<<52 + 1), math.MaxInt64, math.MinInt64}
	wantI := []uint16{0x0000, 0xc040, 0x4380, 0x5d81, 0x5d80, 0xdd81, 0x5f00, 0xdf00}
	if got := bf16Bits(convertOne(t, i64, dtypes.BFloat16)); fmt.Sprint(got) != fmt.Sprint(wantI) {
		t.Errorf("int64 %v -> %#04x, want %#04x", i64, got, wantI)
	}
	u64 := []uint64{1<<60 + 1<<52 + 1, math.MaxUint64, 255, 257, 259}
	wantU := []uint16{0x5d81, 0x5f80, 0x437f, 0x4380, 0x4382}
	if got := bf16Bits(convertOne(t, u64, dtypes.BFloat16)); fmt.Sprint(got) != fmt.Sprint(wantU) {
		t.Errorf("uint64 %v -> %#04x, want %#04x", u64, got, wantU)
	}
	if got := bf16Bits(convertOne(t, []bool{true, false}, dtypes.BFloat16)); got[0] != 0x3f80 || got[1] != 0 {
		t.Errorf("bool -> %#04x, want [0x3f80 0]", got)
	}
}

// TestConvertFromBF16 checks the exact conversion to floats (every bit
// pattern, against the reference backend) and the truncating, saturating
// conversion to integers.
func TestConvertFromBF16(t *testing.T) {
	all := make([]bfloat16.BFloat16, 1<<16)
	for i := range all {
		all[i] = bfloat16.BFloat16(i)
	}
	h := &hostT{shapes.Make(dtypes.BFloat16, len(all)), all}
	for _, to := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		diffTest(t, "ConvertDType BFloat16 -> "+to.String(), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(b.ConvertDType(p[0], to))
		}, tolExact, h)
	}
	vals := []float32{3.75, -3.75, 1e10, -1e10, float32(math.NaN()), float32(math.Inf(-1)), 300, -1, 0.5}
	in := make([]bfloat16.BFloat16, len(vals))
	for i, v := range vals {
		in[i] = bf16FromFloat32(v)
	}
	if got := convertOne(t, in, dtypes.Int32).([]int32); fmt.Sprint(got) != fmt.Sprint([]int32{3, -3, math.MaxInt32, math.MinInt32, 0, math.MinInt32, 300, -1, 0}) {
		t.Errorf("BFloat16 %v -> int32 %v", vals, got)
	}
	if got := convertOne(t, in, dtypes.Uint8).([]uint8); fmt.Sprint(got) != fmt.Sprint([]uint8{3, 0, 255, 0, 0, 0, 255, 0, 0}) {
		t.Errorf("BFloat16 %v -> uint8 %v", vals, got)
	}
	if got := convertOne(t, in, dtypes.Bool).([]bool); fmt.Sprint(got) != fmt.Sprint([]bool{true, true, true, true, true, true, true, true, true}) {
		t.Errorf("BFloat16 %v -> bool %v", vals, got)
	}
}

// TestRandomUniformBF16 runs GoMLX's RandomUniform in BFloat16 (float32
// draws converted): the values are the float32 draws of the same state
// rounded to nearest even, in [0, 1], with a mean near 1/2.
func TestRandomUniformBF16(t *testing.T) {
	be := mustCPU(t)
	const n = 4000
	outs, err := MustNewExec(be, func(g *Graph) []*Node {
		st := RNGStateFromSeedForGraph(g, 7)
		_, v16 := RandomUniform(st, shapes.Make(dtypes.BFloat16, n))
		_, v32 := RandomUniform(st, shapes.Make(dtypes.Float32, n))
		return []*Node{v16, v32}
	}).Exec()
	if err != nil {
		t.Fatalf("RandomUniform in BFloat16: %v", err)
	}
	v16, v32 := outs[0].Value().([]bfloat16.BFloat16), outs[1].Value().([]float32)
	sum := 0.0
	for i, v := range v16 {
		f := v.Float32()
		if !(f >= 0 && f <= 1) {
			t.Fatalf("value #%d = %g, outside [0, 1]", i, f)
		}
		if want := refBF16(float64(v32[i])); uint16(v) != want {
			t.Fatalf("value #%d = %#04x, want %#04x (float32 draw %g rounded)", i, uint16(v), want, v32[i])
		}
		sum += float64(f)
	}
	// The mean of n uniforms has standard deviation 1/sqrt(12n) < 0.005.
	if mean := sum / n; math.Abs(mean-0.5) > 0.025 {
		t.Errorf("mean %g, want about 0.5", mean)
	}
}

// TestBF16DataMovement runs the data-movement ops on BFloat16 and checks
// them against the same graphs on the float32 copies of the values (exact,
// and checked against the reference backend by the other tests), including
// a fused Where over BFloat16 operands read in place and broadcast.
func TestBF16DataMovement(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x := randHost(rng, dtypes.BFloat16, []int{3, 4, 5}, -10, 10)
	y := randHost(rng, dtypes.BFloat16, []int{3, 4, 5}, -10, 10)
	idx := &hostT{shapes.Make(dtypes.Int32, 4, 1), []int32{2, 0, 1, 2}}
	type opFn func(b backends.Builder, p []backends.Op, dt dtypes.DType) (backends.Op, error)
	ones := []int{1, 1, 1}
	cases := map[string]opFn{
		"Transpose": func(b backends.Builder, p []backends.Op, _ dtypes.DType) (backends.Op, error) {
			return b.Transpose(p[0], 2, 0, 1)
		},
		"Slice": func(b backends.Builder, p []backends.Op, _ dtypes.DType) (backends.Op, error) {
			return b.Slice(p[0], []int{1, 0, 1}, []int{3, 4, 5}, []int{1, 2, 2})
		},
		"Reverse": func(b backends.Builder, p []backends.Op, _ dtypes.DType) (backends.Op, error) {
			return b.Reverse(p[0], 0, 2)
		},
		"Concatenate": func(b backends.Builder, p []backends.Op, _ dtypes.DType) (backends.Op, error) {
			return b.Concatenate(1, p[0], p[1])
		},
		"Pad": func(b backends.Builder, p []backends.Op, _ dtypes.DType) (backends.Op, error) {
			z, _ := b.Slice(p[1], []int{0, 0, 0}, ones, ones)
			z, _ = b.Reshape(z)
			return b.Pad(p[0], z, backends.PadAxis{Start: 1, End: -1, Interior: 1}, backends.PadAxis{}, backends.PadAxis{End: 2})
		},
		"BroadcastInDim": func(b backends.Builder, p []backends.Op, dt dtypes.DType) (backends.Op, error) {
			s, _ := b.Slice(p[0], []int{0, 0, 0}, []int{1, 4, 5}, ones)
			s, _ = b.Reshape(s, 4, 5)
			return b.BroadcastInDim(s, shapes.Make(dt, 2, 4, 5), []int{1, 2})
		},
		"DynamicSlice": func(b backends.Builder, p []backends.Op, _ dtypes.DType) (backends.Op, error) {
			one, _ := b.Constant([]int32{1})
			one, _ = b.Reshape(one)
			return b.DynamicSlice(p[0], []backends.Op{one, one, one}, []int{2, 2, 3})
		},
		"DynamicUpdateSlice": func(b backends.Builder, p []backends.Op, _ dtypes.DType) (backends.Op, error) {
			one, _ := b.Constant([]int32{1})
			one, _ = b.Reshape(one)
			u, _ := b.Slice(p[1], []int{0, 0, 0}, []int{2, 2, 2}, ones)
			return b.DynamicUpdateSlice(p[0], u, []backends.Op{one, one, one})
		},
		"Gather": func(b backends.Builder, p []backends.Op, _ dtypes.DType) (backends.Op, error) {
			return b.Gather(p[0], p[2], 1, []int{1, 2}, []int{0}, []int{0}, []int{1, 4, 5}, false)
		},
		"Where": func(b backends.Builder, p []backends.Op, dt dtypes.DType) (backends.Op, error) {
			zero, _ := b.Slice(p[1], []int{0, 0, 0}, ones, ones)
			zero, _ = b.Reshape(zero)
			x32 := p[0]
			if dt == dtypes.BFloat16 {
				x32, _ = b.ConvertDType(p[0], dtypes.Float32)
			}
			zf, _ := b.Constant([]float32{0})
			zf, _ = b.Reshape(zf)
			cond, _ := b.GreaterThan(x32, zf)
			row, _ := b.Slice(p[1], []int{0, 0, 0}, []int{1, 1, 5}, ones)
			row, _ = b.Reshape(row, 5)
			row, _ = b.BroadcastInDim(row, shapes.Make(dt, 3, 4, 5), []int{2})
			w, _ := b.Where(cond, p[1], zero)
			return b.Where(cond, row, w)
		},
	}
	toF32 := func(h *hostT) *hostT {
		s := h.flat.([]bfloat16.BFloat16)
		f := make([]float32, len(s))
		for i, v := range s {
			f[i] = v.Float32()
		}
		return &hostT{shapes.Make(dtypes.Float32, h.shape.Dimensions...), f}
	}
	for name, fn := range cases {
		got := runCPU(t, name+" BFloat16", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			r, err := fn(b, p, dtypes.BFloat16)
			if err != nil {
				return nil, err
			}
			if s, _ := b.OpShape(r); s.DType != dtypes.BFloat16 {
				return nil, fmt.Errorf("result is %s, want BFloat16", s)
			}
			return one(b.ConvertDType(r, dtypes.Float32))
		}, x, y, idx)
		want := runCPU(t, name+" Float32", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(fn(b, p, dtypes.Float32))
		}, toF32(x), toF32(y), idx)
		if err := compareHost(got[0], want[0], tolExact); err != nil {
			t.Errorf("%s BFloat16: %v", name, err)
		}
	}
	// The Where graph is one fused pass reading BFloat16 in place, as a
	// scalar and with strides.
	e := compileRaw(t, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		return one(cases["Where"](b, p, dtypes.BFloat16))
	}, x.shape, y.shape, idx.shape)
	modes := map[leafMode]bool{}
	for _, st := range e.steps {
		if st.fused != nil {
			for _, l := range st.fused.leaves {
				if l.dtype == dtypes.BFloat16 {
					modes[l.mode] = true
				}
			}
		}
	}
	if !modes[leafFull] || !modes[leafScalar] || !modes[leafStrided] {
		t.Errorf("fused Where does not read BFloat16 in every mode (%v):\n%s", modes, e.describe())
	}
}

// TestBF16Comparisons checks every comparison on BFloat16 (NaNs, signed
// zeros, infinities and ties included) against the same comparison on the
// float32 copies of the values.
func TestBF16Comparisons(t *testing.T) {
	special := []float32{float32(math.NaN()), float32(math.Copysign(math.NaN(), -1)), 0, float32(math.Copysign(0, -1)),
		float32(math.Inf(1)), float32(math.Inf(-1)), 1, -1, 2.5}
	var a, b []bfloat16.BFloat16
	for _, x := range special {
		for _, y := range special {
			a, b = append(a, bf16FromFloat32(x)), append(b, bf16FromFloat32(y))
		}
	}
	ha := &hostT{shapes.Make(dtypes.BFloat16, len(a)), a}
	hb := &hostT{shapes.Make(dtypes.BFloat16, len(b)), b}
	ops := map[string]func(b backends.Builder, x, y backends.Op) (backends.Op, error){
		"Equal": backends.Builder.Equal, "NotEqual": backends.Builder.NotEqual,
		"GreaterOrEqual": backends.Builder.GreaterOrEqual, "GreaterThan": backends.Builder.GreaterThan,
		"LessOrEqual": backends.Builder.LessOrEqual, "LessThan": backends.Builder.LessThan,
		"EqualTotalOrder": backends.Builder.EqualTotalOrder, "NotEqualTotalOrder": backends.Builder.NotEqualTotalOrder,
		"GreaterOrEqualTotalOrder": backends.Builder.GreaterOrEqualTotalOrder,
		"GreaterThanTotalOrder":    backends.Builder.GreaterThanTotalOrder,
		"LessOrEqualTotalOrder":    backends.Builder.LessOrEqualTotalOrder,
		"LessThanTotalOrder":       backends.Builder.LessThanTotalOrder,
	}
	for name, op := range ops {
		out := runCPU(t, name, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			r16, err := op(b, p[0], p[1])
			if err != nil {
				return nil, err
			}
			x, _ := b.ConvertDType(p[0], dtypes.Float32)
			y, _ := b.ConvertDType(p[1], dtypes.Float32)
			r32, err := op(b, x, y)
			return []backends.Op{r16, r32}, err
		}, ha, hb)
		got, want := out[0].flat.([]bool), out[1].flat.([]bool)
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s(%v, %v) = %v on BFloat16, %v on float32", name, a[i], b[i], got[i], want[i])
			}
		}
	}
}

// TestBF16UnsupportedOps checks that ops without BFloat16 kernels refuse a
// BFloat16 operand with an error naming the op and the dtype, when the
// graph is built (never a panic, never at run time).
func TestBF16UnsupportedOps(t *testing.T) {
	bf := func(dims ...int) shapes.Shape { return shapes.Make(dtypes.BFloat16, dims...) }
	cases := map[string]func(b backends.Builder, x, k backends.Op) (backends.Op, error){
		"Add":       func(b backends.Builder, x, _ backends.Op) (backends.Op, error) { return b.Add(x, x) },
		"Mul":       func(b backends.Builder, x, _ backends.Op) (backends.Op, error) { return b.Mul(x, x) },
		"Neg":       func(b backends.Builder, x, _ backends.Op) (backends.Op, error) { return b.Neg(x) },
		"Exp":       func(b backends.Builder, x, _ backends.Op) (backends.Op, error) { return b.Exp(x) },
		"Sign":      func(b backends.Builder, x, _ backends.Op) (backends.Op, error) { return b.Sign(x) },
		"IsFinite":  func(b backends.Builder, x, _ backends.Op) (backends.Op, error) { return b.IsFinite(x) },
		"Max":       func(b backends.Builder, x, _ backends.Op) (backends.Op, error) { return b.Max(x, x) },
		"Clamp":     func(b backends.Builder, x, _ backends.Op) (backends.Op, error) { return b.Clamp(x, x, x) },
		"ReduceSum": func(b backends.Builder, x, _ backends.Op) (backends.Op, error) { return b.ReduceSum(x, 1) },
		"ReduceMax": func(b backends.Builder, x, _ backends.Op) (backends.Op, error) { return b.ReduceMax(x, 1) },
		"ArgMinMax": func(b backends.Builder, x, _ backends.Op) (backends.Op, error) {
			return b.ArgMinMax(x, 1, dtypes.Int32, false)
		},
		"DotGeneral": func(b backends.Builder, x, k backends.Op) (backends.Op, error) {
			return b.DotGeneral(x, []int{3}, nil, k, []int{2}, nil)
		},
		"ConvGeneral": func(b backends.Builder, x, k backends.Op) (backends.Op, error) {
			return b.ConvGeneral(x, k, backends.ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
				KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
				OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}, nil, nil, nil, nil, 1, 1)
		},
		"ReduceWindow": func(b backends.Builder, x, _ backends.Op) (backends.Op, error) {
			return b.ReduceWindow(x, backends.ReduceOpMax, []int{1, 2, 2, 1}, nil, nil, nil, nil)
		},
		"BatchNormForTraining": func(b backends.Builder, x, _ backends.Op) (backends.Op, error) {
			s, _ := b.Slice(x, []int{0, 0, 0, 0}, []int{1, 1, 1, 4}, nil)
			s, _ = b.Reshape(s, 4)
			y, _, _, err := b.BatchNormForTraining(x, s, s, 1e-5, 3)
			return y, err
		},
		"ScatterSum": func(b backends.Builder, x, _ backends.Op) (backends.Op, error) {
			i, _ := b.Constant([]int32{0}, 1, 1)
			u, _ := b.Slice(x, []int{0, 0, 0, 0}, []int{1, 4, 4, 4}, nil)
			return b.ScatterSum(x, i, u, 1, []int{1, 2, 3}, nil, []int{0}, false, false)
		},
		"Iota": func(b backends.Builder, _, _ backends.Op) (backends.Op, error) { return b.Iota(bf(4), 0) },
	}
	for name, fn := range cases {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s on BFloat16 panicked: %v", name, r)
				}
			}()
			b := mustCPU(t).Builder("bf16 " + name)
			x, _ := b.Parameter("x", bf(2, 4, 4, 4), nil)
			k, _ := b.Parameter("k", bf(3, 3, 4, 4), nil)
			_, err := fn(b, x, k)
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "BFloat16") {
				t.Errorf("%s on BFloat16: err = %v, want an error naming the op and BFloat16", name, err)
			}
		}()
	}
}
