package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Finite-difference checks of GoMLX's autodiff running on our backend: the
// gradient graph (convolutions of all layouts, pooling, batch norm) against
// central differences of the float64 forward pass, both on our backend.

// gradCheck checks d loss / d inputs[i] for i < nDiff, where loss is a scalar
// built by lossFn from all inputs.
func gradCheck(t *testing.T, name string, lossFn func(in []*Node) *Node, inputs []*hostT, nDiff int) {
	t.Helper()
	be := mustCPU(t)
	tens := func(hs []*hostT) []any {
		out := make([]any, len(hs))
		for i, h := range hs {
			out[i] = tensors.FromFlatDataAndDimensions(h.flat.([]float64), h.shape.Dimensions...)
		}
		return out
	}
	gradExec, err := NewExec(be, func(in []*Node) []*Node {
		loss := lossFn(in)
		return append([]*Node{loss}, Gradient(loss, in[:nDiff]...)...)
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer gradExec.Finalize()
	outs, err := gradExec.Exec(tens(inputs)...)
	if err != nil {
		if strings.Contains(err.Error(), "failed to set up reverse Convolve") {
			// A limitation of GoMLX's convolution VJP, not of this backend.
			t.Logf("%s: skipped: GoMLX cannot build this gradient: %v", name, err)
			return
		}
		t.Fatalf("%s: gradient graph: %v", name, err)
	}
	fwd, err := NewExec(be, func(in []*Node) *Node { return lossFn(in) })
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer fwd.Finalize()
	eval := func(hs []*hostT) float64 {
		o, err := fwd.Exec(tens(hs)...)
		if err != nil {
			t.Fatalf("%s: forward: %v", name, err)
		}
		return tensors.ToScalar[float64](o[0])
	}
	const h = 1e-5
	for i := range nDiff {
		analytic := tensors.MustCopyFlatData[float64](outs[1+i])
		x := inputs[i].flat.([]float64)
		worst := 0.0
		for j := range x {
			orig := x[j]
			x[j] = orig + h
			fp := eval(inputs)
			x[j] = orig - h
			fm := eval(inputs)
			x[j] = orig
			num := (fp - fm) / (2 * h)
			if d := math.Abs(analytic[j]-num) / (1e-6 + 1e-5*math.Abs(num)); d > worst {
				worst = d
			}
			if math.Abs(analytic[j]-num) > 1e-6+1e-5*math.Abs(num) {
				t.Errorf("%s: d/d input#%d[%d]: autodiff %.10g, finite difference %.10g", name, i, j, analytic[j], num)
				return
			}
		}
	}
}

func TestGradConv(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	gradOnly := []convCase{
		{name: "NHWC stride 2 asym pad (grad)", x: []int{2, 7, 6, 3}, k: []int{3, 3, 3, 2}, axes: axesNHWC, strides: []int{2, 2}, pads: [][2]int{{0, 1}, {2, 1}}},
		{name: "NCDHW 3-D (grad)", x: []int{2, 2, 4, 5, 3}, k: []int{3, 2, 3, 1, 3}, axes: axesNCDHW, pads: [][2]int{{1, 0}, {0, 0}, {1, 1}}},
		{name: "NHWC negative padding (grad)", x: []int{1, 7, 6, 2}, k: []int{3, 3, 2, 3}, axes: axesNHWC, pads: [][2]int{{-1, 0}, {0, -1}}},
		{name: "ResNet stem 7x7 stride 2 pad 3 (grad)", x: []int{1, 9, 9, 2}, k: []int{7, 7, 2, 2}, axes: axesNHWC, strides: []int{2, 2}, pads: [][2]int{{3, 3}, {3, 3}}},
		{name: "1x1 stride 2 projection (grad)", x: []int{2, 2, 5, 5}, k: []int{3, 2, 1, 1}, axes: axesNCHW, strides: []int{2, 2}},
		{name: "NCHW batch groups 3 (grad)", x: []int{6, 2, 5, 5}, k: []int{3, 2, 3, 3}, axes: axesNCHW, bgc: 3, pads: [][2]int{{1, 1}, {1, 1}}},
		{name: "NCHW stride 2 pad 1 (grad)", x: []int{2, 2, 6, 6}, k: []int{3, 2, 3, 3}, axes: axesNCHW, strides: []int{2, 2}, pads: [][2]int{{1, 1}, {1, 1}}},
		{name: "NCHW kernel dilation (grad)", x: []int{2, 2, 9, 8}, k: []int{3, 2, 3, 2}, axes: axesNCHW, kdil: []int{2, 2}},
		{name: "NWC 1-D stride (grad)", x: []int{2, 11, 3}, k: []int{3, 3, 2}, axes: axesNWC, strides: []int{2}, pads: [][2]int{{1, 1}}},
	}
	for _, c := range slices.Concat(convCases, batchGroupCases, gradOnly) {
		if reason := gomlxConvVJPUnsupported(c); reason != "" {
			t.Logf("conv %s: not checked: %s", c.name, reason)
			continue
		}
		x, k := randHost(rng, dtypes.Float64, c.x, -1, 1), randHost(rng, dtypes.Float64, c.k, -1, 1)
		out, err := runRaw(mustCPU(t), c.fn(), x, k)
		if err != nil {
			t.Fatal(err)
		}
		w := randHost(rng, dtypes.Float64, out[0].shape.Dimensions, -1, 1)
		c := c
		gradCheck(t, "conv "+c.name, func(in []*Node) *Node {
			y := ConvGeneral(in[0], in[1], c.axes, c.strides, c.pads, c.idil, c.kdil, max(c.fgc, 1), max(c.bgc, 1))
			return ReduceAllSum(Mul(y, in[2]))
		}, []*hostT{x, k, w}, 2)
	}
}

func TestGradPooling(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	type pc struct {
		dims, win, str []int
		pad            [][2]int
	}
	cases := []pc{
		{[]int{2, 6, 6, 3}, []int{1, 2, 2, 1}, []int{1, 2, 2, 1}, nil},                                      // NHWC 2x2/2
		{[]int{2, 7, 7, 2}, []int{1, 3, 3, 1}, []int{1, 2, 2, 1}, [][2]int{{0, 0}, {1, 1}, {1, 1}, {0, 0}}}, // ResNet stem pool
		{[]int{2, 3, 6, 5}, []int{1, 1, 2, 3}, []int{1, 1, 2, 1}, [][2]int{{0, 0}, {0, 0}, {0, 1}, {1, 1}}}, // NCHW, asymmetric
		{[]int{9}, []int{3}, []int{2}, [][2]int{{1, 0}}},
	}
	for _, c := range cases {
		for _, red := range []backends.ReduceOpType{backends.ReduceOpMax, backends.ReduceOpMin, backends.ReduceOpSum} {
			x := randHost(rng, dtypes.Float64, c.dims, -1, 1)
			out, err := runRaw(mustCPU(t), func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
				return one(b.ReduceWindow(p[0], red, c.win, c.str, nil, nil, c.pad))
			}, x)
			if err != nil {
				t.Fatal(err)
			}
			w := randHost(rng, dtypes.Float64, out[0].shape.Dimensions, -1, 1)
			c, red := c, red
			gradCheck(t, fmt.Sprintf("pool %s %v", red, c), func(in []*Node) *Node {
				y := BackendReduceWindow(in[0], red, c.win, c.str, nil, nil, c.pad)
				return ReduceAllSum(Mul(y, in[1]))
			}, []*hostT{x, w}, 1)
		}
	}
	// GoMLX's pooling layers (mean pooling divides by the window size).
	x := randHost(rng, dtypes.Float64, []int{2, 6, 6, 2}, -1, 1)
	w := randHost(rng, dtypes.Float64, []int{2, 3, 3, 2}, -1, 1)
	gradCheck(t, "MeanPool", func(in []*Node) *Node {
		return ReduceAllSum(Mul(MeanPool(in[0]).Window(2).Done(), in[1]))
	}, []*hostT{x, w}, 1)
	gradCheck(t, "MaxPool", func(in []*Node) *Node {
		return ReduceAllSum(Mul(MaxPool(in[0]).Window(2).Done(), in[1]))
	}, []*hostT{x, w}, 1)
}

func TestGradBatchNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(45, 46))
	for _, c := range []struct {
		dims []int
		axis int
	}{{[]int{4, 3, 5}, 1}, {[]int{6, 4}, 1}, {[]int{2, 3, 3, 4}, 3}, {[]int{3, 2, 2, 2}, 0}} {
		f := c.dims[c.axis]
		x := randHost(rng, dtypes.Float64, c.dims, -2, 2)
		scale := randHost(rng, dtypes.Float64, []int{f}, 0.5, 1.5)
		offset := randHost(rng, dtypes.Float64, []int{f}, -1, 1)
		w := randHost(rng, dtypes.Float64, c.dims, -1, 1)
		c := c
		gradCheck(t, fmt.Sprintf("batch norm %v axis %d", c.dims, c.axis), func(in []*Node) *Node {
			y, _, _ := InternalBatchNormForTraining(in[0], in[1], in[2], 1e-3, c.axis)
			return ReduceAllSum(Mul(y, in[3]))
		}, []*hostT{x, scale, offset, w}, 3)
	}
}

// gomlxConvVJPUnsupported says why GoMLX's convolution VJP (in package graph,
// not this backend) cannot differentiate c, or "" if it can: it defines no
// gradient for input dilation, assumes the output axes are laid out like
// the input's, and centres the reverse convolution, which is only right for
// odd effective kernel sizes (for even ones its gradient is shifted by one).
func gomlxConvVJPUnsupported(c convCase) string {
	if c.idil != nil {
		return "input dilation has no gradient in GoMLX"
	}
	a := c.axes
	if a.OutputBatch != a.InputBatch || a.OutputChannels != a.InputChannels || !slices.Equal(a.OutputSpatial, a.InputSpatial) {
		return "GoMLX's VJP needs the output laid out like the input"
	}
	for s, ax := range a.KernelSpatial {
		d := 1
		if c.kdil != nil {
			d = c.kdil[s]
		}
		if ((c.k[ax]-1)*d+1)%2 == 0 {
			return "GoMLX's VJP mis-centres even effective kernel sizes"
		}
	}
	return ""
}
