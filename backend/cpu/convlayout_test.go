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
	"github.com/sgt-dev/sgt/backend/kernels"
)

// Tests of convolutions reading their kernel and writing their output in
// place (kernels.ConvParams' KernelLayout and OutputLayout) instead of
// transposing and reversing them: same results as the materialized
// layouts ("noconvlayout"), and the steps are gone from the plan.

// recordingBackend is our backend, remembering the last executable compiled.
type recordingBackend struct {
	*Backend
	last *Executable
}

func (r *recordingBackend) Builder(name string) backends.Builder {
	return &recordingBuilder{Builder: newBuilder(r.Backend, name), r: r}
}

type recordingBuilder struct {
	*Builder
	r *recordingBackend
}

func (rb *recordingBuilder) Compile(outs []backends.Op, sh []*backends.ShardingSpec) (backends.Executable, error) {
	e, err := rb.Builder.Compile(outs, sh)
	if err == nil {
		rb.r.last = e.(*Executable)
	}
	return e, err
}

func newRecording(t *testing.T, config string) *recordingBackend {
	t.Helper()
	be, err := New(config)
	if err != nil {
		t.Fatal(err)
	}
	return &recordingBackend{Backend: be.(*Backend)}
}

func countSteps(e *Executable, name string) int {
	n := 0
	for _, st := range e.steps {
		if st.name == name {
			n++
		}
	}
	return n
}

func TestConvLayoutGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	for _, c := range convCases {
		if reason := gomlxConvVJPUnsupported(c); reason != "" {
			continue
		}
		for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
			x, k := randHost(rng, dt, c.x, -1, 1), randHost(rng, dt, c.k, -1, 1)
			out, err := runRaw(mustCPU(t), c.fn(), x, k)
			if err != nil {
				t.Fatal(err)
			}
			w := randHost(rng, dt, out[0].shape.Dimensions, -1, 1)
			run := func(be *recordingBackend) []*hostT {
				exec, err := NewExec(be, func(in []*Node) []*Node {
					y := ConvGeneral(in[0], in[1], c.axes, c.strides, c.pads, c.idil, c.kdil, max(c.fgc, 1), max(c.bgc, 1))
					loss := ReduceAllSum(Mul(y, in[2]))
					return append([]*Node{y}, Gradient(loss, in[0], in[1])...)
				})
				if err != nil {
					t.Fatal(err)
				}
				defer exec.Finalize()
				outs, err := exec.Exec(hostTensor(x), hostTensor(k), hostTensor(w))
				if err != nil {
					t.Fatalf("%s/%s: %v", c.name, dt, err)
				}
				hs := make([]*hostT, len(outs))
				for i, o := range outs {
					hs[i] = &hostT{o.Shape(), flatOf(o)}
				}
				return hs
			}
			inPlace, plain := newRecording(t, ""), newRecording(t, "noconvlayout")
			got, want := run(inPlace), run(plain)
			for i, name := range []string{"output", "input gradient", "kernel gradient"} {
				if err := compareHost(got[i], want[i], tolFor(dt, true)); err != nil {
					t.Errorf("%s/%s: %s: %v", c.name, dt, name, err)
				}
			}
			// The in-place plan never materializes a reversed kernel and
			// has fewer transposes.
			ge := inPlace.last.describe()
			if strings.Contains(ge, "Reverse") {
				t.Errorf("%s/%s: the in-place plan still reverses the kernel:\n%s", c.name, dt, ge)
			}
			if nt, np := countSteps(inPlace.last, "Transpose"), countSteps(plain.last, "Transpose"); nt >= np && np > 0 {
				t.Errorf("%s/%s: %d transposes in place, %d materialized", c.name, dt, nt, np)
			}
		}
	}
}

// TestConvLayoutChannelsLast: for the channels-last convolutions of the
// models, the whole training graph of a conv layer (forward, input and
// kernel gradients) transposes only the input for the kernel gradient, and
// nothing when the channel counts let the kernel gradient read the input in
// place.
func TestConvLayoutChannelsLast(t *testing.T) {
	for _, tc := range []struct {
		name       string
		transposes int
	}{{"NHWC 3x3 same", 1}, {"NHWC 3x3 same 16ch", 0}, {"NHWC 3x3 stride 2 16ch", 0}} {
		be := newRecording(t, "")
		c := convCases[slices.IndexFunc(convCases, func(c convCase) bool { return c.name == tc.name })]
		exec, err := NewExec(be, func(x, k *Node) []*Node {
			y := ConvGeneral(x, k, c.axes, c.strides, c.pads, c.idil, c.kdil, 1, 1)
			return Gradient(ReduceAllSum(Mul(y, y)), x, k)
		})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(53, 54))
		x, k := randHost(rng, dtypes.Float32, c.x, -1, 1), randHost(rng, dtypes.Float32, c.k, -1, 1)
		if _, err := exec.Exec(hostTensor(x), hostTensor(k)); err != nil {
			t.Fatal(err)
		}
		exec.Finalize()
		e := be.last
		if n := countSteps(e, "Transpose"); n != tc.transposes {
			t.Errorf("%s: %d transposes, want %d:\n%s", tc.name, n, tc.transposes, e.describe())
		}
		if n := countSteps(e, "Reverse"); n != 0 {
			t.Errorf("%s: %d reverses, want 0:\n%s", tc.name, n, e.describe())
		}
		if n := countSteps(e, "ConvGeneral"); n != 3 {
			t.Errorf("%s: %d convolutions, want 3:\n%s", tc.name, n, fmt.Sprint(stepNames(e)))
		}
	}
}

// TestPortableKernelPaths reruns the rewrites' checks (contractions, conv
// layouts, multi-output fusion, transposes) with the portable Go
// micro-kernels, so the non-assembly path stays correct.
func TestPortableKernelPaths(t *testing.T) {
	if err := kernels.SetISA(kernels.ISAGo); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := kernels.SetISA("auto"); err != nil {
			t.Fatal(err)
		}
	}()
	TestContractionRewrite(t)
	TestConvLayoutGradients(t)
	TestMultiFuseOptimizer(t)
	rng := rand.New(rand.NewPCG(55, 56))
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		big := randHost(rng, dt, []int{64, 9, 9, 48}, -5, 5)
		diffTest(t, "Transpose NHWC->CHWN", func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
			return one(b.Transpose(p[0], 3, 1, 2, 0))
		}, tolExact, big)
	}
}
