package models

import (
	"math"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// uniformInit returns an initializer drawing every float variable from
// U(-bound, bound); other dtypes are zero.
func uniformInit(ctx *context.Context, bound float64) context.VariableInitializer {
	return func(g *graph.Graph, shape shapes.Shape) *graph.Node {
		if !shape.DType.IsFloat() {
			return graph.Zeros(g, shape)
		}
		values := ctx.RandomUniform(g, shape)
		return graph.AddScalar(graph.MulScalar(values, 2*bound), -bound)
	}
}

// normalInit returns an initializer drawing every float variable from
// N(0, stddev²); other dtypes are zero.
func normalInit(ctx *context.Context, stddev float64) context.VariableInitializer {
	return func(g *graph.Graph, shape shapes.Shape) *graph.Node {
		if !shape.DType.IsFloat() {
			return graph.Zeros(g, shape)
		}
		return graph.MulScalar(ctx.RandomNormal(g, shape), stddev)
	}
}

// torchBound is the bound of PyTorch's default initialisation of nn.Linear and
// nn.Conv2d weights (Kaiming-uniform with a=sqrt(5)) and biases: 1/sqrt(fanIn).
func torchBound(fanIn int) float64 {
	return 1 / math.Sqrt(float64(max(fanIn, 1)))
}

// torchDefaultInit returns PyTorch's default initializer for a layer with the
// given fan-in: weights and biases uniform in ±1/sqrt(fanIn).
func torchDefaultInit(ctx *context.Context, fanIn int) context.VariableInitializer {
	return uniformInit(ctx, torchBound(fanIn))
}

// kaimingNormalStd is the standard deviation of Kaiming-normal initialisation
// for ReLU networks with the given fan (fan-in or fan-out): sqrt(2/fan).
func kaimingNormalStd(fan int) float64 {
	return math.Sqrt(2 / float64(max(fan, 1)))
}
