package cpu

import (
	"errors"
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/notimplemented"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Builder records a computation graph for the CPU backend; Compile turns it
// into an Executable. Ops not implemented by this backend return GoMLX's
// not-implemented error (from the embedded notimplemented.Builder).
type Builder struct {
	notimplemented.Builder

	backend  *Backend
	name     string
	nodes    []*node
	params   []*node
	compiled bool
}

var _ backends.Builder = (*Builder)(nil)

// node is one op of the graph. Nodes are created after their inputs, so the
// nodes slice is in topological order.
type node struct {
	idx     int
	op      backends.OpType
	shape   shapes.Shape
	inputs  []*node
	builder *Builder
	// data holds the op's static parameters (per-op struct).
	data any

	// Multi-output ops: the producer node has outs (one selector node per
	// output) and an invalid shape; each selector has parent and outIdx.
	outs   []*node
	parent *node
	outIdx int
}

func newBuilder(b *Backend, name string) *Builder {
	bld := &Builder{backend: b, name: name}
	bld.Builder.ErrFn = func(op backends.OpType) error {
		return fmt.Errorf("cpu backend: op %s: %w", op, notimplemented.NotImplementedError)
	}
	return bld
}

// Name returns the computation's name.
func (b *Builder) Name() string { return b.name }

func (b *Builder) newNode(op backends.OpType, shape shapes.Shape, data any, inputs ...*node) *node {
	n := &node{idx: len(b.nodes), op: op, shape: shape, inputs: slices.Clone(inputs), builder: b, data: data}
	b.nodes = append(b.nodes, n)
	return n
}

// newMultiNode creates a producer node with one selector node per output shape.
func (b *Builder) newMultiNode(op backends.OpType, outShapes []shapes.Shape, data any, inputs ...*node) *node {
	p := b.newNode(op, shapes.Invalid(), data, inputs...)
	for i, s := range outShapes {
		sel := b.newNode(op, s, nil, p)
		sel.parent = p
		sel.outIdx = i
		p.outs = append(p.outs, sel)
	}
	return p
}

// checkOps converts ops into nodes of this builder, validating them; it
// refuses BFloat16 operands unless op opName is one of bf16Ops.
func (b *Builder) checkOps(opName string, ops ...backends.Op) ([]*node, error) {
	if b.compiled {
		return nil, fmt.Errorf("cpu backend: %s: builder %q was already compiled", opName, b.name)
	}
	nodes := make([]*node, len(ops))
	for i, op := range ops {
		n, ok := op.(*node)
		if !ok || n == nil {
			return nil, fmt.Errorf("cpu backend: %s: operand #%d (%T) is not an op of the cpu backend", opName, i, op)
		}
		if n.builder != b {
			return nil, fmt.Errorf("cpu backend: %s: operand #%d belongs to another builder (%q, not %q)", opName, i, n.builder.name, b.name)
		}
		if len(n.outs) > 0 {
			return nil, fmt.Errorf("cpu backend: %s: operand #%d is a multi-output op, use one of its outputs", opName, i)
		}
		if n.shape.DType == dtypes.BFloat16 && !bf16Ops[opName] {
			return nil, bf16Error(opName)
		}
		nodes[i] = n
	}
	return nodes, nil
}

// OpShape returns the shape of an op.
func (b *Builder) OpShape(op backends.Op) (shapes.Shape, error) {
	n, ok := op.(*node)
	if !ok || n == nil || n.builder != b {
		return shapes.Invalid(), fmt.Errorf("cpu backend: OpShape: %T is not an op of builder %q", op, b.name)
	}
	return n.shape, nil
}

type paramData struct {
	name  string
	index int
}

// Parameter adds an input of the computation; inputs are fed to Execute in
// creation order.
func (b *Builder) Parameter(name string, shape shapes.Shape, sharding *backends.ShardingSpec) (backends.Op, error) {
	if _, err := b.checkOps("Parameter"); err != nil {
		return nil, err
	}
	if sharding != nil {
		return nil, fmt.Errorf("cpu backend: Parameter %q: sharding is not supported", name)
	}
	if !isSupportedDType(shape.DType) {
		return nil, fmt.Errorf("cpu backend: Parameter %q: unsupported dtype in shape %s", name, shape)
	}
	if shape.IsTuple() {
		return nil, fmt.Errorf("cpu backend: Parameter %q: tuple shapes are not supported", name)
	}
	n := b.newNode(backends.OpTypeParameter, shape.Clone(), &paramData{name: name, index: len(b.params)})
	b.params = append(b.params, n)
	return n, nil
}

// Constant adds a constant; flat is copied.
func (b *Builder) Constant(flat any, dims ...int) (backends.Op, error) {
	if _, err := b.checkOps("Constant"); err != nil {
		return nil, err
	}
	dt, n, err := flatDType(flat)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: Constant: %w", err)
	}
	for _, d := range dims {
		if d < 0 {
			return nil, fmt.Errorf("cpu backend: Constant: negative dimension in %v", dims)
		}
	}
	shape := shapes.Make(dt, dims...)
	if shape.Size() != n {
		return nil, fmt.Errorf("cpu backend: Constant: %d values do not fill shape %s", n, shape)
	}
	cp := makeSlice(dt, n)
	copyFlat(cp, flat)
	return b.newNode(backends.OpTypeConstant, shape, cp), nil
}

// Identity returns its operand (compiled to an alias, no copy).
func (b *Builder) Identity(x backends.Op) (backends.Op, error) {
	in, err := b.checkOps("Identity", x)
	if err != nil {
		return nil, err
	}
	return b.newNode(backends.OpTypeIdentity, in[0].shape, nil, in[0]), nil
}

// DistributedSPMD is not supported: the CPU is one device.
func (b *Builder) DistributedSPMD(numDevices int) error {
	if numDevices == 1 {
		return nil
	}
	return fmt.Errorf("cpu backend: distributed execution over %d devices is not supported", numDevices)
}

// DistributedAutoSharding is not supported.
func (b *Builder) DistributedAutoSharding(meshes ...backends.Mesh) error {
	return errors.New("cpu backend: auto-sharding is not supported")
}

// DeviceAssignment accepts only device 0.
func (b *Builder) DeviceAssignment(devices ...backends.DeviceNum) error {
	if len(devices) == 1 && devices[0] == 0 {
		return nil
	}
	return fmt.Errorf("cpu backend: device assignment %v not supported (only device 0)", devices)
}

// Compile compiles the graph computing outputs into an Executable. The
// builder cannot be used afterwards.
func (b *Builder) Compile(outputs []backends.Op, shardings []*backends.ShardingSpec) (backends.Executable, error) {
	if len(shardings) != 0 {
		return nil, errors.New("cpu backend: Compile: sharding is not supported")
	}
	outs, err := b.checkOps("Compile", outputs...)
	if err != nil {
		return nil, err
	}
	b.compiled = true
	exec, err := compile(b, outs)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: compiling %q: %w", b.name, err)
	}
	return exec, nil
}
