package cpu

import (
	"errors"
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// kernelFn runs one compiled step: ins and outs are typed flat slices (one per
// step input/output value), outs to be fully overwritten.
type kernelFn func(ins, outs []any)

// lowerFn builds the kernel of a (non-fused) node, with all shape-dependent
// parameters precomputed. For multi-output ops it is called on the producer
// node and its kernel writes one out per selector.
type lowerFn func(n *node) (kernelFn, error)

// lowerings is the registry of op lowerings, filled by each op family's init.
var lowerings = map[backends.OpType]lowerFn{}

func registerLowering(fn lowerFn, ops ...backends.OpType) {
	for _, op := range ops {
		lowerings[op] = fn
	}
}

// valueKind says where a value's storage comes from.
type valueKind int

const (
	vkNone   valueKind = iota // not computed (dead, or a multi-output producer)
	vkArena                   // an arena slot, planned at compile time
	vkParam                   // an input buffer
	vkConst                   // constant data owned by the executable
	vkAlias                   // same storage as another value (reshape, identity)
	vkOutput                  // a fresh (or donated) buffer returned to the caller
)

type valueInfo struct {
	kind  valueKind
	dtype dtypes.DType
	size  int
	// root is the value owning the storage (itself unless vkAlias).
	root  int
	param int
	cnst  any
	slot  int
	// step producing the value (-1 for params/consts); lastUse is the last
	// step reading it (len(steps) for end-of-run copies), for root values.
	producer, lastUse int
}

// step is one unit of execution.
type step struct {
	name string
	ins  []int
	outs []int
	run  kernelFn
	// inPlace lists the input values (roots) this step may overwrite with its
	// single output: elementwise steps reading them only at the same index.
	inPlace []int
	// fused is the program of a fused elementwise step (nil otherwise).
	fused *fusedProg
}

// outputPlan says how output i is produced.
type outputPlan struct {
	value int
	shape shapes.Shape
	// direct outputs are computed into an external buffer; others are copied
	// (or, for donated parameters, handed over) at the end.
	direct bool
	// donors are parameter values whose buffer, if donated, may hold this
	// output (same dtype and size, dead by the time it is written).
	donors []int
}

// compiler holds the state shared by the passes of compile.
type compiler struct {
	b     *Builder
	e     *Executable
	nodes []*node
	outs  []*node

	// From liveness.
	live, isOutput []bool
	consumers      [][]*node
	// vals describes every node's value (indexed like nodes).
	vals []valueInfo

	// From the fusion passes: cluster[i] is the root of node i's elementwise
	// cluster (-1 if none), members lists each root's nodes; sideOut marks
	// non-root members that a merged cluster also writes out; virtual marks
	// broadcasts read through by fused consumers, never materialized.
	cluster []int
	members map[int][]*node
	sideOut map[int]bool
	virtual []bool
}

// compile turns the builder's graph into an Executable. It runs these
// passes in order, each described on its function:
//
//  1. rewriteBatchNorm: graph rewrites around batch norm (residual
//     hoisting, batch norm + ReLU fusion, ReLU masks).
//  2. eliminateDeadCode: liveness from the outputs, node consumers.
//  3. resolveValues: storage kind of every value; Reshape and Identity
//     become aliases.
//  4. clusterElementwise, mergeClusters, markVirtualBroadcasts:
//     elementwise fusion.
//  5. buildSteps: one step per fused cluster or lowered op, in
//     topological order, with each value's producer and last use.
//  6. planOutputs: which outputs are written straight into the caller's
//     buffers.
//  7. matchDonors: which donated inputs may hold each direct output.
//  8. planArena: arena slots for the intermediate values.
//  9. collectDynAliases: aliases of inputs and outputs, bound per call.
//
// DotGeneral and ConvGeneral layouts and the contraction rewrite
// (contract.go) are applied earlier, when the Builder records the ops.
func compile(b *Builder, outs []*node) (*Executable, error) {
	c := &compiler{b: b, outs: outs, sideOut: make(map[int]bool)}
	c.rewriteBatchNorm()
	c.nodes = b.nodes // after the rewrites, which may reorder or add nodes
	c.e = newExecutable(b)
	c.eliminateDeadCode()
	c.resolveValues()
	c.clusterElementwise()
	if !b.backend.noMultiFuse {
		c.mergeClusters()
	}
	c.markVirtualBroadcasts()
	if err := c.buildSteps(); err != nil {
		return nil, err
	}
	c.planOutputs()
	c.matchDonors()
	c.planArena()
	c.e.values = c.vals
	c.collectDynAliases()
	return c.e, nil
}

// newExecutable returns an Executable with b's parameters and no steps.
func newExecutable(b *Builder) *Executable {
	e := &Executable{backend: b.backend, name: b.name}
	for _, p := range b.params {
		e.paramNames = append(e.paramNames, p.data.(*paramData).name)
		e.paramShapes = append(e.paramShapes, p.shape)
		e.paramValues = append(e.paramValues, p.idx)
	}
	return e
}

// rewriteBatchNorm applies the batch-norm graph rewrites of bnfuse.go
// (unless disabled by the backend's options): a residual added late is
// moved before the batch norm it can fuse with, batch norm + ReLU (and
// residual add + ReLU) become one op, and the ReLU gradient before a
// batch-norm gradient reads a ReLU mask.
func (c *compiler) rewriteBatchNorm() {
	if c.b.backend.noBNReLU {
		return
	}
	hoistResiduals(c.b, c.outs)
	fuseBatchNormReLU(c.b, c.outs)
	if !c.b.backend.noReLUMask {
		fuseReLUMasks(c.b, c.outs)
	}
}

// eliminateDeadCode finds the nodes the outputs depend on, which nodes are
// outputs and each node's live consumers (see liveness).
func (c *compiler) eliminateDeadCode() {
	c.live, c.isOutput, c.consumers = liveness(c.nodes, c.outs)
}

// resolveValues sets the storage kind of every live value: parameters and
// constants are used in place, Reshape and Identity alias their input's
// storage (no copy), every other value is computed into an arena slot
// (some are later fused away, written to outputs or never materialized).
// Dead values and multi-output producers get no storage.
func (c *compiler) resolveValues() {
	c.vals = make([]valueInfo, len(c.nodes))
	for i, n := range c.nodes {
		v := &c.vals[i]
		v.root, v.producer, v.lastUse = i, -1, -1
		if !c.live[i] || len(n.outs) > 0 {
			continue
		}
		v.dtype, v.size = n.shape.DType, n.shape.Size()
		switch n.op {
		case backends.OpTypeParameter:
			v.kind, v.param = vkParam, n.data.(*paramData).index
		case backends.OpTypeConstant:
			v.kind, v.cnst = vkConst, n.data
		case backends.OpTypeIdentity, backends.OpTypeReshape:
			v.kind, v.root = vkAlias, c.vals[n.inputs[0].idx].root
		default:
			v.kind = vkArena
		}
	}
}

// clusterElementwise groups elementwise ops into clusters fused into one
// pass: walking backwards, a node joins its consumers' cluster when all its
// consumers are elementwise members of one cluster with the same
// dimensions (and it is not an output); its value is then never stored.
func (c *compiler) clusterElementwise() {
	nodes, vals := c.nodes, c.vals
	c.cluster = make([]int, len(nodes))
	cluster := c.cluster
	for i := range cluster {
		cluster[i] = -1
	}
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if !c.live[i] || !isElementwise(n) {
			continue
		}
		cluster[i] = i
		if c.isOutput[i] || len(c.consumers[i]) == 0 {
			continue
		}
		r := -1
		ok := true
		for _, cn := range c.consumers[i] {
			if !isElementwise(cn) || cluster[cn.idx] < 0 || (r >= 0 && cluster[cn.idx] != r) {
				ok = false
				break
			}
			r = cluster[cn.idx]
		}
		if ok && slices.Equal(n.shape.Dimensions, nodes[r].shape.Dimensions) {
			cluster[i] = r
			vals[i].kind = vkNone
		}
	}
}

// mergeClusters is multi-output fusion: a cluster whose root feeds another
// cluster of the same dimensions joins it, its root becoming a side output
// of the merged pass when something else still reads it (or it is an
// output). The merged step runs at the later root's position, so every
// outside reader of the side output must come after that root.
func (c *compiler) mergeClusters() {
	nodes, vals, cluster, consumers := c.nodes, c.vals, c.cluster, c.consumers
	for i := len(nodes) - 1; i >= 0; i-- {
		if cluster[i] != i || len(consumers[i]) == 0 {
			continue
		}
		// Candidate clusters, earliest root first: joining an earlier one
		// leaves more readers after it.
		var cands []int
		for _, cn := range consumers[i] {
			if r := cluster[cn.idx]; isElementwise(cn) && r >= 0 && !slices.Contains(cands, r) &&
				slices.Equal(nodes[i].shape.Dimensions, nodes[r].shape.Dimensions) {
				cands = append(cands, r)
			}
		}
		slices.Sort(cands)
		y := -1
		for _, r := range cands {
			ok := true
			for _, cn := range consumers[i] {
				if cluster[cn.idx] != r && cn.idx <= r {
					ok = false
					break
				}
			}
			if ok {
				y = r
				break
			}
		}
		if y < 0 {
			continue
		}
		for j := range cluster {
			if cluster[j] == i {
				cluster[j] = y
			}
		}
	}
	for i := range nodes {
		r := cluster[i]
		if r < 0 || r == i || vals[i].kind == vkNone {
			continue
		}
		ext := c.isOutput[i]
		for _, cn := range consumers[i] {
			ext = ext || cluster[cn.idx] != r
		}
		if ext {
			c.sideOut[i] = true
		} else {
			vals[i].kind = vkNone
		}
	}
}

// markVirtualBroadcasts marks the BroadcastInDim nodes read only by
// elementwise ops (or by other virtual broadcasts): fused passes read
// through them with strides, so they are never materialized. It also
// collects each cluster's members, in topological order.
func (c *compiler) markVirtualBroadcasts() {
	nodes := c.nodes
	c.virtual = make([]bool, len(nodes))
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if !c.live[i] || n.op != backends.OpTypeBroadcastInDim || c.isOutput[i] {
			continue
		}
		ok := true
		for _, cn := range c.consumers[i] {
			if !(isElementwise(cn) || c.virtual[cn.idx]) {
				ok = false
				break
			}
		}
		if ok {
			c.virtual[i] = true
			c.vals[i].kind = vkNone
		}
	}
	c.members = make(map[int][]*node)
	for i, n := range nodes {
		if c.cluster[i] >= 0 {
			c.members[c.cluster[i]] = append(c.members[c.cluster[i]], n)
		}
	}
}

// buildSteps creates the steps in topological order: one per cluster root
// (a fused pass) and one per other computed op (its lowered kernel).
// Parameters, constants, aliases, fused members and virtual broadcasts get
// no step. It records each value's producing step and, for storage roots,
// the last step reading them.
func (c *compiler) buildSteps() error {
	e, vals := c.e, c.vals
	for i, n := range c.nodes {
		if !c.live[i] || n.parent != nil {
			continue
		}
		var st *step
		var err error
		switch {
		case n.op == backends.OpTypeParameter || n.op == backends.OpTypeConstant || vals[i].kind == vkAlias:
			continue
		case c.cluster[i] >= 0:
			if c.cluster[i] != i {
				continue
			}
			st, err = buildFusedStep(n, c.members[i], c.sideOut, c.virtual, func(v int) int { return vals[v].root })
		case c.virtual[i]:
			continue
		default:
			st, err = lowerStep(n)
		}
		if err != nil {
			return fmt.Errorf("op %s (node #%d, shape %s): %w", n.op, i, n.shape, err)
		}
		si := len(e.steps)
		for _, o := range st.outs {
			vals[o].producer = si
		}
		for _, in := range st.ins {
			r := vals[in].root
			vals[r].lastUse = max(vals[r].lastUse, si)
		}
		e.steps = append(e.steps, *st)
	}
	return nil
}

// lowerStep returns the step running the kernel of a non-fused op n: its
// inputs are n's inputs, its outputs n itself or, for a multi-output op,
// its per-output selector nodes.
func lowerStep(n *node) (*step, error) {
	lower, ok := lowerings[n.op]
	if !ok {
		return nil, errors.New("no kernel")
	}
	run, err := lower(n)
	if err != nil {
		return nil, err
	}
	st := &step{name: n.op.String(), run: run}
	for _, in := range n.inputs {
		st.ins = append(st.ins, in.idx)
	}
	if len(n.outs) > 0 {
		for _, o := range n.outs {
			st.outs = append(st.outs, o.idx)
		}
	} else {
		st.outs = []int{n.idx}
	}
	return st, nil
}

// planOutputs decides how each output is produced. The first output
// reading a computed (arena) value gets that value written straight into
// its buffer (the value becomes vkOutput); other outputs (parameters,
// constants, a value returned twice) are copied at the end of the run, so
// their storage lives until then.
func (c *compiler) planOutputs() {
	e, vals := c.e, c.vals
	endStep := len(e.steps)
	claimed := make(map[int]bool)
	for _, o := range c.outs {
		r := vals[o.idx].root
		plan := outputPlan{value: o.idx, shape: o.shape}
		if vals[r].kind == vkArena && !claimed[r] {
			claimed[r] = true
			vals[r].kind = vkOutput
			plan.direct = true
		} else {
			vals[r].lastUse = endStep
		}
		e.outputs = append(e.outputs, plan)
	}
}

// matchDonors lists, for each direct output, the parameters whose buffer,
// when donated, may hold it: same dtype and size, and not read after the
// output's producing step starts writing (read last before it, or by it
// only in place at the same index).
func (c *compiler) matchDonors() {
	e, vals := c.e, c.vals
	for oi := range e.outputs {
		plan := &e.outputs[oi]
		if !plan.direct {
			continue
		}
		r := vals[plan.value].root
		ps := vals[r].producer
		for _, pv := range e.paramValues {
			p := vals[pv]
			if p.kind != vkParam || p.dtype != vals[r].dtype || p.size != vals[r].size {
				continue
			}
			if p.lastUse < ps || (p.lastUse == ps && slices.Contains(e.steps[ps].inPlace, pv)) {
				plan.donors = append(plan.donors, pv)
			}
		}
	}
}

// planArena assigns arena slots to the intermediate (vkArena) values:
// walking the steps in order, an output takes over the slot of an input
// it may overwrite in place (same element size and count, last read by
// this step), else the best-fitting free slot (see slotAllocator); a slot
// is freed after the last step reading its value.
func (c *compiler) planArena() {
	e, vals := c.e, c.vals
	var sa slotAllocator
	released := make([]bool, len(c.nodes))
	for si, st := range e.steps {
		for _, o := range st.outs {
			v := &vals[o]
			if v.kind != vkArena {
				continue
			}
			nw := words(bytesOf(v.dtype, v.size))
			v.slot = -1
			if nw == 0 {
				continue
			}
			for _, cand := range st.inPlace {
				cv := &vals[cand]
				if len(st.outs) == 1 && cv.kind == vkArena && cv.lastUse == si && cv.slot >= 0 && !released[cand] &&
					cv.dtype.Size() == v.dtype.Size() && cv.size == v.size {
					v.slot = cv.slot
					released[cand] = true // ownership moves to the output
					break
				}
			}
			if v.slot < 0 {
				v.slot = sa.alloc(nw)
			}
		}
		for _, in := range st.ins {
			r := vals[in].root
			if vals[r].kind == vkArena && vals[r].lastUse == si && !released[r] && vals[r].slot >= 0 {
				released[r] = true
				sa.release(vals[r].slot)
			}
		}
		for _, o := range st.outs {
			if vals[o].kind == vkArena && vals[o].lastUse < 0 && !released[o] && vals[o].slot >= 0 {
				released[o] = true
				sa.release(vals[o].slot)
			}
		}
	}
	e.slotWords = sa.words
}

// slotAllocator hands out arena slots (sizes in 8-byte words), greedy best
// fit over the free slots.
type slotAllocator struct {
	words []int // size of each slot
	free  []int // free slots
}

// alloc returns a slot of at least nw words: the smallest free one that
// fits, else the largest free one grown to nw words, else a new one.
func (sa *slotAllocator) alloc(nw int) int {
	best := -1
	for j, s := range sa.free {
		if sa.words[s] >= nw && (best < 0 || sa.words[s] < sa.words[sa.free[best]]) {
			best = j
		}
	}
	if best < 0 && len(sa.free) > 0 {
		// Grow the largest free slot rather than adding one.
		for j, s := range sa.free {
			if best < 0 || sa.words[s] > sa.words[sa.free[best]] {
				best = j
			}
		}
		sa.words[sa.free[best]] = nw
	}
	if best >= 0 {
		s := sa.free[best]
		sa.free = slices.Delete(sa.free, best, best+1)
		return s
	}
	sa.words = append(sa.words, nw)
	return len(sa.words) - 1
}

// release returns slot s to the free list.
func (sa *slotAllocator) release(s int) { sa.free = append(sa.free, s) }

// collectDynAliases lists the aliases of parameters and direct outputs:
// their storage is only known per call, so Execute binds them then.
func (c *compiler) collectDynAliases() {
	for i, v := range c.vals {
		if v.kind == vkAlias {
			switch c.vals[v.root].kind {
			case vkParam, vkOutput:
				c.e.dynAliases = append(c.e.dynAliases, i)
			}
		}
	}
}

// rowMajorStrides returns the element strides of a row-major layout.
func rowMajorStrides(dims []int) []int {
	s := make([]int, len(dims))
	acc := 1
	for k := len(dims) - 1; k >= 0; k-- {
		s[k] = acc
		acc *= dims[k]
	}
	return s
}

// sizeOf returns the number of elements of dims.
func sizeOf(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// liveness marks the nodes that the outputs outs depend on (dead-code
// elimination: every output of a multi-output op counts as live), which nodes
// are outputs, and, for each node, its live consumers (ops that read it as an
// input; the per-output children of multi-output ops are not consumers).
func liveness(nodes, outs []*node) (live, isOutput []bool, consumers [][]*node) {
	nn := len(nodes)
	live = make([]bool, nn)
	isOutput = make([]bool, nn)
	var mark func(n *node)
	mark = func(n *node) {
		if live[n.idx] {
			return
		}
		live[n.idx] = true
		if n.parent != nil {
			mark(n.parent)
		}
		for _, o := range n.outs {
			mark(o) // all outputs of a multi-output op get storage
		}
		for _, in := range n.inputs {
			mark(in)
		}
	}
	for _, o := range outs {
		mark(o)
		isOutput[o.idx] = true
	}
	consumers = make([][]*node, nn)
	for _, n := range nodes {
		if !live[n.idx] || n.parent != nil {
			continue
		}
		for _, in := range n.inputs {
			consumers[in.idx] = append(consumers[in.idx], n)
		}
	}
	return live, isOutput, consumers
}
