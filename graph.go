package sgt

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/train/losses"
)

// This file holds the transform inside GoMLX graphs.
//
// Design. The per-example loss is built as
//
//	aug    = IdentityWithCustomGradient(concat(z, 1), tamper)   // shape [..., C+1]
//	loss_n = CE(StopGradient(z), q)_n + (aug[..., C] - 1)
//
// In value, aug[..., C] - 1 is exactly 0 and StopGradient is the identity, so
// the forward value is exactly the plain cross-entropy. In the backward pass
// the logits receive gradient only through aug. The incoming adjoint of the
// extra column, v[..., C], is exactly dL/dloss_n = c_n, the upstream weight of
// example n (1/N for a batch mean, k/N when the user scales the mean by k, 1
// for a sum, w_n for a weighted sum, ...). The custom gradient ignores the
// rest of v and returns concat(c_n * (softmax(alpha*z) - q), 0), where the
// tampered probabilities are recomputed from the forward logits. So the
// logits gradient is the tampered one under any upstream scaling or
// weighting, unlike the published snippet that recovers p from the incoming
// gradient (right only when the loss scale is the batch size squared). No
// backward pass through the plain softmax is built.
//
// aug[..., C] is picked as sum(aug * onehot(C)) rather than with a slice,
// because a slice's gradient uses Pad, which GoMLX's pure-Go backend lacks;
// the sum is exact (every other term is z_i*0 = 0). The forward max-shifted
// logits are shared with the backward pass.
//
// At alpha == 1 the exported losses build GoMLX's own cross-entropy (package
// losses) without any hook, so plain training is bit-identical to GoMLX.
//
// Mixed precision. Half-precision logits (bfloat16, float16) are converted
// to float32 first: the softmax, the log-sum-exp, the loss and the tampered
// softmax of the backward pass always run in float32, and the loss is a
// float32 scalar. The conversion's gradient converts back, so the logits
// receive the tampered gradient in their own dtype, rounded once.
//
// Like the rest of GoMLX, the functions here report misuse (wrong shapes or
// dtypes, invalid alpha or label smoothing) by panicking with an error while
// the graph is built; graph.Exec and the GoMLX trainer recover such panics and
// return them as errors. Validate user input early with ValidateAlpha and
// ValidateLabelSmoothing to get plain errors.

// CrossEntropyLoss returns the scalar batch-mean cross-entropy of logits
// (shape [..., C], float) against integer class labels (shape [...] or
// [..., 1], any integer dtype), with optional label smoothing q =
// (1-eps)*onehot + eps/C. The forward value is the plain cross-entropy; the
// gradient with respect to logits is the tampered (p' - q)/N with p' =
// softmax(alpha*logits), exact under any later scaling of the loss. At alpha
// == 1 it is exactly GoMLX's losses.SparseCategoricalCrossEntropyLogits (or
// losses.CategoricalCrossEntropyLogits on the smoothed targets when eps > 0).
// Labels out of range give a zero one-hot row, as in GoMLX. Half-precision
// logits are computed on in float32 (see the mixed-precision note above).
func CrossEntropyLoss(logits, labels *graph.Node, alpha, labelSmoothing float64) *graph.Node {
	mustValidateParams(alpha, labelSmoothing)
	logits = atLeastFloat32(logits)
	labels = sparseLabels(logits, labels)
	if alpha == 1 {
		if labelSmoothing == 0 {
			return losses.SparseCategoricalCrossEntropyLogits(
				[]*graph.Node{graph.InsertAxes(labels, -1)}, []*graph.Node{logits})
		}
		q := LabelTargets(logits, labels, labelSmoothing)
		return losses.CategoricalCrossEntropyLogits([]*graph.Node{q}, []*graph.Node{logits})
	}
	q := LabelTargets(logits, labels, labelSmoothing)
	return graph.ReduceAllMean(tamperedPerExample(logits, q, alpha))
}

// SoftCrossEntropyLoss is CrossEntropyLoss with soft targets of the same shape
// as logits (each row a probability distribution); label smoothing, when eps
// > 0, turns them into (1-eps)*targets + eps/C. The gradient with respect to
// logits is the tampered (p' - q)/N; the gradient with respect to the targets
// (if they depend on parameters) is the plain one. At alpha == 1 it is exactly
// GoMLX's losses.CategoricalCrossEntropyLogits. Half-precision logits and
// targets are computed on in float32.
func SoftCrossEntropyLoss(logits, targets *graph.Node, alpha, labelSmoothing float64) *graph.Node {
	mustValidateParams(alpha, labelSmoothing)
	logits, targets = atLeastFloat32(logits), atLeastFloat32(targets)
	checkSoftTargets(logits, targets)
	q := smoothNode(targets, labelSmoothing)
	if alpha == 1 {
		return losses.CategoricalCrossEntropyLogits([]*graph.Node{q}, []*graph.Node{logits})
	}
	return graph.ReduceAllMean(tamperedPerExample(logits, q, alpha))
}

// PerExampleCrossEntropy returns the cross-entropy of each example, shape
// logits.Shape()[:-1], of logits against soft targets q of the same shape as
// logits, with the tampered backward pass: whatever weight c_n the caller's
// reduction gives example n, the gradient with respect to its logits is
// c_n*(softmax(alpha*z_n) - q_n). Use it for weighted or masked losses. At
// alpha == 1 it is the plain cross-entropy with no hook. Half-precision
// logits and targets are computed on in float32, and the result is float32.
func PerExampleCrossEntropy(logits, q *graph.Node, alpha float64) *graph.Node {
	mustValidateParams(alpha, 0)
	logits, q = atLeastFloat32(logits), atLeastFloat32(q)
	checkSoftTargets(logits, q)
	if alpha == 1 {
		return plainPerExample(logits, q)
	}
	return tamperedPerExample(logits, q, alpha)
}

// LabelTargets returns the targets q for integer labels (shape
// logits.Shape()[:-1] or that plus a trailing 1) in the dtype of logits: the
// one-hot vectors over the C = last-axis classes, label-smoothed to
// (1-eps)*onehot + eps/C when eps > 0.
func LabelTargets(logits, labels *graph.Node, eps float64) *graph.Node {
	mustValidateParams(1, eps)
	labels = sparseLabels(logits, labels)
	c := logits.Shape().Dim(-1)
	q := graph.OneHot(labels, c, logits.DType())
	return smoothNode(q, eps)
}

// TamperedProbs returns softmax(alpha*logits) over the last axis, computed as
// exp(alpha*(z - max z)) normalised, which cannot overflow for finite logits;
// at alpha == 0 it is exactly uniform. Half-precision logits are computed on
// in float32, and so is the result.
func TamperedProbs(logits *graph.Node, alpha float64) *graph.Node {
	mustValidateParams(alpha, 0)
	logits = atLeastFloat32(logits)
	checkFloatLogits(logits)
	return tamperedProbs(logits, alpha)
}

// tamperedProbs is TamperedProbs without validation. No gradient flows
// through the max shift.
func tamperedProbs(logits *graph.Node, alpha float64) *graph.Node {
	m := graph.StopGradient(graph.ReduceAndKeep(logits, graph.ReduceMax, -1))
	return tamperedFromShifted(graph.Sub(logits, m), alpha)
}

// tamperedFromShifted returns softmax(alpha*z) from the shifted logits z -
// max z. At alpha == 0 it is the uniform distribution, built directly: alpha
// times a shifted logit that overflowed to -Inf would give NaN.
func tamperedFromShifted(shifted *graph.Node, alpha float64) *graph.Node {
	if alpha == 0 {
		c := shifted.Shape().Dim(-1)
		uniform := graph.Scalar(shifted.Graph(), shifted.DType(), 1/float64(c))
		return graph.BroadcastToShape(uniform, shifted.Shape())
	}
	e := graph.Exp(graph.MulScalar(shifted, alpha))
	return graph.Div(e, graph.ReduceAndKeep(e, graph.ReduceSum, -1))
}

// atLeastFloat32 converts half-precision x (bfloat16, float16) to float32
// and returns any other x unchanged. The conversion's gradient converts
// back to x's dtype.
func atLeastFloat32(x *graph.Node) *graph.Node {
	switch x.DType() {
	case dtypes.BFloat16, dtypes.Float16:
		return graph.ConvertDType(x, dtypes.Float32)
	}
	return x
}

// plainPerExample is the per-example cross-entropy -sum q*log softmax(z) with
// the ordinary gradient.
func plainPerExample(logits, q *graph.Node) *graph.Node {
	return graph.ReduceSum(graph.Neg(graph.Mul(q, graph.LogSoftmax(logits))), -1)
}

// tamperedPerExample builds the per-example loss with the tampered backward
// pass described at the top of this file.
func tamperedPerExample(logits, q *graph.Node, alpha float64) *graph.Node {
	g := logits.Graph()
	rank := logits.Rank()
	c := logits.Shape().Dim(-1)

	// Forward value: the plain cross-entropy, computed as GoMLX's LogSoftmax
	// does, on logits cut off from the gradient. The shifted logits are
	// shared with the tampered softmax of the backward pass.
	shifted := graph.StopGradient(graph.Sub(logits, graph.ReduceAndKeep(logits, graph.ReduceMax, -1)))
	logP := graph.Sub(shifted, graph.Log(graph.ReduceAndKeep(graph.Exp(shifted), graph.ReduceSum, -1)))
	ce := graph.ReduceSum(graph.Neg(graph.Mul(q, logP)), -1)

	onesDims := slices.Clone(logits.Shape().Dimensions)
	onesDims[rank-1] = 1
	ones := graph.Ones(g, shapes.Make(logits.DType(), onesDims...))
	aug := graph.IdentityWithCustomGradient(
		graph.Concatenate([]*graph.Node{logits, ones}, -1),
		func(_, v *graph.Node) *graph.Node {
			// v[..., C] is the upstream weight of each example.
			weight := graph.SliceAxis(v, -1, graph.AxisRange(c, c+1))
			pt := tamperedFromShifted(shifted, alpha)
			grad := graph.Mul(weight, graph.Sub(pt, graph.StopGradient(q)))
			return graph.Concatenate([]*graph.Node{grad, graph.ZerosLike(weight)}, -1)
		})
	// Pick the extra column with a one-hot mask and a sum rather than a
	// slice: the slice's gradient needs Pad, which some backends lack. In
	// value, every other term is z_i*0 = 0, so the sum is exactly 1 and zero
	// is exactly 0.
	maskValues := make([]float64, c+1)
	maskValues[c] = 1
	mask := graph.BroadcastPrefix(graph.ConstAsDType(g, logits.DType(), maskValues), onesDims[:rank-1]...)
	zero := graph.AddScalar(graph.ReduceSum(graph.Mul(aug, mask), -1), -1)
	return graph.Add(ce, zero)
}

// smoothNode returns (1-eps)*q + eps/C (q itself when eps == 0).
func smoothNode(q *graph.Node, eps float64) *graph.Node {
	if eps == 0 {
		return q
	}
	c := q.Shape().Dim(-1)
	return graph.AddScalar(graph.MulScalar(q, 1-eps), eps/float64(c))
}

// mustValidateParams panics with an error when alpha or eps is invalid.
func mustValidateParams(alpha, eps float64) {
	if err := ValidateAlpha(alpha); err != nil {
		panic(fmt.Errorf("sgt loss: %w", err))
	}
	if err := ValidateLabelSmoothing(eps); err != nil {
		panic(fmt.Errorf("sgt loss: %w", err))
	}
}

// checkFloatLogits panics unless logits is a float tensor of rank >= 1 with
// at least one class.
func checkFloatLogits(logits *graph.Node) {
	s := logits.Shape()
	if !s.DType.IsFloat() {
		panic(fmt.Errorf("sgt loss: logits dtype %s: must be a float type", s.DType))
	}
	if s.Rank() < 1 || s.Dim(-1) < 1 {
		panic(fmt.Errorf("sgt loss: logits shape %s: need a last axis of classes", s))
	}
}

// checkSoftTargets panics unless targets has the same shape as logits.
func checkSoftTargets(logits, targets *graph.Node) {
	checkFloatLogits(logits)
	if !targets.Shape().Equal(logits.Shape()) {
		panic(fmt.Errorf("sgt loss: targets shape %s: must equal logits shape %s", targets.Shape(), logits.Shape()))
	}
}

// sparseLabels checks integer labels against logits and returns them with
// shape logits.Shape()[:-1] (a trailing axis of 1 is removed).
func sparseLabels(logits, labels *graph.Node) *graph.Node {
	checkFloatLogits(logits)
	ls, zs := labels.Shape(), logits.Shape()
	if !ls.DType.IsInt() {
		panic(fmt.Errorf("sgt loss: labels dtype %s: must be an integer type", ls.DType))
	}
	want := zs.Dimensions[:zs.Rank()-1]
	switch {
	case slices.Equal(ls.Dimensions, want):
		return labels
	case ls.Rank() == zs.Rank() && ls.Dim(-1) == 1 && slices.Equal(ls.Dimensions[:ls.Rank()-1], want):
		return graph.Reshape(labels, want...)
	default:
		panic(fmt.Errorf("sgt loss: labels shape %s: want %v or %v with trailing 1 for logits %s",
			ls, want, want, zs))
	}
}
