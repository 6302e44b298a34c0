package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

// callOp calls the builder method named op with the given arguments.
func callOp(b backends.Builder, op string, args ...any) (backends.Op, error) {
	m := reflect.ValueOf(b).MethodByName(op)
	if !m.IsValid() {
		return nil, fmt.Errorf("no builder method %s", op)
	}
	in := make([]reflect.Value, len(args))
	for i, a := range args {
		in[i] = reflect.ValueOf(a)
	}
	out := m.Call(in)
	if err, _ := out[1].Interface().(error); err != nil {
		return nil, err
	}
	return out[0].Interface().(backends.Op), nil
}

func unaryFn(op string) rawFn {
	return func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		r, err := callOp(b, op, p[0])
		return []backends.Op{r}, err
	}
}

func binaryFn(op string) rawFn {
	return func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		r, err := callOp(b, op, p[0], p[1])
		return []backends.Op{r}, err
	}
}

type domain struct{ lo, hi float64 }

var floatUnaryDomains = map[string]domain{
	"Abs": {-3, 3}, "Neg": {-3, 3}, "Exp": {-5, 5}, "Expm1": {-2, 2}, "Log": {0.01, 10}, "Log1p": {-0.9, 10},
	"Logistic": {-10, 10}, "Tanh": {-4, 4}, "Sqrt": {0, 10}, "Rsqrt": {0.01, 10}, "Sign": {-3, 3},
	"Floor": {-5, 5}, "Ceil": {-5, 5}, "Round": {-5, 5}, "Cos": {-4, 4}, "Sin": {-4, 4}, "Erf": {-3, 3},
	"IsFinite": {-3, 3}, "IsNaN": {-3, 3},
}

// withSpecials overwrites a few elements with halves, zeros, NaN and ±Inf.
func withSpecials(h *hostT, nonFinite bool) *hostT {
	specials := []float64{0.5, -2.5, 0, 1.5}
	if nonFinite {
		specials = append(specials, math.NaN(), math.Inf(1), math.Inf(-1))
	}
	n := h.shape.Size()
	for i, v := range specials {
		if i*3 >= n {
			break
		}
		setFromFloat(h.flat, i*3, v, nil)
	}
	return h
}

func TestDiffUnary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for op, d := range floatUnaryDomains {
		for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
			for _, dims := range testShapes {
				x := randHost(rng, dt, dims, d.lo, d.hi)
				switch op {
				case "Floor", "Ceil", "Sign", "Abs", "Neg":
					x = withSpecials(x, false)
				case "IsFinite", "IsNaN":
					x = withSpecials(x, true)
				}
				diffTest(t, fmt.Sprintf("%s(%s)", op, x.shape), unaryFn(op), tolFor(dt, false), x)
			}
		}
	}
	// Round: GoMLX documents round-half-to-even (XLA's semantics) but simplego
	// rounds halves away from zero, so halves are checked against Go's
	// math.RoundToEven instead.
	halves := &hostT{shapesF32(6), []float32{0.5, 1.5, 2.5, -0.5, -1.5, -2.5}}
	got, err := runRaw(mustCPU(t), unaryFn("Round"), halves)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range halves.flat.([]float32) {
		if w := float32(math.RoundToEven(float64(v))); got[0].flat.([]float32)[i] != w {
			t.Errorf("Round(%g) = %g, want %g", v, got[0].flat.([]float32)[i], w)
		}
	}

	intOps := []string{"Abs", "Neg", "Sign", "BitwiseNot", "BitCount", "Clz"}
	for _, op := range intOps {
		for _, dt := range []dtypes.DType{dtypes.Int8, dtypes.Int32, dtypes.Int64, dtypes.Uint8, dtypes.Uint32, dtypes.Uint64} {
			if op == "Neg" && dt.IsUnsigned() {
				continue
			}
			lo := -100.0
			if dt.IsUnsigned() {
				lo = 0
			}
			for _, dims := range testShapes[:5] {
				x := randHost(rng, dt, dims, lo, 100)
				diffTest(t, fmt.Sprintf("%s(%s)", op, x.shape), unaryFn(op), tolExact, x)
			}
		}
	}
	for _, dims := range testShapes {
		x := randHost(rng, dtypes.Bool, dims, 0, 1)
		diffTest(t, fmt.Sprintf("LogicalNot(%s)", x.shape), unaryFn("LogicalNot"), tolExact, x)
	}
}

// broadcastPairs are operand dimensions of binary ops, including implicit
// broadcasting of scalars and size-1 axes.
var broadcastPairs = [][2][]int{
	{{}, {}}, {{7}, {7}}, {{7}, {}}, {{}, {2, 3}}, {{3, 1, 5}, {1, 4, 5}}, {{2, 33, 17}, {2, 33, 17}},
	{{2, 33, 17}, {1, 33, 1}}, {{4, 1}, {4, 6}},
}

func TestDiffBinary(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type spec struct {
		op     string
		a, b   domain
		signed bool // b's sign is randomised
	}
	floatOps := []spec{
		{"Add", domain{-3, 3}, domain{-3, 3}, false}, {"Sub", domain{-3, 3}, domain{-3, 3}, false},
		{"Mul", domain{-3, 3}, domain{-3, 3}, false}, {"Div", domain{-3, 3}, domain{0.5, 3}, true},
		{"Pow", domain{0.1, 3}, domain{-2, 2}, false}, {"Max", domain{-3, 3}, domain{-3, 3}, false},
		{"Min", domain{-3, 3}, domain{-3, 3}, false}, {"Rem", domain{-10, 10}, domain{0.5, 3}, true},
	}
	for _, sp := range floatOps {
		for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
			for _, pair := range broadcastPairs {
				a := randHost(rng, dt, pair[0], sp.a.lo, sp.a.hi)
				b := randHost(rng, dt, pair[1], sp.b.lo, sp.b.hi)
				if sp.signed {
					flipSigns(rng, b)
				}
				diffTest(t, fmt.Sprintf("%s(%s,%s)", sp.op, a.shape, b.shape), binaryFn(sp.op), tolFor(dt, false), a, b)
			}
		}
	}
	intOps := []spec{
		{"Add", domain{-50, 50}, domain{-50, 50}, false}, {"Sub", domain{-50, 50}, domain{-50, 50}, false},
		{"Mul", domain{-20, 20}, domain{-20, 20}, false}, {"Div", domain{-100, 100}, domain{1, 10}, true},
		{"Rem", domain{-100, 100}, domain{1, 10}, true}, {"Max", domain{-50, 50}, domain{-50, 50}, false},
		{"Min", domain{-50, 50}, domain{-50, 50}, false}, {"Pow", domain{-4, 5}, domain{0, 5}, false},
		{"BitwiseAnd", domain{-100, 100}, domain{-100, 100}, false}, {"BitwiseOr", domain{-100, 100}, domain{-100, 100}, false},
		{"BitwiseXor", domain{-100, 100}, domain{-100, 100}, false},
	}
	for _, sp := range intOps {
		for _, dt := range []dtypes.DType{dtypes.Int32, dtypes.Int64, dtypes.Uint8, dtypes.Uint32} {
			for _, pair := range broadcastPairs {
				ad, bd := sp.a, sp.b
				if dt.IsUnsigned() {
					ad.lo, bd.lo = max(ad.lo, 0), max(bd.lo, 0)
				}
				a := randHost(rng, dt, pair[0], ad.lo, ad.hi)
				b := randHost(rng, dt, pair[1], bd.lo, bd.hi)
				if sp.signed && !dt.IsUnsigned() {
					flipSigns(rng, b)
				}
				diffTest(t, fmt.Sprintf("%s(%s,%s)", sp.op, a.shape, b.shape), binaryFn(sp.op), tolExact, a, b)
			}
		}
	}
	for _, op := range []string{"LogicalAnd", "LogicalOr", "LogicalXor"} {
		for _, pair := range broadcastPairs {
			a := randHost(rng, dtypes.Bool, pair[0], 0, 1)
			b := randHost(rng, dtypes.Bool, pair[1], 0, 1)
			diffTest(t, fmt.Sprintf("%s(%s,%s)", op, a.shape, b.shape), binaryFn(op), tolExact, a, b)
		}
	}
	for _, op := range []string{"Equal", "NotEqual", "GreaterOrEqual", "GreaterThan", "LessOrEqual", "LessThan"} {
		for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64, dtypes.Int32, dtypes.Uint8} {
			for _, pair := range broadcastPairs {
				// Few distinct values, so that equality happens.
				a := randHost(rng, dt, pair[0], 0, 4)
				b := randHost(rng, dt, pair[1], 0, 4)
				diffTest(t, fmt.Sprintf("%s(%s,%s)", op, a.shape, b.shape), binaryFn(op), tolExact, a, b)
			}
		}
	}
}

func flipSigns(rng *rand.Rand, h *hostT) {
	for i := range h.shape.Size() {
		if rng.IntN(2) == 0 {
			setFromFloat(h.flat, i, -scalarAsFloat64(h.flat, i), rng)
		}
	}
}
