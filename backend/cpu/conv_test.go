package cpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// convCase is one ConvGeneral configuration.
type convCase struct {
	name                string
	x, k                []int // operand dimensions
	axes                backends.ConvolveAxesConfig
	strides, idil, kdil []int
	pads                [][2]int
	fgc, bgc            int
}

// Axis configurations.
var (
	axesNHWC = backends.ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}
	axesNCHW = backends.ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
		KernelInputChannels: 1, KernelOutputChannels: 0, KernelSpatial: []int{2, 3},
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: []int{2, 3}}
	axesNWC = backends.ConvolveAxesConfig{InputBatch: 0, InputChannels: 2, InputSpatial: []int{1},
		KernelInputChannels: 1, KernelOutputChannels: 2, KernelSpatial: []int{0},
		OutputBatch: 0, OutputChannels: 2, OutputSpatial: []int{1}}
	axesNCDHW = backends.ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3, 4},
		KernelInputChannels: 1, KernelOutputChannels: 0, KernelSpatial: []int{2, 3, 4},
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: []int{2, 3, 4}}
	// A scrambled layout: input [H, C, N, W], kernel [W, O, H, I], output [C, W, N, H].
	axesOdd = backends.ConvolveAxesConfig{InputBatch: 2, InputChannels: 1, InputSpatial: []int{0, 3},
		KernelInputChannels: 3, KernelOutputChannels: 1, KernelSpatial: []int{2, 0},
		OutputBatch: 2, OutputChannels: 0, OutputSpatial: []int{3, 1}}
)

var convCases = []convCase{
	{name: "NHWC 3x3", x: []int{2, 5, 6, 3}, k: []int{3, 3, 3, 4}, axes: axesNHWC},
	{name: "NHWC 3x3 same", x: []int{2, 5, 6, 3}, k: []int{3, 3, 3, 4}, axes: axesNHWC, pads: [][2]int{{1, 1}, {1, 1}}},
	// Channel counts multiples of 16: the kernel gradient reads x in place
	// (kernels.ConvParams.SwappedInput).
	{name: "NHWC 3x3 same 16ch", x: []int{2, 5, 6, 16}, k: []int{3, 3, 16, 32}, axes: axesNHWC, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "NHWC 3x3 stride 2 16ch", x: []int{3, 7, 6, 16}, k: []int{3, 3, 16, 16}, axes: axesNHWC, strides: []int{2, 2}, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "NHWC stride 2 asym pad", x: []int{2, 7, 6, 3}, k: []int{3, 2, 3, 5}, axes: axesNHWC, strides: []int{2, 2}, pads: [][2]int{{0, 1}, {2, 0}}},
	{name: "NCHW 3x3", x: []int{2, 3, 5, 6}, k: []int{4, 3, 3, 3}, axes: axesNCHW, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "NCHW stride", x: []int{3, 2, 8, 7}, k: []int{4, 2, 3, 3}, axes: axesNCHW, strides: []int{2, 3}, pads: [][2]int{{1, 0}, {1, 2}}},
	{name: "NCHW kernel dilation", x: []int{2, 2, 9, 8}, k: []int{3, 2, 3, 2}, axes: axesNCHW, kdil: []int{2, 3}},
	{name: "NHWC input dilation", x: []int{1, 4, 5, 2}, k: []int{2, 3, 2, 3}, axes: axesNHWC, idil: []int{2, 3}, pads: [][2]int{{1, 1}, {0, 2}}},
	{name: "NHWC 1x1", x: []int{2, 4, 4, 5}, k: []int{1, 1, 5, 6}, axes: axesNHWC},
	{name: "NWC 1-D", x: []int{2, 11, 3}, k: []int{4, 3, 2}, axes: axesNWC, strides: []int{3}, pads: [][2]int{{2, 1}}},
	{name: "NCDHW 3-D", x: []int{2, 2, 4, 5, 3}, k: []int{3, 2, 2, 3, 2}, axes: axesNCDHW, pads: [][2]int{{1, 0}, {1, 1}, {0, 1}}},
	{name: "odd axes", x: []int{6, 3, 2, 5}, k: []int{2, 4, 3, 3}, axes: axesOdd, strides: []int{2, 1}, pads: [][2]int{{1, 1}, {0, 1}}},
	{name: "NHWC feature groups", x: []int{2, 5, 5, 6}, k: []int{3, 3, 2, 9}, axes: axesNHWC, fgc: 3, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "NCHW depthwise", x: []int{2, 4, 6, 6}, k: []int{8, 1, 3, 3}, axes: axesNCHW, fgc: 4, strides: []int{2, 2}},
	{name: "NHWC negative padding", x: []int{1, 6, 6, 2}, k: []int{2, 2, 2, 3}, axes: axesNHWC, pads: [][2]int{{-1, 0}, {0, -2}}},
}

// batchGroupCases are only checked against the reference (simplego's batch
// grouping does not follow XLA's semantics).
var batchGroupCases = []convCase{
	{name: "NHWC batch groups", x: []int{4, 5, 5, 3}, k: []int{3, 3, 3, 6}, axes: axesNHWC, bgc: 2, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "NCHW batch groups 3", x: []int{6, 2, 4, 5}, k: []int{3, 2, 2, 2}, axes: axesNCHW, bgc: 3},
}

func (c convCase) fn() rawFn {
	return func(b backends.Builder, p []backends.Op) ([]backends.Op, error) {
		return one(b.ConvGeneral(p[0], p[1], c.axes, c.strides, c.pads, c.idil, c.kdil, max(c.fgc, 1), max(c.bgc, 1)))
	}
}

// explicit returns c with nil strides, dilations and paddings filled in
// (simplego's shape inference rejects nil strides).
func (c convCase) explicit() convCase {
	ns := len(c.axes.InputSpatial)
	fill := func(v []int) []int {
		if v == nil {
			return slices.Repeat([]int{1}, ns)
		}
		return v
	}
	c.strides, c.idil, c.kdil = fill(c.strides), fill(c.idil), fill(c.kdil)
	if c.pads == nil {
		c.pads = make([][2]int, ns)
	}
	return c
}

func TestConvAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, c := range slices.Concat(convCases, batchGroupCases) {
		for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
			x, k := randHost(rng, dt, c.x, -2, 2), randHost(rng, dt, c.k, -2, 2)
			got, err := runRaw(mustCPU(t), c.fn(), x, k)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			want := refConv(c, x, k)
			if err := compareHost(got[0], want, tolFor(dt, true)); err != nil {
				t.Errorf("%s %s: %v", c.name, dt, err)
			}
		}
	}
}

func TestDiffConv(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, c := range convCases {
		x, k := randHost(rng, dtypes.Float32, c.x, -2, 2), randHost(rng, dtypes.Float32, c.k, -2, 2)
		diffTest(t, "ConvGeneral "+c.name, c.explicit().fn(), tolAcc32, x, k)
	}
}

// refConv is a direct implementation of XLA's ConvGeneralDilated (StableHLO
// convolution) semantics, in float64.
func refConv(c convCase, x, k *hostT) *hostT {
	ax := c.axes
	ns := len(ax.InputSpatial)
	get := func(v []int, i, def int) int {
		if v == nil {
			return def
		}
		return v[i]
	}
	fgc, bgc := max(c.fgc, 1), max(c.bgc, 1)
	xd, kd := x.shape.Dimensions, k.shape.Dimensions
	N, C, O := xd[ax.InputBatch], xd[ax.InputChannels], kd[ax.KernelOutputChannels]
	cg := C / fgc
	outDims := make([]int, len(xd))
	outDims[ax.OutputBatch] = N / bgc
	outDims[ax.OutputChannels] = O
	for s := range ns {
		in := (xd[ax.InputSpatial[s]]-1)*get(c.idil, s, 1) + 1
		kk := (kd[ax.KernelSpatial[s]]-1)*get(c.kdil, s, 1) + 1
		lo, hi := 0, 0
		if c.pads != nil {
			lo, hi = c.pads[s][0], c.pads[s][1]
		}
		outDims[ax.OutputSpatial[s]] = (in+lo+hi-kk)/get(c.strides, s, 1) + 1
	}
	xs, ks := rowMajorStrides(xd), rowMajorStrides(kd)
	out := make([]float64, sizeOf(outDims))
	oIdx := make([]int, len(outDims))
	kIdx := make([]int, ns)
	for o := range out {
		rem := o
		for a := len(outDims) - 1; a >= 0; a-- {
			oIdx[a] = rem % outDims[a]
			rem /= outDims[a]
		}
		oc := oIdx[ax.OutputChannels]
		batch := oIdx[ax.OutputBatch]
		if bgc > 1 {
			batch += (oc / (O / bgc)) * (N / bgc)
		}
		fg := oc / (O / fgc)
		var acc float64
		for kp := range sizeOf(gatherDims(kd, ax.KernelSpatial)) {
			rem := kp
			for s := ns - 1; s >= 0; s-- {
				kIdx[s] = rem % kd[ax.KernelSpatial[s]]
				rem /= kd[ax.KernelSpatial[s]]
			}
			xo, ko, ok := batch*xs[ax.InputBatch], oc*ks[ax.KernelOutputChannels], true
			for s := range ns {
				lo := 0
				if c.pads != nil {
					lo = c.pads[s][0]
				}
				pos := oIdx[ax.OutputSpatial[s]]*get(c.strides, s, 1) + kIdx[s]*get(c.kdil, s, 1) - lo
				id := get(c.idil, s, 1)
				if pos < 0 || pos%id != 0 || pos/id >= xd[ax.InputSpatial[s]] {
					ok = false
					break
				}
				xo += pos / id * xs[ax.InputSpatial[s]]
				ko += kIdx[s] * ks[ax.KernelSpatial[s]]
			}
			if !ok {
				continue
			}
			for ci := range cg {
				acc += scalarAsFloat64(x.flat, xo+(fg*cg+ci)*xs[ax.InputChannels]) *
					scalarAsFloat64(k.flat, ko+ci*ks[ax.KernelInputChannels])
			}
		}
		out[o] = acc
	}
	res := &hostT{shapes.Make(x.shape.DType, outDims...), makeSlice(x.shape.DType, len(out))}
	for i, v := range out {
		setFromFloat(res.flat, i, v, nil)
	}
	return res
}

func gatherDims(dims, axes []int) []int {
	out := make([]int, len(axes))
	for i, a := range axes {
		out[i] = dims[a]
	}
	return out
}

// TestConvRandomConfigs checks random 1-D and 2-D configurations (strides,
// negative and asymmetric paddings, input and kernel dilations, groups)
// against the reference.
func TestConvRandomConfigs(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	checked := 0
	for checked < 60 {
		ns := 1 + rng.IntN(2)
		c := convCase{fgc: 1, bgc: 1}
		groups := 1 + rng.IntN(2)
		if rng.IntN(2) == 0 {
			c.fgc = groups
		} else {
			c.bgc = groups
		}
		cin := c.fgc * (1 + rng.IntN(3))
		cout := groups * (1 + rng.IntN(3))
		n := c.bgc * (1 + rng.IntN(2))
		c.x = []int{n}
		c.k = nil
		var ks []int
		for range ns {
			c.x = append(c.x, 1+rng.IntN(7))
			ks = append(ks, 1+rng.IntN(3))
			c.strides = append(c.strides, 1+rng.IntN(3))
			c.idil = append(c.idil, 1+rng.IntN(2))
			c.kdil = append(c.kdil, 1+rng.IntN(2))
			c.pads = append(c.pads, [2]int{rng.IntN(4) - 1, rng.IntN(4) - 1})
		}
		c.x = append(c.x, cin)
		c.k = append(ks, cin/c.fgc, cout)
		if ns == 1 {
			c.axes = axesNWC
		} else {
			c.axes = axesNHWC
		}
		// Skip configurations without output.
		ok := true
		for s := range ns {
			in := (c.x[1+s]-1)*c.idil[s] + 1 + c.pads[s][0] + c.pads[s][1]
			if in < (ks[s]-1)*c.kdil[s]+1 {
				ok = false
			}
		}
		if !ok {
			continue
		}
		checked++
		c.name = fmt.Sprintf("%+v", c)
		x, k := randHost(rng, dtypes.Float64, c.x, -2, 2), randHost(rng, dtypes.Float64, c.k, -2, 2)
		got, err := runRaw(mustCPU(t), c.fn(), x, k)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := compareHost(got[0], refConv(c, x, k), tolAcc64); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
