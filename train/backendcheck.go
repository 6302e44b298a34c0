package train

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/notimplemented"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt/models"
)

// convTrainingOps are the backend ops that training a convolutional model
// needs: the convolution, and Reverse, with which GoMLX's gradient of a
// convolution flips the kernel. GoMLX's pure-Go backend ("go") lacks
// Reverse.
var convTrainingOps = []backends.OpType{backends.OpTypeConvGeneral, backends.OpTypeReverse}

// checkBackendOps refuses, before anything is compiled or written, a
// backend b (configured as config) that lacks an op needed to train the
// model of cfg on images of shape dims ([N, H, W, C]) with numClasses
// classes. Only when b lacks one of convTrainingOps is the model built (on
// a throwaway graph), to see whether it has convolutions.
func checkBackendOps(b backends.Backend, config string, cfg Config, dims []int, numClasses int) error {
	ops := b.Capabilities().Operations
	var missing []string
	for _, op := range convTrainingOps {
		if !ops[op] {
			missing = append(missing, op.String())
		}
	}
	if len(missing) == 0 {
		return nil
	}
	spec, err := models.Get(cfg.Model)
	if err != nil {
		return &FieldError{Field: "model", Err: err}
	}
	conv, err := hasConvolutions(b, spec, dims, numClasses, cfg.modelParams())
	if err != nil {
		return unsupportedOp(fmt.Errorf("model %s: %w", cfg.Model, err), config, cfg.Model)
	}
	if !conv {
		return nil
	}
	return fieldErrorf("backend", "backend %q cannot train model %s: it does not implement %s, which the gradient of a convolution needs; use --backend cpu (sgt's own, the default) or xla",
		config, cfg.Model, strings.Join(missing, " and "))
}

// CheckBackend returns the error that a run with configuration cfg would
// give, before it starts, on backend b (configured as config) when b lacks
// an op needed to train cfg's model on images of shape dims ([N, H, W, C])
// with numClasses classes; nil when it has them.
func CheckBackend(b backends.Backend, config string, cfg Config, dims []int, numClasses int) error {
	return checkBackendOps(b, config, cfg, dims, numClasses)
}

// hasConvolutions builds the model's logits on a throwaway graph and
// reports whether it has convolution kernels (rank-4 variables).
func hasConvolutions(b backends.Backend, spec models.Spec, dims []int, numClasses int, hyper map[string]any) (conv bool, err error) {
	err = graphResult("building the model", func() error {
		g := graph.NewGraph(b, "ops probe")
		defer g.Finalize()
		ctx := mlctx.New()
		ctx.SetParams(hyper)
		ctx.SetTraining(g, true)
		spec.Build(ctx, graph.Parameter(g, "images", shapes.Make(dtypes.Float32, dims...)), numClasses)
		for v := range ctx.IterVariables() {
			conv = conv || v.Trainable && v.Shape().Rank() == 4
		}
		return nil
	})
	return conv, err
}

// unsupportedOp turns an error of a graph that needs an op the backend
// lacks into one naming --backend and the model; other errors pass.
func unsupportedOp(err error, config, model string) error {
	if err == nil || !errors.Is(err, notimplemented.NotImplementedError) {
		return err
	}
	return fieldErrorf("backend", "backend %q cannot train model %s: %w; use --backend cpu (sgt's own, the default) or xla", config, model, err)
}
