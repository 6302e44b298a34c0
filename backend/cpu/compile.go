package cpu

import (
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

// compile turns the builder's graph into an Executable.
func compile(b *Builder, outs []*node) (*Executable, error) {
	if !b.backend.noBNReLU {
		hoistResiduals(b, outs)
		fuseBatchNormReLU(b, outs)
		if !b.backend.noReLUMask {
			fuseReLUMasks(b, outs)
		}
	}
	nodes := b.nodes
	nn := len(nodes)
	e := &Executable{backend: b.backend, name: b.name}
	for _, p := range b.params {
		e.paramNames = append(e.paramNames, p.data.(*paramData).name)
		e.paramShapes = append(e.paramShapes, p.shape)
		e.paramValues = append(e.paramValues, p.idx)
	}

	// Liveness (dead-code elimination) from the outputs backwards.
	live, isOutput, consumers := liveness(nodes, outs)

	// Values and aliases.
	vals := make([]valueInfo, nn)
	for i, n := range nodes {
		v := &vals[i]
		v.root, v.producer, v.lastUse = i, -1, -1
		if !live[i] || len(n.outs) > 0 {
			continue
		}
		v.dtype, v.size = n.shape.DType, n.shape.Size()
		switch n.op {
		case backends.OpTypeParameter:
			v.kind, v.param = vkParam, n.data.(*paramData).index
		case backends.OpTypeConstant:
			v.kind, v.cnst = vkConst, n.data
		case backends.OpTypeIdentity, backends.OpTypeReshape:
			v.kind, v.root = vkAlias, vals[n.inputs[0].idx].root
		default:
			v.kind = vkArena
		}
	}

	// Elementwise fusion: a node joins its consumers' cluster when all its
	// consumers are elementwise members of one cluster with the same dims.
	cluster := make([]int, nn)
	for i := range cluster {
		cluster[i] = -1
	}
	for i := nn - 1; i >= 0; i-- {
		n := nodes[i]
		if !live[i] || !isElementwise(n) {
			continue
		}
		cluster[i] = i
		if isOutput[i] || len(consumers[i]) == 0 {
			continue
		}
		r := -1
		ok := true
		for _, c := range consumers[i] {
			if !isElementwise(c) || cluster[c.idx] < 0 || (r >= 0 && cluster[c.idx] != r) {
				ok = false
				break
			}
			r = cluster[c.idx]
		}
		if ok && slices.Equal(n.shape.Dimensions, nodes[r].shape.Dimensions) {
			cluster[i] = r
			vals[i].kind = vkNone
		}
	}
	// Multi-output fusion: a cluster whose root feeds another cluster of the
	// same dimensions joins it, its root becoming a side output of the
	// merged pass when something else still reads it (or it is an output).
	// The merged step runs at the later root's position, so every outside
	// reader of the side output must come after that root.
	sideOut := make(map[int]bool)
	if !b.backend.noMultiFuse {
		for i := nn - 1; i >= 0; i-- {
			if cluster[i] != i || len(consumers[i]) == 0 {
				continue
			}
			// Candidate clusters, earliest root first: joining an earlier
			// one leaves more readers after it.
			var cands []int
			for _, c := range consumers[i] {
				if r := cluster[c.idx]; isElementwise(c) && r >= 0 && !slices.Contains(cands, r) &&
					slices.Equal(nodes[i].shape.Dimensions, nodes[r].shape.Dimensions) {
					cands = append(cands, r)
				}
			}
			slices.Sort(cands)
			y := -1
			for _, r := range cands {
				ok := true
				for _, c := range consumers[i] {
					if cluster[c.idx] != r && c.idx <= r {
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
			ext := isOutput[i]
			for _, c := range consumers[i] {
				ext = ext || cluster[c.idx] != r
			}
			if ext {
				sideOut[i] = true
			} else {
				vals[i].kind = vkNone
			}
		}
	}
	// Virtual broadcasts: read through by fused consumers, never materialized.
	virtual := make([]bool, nn)
	for i := nn - 1; i >= 0; i-- {
		n := nodes[i]
		if !live[i] || n.op != backends.OpTypeBroadcastInDim || isOutput[i] {
			continue
		}
		ok := true
		for _, c := range consumers[i] {
			if !(isElementwise(c) || virtual[c.idx]) {
				ok = false
				break
			}
		}
		if ok {
			virtual[i] = true
			vals[i].kind = vkNone
		}
	}
	members := make(map[int][]*node)
	for i, n := range nodes {
		if cluster[i] >= 0 {
			members[cluster[i]] = append(members[cluster[i]], n)
		}
	}

	// Steps, in topological order.
	for i, n := range nodes {
		if !live[i] || n.parent != nil {
			continue
		}
		var st *step
		var err error
		switch {
		case n.op == backends.OpTypeParameter || n.op == backends.OpTypeConstant || vals[i].kind == vkAlias:
			continue
		case cluster[i] >= 0:
			if cluster[i] != i {
				continue
			}
			st, err = buildFusedStep(n, members[i], sideOut, virtual, func(v int) int { return vals[v].root })
		case virtual[i]:
			continue
		default:
			lower, ok := lowerings[n.op]
			if !ok {
				return nil, fmt.Errorf("op %s (node #%d) has no kernel", n.op, i)
			}
			var run kernelFn
			run, err = lower(n)
			st = &step{name: n.op.String(), run: run}
			for _, in := range n.inputs {
				st.ins = append(st.ins, in.idx)
			}
			if len(n.outs) > 0 {
				for _, o := range n.outs {
					st.outs = append(st.outs, o.idx)
				}
			} else {
				st.outs = []int{i}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("op %s (node #%d, shape %s): %w", n.op, i, n.shape, err)
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
	endStep := len(e.steps)

	// Outputs: computed values are written straight into the caller's buffer.
	claimed := make(map[int]bool)
	for _, o := range outs {
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
	// Donation candidates for direct outputs.
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

	// Arena slot planning: greedy best fit over the steps, releasing a slot
	// after the last step that reads it.
	var slotWords []int
	var free []int
	alloc := func(nw int) int {
		best := -1
		for j, s := range free {
			if slotWords[s] >= nw && (best < 0 || slotWords[s] < slotWords[free[best]]) {
				best = j
			}
		}
		if best < 0 && len(free) > 0 {
			// Grow the largest free slot rather than adding one.
			for j, s := range free {
				if best < 0 || slotWords[s] > slotWords[free[best]] {
					best = j
				}
			}
			slotWords[free[best]] = nw
		}
		if best >= 0 {
			s := free[best]
			free = slices.Delete(free, best, best+1)
			return s
		}
		slotWords = append(slotWords, nw)
		return len(slotWords) - 1
	}
	released := make([]bool, nn)
	for si, st := range e.steps {
		for _, o := range st.outs {
			v := &vals[o]
			if v.kind != vkArena {
				continue
			}
			nw := words(bytesOf(v.dtype, v.size))
			if nw == 0 {
				v.slot = -1
				continue
			}
			v.slot = -1
			for _, cand := range st.inPlace {
				c := &vals[cand]
				if len(st.outs) == 1 && c.kind == vkArena && c.lastUse == si && c.slot >= 0 && !released[cand] &&
					c.dtype.Size() == v.dtype.Size() && c.size == v.size {
					v.slot = c.slot
					released[cand] = true // ownership moves to the output
					break
				}
			}
			if v.slot < 0 {
				v.slot = alloc(nw)
			}
		}
		for _, in := range st.ins {
			r := vals[in].root
			if vals[r].kind == vkArena && vals[r].lastUse == si && !released[r] && vals[r].slot >= 0 {
				released[r] = true
				free = append(free, vals[r].slot)
			}
		}
		for _, o := range st.outs {
			if vals[o].kind == vkArena && vals[o].lastUse < 0 && !released[o] && vals[o].slot >= 0 {
				released[o] = true
				free = append(free, vals[o].slot)
			}
		}
	}
	e.slotWords = slotWords
	e.values = vals

	for i, v := range vals {
		if v.kind == vkAlias {
			switch vals[v.root].kind {
			case vkParam, vkOutput:
				e.dynAliases = append(e.dynAliases, i)
			}
		}
	}
	return e, nil
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
