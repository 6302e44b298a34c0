package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
)

// Tests of the batch norm + ReLU fusion (bnfuse.go): results equal to the
// unfused graph (option "nobnrelu"), and the passes really merged.

// sameValues returns an error unless got and want hold equal values (NaN
// equal to NaN; -0 equal to +0, the one documented difference).
func sameValues(got, want []float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d values, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] && !(math.IsNaN(got[i]) && math.IsNaN(want[i])) {
			return fmt.Errorf("[%d] = %.17g, want %.17g", i, got[i], want[i])
		}
	}
	return nil
}

// bnReluInputs returns x [4,5,5,3], scale, offset and a weight tensor of
// x's shape; with zeroFeature, feature 0 has scale 0 and offset 0, so its
// normalized values are exact zeros, where GoMLX's ReLU gradient passes
// (the rule the fused kernels must follow; finite differences cannot be
// taken there).
func bnReluInputs(dt dtypes.DType, seed uint64, zeroFeature bool) []*hostT {
	return bnReluInputsN(dt, seed, zeroFeature, 3)
}

// bnReluInputsN is bnReluInputs with nf features.
func bnReluInputsN(dt dtypes.DType, seed uint64, zeroFeature bool, nf int) []*hostT {
	rng := rand.New(rand.NewPCG(seed, 7))
	dims := []int{4, 5, 5, nf}
	x := randHost(rng, dt, dims, -2, 2)
	scale := randHost(rng, dt, []int{nf}, 0.5, 1.5)
	offset := randHost(rng, dt, []int{nf}, -0.5, 0.5)
	w := randHost(rng, dt, dims, -1, 1)
	for _, h := range []*hostT{scale, offset} {
		if !zeroFeature {
			break
		}
		switch f := h.flat.(type) {
		case []float32:
			f[0] = 0
		case []float64:
			f[0] = 0
		}
	}
	return []*hostT{x, scale, offset, w}
}

// bnReluNet is batch norm + ReLU, then batch norm + residual add + ReLU,
// as in a residual block.
func bnReluNet(in []*Node) *Node {
	x, scale, offset, w := in[0], in[1], in[2], in[3]
	a, _, _ := InternalBatchNormForTraining(x, scale, offset, 1e-3, -1)
	y := activations.Relu(a)
	b, _, _ := InternalBatchNormForTraining(Mul(y, w), scale, offset, 1e-3, -1)
	z := activations.Relu(Add(x, b))
	return ReduceAllSum(Mul(Mul(z, z), w))
}

// TestBatchNormReLUFusionGradients runs a two-layer batch-norm + ReLU net,
// its outputs and its gradients with respect to all inputs, with and
// without the fusion, in float32 and float64: the results must be equal,
// and the gradients of the fused graph must match finite differences
// (float64, through gradCheck, which runs the default, fused backend).
func TestBatchNormReLUFusionGradients(t *testing.T) {
	plain, err := New("nobnrelu")
	if err != nil {
		t.Fatal(err)
	}
	fused := mustCPU(t)
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		inputs := bnReluInputs(dt, 11, true)
		want, got := lossAndGradients(t, plain, inputs), lossAndGradients(t, fused, inputs)
		for i := range want {
			if err := sameValues(got[i], want[i]); err != nil {
				t.Errorf("%s: output #%d (0: loss, then gradients) against nobnrelu: %v", dt, i, err)
			}
		}
		nonZero := 0
		for _, v := range got[1] {
			if v != 0 {
				nonZero++
			}
		}
		if nonZero == 0 {
			t.Errorf("%s: the gradient with respect to x is all zeros", dt)
		}
	}
	gradCheck(t, "batch norm + ReLU fusion", bnReluNet, bnReluInputs(dtypes.Float64, 12, false), 4)
}

// TestBatchNormReLUFusionSteps checks on the raw graph that GoMLX's
// patterns (Max(bn, 0) and the gradient v * Sign(Sign(a - 0) + 1) feeding
// BatchNormGradient) are merged into the batch-norm steps, that the option
// nobnrelu keeps them apart, and that both give the same values.
func TestBatchNormReLUFusionSteps(t *testing.T) {
	dt := dtypes.Float32
	fn := func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		x, scale, offset, v := p[0], p[1], p[2], p[3]
		bn, mean, variance, err := b.BatchNormForTraining(x, scale, offset, 1e-3, 3)
		if err != nil {
			return nil, err
		}
		zero, _ := b.BroadcastInDim(scalarC(b, dt, 0), shapes.Make(dt, 4, 5, 5, 3), nil)
		relu, _ := b.Max(bn, zero)
		// GoMLX's ReLU gradient: v * Sign(Sign(bn - 0) + 1).
		s, _ := b.Sign(must(b.Sub(bn, scalarC(b, dt, 0))))
		ind, _ := b.Sign(must(b.Add(s, scalarC(b, dt, 1))))
		g, _ := b.Mul(v, ind)
		gx, gs, go_, err := b.BatchNormGradient(x, scale, mean, variance, g, 1e-3, 3)
		if err != nil {
			return nil, err
		}
		return []backends.Op{relu, gx, gs, go_}, nil
	}
	in := bnReluInputs(dt, 13, true)
	plain, err := New("nobnrelu")
	if err != nil {
		t.Fatal(err)
	}
	ef := compileOn(t, mustCPU(t), fn, in...)
	ep := compileOn(t, plain, fn, in...)
	count := func(e *Executable) (fusedPasses, bnOuts, gradIns int) {
		for _, st := range e.steps {
			switch st.name {
			case backends.OpTypeBatchNormForTraining.String():
				bnOuts = len(st.outs)
			case backends.OpTypeBatchNormGradient.String():
				gradIns = len(st.ins)
			default:
				if st.fused != nil {
					fusedPasses++
				}
			}
		}
		return
	}
	if f, o, i := count(ef); f != 0 || o != 4 || i != 6 {
		t.Errorf("fused: %d elementwise passes (want 0), batch norm with %d outputs (want 4), gradient with %d inputs (want 6):\n%s",
			f, o, i, ef.describe())
	}
	if f, o, i := count(ep); f == 0 || o != 3 || i != 5 {
		t.Errorf("nobnrelu: %d elementwise passes, batch norm with %d outputs (want 3), gradient with %d inputs (want 5):\n%s",
			f, o, i, ep.describe())
	}
	sameAsPlain(t, plain, fn, dt.String(), in...)
}

func must(op backends.Op, _ error) backends.Op { return op }

// lossAndGradients runs bnReluNet on be and returns the loss and its
// gradients with respect to all inputs, as float64.
func lossAndGradients(t *testing.T, be backends.Backend, inputs []*hostT) [][]float64 {
	t.Helper()
	e, err := NewExec(be, func(in []*Node) []*Node {
		loss := bnReluNet(in)
		return append([]*Node{loss}, Gradient(loss, in...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	args := make([]any, len(inputs))
	for i, h := range inputs {
		args[i] = hostTensor(h)
	}
	outs, err := e.Exec(args...)
	if err != nil {
		t.Fatalf("%s: %v", be.Name(), err)
	}
	res := make([][]float64, len(outs))
	for i, o := range outs {
		res[i] = tensorF64(o)
	}
	return res
}

// sameAsPlain runs fn on the plain backend (nobnrelu) and on the default
// one and checks that every output is equal (sameValues); what prefixes the
// error messages.
func sameAsPlain(t *testing.T, plain backends.Backend, fn rawFn, what string, in ...*hostT) {
	t.Helper()
	want, err := runRaw(plain, fn, in...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := runRaw(mustCPU(t), fn, in...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if err := sameValues(hostF64(got[i]), hostF64(want[i])); err != nil {
			t.Errorf("%s: output #%d against nobnrelu: %v", what, i, err)
		}
	}
}

func hostF64(h *hostT) []float64 {
	out := make([]float64, h.shape.Size())
	for i := range out {
		out[i] = scalarAsFloat64(h.flat, i)
	}
	return out
}

// TestBatchNormAddReLUFusionSteps: the residual Max(Add(r, bn), 0) joins
// the batch-norm step (r becomes its fourth input, the sum its first
// output), also when the sum is read elsewhere; values equal to nobnrelu.
func TestBatchNormAddReLUFusionSteps(t *testing.T) {
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		fn := func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			x, scale, offset, r := p[0], p[1], p[2], p[3]
			bn, mean, _, err := b.BatchNormForTraining(x, scale, offset, 1e-3, 3)
			if err != nil {
				return nil, err
			}
			sum, _ := b.Add(r, bn)
			zero, _ := b.BroadcastInDim(scalarC(b, dt, 0), shapes.Make(dt, 4, 5, 5, 3), nil)
			relu, _ := b.Max(sum, zero)
			twice, _ := b.Add(sum, sum)
			return []backends.Op{relu, twice, mean}, nil
		}
		in := bnReluInputs(dt, 14, true)
		plain, err := New("nobnrelu")
		if err != nil {
			t.Fatal(err)
		}
		ef := compileOn(t, mustCPU(t), fn, in...)
		// Left: the batch norm (4 inputs, 4 outputs) and one pass of one
		// instruction (sum + sum, reading the batch norm's first output).
		ok, passes := false, 0
		for _, st := range ef.steps {
			if st.name == backends.OpTypeBatchNormForTraining.String() {
				ok = len(st.ins) == 4 && len(st.outs) == 4
			}
			if st.fused != nil {
				passes++
				ok = ok && len(st.fused.instrs) == 1
			}
		}
		if !ok || passes != 1 {
			t.Errorf("%s: residual add + ReLU not merged into the batch norm:\n%s", dt, ef.describe())
		}
		sameAsPlain(t, plain, fn, dt.String(), in...)
	}
}

// TestBatchNormAddReLUFusionLateResidual: a residual created after the
// batch norm (a shortcut built after the branch) is moved before it and the
// add + ReLU still join the batch-norm step; a residual computed from the
// batch norm's own outputs cannot move, and stays a separate pass. Values
// equal nobnrelu either way.
func TestBatchNormAddReLUFusionLateResidual(t *testing.T) {
	dt := dtypes.Float32
	plain, err := New("nobnrelu")
	if err != nil {
		t.Fatal(err)
	}
	for _, dependent := range []bool{false, true} {
		fn := func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			x, scale, offset, w := p[0], p[1], p[2], p[3]
			bn, mean, _, err := b.BatchNormForTraining(x, scale, offset, 1e-3, 3)
			if err != nil {
				return nil, err
			}
			r, _ := b.Mul(w, w)
			if dependent {
				m, _ := b.BroadcastInDim(mean, shapes.Make(dt, 4, 5, 5, 3), []int{3})
				r, _ = b.Mul(w, m)
			}
			sum, _ := b.Add(bn, r)
			zero, _ := b.BroadcastInDim(scalarC(b, dt, 0), shapes.Make(dt, 4, 5, 5, 3), nil)
			relu, _ := b.Max(sum, zero)
			return []backends.Op{relu}, nil
		}
		in := bnReluInputs(dt, 16, true)
		ef := compileOn(t, mustCPU(t), fn, in...)
		bnIns := 0
		for _, st := range ef.steps {
			if st.name == backends.OpTypeBatchNormForTraining.String() {
				bnIns = len(st.ins)
			}
		}
		if want := map[bool]int{false: 4, true: 3}[dependent]; bnIns != want {
			t.Errorf("dependent=%v: batch norm with %d inputs, want %d:\n%s", dependent, bnIns, want, ef.describe())
		}
		sameAsPlain(t, plain, fn, fmt.Sprintf("dependent=%v", dependent), in...)
	}
}

// TestBatchNormInferenceReLUFusion: Max(BatchNormForInference(...), 0)
// becomes one batch-norm step when the batch norm has no other reader, and
// stays two passes when it has; values equal to nobnrelu either way.
func TestBatchNormInferenceReLUFusion(t *testing.T) {
	plain, err := New("nobnrelu")
	if err != nil {
		t.Fatal(err)
	}
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		for _, shared := range []bool{false, true} {
			fn := func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				x, scale, offset, w := p[0], p[1], p[2], p[3]
				mean, _ := b.Mul(offset, scalarC(b, dt, 0.5))
				variance, _ := b.Mul(scale, scale)
				bn, err := b.BatchNormForInference(x, scale, offset, mean, variance, 1e-3, 3)
				if err != nil {
					return nil, err
				}
				zero, _ := b.BroadcastInDim(scalarC(b, dt, 0), shapes.Make(dt, 4, 5, 5, 3), nil)
				relu, _ := b.Max(zero, bn)
				if !shared {
					return one(b.Mul(relu, w))
				}
				return []backends.Op{relu, bn}, nil
			}
			in := bnReluInputs(dt, 15, true)
			name := fmt.Sprintf("%s shared=%v", dt, shared)
			// Elementwise instructions on full-size values: the Mul (and
			// the Max unless the batch norm took it).
			instrs := func(be backends.Backend) int {
				k := 0
				for _, st := range compileOn(t, be, fn, in...).steps {
					if st.fused != nil && st.fused.size == in[0].shape.Size() {
						k += len(st.fused.instrs)
					}
				}
				return k
			}
			wantFused, wantPlain := 1, 2
			if shared {
				wantFused, wantPlain = 1, 1
			}
			if k := instrs(mustCPU(t)); k != wantFused {
				t.Errorf("%s: %d full-size elementwise instructions, want %d", name, k, wantFused)
			}
			if k := instrs(plain); k != wantPlain {
				t.Errorf("%s: nobnrelu: %d full-size elementwise instructions, want %d", name, k, wantPlain)
			}
			sameAsPlain(t, plain, fn, name, in...)
		}
	}
}

// TestBatchNormReLUMaskFusion: with 16 features (float32, channels-last)
// the ReLU inputs both fused batch norms keep for their gradients become
// ReLU masks (uint8 first outputs): the first one's is read by its fused
// gradient only; the second one's (the residual sum) by the ReLU gradient,
// whose product also flows to x, so that batch-norm gradient applies the
// mask and writes the product for x's gradient. The loss and every gradient
// stay equal to the unfused graph's, and "norelumask" keeps no mask.
func TestBatchNormReLUMaskFusion(t *testing.T) {
	inputs := bnReluInputsN(dtypes.Float32, 15, true, 16)
	run := func(config string) ([][]float64, *Executable) {
		be := newRecording(t, config)
		return lossAndGradients(t, be, inputs), be.last
	}
	want, _ := run("nobnrelu")
	got, e := run("")
	for i := range want {
		if err := sameValues(got[i], want[i]); err != nil {
			t.Errorf("output #%d (0: loss, then gradients) against nobnrelu: %v", i, err)
		}
	}
	countMasks := func(e *Executable) int {
		masks := 0
		for _, st := range e.steps {
			if st.name == backends.OpTypeBatchNormForTraining.String() && e.values[st.outs[0]].dtype == dtypes.Uint8 {
				masks++
			}
		}
		return masks
	}
	if n := countMasks(e); n != 2 {
		t.Errorf("%d batch norms keep a ReLU mask, want 2:\n%s", n, e.describe())
	}
	off, eOff := run("norelumask")
	if n := countMasks(eOff); n != 0 {
		t.Errorf("norelumask: %d batch norms keep a ReLU mask, want 0", n)
	}
	for i := range want {
		if err := sameValues(off[i], want[i]); err != nil {
			t.Errorf("norelumask: output #%d against nobnrelu: %v", i, err)
		}
	}
}
