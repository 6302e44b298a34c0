package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

func TestMain(m *testing.M) {
	// Never let any GoMLX backend try to download plugins from tests.
	os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	os.Exit(m.Run())
}

var (
	backendsOnce sync.Once
	cpuBE, goBE  backends.Backend
	backendsErr  error
)

// testBackends returns our backend and GoMLX's simplego ("go") reference,
// which runs its ops one at a time (its parallel executor has data races in
// GoMLX v0.26 that the race detector reports).
func testBackends(t testing.TB) (cpu, ref backends.Backend) {
	t.Helper()
	backendsOnce.Do(func() {
		cpuBE, backendsErr = backends.NewWithConfig(BackendName)
		if backendsErr == nil {
			goBE, backendsErr = backends.NewWithConfig("go:ops_sequential")
		}
	})
	if backendsErr != nil {
		t.Fatal(backendsErr)
	}
	return cpuBE, goBE
}

func shapesF32(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }

// hostT is a host tensor: a shape and its flat data.
type hostT struct {
	shape shapes.Shape
	flat  any
}

func (h *hostT) String() string {
	if h.shape.Size() > 8 {
		return fmt.Sprintf("%s[%v ...]", h.shape, subSlice(h.flat, 0, 8))
	}
	return fmt.Sprintf("%s%v", h.shape, h.flat)
}

// rawFn builds a computation directly with a backend builder.
type rawFn func(b backends.Builder, params []backends.Op) ([]backends.Op, error)

// runRaw compiles fn on be with one parameter per input and executes it.
func runRaw(be backends.Backend, fn rawFn, inputs ...*hostT) (outs []*hostT, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	b := be.Builder("test")
	params := make([]backends.Op, len(inputs))
	for i, in := range inputs {
		if params[i], err = b.Parameter(fmt.Sprintf("p%d", i), in.shape, nil); err != nil {
			return nil, err
		}
	}
	results, err := fn(b, params)
	if err != nil {
		return nil, err
	}
	exec, err := b.Compile(results, nil)
	if err != nil {
		return nil, err
	}
	defer exec.Finalize()
	bufs := make([]backends.Buffer, len(inputs))
	for i, in := range inputs {
		if bufs[i], err = be.BufferFromFlatData(0, in.flat, in.shape); err != nil {
			return nil, err
		}
	}
	outBufs, err := exec.Execute(bufs, nil, 0)
	if err != nil {
		return nil, err
	}
	for _, ob := range outBufs {
		s, err := be.BufferShape(ob)
		if err != nil {
			return nil, err
		}
		flat := makeSlice(s.DType, s.Size())
		if err := be.BufferToFlatData(ob, flat); err != nil {
			return nil, err
		}
		outs = append(outs, &hostT{s, flat})
		_ = be.BufferFinalize(ob)
	}
	for _, b := range bufs {
		_ = be.BufferFinalize(b)
	}
	return outs, nil
}

// tol is a comparison tolerance: |got-want| <= atol + rtol*|want|.
type tol struct{ rtol, atol float64 }

var (
	tolExact = tol{0, 0}
	tolF32   = tol{2e-6, 1e-6}
	tolF64   = tol{1e-13, 1e-14}
	tolAcc32 = tol{2e-4, 2e-5} // accumulations (sums, products, convs)
	tolAcc64 = tol{1e-10, 1e-12}
)

// tolFor returns the elementwise tolerance for a dtype.
func tolFor(dt dtypes.DType, accumulates bool) tol {
	switch dt {
	case dtypes.Float32:
		if accumulates {
			return tolAcc32
		}
		return tolF32
	case dtypes.Float64:
		if accumulates {
			return tolAcc64
		}
		return tolF64
	}
	return tolExact
}

// compareHost returns an error describing the first mismatch between got and want.
func compareHost(got, want *hostT, tl tol) error {
	if !got.shape.Equal(want.shape) {
		return fmt.Errorf("shape %s, want %s", got.shape, want.shape)
	}
	n := want.shape.Size()
	for i := range n {
		switch w := want.flat.(type) {
		case []float32, []float64:
			gv, wv := scalarAsFloat64(got.flat, i), scalarAsFloat64(w, i)
			if math.IsNaN(wv) || math.IsNaN(gv) {
				if math.IsNaN(wv) != math.IsNaN(gv) {
					return fmt.Errorf("element %d: got %g, want %g", i, gv, wv)
				}
				continue
			}
			if math.IsInf(wv, 0) || math.IsInf(gv, 0) {
				if gv != wv {
					return fmt.Errorf("element %d: got %g, want %g", i, gv, wv)
				}
				continue
			}
			if math.Abs(gv-wv) > tl.atol+tl.rtol*math.Abs(wv) {
				return fmt.Errorf("element %d: got %.9g, want %.9g (diff %.3g)", i, gv, wv, gv-wv)
			}
		case []uint64:
			if g := got.flat.([]uint64)[i]; g != w[i] {
				return fmt.Errorf("element %d: got %d, want %d", i, g, w[i])
			}
		case []int64:
			if g := got.flat.([]int64)[i]; g != w[i] {
				return fmt.Errorf("element %d: got %d, want %d", i, g, w[i])
			}
		default:
			if g, wv := scalarAsFloat64(got.flat, i), scalarAsFloat64(w, i); g != wv {
				return fmt.Errorf("element %d: got %v, want %v", i, g, wv)
			}
		}
	}
	return nil
}

// diffTest runs fn on both backends and compares all outputs.
func diffTest(t *testing.T, name string, fn rawFn, tl tol, inputs ...*hostT) {
	t.Helper()
	cpu, ref := testBackends(t)
	want, err := runRaw(ref, fn, inputs...)
	if err != nil {
		t.Fatalf("%s: reference backend failed: %v", name, err)
	}
	got, err := runRaw(cpu, fn, inputs...)
	if err != nil {
		t.Fatalf("%s: cpu backend failed: %v", name, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d outputs, want %d", name, len(got), len(want))
	}
	for i := range want {
		if err := compareHost(got[i], want[i], tl); err != nil {
			t.Errorf("%s: output #%d: %v\n  inputs: %v", name, i, err, inputs)
			return
		}
	}
}

// randHost returns a tensor of random values in [lo, hi) (integers are
// rounded down; bools are random).
func randHost(rng *rand.Rand, dt dtypes.DType, dims []int, lo, hi float64) *hostT {
	s := shapes.Make(dt, dims...)
	n := s.Size()
	flat := makeSlice(dt, n)
	for i := range n {
		v := lo + rng.Float64()*(hi-lo)
		setFromFloat(flat, i, v, rng)
	}
	return &hostT{s, flat}
}

func setFromFloat(flat any, i int, v float64, rng *rand.Rand) {
	switch f := flat.(type) {
	case []float32:
		f[i] = float32(v)
	case []float64:
		f[i] = v
	case []int8:
		f[i] = int8(math.Floor(v))
	case []int16:
		f[i] = int16(math.Floor(v))
	case []int32:
		f[i] = int32(math.Floor(v))
	case []int64:
		f[i] = int64(math.Floor(v))
	case []uint8:
		f[i] = uint8(math.Floor(v))
	case []uint16:
		f[i] = uint16(math.Floor(v))
	case []uint32:
		f[i] = uint32(math.Floor(v))
	case []uint64:
		f[i] = uint64(math.Floor(v))
	case []bool:
		f[i] = rng.IntN(2) == 1
	case []bfloat16.BFloat16:
		f[i] = bf16FromFloat64(v)
	}
}

// testShapes are operand dimensions used by many tests: scalars, size-1
// axes and odd sizes.
var testShapes = [][]int{{}, {1}, {7}, {3, 1, 5}, {2, 33, 17}, {4, 4}}

// mustCPU returns our backend.
func mustCPU(t testing.TB) backends.Backend {
	cpu, _ := testBackends(t)
	return cpu
}

func nilRNG() *rand.Rand { return rand.New(rand.NewPCG(0, 0)) }
