package cpu

import (
	"math"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/sgt-dev/sgt/backend/kernels"
)

// Batch norm + ReLU fusion (option "nobnrelu" switches it off).
//
// Forward: Max(bn, 0), with bn the normalized output of a
// BatchNormForTraining, becomes a fourth output of the batch-norm step
// (kernels.BatchNormTraining with a ReLU epilogue writes the ReLU's output
// and keeps its input in the same pass), so the separate ReLU pass, which
// read bn back from memory, disappears. bn keeps its value: GoMLX's ReLU
// gradient reads it. Likewise the residual Max(Add(bn, r), 0), when the Add
// is bn's only reader (an epilogue with the residual r): bn's storage then
// holds the sum, and the Add becomes an alias of it.
//
// Inference: Max(bn, 0), with bn a BatchNormForInference read by nothing
// else, is computed by the batch norm (a ReLU epilogue) and the Max becomes
// an alias of it.
//
// Backward: BatchNormGradient whose gradOut is GoMLX's ReLU gradient,
// Mul(v, Sign(Add(Sign(a - 0), 1))), read by nothing else, takes v and a
// instead and applies the mask inside both of its passes
// (kernels.BatchNormReLUGrad, GoMLX's rule: v where a >= 0, 0 where a < 0,
// NaN where a is NaN), so the masking pass disappears.
//
// ReLU masks: when the ReLU input a fused training batch norm keeps (its
// first output) is read only as the mask of fused batch-norm gradients
// (directly, or through the identity the residual add became), it is
// replaced by a ReLU mask (kernels.ReLUMaskBytes: two bitmaps, 1/32 of its
// size): the forward pass no longer writes a full tensor that the backward
// pass reads twice (the Mask of kernels.BatchNormEpilogue and of
// kernels.BatchNormReLUGrad). This needs float32 data, channels-last.
//
// Values equal the unfused graph's except for the sign of zero (the
// kernels' ReLU keeps -0 where Go's max gives +0; the masked gradient is +0
// where v * 0 is -0) and, where a < 0 and v is infinite, 0 instead of
// v * 0 = NaN.

// fuseBatchNormReLU rewrites b's graph in place (before compilation) as
// described above, for the nodes reachable from outs.
func fuseBatchNormReLU(b *Builder, outs []*node) {
	nn := len(b.nodes)
	live, isOutput, consumers := liveness(b.nodes, outs)

	for _, n := range b.nodes[:nn] {
		if !live[n.idx] || n.parent != nil {
			continue
		}
		switch n.op {
		case backends.OpTypeBatchNormForTraining:
			if d := n.data.(*bnData); !d.relu && !d.addReLU {
				fuseBatchNormReLUForward(n, consumers, isOutput)
			}
		case backends.OpTypeBatchNormForInference:
			d := n.data.(*bnData)
			cs := consumers[n.idx]
			if d.relu || isOutput[n.idx] || len(cs) != 1 || cs[0].op != backends.OpTypeMax || !cs[0].shape.Equal(n.shape) {
				continue
			}
			m := cs[0]
			other := m.inputs[0]
			if other == n {
				other = m.inputs[1]
			}
			if other == n || !isZeroConstant(other) {
				continue
			}
			// The batch norm applies the ReLU; the Max becomes its alias.
			nd := *d
			nd.relu = true
			n.data = &nd
			m.op, m.inputs = backends.OpTypeIdentity, []*node{n}
		case backends.OpTypeBatchNormGradient:
			d := n.data.(*bnData)
			m := n.inputs[4]
			if d.reluPre || m.op != backends.OpTypeMul || isOutput[m.idx] || len(consumers[m.idx]) != 1 {
				continue
			}
			for k := range 2 {
				v, a := m.inputs[k], reluMaskInput(m.inputs[1-k])
				if a == nil || !v.shape.Equal(m.shape) || !a.shape.Equal(m.shape) {
					continue
				}
				nd := *d
				nd.reluPre = true
				n.data = &nd
				n.inputs = append(n.inputs[:4:4], v, a)
				break
			}
		}
	}
}

// hoistResiduals reorders b's graph so that fuseBatchNormReLUForward can
// take a residual add into the batch norm it follows: for every training
// batch norm n whose normalized output is read only by Add(bn, r) with r
// created after n (a shortcut built after the residual branch), the nodes r
// is computed from that come after n move to just before n, when none of
// them depends on n. Only the order of independent nodes changes.
func hoistResiduals(b *Builder, outs []*node) {
	_, _, consumers := liveness(b.nodes, outs)
	type pair struct{ n, r *node }
	var pairs []pair
	for _, n := range b.nodes {
		if n.op != backends.OpTypeBatchNormForTraining || n.parent != nil || len(n.outs) == 0 {
			continue
		}
		bn := n.outs[0]
		cs := consumers[bn.idx]
		if len(cs) != 1 || cs[0].op != backends.OpTypeAdd {
			continue
		}
		r := cs[0].inputs[0]
		if r == bn {
			r = cs[0].inputs[1]
		}
		if r != bn && r.idx > n.idx {
			pairs = append(pairs, pair{n, r})
		}
	}
	for _, p := range pairs {
		n, r := p.n, p.r
		if r.idx < n.idx {
			continue // an earlier move already put it first
		}
		// The nodes after n that r is computed from.
		cone := map[*node]bool{}
		dependsOnN := false
		var visit func(x *node)
		visit = func(x *node) {
			if x == n {
				dependsOnN = true
			}
			if dependsOnN || x.idx < n.idx || cone[x] {
				return
			}
			cone[x] = true
			if x.parent != nil {
				visit(x.parent)
			}
			for _, in := range x.inputs {
				visit(in)
			}
		}
		visit(r)
		if dependsOnN {
			continue
		}
		moved := make([]*node, 0, len(b.nodes))
		moved = append(moved, b.nodes[:n.idx]...)
		for _, x := range b.nodes[n.idx:] {
			if cone[x] {
				moved = append(moved, x)
			}
		}
		for _, x := range b.nodes[n.idx:] {
			if !cone[x] {
				moved = append(moved, x)
			}
		}
		for i, x := range moved {
			x.idx = i
		}
		b.nodes = moved
	}
}

// fuseReLUMasks replaces, where it can, the ReLU inputs kept for fused
// batch-norm gradients by ReLU masks (see above). It runs after
// fuseBatchNormReLU. A kept input may be read, besides by fused gradients,
// by GoMLX's ReLU-gradient pattern Mul(v, ind(a)) when the product feeds a
// batch-norm gradient and also other ops (a residual block's shortcut):
// that gradient then applies the mask itself and writes the product as a
// fourth output, which the other readers take.
func fuseReLUMasks(b *Builder, outs []*node) {
	live, isOutput, consumers := liveness(b.nodes, outs)
	for _, n := range b.nodes {
		if !live[n.idx] || n.parent != nil || n.op != backends.OpTypeBatchNormForTraining {
			continue
		}
		d := n.data.(*bnData)
		pre := n.outs[0]
		if !(d.relu || d.addReLU) || d.mask || pre.shape.DType != dtypes.Float32 || isOutput[pre.idx] ||
			d.layout.Inner != 1 || d.layout.Features%8 != 0 {
			continue
		}
		var grads []*node
		var products []reluGrad
		ok := true
		var visit func(a *node)
		visit = func(a *node) {
			for _, c := range consumers[a.idx] {
				switch {
				case c.op == backends.OpTypeIdentity && !isOutput[c.idx]:
					visit(c)
				case c.op == backends.OpTypeBatchNormGradient && c.data.(*bnData).reluPre && c.inputs[5] == a &&
					!slices.Contains(c.inputs[:5], a) && c.inputs[0].shape.Equal(n.inputs[0].shape):
					grads = append(grads, c)
				default:
					pr, found := reluGradProduct(c, a, n, consumers, isOutput)
					if !found {
						ok = false
						continue
					}
					products = append(products, pr)
				}
			}
		}
		visit(pre)
		if !ok || len(grads)+len(products) == 0 {
			continue
		}
		nd := *d
		nd.mask = true
		n.data = &nd
		pre.shape = shapes.Make(dtypes.Uint8, kernels.ReLUMaskBytes(pre.shape.Size()))
		for _, g := range grads {
			gd := *g.data.(*bnData)
			gd.mask = true
			g.data = &gd
			g.inputs[5] = pre
		}
		for _, pr := range products {
			g, m := pr.g, pr.m
			gd := *g.data.(*bnData)
			gd.reluPre, gd.mask = true, true
			g.data = &gd
			g.inputs = append(g.inputs[:4:4], pr.v, pre)
			m.op, m.inputs, m.data = g.op, []*node{g}, nil
			m.parent, m.outIdx = g, len(g.outs)
			g.outs = append(g.outs, m)
		}
	}
}

// reluGrad is GoMLX's ReLU gradient m = Mul(v, ind(a)) read, as its output
// gradient, by the batch-norm gradient g.
type reluGrad struct{ g, m, v *node }

// reluGradProduct reports whether c, a reader of the ReLU input a kept by
// the training batch norm n, starts GoMLX's ReLU gradient Mul(v, ind(a))
// (through nodes read by nothing else) whose product m feeds, as its output
// gradient, a batch-norm gradient g of n's operand shape that can apply the mask
// and write m: m is not an output and every other reader of m comes after
// g.
func reluGradProduct(c, a, n *node, consumers [][]*node, isOutput []bool) (pr reluGrad, ok bool) {
	x := c
	for range 4 {
		if isOutput[x.idx] || len(consumers[x.idx]) != 1 {
			return pr, false
		}
		x = consumers[x.idx][0]
		if x.op == backends.OpTypeMul {
			break
		}
	}
	xs := n.inputs[0].shape
	if x.op != backends.OpTypeMul || isOutput[x.idx] || !x.shape.Equal(xs) {
		return pr, false
	}
	m := x
	var v *node
	for k := range 2 {
		if reluMaskInput(m.inputs[k]) == a && m.inputs[1-k].shape.Equal(m.shape) {
			v = m.inputs[1-k]
		}
	}
	if v == nil {
		return pr, false
	}
	var g *node
	for _, r := range consumers[m.idx] {
		if r.op == backends.OpTypeBatchNormGradient && r.inputs[4] == m && !r.data.(*bnData).reluPre &&
			!slices.Contains(r.inputs[:4], m) && r.inputs[0].shape.Equal(xs) {
			g = r
			break
		}
	}
	if g == nil {
		return pr, false
	}
	for _, r := range consumers[m.idx] {
		if r != g && r.idx < g.idx {
			return pr, false
		}
	}
	pr.g, pr.m, pr.v = g, m, v
	return pr, true
}

// fuseBatchNormReLUForward merges the ReLU after the training batch norm n
// into n's step, when there is one: Max(bn, 0) becomes n's fourth output
// and bn stays as it is; or, when bn's only reader is a residual add,
// Max(Add(bn, r), 0) becomes the fourth output, the Add (the ReLU's input,
// which GoMLX's ReLU gradient reads) becomes n's first output, and r
// becomes n's fourth input (so r must come before n).
func fuseBatchNormReLUForward(n *node, consumers [][]*node, isOutput []bool) {
	d := n.data.(*bnData)
	bn := n.outs[0]
	reluOf := func(x *node) *node {
		for _, c := range consumers[x.idx] {
			if c.op != backends.OpTypeMax || !c.shape.Equal(x.shape) {
				continue
			}
			other := c.inputs[0]
			if other == x {
				other = c.inputs[1]
			}
			if other != x && isZeroConstant(other) {
				return c
			}
		}
		return nil
	}
	// makeOut turns m into n's next output.
	makeOut := func(m *node) {
		m.op, m.inputs, m.data = n.op, []*node{n}, nil
		m.parent, m.outIdx = n, len(n.outs)
		n.outs = append(n.outs, m)
	}
	if m := reluOf(bn); m != nil {
		nd := *d
		nd.relu = true
		n.data = &nd
		makeOut(m)
		return
	}
	cs := consumers[bn.idx]
	if len(cs) != 1 || isOutput[bn.idx] || cs[0].op != backends.OpTypeAdd || !cs[0].shape.Equal(bn.shape) {
		return
	}
	add := cs[0]
	r := add.inputs[0]
	if r == bn {
		r = add.inputs[1]
	}
	if r == bn || !r.shape.Equal(bn.shape) || r.idx >= n.idx {
		return
	}
	m := reluOf(add)
	if m == nil {
		return
	}
	nd := *d
	nd.addReLU = true
	n.data = &nd
	n.inputs = append(n.inputs[:3:3], r)
	// The sum is computed by n into its first output; the Add reads it.
	add.op, add.inputs = backends.OpTypeIdentity, []*node{bn}
	makeOut(m)
}

// reluMaskInput returns a when ind is GoMLX's NonNegativeIndicator of a,
// Sign(Add(Sign(a), 1)) (either operand order, through a - 0), and nil
// otherwise.
func reluMaskInput(ind *node) *node {
	if ind.op != backends.OpTypeSign || !ind.shape.DType.IsFloat() {
		return nil
	}
	add := ind.inputs[0]
	if add.op != backends.OpTypeAdd {
		return nil
	}
	for k := range 2 {
		s, c := add.inputs[k], add.inputs[1-k]
		if s.op != backends.OpTypeSign || !isConstantOf(c, 1) {
			continue
		}
		a := s.inputs[0]
		if a.op == backends.OpTypeSub && isZeroConstant(a.inputs[1]) && a.inputs[0].shape.Equal(a.shape) {
			a = a.inputs[0]
		}
		return a
	}
	return nil
}

// isZeroConstant reports whether n is a constant (through broadcasts,
// reshapes and identities) whose elements are all +0.
func isZeroConstant(n *node) bool { return isConstantOf(n, 0) }

// isConstantOf reports whether n is a constant (through broadcasts,
// reshapes and identities) whose elements all equal v, with v's sign (so
// -0 is not 0).
func isConstantOf(n *node, v float64) bool {
	for n.op == backends.OpTypeBroadcastInDim || n.op == backends.OpTypeReshape || n.op == backends.OpTypeIdentity {
		n = n.inputs[0]
	}
	if n.op != backends.OpTypeConstant || !n.shape.DType.IsFloat() {
		return false
	}
	size := n.shape.Size()
	if size == 0 || size > 1<<16 {
		return false
	}
	for i := range size {
		c := scalarAsFloat64(n.data, i)
		if c != v || math.Signbit(c) != math.Signbit(v) {
			return false
		}
	}
	return true
}
