package cpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// FuzzGraphs decodes random small graphs of elementwise, broadcast, reduce,
// reshape and transpose ops from the fuzz input, runs them on this backend
// and on simplego, and compares the results. The seed corpus runs as part
// of the normal tests.
func FuzzGraphs(f *testing.F) {
	f.Add([]byte{2, 3, 2, 3, 0, 1, 0, 1, 1, 0, 1, 2, 0, 0})
	f.Add([]byte{1, 2, 4, 5, 1, 0, 0, 2, 1, 0, 6, 1, 3, 0, 0, 1, 2})
	f.Add([]byte{3, 3, 3, 2, 2, 7, 1, 1, 0, 5, 0, 1, 2, 1, 1, 1, 4, 2, 6, 0, 0, 3})
	f.Add([]byte{0, 0})
	f.Add([]byte("elementwise fusion with broadcasting and reductions"))
	f.Add([]byte{2, 3, 3, 4, 3, 9, 1, 0, 1, 1, 2, 0, 1, 3, 1, 1, 0, 4, 1, 2, 3, 5, 0, 1, 6, 2, 7, 3, 0, 2})
	rng := rand.New(rand.NewPCG(99, 100))
	for range 8 {
		b := make([]byte, 40)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := decodeProgram(data)
		inputs := make([]*hostT, len(p.params))
		rng := rand.New(rand.NewPCG(uint64(len(data)), 7))
		for i, dims := range p.params {
			inputs[i] = randHost(rng, dtypes.Float64, dims, -2, 2)
		}
		diffTest(t, p.String(), p.build, tol{1e-9, 1e-9}, inputs...)
	})
}

type fuzzInstr struct {
	kind, op, a, b, axis int
}

type fuzzProgram struct {
	params [][]int
	instrs []fuzzInstr
	dims   [][]int // dims of every value (params first)
	outs   []int
}

var (
	fuzzUnary  = []string{"Neg", "Abs", "Tanh", "Logistic", "Sin", "Cos"}
	fuzzBinary = []string{"Add", "Sub", "Mul", "Max", "Min"}
	fuzzReduce = []string{"ReduceSum", "ReduceMax", "ReduceMin"}
)

func (p *fuzzProgram) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "params %v:", p.params)
	for _, in := range p.instrs {
		fmt.Fprintf(&sb, " %+v", in)
	}
	return sb.String()
}

// decodeProgram turns bytes into a valid program (bytes past the end read as 0).
func decodeProgram(data []byte) *fuzzProgram {
	pos := 0
	next := func(n int) int {
		if n <= 0 {
			return 0
		}
		v := 0
		if pos < len(data) {
			v = int(data[pos])
		}
		pos++
		return v % n
	}
	p := &fuzzProgram{}
	rank := next(4)
	base := make([]int, rank)
	for i := range base {
		base[i] = 1 + next(5)
	}
	nParams := 1 + next(3)
	for range nParams {
		dims := slices.Clone(base)
		mask := next(16)
		for k := range dims {
			if mask&(1<<k) != 0 {
				dims[k] = 1
			}
		}
		if next(5) == 0 {
			dims = nil // scalar
		}
		p.params = append(p.params, dims)
		p.dims = append(p.dims, dims)
	}
	compatible := func(a, b []int) ([]int, bool) {
		if len(a) == 0 {
			return b, true
		}
		if len(b) == 0 {
			return a, true
		}
		if len(a) != len(b) {
			return nil, false
		}
		out := make([]int, len(a))
		for k := range a {
			switch {
			case a[k] == b[k], b[k] == 1:
				out[k] = a[k]
			case a[k] == 1:
				out[k] = b[k]
			default:
				return nil, false
			}
		}
		return out, true
	}
	nInstr := 1 + next(12)
	for range nInstr {
		nv := len(p.dims)
		in := fuzzInstr{kind: next(8), a: next(nv), b: next(nv)}
		da, db := p.dims[in.a], p.dims[in.b]
		var out []int
		switch in.kind {
		case 0: // unary
			in.op = next(len(fuzzUnary))
			out = da
		case 1: // binary
			in.op = next(len(fuzzBinary))
			var ok bool
			if out, ok = compatible(da, db); !ok {
				in.kind, out = 0, da
			}
		case 2: // reduce one axis
			in.op = next(len(fuzzReduce))
			if len(da) == 0 {
				in.kind, out = 0, da
				break
			}
			in.axis = next(len(da))
			out = slices.Delete(slices.Clone(da), in.axis, in.axis+1)
		case 3: // reshape to flat
			out = []int{sizeOf(da)}
		case 4: // transpose: reverse the axes
			out = slices.Clone(da)
			slices.Reverse(out)
		case 5: // where(a > b, a, b), same dims only
			if !slices.Equal(da, db) {
				in.kind, out = 0, da
				break
			}
			out = da
		case 6: // broadcast to the base dims
			ok := len(da) == 0 || len(da) == len(base)
			for k := range da {
				ok = ok && (da[k] == 1 || da[k] == base[k])
			}
			if !ok {
				in.kind, out = 0, da
				break
			}
			out = base
		case 7: // float32 round trip
			out = da
		}
		p.instrs = append(p.instrs, in)
		p.dims = append(p.dims, slices.Clone(out))
	}
	p.outs = []int{len(p.dims) - 1}
	if o := next(len(p.dims) - 1); o != len(p.dims)-1 && o >= len(p.params) {
		p.outs = append(p.outs, o)
	}
	return p
}

// build constructs the program with a backend builder.
func (p *fuzzProgram) build(b backends.Builder, params []backends.Op) ([]backends.Op, error) {
	vals := slices.Clone(params)
	for i, in := range p.instrs {
		a, bb := vals[in.a], vals[in.b]
		da := p.dims[in.a]
		var r backends.Op
		var err error
		switch in.kind {
		case 0:
			r, err = callOp(b, fuzzUnary[in.op], a)
		case 1:
			r, err = callOp(b, fuzzBinary[in.op], a, bb)
		case 2:
			r, err = callOp(b, fuzzReduce[in.op], a, in.axis)
		case 3:
			r, err = b.Reshape(a, sizeOf(da))
		case 4:
			perm := make([]int, len(da))
			for k := range perm {
				perm[k] = len(da) - 1 - k
			}
			r, err = b.Transpose(a, perm...)
		case 5:
			var c backends.Op
			if c, err = b.GreaterThan(a, bb); err == nil {
				r, err = b.Where(c, a, bb)
			}
		case 6:
			out := p.dims[len(p.params)+i]
			axes := make([]int, len(da))
			for k := range axes {
				axes[k] = k
			}
			r, err = b.BroadcastInDim(a, shapes.Make(dtypes.Float64, out...), axes)
		case 7:
			var c backends.Op
			if c, err = b.ConvertDType(a, dtypes.Float32); err == nil {
				r, err = b.ConvertDType(c, dtypes.Float64)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("instruction #%d %+v: %w", i, in, err)
		}
		vals = append(vals, r)
	}
	outs := make([]backends.Op, len(p.outs))
	for i, o := range p.outs {
		outs[i] = vals[o]
	}
	return outs, nil
}
