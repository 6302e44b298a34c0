package cpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Tests of the broadcast-multiply-reduce to DotGeneral rewrite: the
// rewritten graph must compute what the plain one ("nocontract") does, and
// must not materialize the broadcast product.

func noContractBackend(t testing.TB) backends.Backend {
	t.Helper()
	be, err := New("nocontract")
	if err != nil {
		t.Fatal(err)
	}
	return be
}

func TestBackendOptions(t *testing.T) {
	if _, err := New("nocontract, "); err != nil {
		t.Errorf("New(\"nocontract, \"): %v", err)
	}
	_, err := New("fast")
	if err == nil || !strings.Contains(err.Error(), `"fast"`) {
		t.Errorf("New(\"fast\") error %v, want one naming the option", err)
	}
}

// contractCase is ReduceSum(Mul(view(a), view(b)), axes) where each view
// transposes its operand and inserts size-1 axes.
type contractCase struct {
	name         string
	aDims, bDims []int
	aPerm, bPerm []int // transposes applied first (nil: none)
	aRe, bRe     []int // reshape dims (with inserted 1s) of the product rank
	axes         []int
	wantDot      bool
}

var contractCases = []contractCase{
	// Dense layer weight gradient: x[B,I], g[B,O] -> sum_b x[b,i] g[b,o].
	{name: "dense-dW", aDims: []int{16, 40}, bDims: []int{16, 24}, aRe: []int{16, 40, 1}, bRe: []int{16, 1, 24}, axes: []int{0}, wantDot: true},
	// Input gradient: g[B,O], W[I,O] -> sum_o g[b,o] W[i,o].
	{name: "dense-dx", aDims: []int{16, 24}, bDims: []int{40, 24}, aRe: []int{16, 1, 24}, bRe: []int{1, 40, 24}, axes: []int{2}, wantDot: true},
	// Output order needing a transpose under one operand order only.
	{name: "swap", aDims: []int{16, 24}, bDims: []int{16, 40}, aRe: []int{16, 1, 24}, bRe: []int{16, 40, 1}, axes: []int{0}, wantDot: true},
	// Free axes read in an order different from the source's (transposed
	// source): the output order must follow the source's axes.
	{name: "transposed-free", aDims: []int{6, 5, 3}, bDims: []int{4, 3}, aPerm: []int{2, 1, 0}, aRe: []int{1, 3, 5, 6}, bRe: []int{4, 3, 1, 1}, axes: []int{1}, wantDot: true},
	// Batched: sum_k a[n,k,m] b[n,k,p] with a transposed source.
	{name: "batched-transposed", aDims: []int{5, 12, 9}, bDims: []int{5, 12, 11}, aPerm: []int{0, 2, 1},
		aRe: []int{5, 9, 12, 1}, bRe: []int{5, 1, 12, 11}, bPerm: []int{0, 2, 1}, axes: []int{2}, wantDot: true},
	// Batch axis not leading, two contracting axes.
	{name: "inner-batch", aDims: []int{6, 7, 3, 8}, bDims: []int{6, 7, 3, 10}, aRe: []int{6, 7, 3, 8, 1}, bRe: []int{6, 7, 3, 1, 10}, axes: []int{0, 1}, wantDot: true},
	// Kept axes in an order neither operand order gives: needs a transpose.
	{name: "interleaved", aDims: []int{4, 30, 6}, bDims: []int{30, 5}, aRe: []int{4, 1, 30, 6}, bPerm: []int{1, 0}, bRe: []int{1, 5, 30, 1}, axes: []int{2}, wantDot: true},
	// A plain dot product along an axis: nothing to gain, left alone.
	{name: "dot-product", aDims: []int{64, 32}, bDims: []int{64, 32}, aRe: []int{64, 32}, bRe: []int{64, 32}, axes: []int{0}, wantDot: false},
	// Summing over an axis only one operand has: not a contraction.
	{name: "one-sided", aDims: []int{16, 20}, bDims: []int{16, 30}, aRe: []int{16, 20, 1}, bRe: []int{16, 1, 30}, axes: []int{0, 1}, wantDot: false},
}

func (c contractCase) build(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
	view := func(x backends.Op, perm, re []int) (backends.Op, error) {
		var err error
		if perm != nil {
			if x, err = b.Transpose(x, perm...); err != nil {
				return nil, err
			}
		}
		return b.Reshape(x, re...)
	}
	a, err := view(p[0], c.aPerm, c.aRe)
	if err != nil {
		return nil, err
	}
	bb, err := view(p[1], c.bPerm, c.bRe)
	if err != nil {
		return nil, err
	}
	m, err := b.Mul(a, bb)
	if err != nil {
		return nil, err
	}
	return one(b.ReduceSum(m, c.axes...))
}

func compileOn(t *testing.T, be backends.Backend, fn rawFn, params ...*hostT) *Executable {
	t.Helper()
	b := be.Builder("test")
	ps := make([]backends.Op, len(params))
	for i, h := range params {
		var err error
		if ps[i], err = b.Parameter(fmt.Sprintf("p%d", i), h.shape, nil); err != nil {
			t.Fatal(err)
		}
	}
	outs, err := fn(b, ps)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := b.Compile(outs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return exec.(*Executable)
}

// largestValue returns the size of the largest intermediate (arena) value.
func largestValue(e *Executable) int {
	m := 0
	for _, v := range e.values {
		if v.kind == vkArena || v.kind == vkOutput {
			m = max(m, v.size)
		}
	}
	return m
}

func TestContractionRewrite(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	plain := noContractBackend(t)
	for _, c := range contractCases {
		for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
			name := fmt.Sprintf("%s/%s", c.name, dt)
			a := randHost(rng, dt, c.aDims, -1, 1)
			b := randHost(rng, dt, c.bDims, -1, 1)
			want, err := runRaw(plain, c.build, a, b)
			if err != nil {
				t.Fatalf("%s: plain: %v", name, err)
			}
			got, err := runRaw(mustCPU(t), c.build, a, b)
			if err != nil {
				t.Fatalf("%s: rewritten: %v", name, err)
			}
			if err := compareHost(got[0], want[0], tolFor(dt, true)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			// The compiled plan: a DotGeneral and no product-sized value.
			e := compileOn(t, mustCPU(t), c.build, a, b)
			hasDot := slices.Contains(stepNames(e), "DotGeneral")
			if hasDot != c.wantDot {
				t.Errorf("%s: DotGeneral step = %v, want %v:\n%s", name, hasDot, c.wantDot, e.describe())
			}
			prod := 1
			for _, d := range c.aRe {
				prod *= d
			}
			for k, d := range c.bRe {
				if c.aRe[k] == 1 {
					prod *= d
				}
			}
			if c.wantDot && largestValue(e) >= prod {
				t.Errorf("%s: a value of %d elements (the product has %d) is still materialized:\n%s", name, largestValue(e), prod, e.describe())
			}
			if ep := compileOn(t, plain, c.build, a, b); slices.Contains(stepNames(ep), "DotGeneral") {
				t.Errorf("%s: nocontract backend rewrote the graph:\n%s", name, ep.describe())
			}
		}
	}
}

// TestContractionSharedProduct: when the product is also an output, it is
// still computed, and both results are right.
func TestContractionSharedProduct(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	fn := func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		x, _ := b.Reshape(p[0], 8, 20, 1)
		y, _ := b.Reshape(p[1], 8, 1, 12)
		m, err := b.Mul(x, y)
		if err != nil {
			return nil, err
		}
		s, err := b.ReduceSum(m, 0)
		return []backends.Op{s, m}, err
	}
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		a := randHost(rng, dt, []int{8, 20}, -1, 1)
		b := randHost(rng, dt, []int{8, 12}, -1, 1)
		want, err := runRaw(noContractBackend(t), fn, a, b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := runRaw(mustCPU(t), fn, a, b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if err := compareHost(got[i], want[i], tolFor(dt, true)); err != nil {
				t.Errorf("%s output #%d: %v", dt, i, err)
			}
		}
	}
}

// TestContractionGradients: GoMLX's DotGeneral gradients (built as
// broadcast products) give the same values with and without the rewrite,
// for dense layers and batched/multi-axis contractions, in float32 and
// float64; in float64 they also match finite differences (gradCheck).
func TestContractionGradients(t *testing.T) {
	type dg struct {
		name         string
		aDims, bDims []int
		lc, lb       []int
		rc, rb       []int
	}
	cases := []dg{
		{"dense", []int{12, 30}, []int{30, 7}, []int{1}, nil, []int{0}, nil},
		{"dense-transposed-w", []int{12, 30}, []int{7, 30}, []int{1}, nil, []int{1}, nil},
		{"batched", []int{3, 5, 8}, []int{3, 8, 6}, []int{2}, []int{0}, []int{1}, []int{0}},
		{"two-contracting", []int{4, 5, 6}, []int{6, 5, 3}, []int{1, 2}, nil, []int{1, 0}, nil},
		{"batch-last", []int{5, 7, 4}, []int{7, 3, 4}, []int{1}, []int{2}, []int{0}, []int{2}},
	}
	rng := rand.New(rand.NewPCG(15, 16))
	for _, c := range cases {
		loss := func(in []*Node) *Node {
			d := DotGeneral(in[0], c.lc, c.lb, in[1], c.rc, c.rb)
			// A non-uniform upstream gradient: sum of d * sin(iota).
			w := Sin(Iota(d.Graph(), d.Shape(), 0))
			for ax := 1; ax < d.Rank(); ax++ {
				w = Add(w, Cos(Iota(d.Graph(), d.Shape(), ax)))
			}
			return ReduceAllSum(Mul(d, w))
		}
		for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
			a := randHost(rng, dt, c.aDims, -1, 1)
			b := randHost(rng, dt, c.bDims, -1, 1)
			grads := func(be backends.Backend) []*hostT {
				exec, err := NewExec(be, func(in []*Node) []*Node {
					return Gradient(loss(in), in...)
				})
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				defer exec.Finalize()
				outs, err := exec.Exec(hostTensor(a), hostTensor(b))
				if err != nil {
					t.Fatalf("%s/%s: %v", c.name, dt, err)
				}
				hs := make([]*hostT, len(outs))
				for i, o := range outs {
					hs[i] = &hostT{o.Shape(), flatOf(o)}
				}
				return hs
			}
			want, got := grads(noContractBackend(t)), grads(mustCPU(t))
			for i := range want {
				if err := compareHost(got[i], want[i], tolFor(dt, true)); err != nil {
					t.Errorf("%s/%s: gradient #%d: %v", c.name, dt, i, err)
				}
			}
			if dt == dtypes.Float64 {
				gradCheck(t, c.name, loss, []*hostT{a, b}, 2)
			}
		}
	}
}

// hostTensor converts a host tensor into a GoMLX tensor.
func hostTensor(h *hostT) *tensors.Tensor {
	switch f := h.flat.(type) {
	case []float32:
		return tensors.FromFlatDataAndDimensions(f, h.shape.Dimensions...)
	case []float64:
		return tensors.FromFlatDataAndDimensions(f, h.shape.Dimensions...)
	}
	panic(fmt.Sprintf("hostTensor: unsupported %T", h.flat))
}

// flatOf copies a GoMLX tensor's flat data.
func flatOf(t *tensors.Tensor) any {
	flat := makeSlice(t.DType(), t.Size())
	if err := t.ConstFlatData(func(f any) { copyFlat(flat, f) }); err != nil {
		panic(err)
	}
	return flat
}
