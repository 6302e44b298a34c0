package train

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt/rundir"
)

// convFilterNorms computes, on the host from the variables' current values,
// the per-filter L2 norms of every convolution kernel of ctx: the trainable
// rank-4 variables [kernelH, kernelW, inChannels, outChannels], one norm per
// output channel, in the context's variable order.
func convFilterNorms(ctx *context.Context) ([]rundir.LayerNorms, error) {
	var out []rundir.LayerNorms
	for v := range ctx.IterVariables() {
		dims := v.Shape().Dimensions
		if !v.Trainable || len(dims) != 4 {
			continue
		}
		value, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("filter norms: variable %s: %w", v.ScopeAndName(), err)
		}
		filters := dims[3]
		sums := make([]float64, filters)
		var accessErr error
		err = value.ConstFlatData(func(flat any) {
			switch x := flat.(type) {
			case []float32:
				for i, w := range x {
					sums[i%filters] += float64(w) * float64(w)
				}
			case []float64:
				for i, w := range x {
					sums[i%filters] += w * w
				}
			default:
				accessErr = fmt.Errorf("filter norms: variable %s has dtype %s, want a float", v.ScopeAndName(), v.Shape().DType)
			}
		})
		if err = errors.Join(err, accessErr); err != nil {
			return nil, err
		}
		for i := range sums {
			sums[i] = math.Sqrt(sums[i])
		}
		out = append(out, rundir.LayerNorms{Layer: strings.TrimPrefix(v.Scope(), "/"), Norms: sums})
	}
	return out, nil
}

// countBelow returns how many filters have a norm below threshold, and how
// many filters there are.
func countBelow(layers []rundir.LayerNorms, threshold float64) (below, total int) {
	for _, l := range layers {
		for _, n := range l.Norms {
			if n < threshold {
				below++
			}
		}
		total += len(l.Norms)
	}
	return below, total
}

// accumulate adds the values of the float tensor t (freeing it) to sums,
// which it creates on first use, and returns sums.
func accumulate(sums []float64, t *tensors.Tensor) ([]float64, error) {
	defer func() { _ = t.FinalizeAll() }()
	size := t.Shape().Size()
	if sums == nil {
		sums = make([]float64, size)
	}
	if len(sums) != size {
		return nil, fmt.Errorf("accumulating %s into %d sums", t.Shape(), len(sums))
	}
	var typeErr error
	err := t.ConstFlatData(func(flat any) {
		switch x := flat.(type) {
		case []float32:
			for i, v := range x {
				sums[i] += float64(v)
			}
		case []float64:
			for i, v := range x {
				sums[i] += v
			}
		default:
			typeErr = fmt.Errorf("accumulating %s: not a float tensor", t.Shape())
		}
	})
	if err = errors.Join(err, typeErr); err != nil {
		return nil, err
	}
	return sums, nil
}
