package main

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt/train"
)

// stepTimer runs a training step (and optionally its evaluation step) on a
// pool of random batches, for timing: "sgt bench" measures throughput with
// it, and "sgt demo" the speed of this machine before it sizes itself.
type stepTimer struct {
	name     string // what the errors name, e.g. "resnet20 on cpu"
	batch    int
	lr       float32
	ctx      *mlctx.Context
	train    *mlctx.Exec
	eval     *mlctx.Exec
	xs, ys   []*tensors.Tensor
	i, evals int
}

// newStepTimer builds step on backend b for batches of batch random
// standard-normal images of shape input ([H, W, C]) with uniform labels of
// step.NumClasses classes, pool distinct batches, everything seeded by
// seed; params (may be nil) are set on the model's context. Nothing is
// compiled before the first call of Train or Eval.
func newStepTimer(b backends.Backend, name string, step train.Step, params map[string]any, input []int, batch, pool int, lr float64, seed uint64) (*stepTimer, error) {
	s := &stepTimer{name: name, batch: batch, lr: float32(lr)}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	imageSize := input[0] * input[1] * input[2]
	for range pool {
		x := make([]float32, batch*imageSize)
		for j := range x {
			x[j] = float32(rng.NormFloat64())
		}
		y := make([]int32, batch)
		for j := range y {
			y[j] = int32(rng.IntN(step.NumClasses))
		}
		s.xs = append(s.xs, tensors.FromFlatDataAndDimensions(x, append([]int{batch}, input...)...))
		s.ys = append(s.ys, tensors.FromFlatDataAndDimensions(y, batch))
	}
	s.ctx = mlctx.New()
	s.ctx.SetParams(params)
	s.ctx.SetParam(mlctx.ParamInitialSeed, int64(seed)+1)
	var err error
	if s.train, err = mlctx.NewExec(b, s.ctx, step.Train); err != nil {
		s.Close()
		return nil, fmt.Errorf("preparing the training step: %w", err)
	}
	if s.eval, err = mlctx.NewExec(b, s.ctx.Reuse(), step.Eval); err != nil {
		s.Close()
		return nil, fmt.Errorf("preparing the evaluation step: %w", err)
	}
	return s, nil
}

// Train runs one training step (the first one compiles it and initialises
// the variables) and returns its loss.
func (s *stepTimer) Train() (loss float64, err error) {
	x, y := s.xs[s.i%len(s.xs)], s.ys[s.i%len(s.ys)]
	s.i++
	err = recoverGraph(func() error {
		out, err := s.train.Exec(x, y, s.lr)
		if err != nil {
			return err
		}
		defer finalizeAll(out)
		loss = float64(tensors.ToScalar[float32](out[0]))
		return nil
	})
	if err != nil {
		return math.NaN(), fmt.Errorf("training step %d of %s: %w", s.i, s.name, err)
	}
	return loss, nil
}

// Eval runs the evaluation of one batch (the first call compiles it; call
// it after Train, which initialises the variables).
func (s *stepTimer) Eval() error {
	x, y := s.xs[s.evals%len(s.xs)], s.ys[s.evals%len(s.ys)]
	s.evals++
	err := recoverGraph(func() error {
		out, err := s.eval.Exec(x, y)
		if err != nil {
			return err
		}
		finalizeAll(out)
		return nil
	})
	if err != nil {
		return fmt.Errorf("evaluation step %d of %s: %w", s.evals, s.name, err)
	}
	return nil
}

// Close frees the compiled steps, the variables and the batches.
func (s *stepTimer) Close() {
	if s.train != nil {
		s.train.Finalize()
	}
	if s.eval != nil {
		s.eval.Finalize()
	}
	if s.ctx != nil {
		s.ctx.Finalize()
	}
	finalizeAll(s.xs)
	finalizeAll(s.ys)
}

// timeCalls calls fn at least n times and for at least minTime, and
// returns the duration of every call.
func timeCalls(n int, minTime time.Duration, fn func() error) ([]time.Duration, error) {
	var times []time.Duration
	start := time.Now()
	for len(times) < n || time.Since(start) < minTime {
		t := time.Now()
		if err := fn(); err != nil {
			return times, err
		}
		times = append(times, time.Since(t))
	}
	return times, nil
}

func finalizeAll(ts []*tensors.Tensor) {
	for _, t := range ts {
		if t != nil {
			_ = t.FinalizeAll()
		}
	}
}

// recoverGraph runs fn, turning a panic of GoMLX (its way of reporting an
// error while building or running a graph) into an error.
func recoverGraph(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = errors.New(fmt.Sprint(r))
			}
		}
	}()
	return fn()
}
