package optim

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Param is one trainable variable as the optimizer sees it while a train step
// graph is being built.
type Param struct {
	// Variable is the context variable being trained.
	Variable *context.Variable
	// Value is the variable's value in the graph being built (before the update).
	Value *graph.Node
	// Final marks the parameters of the model's final (classifier) layer;
	// adaptive gradient clipping leaves them alone by default.
	Final bool
}

// Step is what a gradient transform may use while the train step graph is built.
type Step struct {
	// Ctx is the scope under which transforms keep their state variables
	// (momentum buffers); each transform of a Chain gets its own sub-scope.
	Ctx *context.Context
	// Params are the trainable parameters, in the same order as the updates.
	Params []Param
	// LearningRate is the scalar learning rate of this step, fed from the host.
	LearningRate *graph.Node
}

// GradientTransform is one stage of an optimizer, in the style of optax: it
// maps the per-parameter updates (initially the gradients) to new updates.
// Transforms are graph-building code: they run once per compiled graph, and
// the state they need lives in context variables under Step.Ctx.
//
// Like all GoMLX graph-building code, Update panics on a programming error
// (for example, updates whose number does not match the parameters); the
// training loop turns such panics into errors.
type GradientTransform interface {
	// Name is a short identifier, used in the state scope and in run configs.
	Name() string
	// Update returns the transformed updates, one per parameter of s.Params.
	Update(s *Step, updates []*graph.Node) []*graph.Node
}

// Chain composes transforms; updates flow through them in order.
type Chain []GradientTransform

// Name implements GradientTransform; it lists the chained transforms.
func (c Chain) Name() string {
	names := make([]string, len(c))
	for i, t := range c {
		names[i] = t.Name()
	}
	return "chain(" + strings.Join(names, ",") + ")"
}

// Update implements GradientTransform. Transform i keeps its state under the
// scope "<i>_<name>" of s.Ctx, so two transforms of the same kind do not clash.
func (c Chain) Update(s *Step, updates []*graph.Node) []*graph.Node {
	for i, t := range c {
		sub := *s
		sub.Ctx = s.Ctx.In(fmt.Sprintf("%d_%s", i, t.Name()))
		updates = t.Update(&sub, updates)
		checkUpdates(t.Name(), s.Params, updates)
	}
	return updates
}

// checkUpdates panics when a transform returned updates that do not match the
// parameters: a programming error in the transform.
func checkUpdates(name string, params []Param, updates []*graph.Node) {
	if len(updates) != len(params) {
		panic(fmt.Errorf("gradient transform %s returned %d updates for %d parameters", name, len(updates), len(params)))
	}
	for i, u := range updates {
		if !u.Shape().Equal(params[i].Value.Shape()) {
			panic(fmt.Errorf("gradient transform %s: update %d has shape %s, parameter %s has %s",
				name, i, u.Shape(), params[i].Variable.ScopeAndName(), params[i].Value.Shape()))
		}
	}
}

// WeightDecay adds Rate*w to each parameter's update, as PyTorch's SGD does
// with its weight_decay argument (an L2 penalty of Rate/2*|w|² on the loss).
type WeightDecay struct {
	// Rate is the decay coefficient; 0 makes the transform a no-op.
	Rate float64
	// ExemptVectors leaves parameters of rank <= 1 (biases, batch-norm scales
	// and offsets) undecayed.
	ExemptVectors bool
}

// Name implements GradientTransform.
func (WeightDecay) Name() string { return "weight_decay" }

// Update implements GradientTransform.
func (t WeightDecay) Update(s *Step, updates []*graph.Node) []*graph.Node {
	out := make([]*graph.Node, len(updates))
	for i, u := range updates {
		p := s.Params[i]
		if t.Rate == 0 || (t.ExemptVectors && p.Value.Rank() <= 1) {
			out[i] = u
			continue
		}
		out[i] = graph.Add(u, graph.MulScalar(p.Value, t.Rate))
	}
	return out
}

// ClipGlobalNorm scales all updates by one common factor so that their global
// L2 norm (over all parameters together) is at most MaxNorm: gradient
// clipping (GC). Updates with a smaller norm pass unchanged.
type ClipGlobalNorm struct {
	// MaxNorm is the largest global norm allowed; it must be positive.
	MaxNorm float64
}

// Name implements GradientTransform.
func (ClipGlobalNorm) Name() string { return "clip_global_norm" }

// Update implements GradientTransform.
func (t ClipGlobalNorm) Update(_ *Step, updates []*graph.Node) []*graph.Node {
	if len(updates) == 0 {
		return updates
	}
	if !(t.MaxNorm > 0) {
		panic(fmt.Errorf("clip_global_norm: max norm must be positive, got %g", t.MaxNorm))
	}
	var sumSq *graph.Node
	for _, u := range updates {
		sq := graph.ReduceAllSum(graph.Square(u))
		if sumSq == nil {
			sumSq = sq
		} else {
			sumSq = graph.Add(sumSq, sq)
		}
	}
	norm := graph.Sqrt(sumSq)
	// scale = MaxNorm / max(norm, MaxNorm): 1 when the norm is small enough.
	scale := graph.Div(graph.Scalar(norm.Graph(), norm.DType(), t.MaxNorm), graph.MaxScalar(norm, t.MaxNorm))
	out := make([]*graph.Node, len(updates))
	for i, u := range updates {
		out[i] = graph.Mul(u, scale)
	}
	return out
}

// AGCEpsilon is the smallest weight norm used by adaptive gradient clipping,
// so that zero-initialised parameters can still move (NFNets uses 1e-3).
const AGCEpsilon = 1e-3

// AdaptiveClip is unit-wise adaptive gradient clipping (AGC) from NFNets
// (Brock et al., 2021): for each unit of each parameter, when
// |G|/max(|W|, Epsilon) > Clip, the unit's gradient G is rescaled to norm
// Clip*max(|W|, Epsilon). A unit is one output unit: the norm is taken over
// all axes but the last (GoMLX keeps outputs last, [in, out] for dense
// weights and [h, w, in, out] for convolution kernels); vectors and scalars
// are one unit.
type AdaptiveClip struct {
	// Clip is the clipping factor lambda; it must be positive.
	Clip float64
	// Epsilon is the floor of the weight norm; 0 means AGCEpsilon.
	Epsilon float64
	// IncludeFinal also clips the final layer, which NFNets leaves unclipped.
	IncludeFinal bool
}

// Name implements GradientTransform.
func (AdaptiveClip) Name() string { return "adaptive_clip" }

// unitNorm returns the unit-wise L2 norm of x, broadcastable against x.
func unitNorm(x *graph.Node) *graph.Node {
	if x.Rank() <= 1 {
		return graph.L2Norm(x)
	}
	axes := make([]int, x.Rank()-1)
	for i := range axes {
		axes[i] = i
	}
	return graph.L2Norm(x, axes...)
}

// Update implements GradientTransform.
func (t AdaptiveClip) Update(s *Step, updates []*graph.Node) []*graph.Node {
	if !(t.Clip > 0) {
		panic(fmt.Errorf("adaptive_clip: clip factor must be positive, got %g", t.Clip))
	}
	eps := t.Epsilon
	if eps == 0 {
		eps = AGCEpsilon
	}
	out := make([]*graph.Node, len(updates))
	for i, u := range updates {
		p := s.Params[i]
		if p.Final && !t.IncludeFinal {
			out[i] = u
			continue
		}
		maxNorm := graph.MulScalar(graph.MaxScalar(unitNorm(p.Value), eps), t.Clip)
		gradNorm := unitNorm(u)
		// Rescale only the units above the limit; the 1e-6 floor keeps the
		// division finite (it is never selected when gradNorm is that small).
		clipped := graph.Mul(u, graph.Div(maxNorm, graph.MaxScalar(gradNorm, 1e-6)))
		cond := graph.GreaterThan(gradNorm, maxNorm)
		if !cond.Shape().Equal(u.Shape()) {
			cond = graph.BroadcastToShape(cond, shapes.Make(cond.DType(), u.Shape().Dimensions...))
		}
		out[i] = graph.Where(cond, clipped, u)
	}
	return out
}

// Momentum is heavy-ball momentum with PyTorch's semantics (no dampening):
// buf = Mu*buf + u, and the update becomes buf, or u + Mu*buf with Nesterov.
// The buffers start at zero, so the first update is u (with Nesterov
// (1+Mu)*u), as in PyTorch.
type Momentum struct {
	// Mu is the momentum coefficient, in [0, 1); 0 makes the transform a no-op.
	Mu float64
	// Nesterov selects Nesterov's accelerated variant.
	Nesterov bool
}

// Name implements GradientTransform.
func (Momentum) Name() string { return "momentum" }

// Update implements GradientTransform. The buffer of parameter "scope/name"
// is the non-trainable variable "name" under s.Ctx's scope joined with the
// parameter's scope.
func (t Momentum) Update(s *Step, updates []*graph.Node) []*graph.Node {
	if t.Mu == 0 {
		return updates
	}
	out := make([]*graph.Node, len(updates))
	for i, u := range updates {
		p := s.Params[i]
		bufVar := stateVariable(s.Ctx, p, u.Shape())
		buf := graph.Add(graph.MulScalar(bufVar.ValueGraph(u.Graph()), t.Mu), u)
		bufVar.SetValueGraph(buf)
		if t.Nesterov {
			out[i] = graph.Add(u, graph.MulScalar(buf, t.Mu))
		} else {
			out[i] = buf
		}
	}
	return out
}

// stateVariable returns (creating it zero-filled if needed) the
// non-trainable state variable that a transform keeps for parameter p.
func stateVariable(ctx *context.Context, p Param, shape shapes.Shape) *context.Variable {
	scope := ctx.Scope()
	if ps := p.Variable.Scope(); ps != context.RootScope {
		scope = strings.TrimSuffix(scope, context.ScopeSeparator) + ps
	}
	sctx := ctx.InAbsPath(scope).Checked(false).WithInitializer(func(g *graph.Graph, shape shapes.Shape) *graph.Node {
		return graph.Zeros(g, shape)
	})
	v := sctx.VariableWithShape(p.Variable.Name(), shape)
	v.SetTrainable(false)
	return v
}

// LearningRateStep turns updates into parameter increments: -lr*u, with the
// step's learning rate. It is the last transform of an SGD chain.
type LearningRateStep struct{}

// Name implements GradientTransform.
func (LearningRateStep) Name() string { return "learning_rate" }

// Update implements GradientTransform.
func (LearningRateStep) Update(s *Step, updates []*graph.Node) []*graph.Node {
	out := make([]*graph.Node, len(updates))
	for i, u := range updates {
		lr := s.LearningRate
		if lr.DType() != u.DType() {
			lr = graph.ConvertDType(lr, u.DType())
		}
		out[i] = graph.Mul(u, graph.Neg(lr))
	}
	return out
}

// ApplyUpdates adds each increment to its parameter's variable (w += u) in
// the graph. It is the step that follows the transforms.
func ApplyUpdates(params []Param, increments []*graph.Node) {
	checkUpdates("apply", params, increments)
	for i, p := range params {
		p.Variable.SetValueGraph(graph.Add(p.Value, increments[i]))
	}
}
