package cpu

import (
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

// Contraction rewrite ("einsum from broadcast-multiply-reduce").
//
// GoMLX builds the gradients of DotGeneral as ReduceSum(Mul(a', b')) where
// a' and b' are the operands reshaped (size-1 axes inserted), transposed or
// broadcast so that their product spans every axis of the original problem:
// for a dense layer's weight gradient that materializes a batch x in x out
// tensor only to sum it over the batch. ReduceSum recognises this pattern at
// build time and emits a DotGeneral on the underlying operands instead:
//
//   - each operand of the Mul is followed back through Identity, Reshape
//     (inserting or removing size-1 axes only), Transpose and BroadcastInDim
//     to a source node, recording which source axis each axis of the product
//     reads (or none, when it is broadcast);
//   - every axis of the product of dimension > 1 is then a batch axis (both
//     sources have it, kept), a contracting axis (both, summed), a free axis
//     of one operand (only that one has it, kept), or the pattern does not
//     apply (summed over an axis only one operand has, or an axis neither
//     has);
//   - the DotGeneral (lowered to GEMM) is followed by a Transpose only when
//     its [batch, lhs free, rhs free] order differs from the kept axes' order
//     under both operand orders, and by an alias Reshape to the reduced shape.
//
// The rewrite applies only to float32/float64 and only when the product is
// larger than twice its two sources together, so that plain dot products
// (nothing to gain) keep the fused multiply and reduction. The Mul node is
// left in the graph; dead-code elimination drops it unless something else
// reads it. Backend option "nocontract" disables the rewrite.

// contractMinRatio is how many times larger than its two sources together
// the broadcast product must be for the rewrite to apply.
const contractMinRatio = 2

// axisSource follows x back through layout-only ops to the node whose
// storage it reads. It returns that node and, for each axis of x, the axis
// of the source it reads (-1 when x's axis has dimension 1 or is a
// broadcast). Every source axis of dimension > 1 is read by exactly one axis
// of x; size-1 source axes are read by none.
func axisSource(x *node) (*node, []int) {
	axisOf := make([]int, x.shape.Rank())
	for k, d := range x.shape.Dimensions {
		axisOf[k] = -1
		if d > 1 {
			axisOf[k] = k
		}
	}
	src := x
	for {
		switch src.op {
		case backends.OpTypeIdentity:
			src = src.inputs[0]
			continue
		case backends.OpTypeReshape:
			in := src.inputs[0]
			m, ok := squeezeMap(src.shape.Dimensions, in.shape.Dimensions)
			if !ok {
				return src, axisOf
			}
			for k, a := range axisOf {
				if a >= 0 {
					axisOf[k] = m[a]
				}
			}
			src = in
			continue
		case backends.OpTypeTranspose:
			perm := src.data.(*permData).perm
			for k, a := range axisOf {
				if a >= 0 {
					axisOf[k] = perm[a]
				}
			}
			src = src.inputs[0]
			continue
		case backends.OpTypeBroadcastInDim:
			in := src.inputs[0]
			inv := make([]int, src.shape.Rank())
			for a := range inv {
				inv[a] = -1
			}
			for i, a := range src.data.(*broadcastData).axes {
				if in.shape.Dimensions[i] == src.shape.Dimensions[a] && in.shape.Dimensions[i] > 1 {
					inv[a] = i
				}
			}
			for k, a := range axisOf {
				if a >= 0 {
					axisOf[k] = inv[a]
				}
			}
			src = in
			continue
		}
		return src, axisOf
	}
}

// squeezeMap reports whether a reshape from inDims to outDims only inserts
// or removes size-1 axes and, if so, maps each axis of outDims of dimension
// > 1 to its axis of inDims (others to -1).
func squeezeMap(outDims, inDims []int) ([]int, bool) {
	m := make([]int, len(outDims))
	j := 0
	for k, d := range outDims {
		m[k] = -1
		if d == 1 {
			continue
		}
		for j < len(inDims) && inDims[j] == 1 {
			j++
		}
		if j == len(inDims) || inDims[j] != d {
			return nil, false
		}
		m[k] = j
		j++
	}
	for ; j < len(inDims); j++ {
		if inDims[j] != 1 {
			return nil, false
		}
	}
	return m, true
}

// contractOperand is one side of a recognised contraction.
type contractOperand struct {
	src    *node
	axisOf []int // per product axis: source axis or -1
}

// tryContraction returns ReduceSum(x, axes) computed as a DotGeneral, or nil
// when x is not a broadcast product the rewrite applies to (or the rewrite
// fails; the caller then builds the plain reduction).
func (b *Builder) tryContraction(x *node, axes []int) *node {
	if b.backend.noContract || x.op != backends.OpTypeMul || len(x.inputs) != 2 {
		return nil
	}
	dt := x.shape.DType
	if dt != dtypes.Float32 && dt != dtypes.Float64 {
		return nil
	}
	rank := x.shape.Rank()
	var ops [2]contractOperand
	for i, in := range x.inputs {
		if in.shape.Rank() != rank || in.shape.DType != dt {
			return nil // scalar operand: nothing to contract
		}
		src, axisOf := axisSource(in)
		if src.shape.DType != dt || len(src.outs) > 0 {
			return nil
		}
		ops[i] = contractOperand{src, axisOf}
	}
	reduced := make([]bool, rank)
	for _, a := range axes {
		reduced[a] = true
	}
	// Classify the product's axes.
	var batch, contracting, freeA, freeB, kept []int
	for k, d := range x.shape.Dimensions {
		if d == 1 {
			continue
		}
		inA, inB := ops[0].axisOf[k] >= 0, ops[1].axisOf[k] >= 0
		switch {
		case inA && inB && reduced[k]:
			contracting = append(contracting, k)
		case inA && inB:
			batch = append(batch, k)
		case reduced[k] || (!inA && !inB):
			return nil
		case inA:
			freeA = append(freeA, k)
		default:
			freeB = append(freeB, k)
		}
		if !reduced[k] {
			kept = append(kept, k)
		}
	}
	if len(contracting) == 0 {
		return nil
	}
	srcSize := ops[0].src.shape.Size() + ops[1].src.shape.Size()
	if x.shape.Size() < contractMinRatio*srcSize {
		return nil
	}
	// Squeeze size-1 axes off the sources and renumber.
	var sq [2]*node
	var remap [2][]int
	for i, op := range ops {
		dims := op.src.shape.Dimensions
		remap[i] = make([]int, len(dims))
		var nd []int
		for a, d := range dims {
			remap[i][a] = -1
			if d > 1 {
				remap[i][a] = len(nd)
				nd = append(nd, d)
			}
		}
		sq[i] = op.src
		if len(nd) != len(dims) {
			r, err := b.Reshape(op.src, nd...)
			if err != nil {
				return nil
			}
			sq[i] = r.(*node)
		}
		// Every source axis of dimension > 1 must be read by exactly one
		// product axis.
		seen := make([]int, len(nd))
		for _, a := range op.axisOf {
			if a >= 0 {
				seen[remap[i][a]]++
			}
		}
		for _, c := range seen {
			if c != 1 {
				return nil
			}
		}
	}
	axesOf := func(i int, ks []int) []int {
		out := make([]int, len(ks))
		for j, k := range ks {
			out[j] = remap[i][ops[i].axisOf[k]]
		}
		return out
	}
	// DotGeneral lists each operand's free axes in the order of its axes.
	slices.SortFunc(freeA, func(p, q int) int { return ops[0].axisOf[p] - ops[0].axisOf[q] })
	slices.SortFunc(freeB, func(p, q int) int { return ops[1].axisOf[p] - ops[1].axisOf[q] })
	// Try both operand orders; prefer the one whose output is already in
	// the kept axes' order.
	bestSwap, bestPerm := false, []int(nil)
	for _, swap := range []bool{false, true} {
		fa, fb := freeA, freeB
		if swap {
			fa, fb = freeB, freeA
		}
		order := slices.Concat(batch, fa, fb)
		perm := make([]int, len(kept))
		for j, k := range kept {
			perm[j] = slices.Index(order, k)
		}
		if isIdentityPerm(perm) {
			bestSwap, bestPerm = swap, nil
			break
		}
		if !swap {
			bestPerm = perm
		}
	}
	l, r := 0, 1
	if bestSwap {
		l, r = 1, 0
	}
	dot, err := b.DotGeneral(sq[l], axesOf(l, contracting), axesOf(l, batch), sq[r], axesOf(r, contracting), axesOf(r, batch))
	if err != nil {
		return nil
	}
	out := dot
	if bestPerm != nil {
		if out, err = b.Transpose(out, bestPerm...); err != nil {
			return nil
		}
	}
	outDims := make([]int, 0, rank)
	for k, d := range x.shape.Dimensions {
		if !reduced[k] {
			outDims = append(outDims, d)
		}
	}
	res, err := b.Reshape(out, outDims...)
	if err != nil {
		return nil
	}
	return res.(*node)
}
