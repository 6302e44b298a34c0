package cpu

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/gomlx/gomlx/pkg/ml/train/losses"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
)

// Tests of the buffer and donation contract (see the package doc), driven
// the way GoMLX drives a backend: ExecOnce donates every Go-slice argument,
// an Exec without donation turns a tensor into a shared buffer, and a
// trainer donates its variables.

// equalSizePairs are conversions between distinct dtypes of the same element
// size: a donated input of the first may not hold an output of the second.
var equalSizePairs = [][2]dtypes.DType{
	{dtypes.Int32, dtypes.Float32}, {dtypes.Uint32, dtypes.Float32}, {dtypes.Float32, dtypes.Int32},
	{dtypes.Float32, dtypes.Uint32}, {dtypes.Int32, dtypes.Uint32}, {dtypes.Uint32, dtypes.Int32},
	{dtypes.Int64, dtypes.Float64}, {dtypes.Uint64, dtypes.Float64}, {dtypes.Float64, dtypes.Int64},
	{dtypes.Float64, dtypes.Uint64}, {dtypes.Int64, dtypes.Uint64}, {dtypes.Uint64, dtypes.Int64},
	{dtypes.Int16, dtypes.Uint16}, {dtypes.Uint16, dtypes.Int16},
	{dtypes.Int8, dtypes.Uint8}, {dtypes.Uint8, dtypes.Int8},
	{dtypes.Int16, dtypes.BFloat16}, {dtypes.BFloat16, dtypes.Int16},
	{dtypes.Uint16, dtypes.BFloat16}, {dtypes.BFloat16, dtypes.Uint16},
}

// smallInts returns a Go slice of dtype dt holding 1..n.
func smallInts(dt dtypes.DType, n int) any {
	flat := makeSlice(dt, n)
	if bf, ok := flat.([]bfloat16.BFloat16); ok {
		for i := range n {
			bf[i] = bf16FromFloat64(float64(i + 1))
		}
		return flat
	}
	v := reflect.ValueOf(flat)
	for i := range n {
		v.Index(i).Set(reflect.ValueOf(float64(i + 1)).Convert(dt.GoType()))
	}
	return flat
}

// TestExecOnceConvertDonated converts Go slices (which ExecOnce donates)
// between dtypes of the same element size.
func TestExecOnceConvertDonated(t *testing.T) {
	be := mustCPU(t)
	for _, pair := range equalSizePairs {
		from, to := pair[0], pair[1]
		t.Run(fmt.Sprintf("%s_to_%s", from, to), func(t *testing.T) {
			in := smallInts(from, 7)
			got, err := ExecOnce(be, func(x *Node) *Node { return ConvertDType(x, to) }, in)
			if err != nil {
				t.Fatalf("ExecOnce(ConvertDType(%s -> %s)): %v", from, to, err)
			}
			if want := smallInts(to, 7); !reflect.DeepEqual(got.Value(), want) {
				t.Errorf("ConvertDType(%v) = %v, want %v", in, got.Value(), want)
			}
		})
	}
}

// TestExecuteDonorDType checks at the backend level that a donated input's
// memory holds an output of its own dtype and never one of another dtype of
// the same size.
func TestExecuteDonorDType(t *testing.T) {
	be := mustCPU(t)
	for _, tc := range []struct {
		to     dtypes.DType
		reused bool
	}{{dtypes.Int32, true}, {dtypes.Float32, false}, {dtypes.Uint32, false}} {
		e := compileRaw(t, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			n, _ := b.Add(p[0], p[0])
			return one(b.ConvertDType(n, tc.to))
		}, shapes.Make(dtypes.Int32, 64))
		in, _ := be.BufferFromFlatData(0, smallInts(dtypes.Int32, 64), shapes.Make(dtypes.Int32, 64))
		inData, _ := be.BufferData(in)
		outs, err := e.Execute([]backends.Buffer{in}, []bool{true}, 0)
		if err != nil {
			t.Fatalf("x+x then ConvertDType to %s, input donated: %v", tc.to, err)
		}
		out, _ := be.BufferData(outs[0])
		if d := scalarAsFloat64(out, 9); d != 20 {
			t.Errorf("to %s: element 9 = %g, want 20", tc.to, d)
		}
		same := reflect.ValueOf(out).Pointer() == reflect.ValueOf(inData).Pointer()
		if same != tc.reused {
			t.Errorf("to %s: output reuses the donated int32 input: %v, want %v", tc.to, same, tc.reused)
		}
		if _, err := be.BufferShape(in); err == nil {
			t.Errorf("to %s: donated input still valid", tc.to)
		}
		_ = be.BufferFinalize(outs[0])
	}
}

// TestScatterGradientsDonated runs the gradients of ScatterMax and
// ScatterMin with all inputs given as Go slices (so donated, int32 indices
// included) against the reference backend.
func TestScatterGradientsDonated(t *testing.T) {
	cpu, ref := testBackends(t)
	for _, isMax := range []bool{true, false} {
		name := map[bool]string{true: "ScatterMax", false: "ScatterMin"}[isMax]
		t.Run(name, func(t *testing.T) {
			fn := func(in []*Node) []*Node {
				operand, indices, updates := in[0], ExpandAxes(in[1], -1), in[2]
				var s *Node
				if isMax {
					s = ScatterMax(operand, indices, updates, false, false)
				} else {
					s = ScatterMin(operand, indices, updates, false, false)
				}
				w := Const(operand.Graph(), []float32{2, -1, 0.5, 3})
				loss := ReduceAllSum(Mul(s, w))
				return append(Gradient(loss, operand, updates), s, loss)
			}
			args := func() []any {
				return []any{[]float32{0, 4, -2, 1}, []int32{2, 0, 2, 3, 0}, []float32{-1, 6, 5, -3, 2}}
			}
			want, err := MustNewExec(ref, fn).Exec(args()...)
			if err != nil {
				t.Fatalf("reference: %v", err)
			}
			got, err := MustNewExec(cpu, fn).Exec(args()...)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if !reflect.DeepEqual(got[i].Value(), want[i].Value()) {
					t.Errorf("output #%d: got %v, want %v", i, got[i].Value(), want[i].Value())
				}
			}
		})
	}
}

// TestNegGatherInt32Donated gathers with int32 indices of the output's size,
// both donated.
func TestNegGatherInt32Donated(t *testing.T) {
	got, err := ExecOnce(mustCPU(t), func(x, idx *Node) *Node {
		return Neg(Gather(x, ExpandAxes(idx, -1)))
	}, []float32{10, 20, 30, 40, 50}, []int32{4, 0, 0, 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{-50, -10, -10, -30}; !slices.Equal(got.Value().([]float32), want) {
		t.Errorf("Neg(Gather) = %v, want %v", got.Value(), want)
	}
}

// TestDonateSharedBuffer donates buffers made by NewSharedBuffer: the call
// succeeds, the shared memory is never written (outputs get their own
// memory, pass-through outputs are copies) and the donated buffer is
// invalid afterwards.
func TestDonateSharedBuffer(t *testing.T) {
	be := mustCPU(t)
	e := compileRaw(t, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		y, _ := b.Neg(p[0])
		return []backends.Op{y, p[1]}, nil
	}, shapesF32(32), shapesF32(32))
	x, xFlat, err := be.NewSharedBuffer(0, shapesF32(32))
	if err != nil {
		t.Fatal(err)
	}
	p, pFlat, _ := be.NewSharedBuffer(0, shapesF32(32))
	for i := range 32 {
		xFlat.([]float32)[i] = float32(i)
		pFlat.([]float32)[i] = float32(100 + i)
	}
	outs, err := e.Execute([]backends.Buffer{x, p}, []bool{true, true}, 0)
	if err != nil {
		t.Fatalf("donating shared buffers: %v", err)
	}
	y, _ := be.BufferData(outs[0])
	q, _ := be.BufferData(outs[1])
	for i := range 32 {
		if y.([]float32)[i] != -float32(i) || q.([]float32)[i] != float32(100+i) {
			t.Fatalf("element %d: got (%g, %g), want (%g, %d)", i, y.([]float32)[i], q.([]float32)[i], -float32(i), 100+i)
		}
		if xFlat.([]float32)[i] != float32(i) || pFlat.([]float32)[i] != float32(100+i) {
			t.Fatalf("shared memory written at element %d", i)
		}
	}
	if &y.([]float32)[0] == &xFlat.([]float32)[0] || &q.([]float32)[0] == &pFlat.([]float32)[0] {
		t.Errorf("an output aliases the memory of a donated shared buffer")
	}
	for i, b := range []backends.Buffer{x, p} {
		if _, err := be.BufferShape(b); err == nil {
			t.Errorf("donated shared buffer #%d still valid", i)
		}
	}
	// Finalizing the outputs must not hand shared memory to the pool: a
	// fresh buffer of the same shape must not get it.
	_ = be.BufferFinalize(outs[0])
	_ = be.BufferFinalize(outs[1])
	for range 4 {
		nb, _ := be.BufferFromFlatData(0, make([]float32, 32), shapesF32(32))
		d, _ := be.BufferData(nb)
		if &d.([]float32)[0] == &xFlat.([]float32)[0] || &d.([]float32)[0] == &pFlat.([]float32)[0] {
			t.Fatalf("shared memory was recycled into a new buffer")
		}
	}
}

// TestSharedThenDonatedTensor reads a tensor in one Exec (GoMLX makes it a
// shared buffer) and donates it to another, as GoMLX's trainer does.
func TestSharedThenDonatedTensor(t *testing.T) {
	be := mustCPU(t)
	inc := MustNewExec(be, func(x *Node) *Node { return AddScalar(x, 1) })
	x := tensors.FromValue([]float64{1, 2, 3})
	first := inc.MustExec(x)[0]
	if !x.IsShared() {
		t.Fatalf("GoMLX did not make the read-only input a shared buffer; the test no longer covers the case")
	}
	buf, err := DonateTensorBuffer(x, be, 0)
	if err != nil {
		t.Fatal(err)
	}
	second, err := inc.Exec(buf)
	if err != nil {
		t.Fatalf("donating a shared tensor: %v", err)
	}
	if got := second[0].Value().([]float64); !slices.Equal(got, []float64{2, 3, 4}) {
		t.Errorf("second Exec = %v, want [2 3 4]", got)
	}
	if got := first.Value().([]float64); !slices.Equal(got, []float64{2, 3, 4}) {
		t.Errorf("first Exec's result changed to %v", got)
	}
}

// TestTrainerAccumulatedGradients trains a scalar with gradient
// accumulation over 2 steps (the trainer donates shared variables): the
// variable must move once per 2 steps, by lr times the mean gradient.
func TestTrainerAccumulatedGradients(t *testing.T) {
	be := mustCPU(t)
	ctx := context.New()
	model := func(ctx *context.Context, _ any, inputs []*Node) []*Node {
		v := ctx.In("m").VariableWithValue("v", float32(1)).ValueGraph(inputs[0].Graph())
		return []*Node{Add(v, inputs[0])}
	}
	opt := optimizers.StochasticGradientDescent().WithDecay(false).WithLearningRate(0.25).Done()
	tr := train.NewTrainer(be, ctx, model, losses.MeanSquaredError, opt, nil, nil)
	if err := tr.AccumulateGradients(2); err != nil {
		t.Fatal(err)
	}
	x, y := tensors.FromValue([]float32{0}), tensors.FromValue([]float32{5})
	// loss = (v - 5)^2, dloss/dv = 2(v - 5); the update applies on every
	// second step.
	v := 1.0
	for step := range 4 {
		if _, err := tr.TrainStep(nil, []*tensors.Tensor{x}, []*tensors.Tensor{y}); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if step%2 == 1 {
			v -= 0.25 * 2 * (v - 5)
		}
		got := ctx.GetVariableByScopeAndName("/m", "v").MustValue().Value().(float32)
		if math.Abs(float64(got)-v) > 1e-6 {
			t.Errorf("after step %d: v = %g, want %g", step, got, v)
		}
	}
}

// TestDonationKeepsResults runs graphs whose outputs could take a donated
// input's memory, and checks the results equal those without donation:
// the input is read after, at the same time as, or instead of being
// overwritten.
func TestDonationKeepsResults(t *testing.T) {
	be := mustCPU(t)
	graphs := map[string]rawFn{
		"neg, transpose": func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			n, _ := b.Neg(p[0])
			tr, _ := b.Transpose(p[0], 1, 0)
			return []backends.Op{n, tr}, nil
		},
		"transpose, neg": func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			tr, _ := b.Transpose(p[0], 1, 0)
			n, _ := b.Neg(p[0])
			return []backends.Op{tr, n}, nil
		},
		"x + rowsum(x)": func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			s, _ := b.ReduceSum(p[0], 1)
			s, _ = b.BroadcastInDim(s, shapesF32(6, 5), []int{0})
			return one(b.Add(p[0], s))
		},
		"x - reverse(x)": func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			r, _ := b.Reverse(p[0], 0, 1)
			return one(b.Sub(p[0], r))
		},
		"x, neg": func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			n, _ := b.Neg(p[0])
			return []backends.Op{p[0], n}, nil
		},
		"neg, x, x": func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			n, _ := b.Neg(p[0])
			return []backends.Op{n, p[0], p[0]}, nil
		},
		"neg twice": func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			n, _ := b.Neg(p[0])
			return []backends.Op{n, n}, nil
		},
	}
	x := randHost(nilRNG(), dtypes.Float32, []int{6, 5}, -1, 1)
	for name, fn := range graphs {
		e := compileRaw(t, fn, x.shape)
		var results [2][]any
		for k, donate := range [][]bool{nil, {true}} {
			in, _ := be.BufferFromFlatData(0, x.flat, x.shape)
			outs, err := e.Execute([]backends.Buffer{in}, donate, 0)
			if err != nil {
				t.Fatalf("%s donate=%v: %v", name, donate, err)
			}
			seen := map[uintptr]bool{}
			for i, o := range outs {
				d, _ := be.BufferData(o)
				p := reflect.ValueOf(d).Pointer()
				if seen[p] {
					t.Errorf("%s donate=%v: output #%d shares memory with another output", name, donate, i)
				}
				seen[p] = true
				s, _ := be.BufferShape(o)
				cp := makeSlice(s.DType, s.Size())
				copyFlat(cp, d)
				results[k] = append(results[k], cp)
			}
		}
		if !reflect.DeepEqual(results[0], results[1]) {
			t.Errorf("%s: results with donation %v differ from those without %v", name, results[1], results[0])
		}
	}
}

// TestDonationArgumentRules checks the argument rules of donation: a
// refused call leaves a donated input valid, a buffer passed twice cannot
// be donated unless it is shared.
func TestDonationArgumentRules(t *testing.T) {
	be := mustCPU(t)
	e := compileRaw(t, func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		return one(b.Sub(p[0], p[1]))
	}, shapesF32(4), shapesF32(4))
	x, _ := be.BufferFromFlatData(0, []float32{1, 2, 3, 4}, shapesF32(4))
	bad, _ := be.BufferFromFlatData(0, []float32{1, 2}, shapesF32(2))
	if _, err := e.Execute([]backends.Buffer{x, bad}, []bool{true, false}, 0); err == nil {
		t.Fatalf("wrong input shape accepted")
	}
	if _, err := be.BufferShape(x); err != nil {
		t.Errorf("a refused Execute consumed its donated input: %v", err)
	}
	if _, err := e.Execute([]backends.Buffer{x, x}, []bool{true, false}, 0); err == nil {
		t.Errorf("a buffer passed twice and donated was accepted")
	}
	s, sFlat, _ := be.NewSharedBuffer(0, shapesF32(4))
	copy(sFlat.([]float32), []float32{5, 6, 7, 8})
	outs, err := e.Execute([]backends.Buffer{s, s}, []bool{true, true}, 0)
	if err != nil {
		t.Fatalf("a shared buffer passed twice and donated: %v", err)
	}
	if d, _ := be.BufferData(outs[0]); !slices.Equal(d.([]float32), []float32{0, 0, 0, 0}) {
		t.Errorf("x - x = %v, want zeros", d)
	}
	if !slices.Equal(sFlat.([]float32), []float32{5, 6, 7, 8}) {
		t.Errorf("shared memory changed to %v", sFlat)
	}
}
