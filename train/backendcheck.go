package train

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/notimplemented"

	"github.com/sgt-dev/sgt/models"
)

// convTrainingOps are the backend ops that training a convolutional model
// needs: the convolution, and Reverse, with which GoMLX's gradient of a
// convolution flips the kernel. GoMLX's pure-Go backend ("go") lacks
// Reverse.
var convTrainingOps = []backends.OpType{backends.OpTypeConvGeneral, backends.OpTypeReverse}

// missingConvOps returns the ops of convTrainingOps that b lacks.
func missingConvOps(b backends.Backend) []string {
	ops := b.Capabilities().Operations
	var missing []string
	for _, op := range convTrainingOps {
		if !ops[op] {
			missing = append(missing, op.String())
		}
	}
	return missing
}

// backendOpsError refuses a backend (configured as config) that lacks the
// ops missing, when model has convolutions (conv); nil otherwise.
func backendOpsError(config, model string, missing []string, conv bool) error {
	if len(missing) == 0 || !conv {
		return nil
	}
	return fieldErrorf("backend", "backend %q cannot train model %s: it does not implement %s, which the gradient of a convolution needs; use --backend cpu (sgt's own, the default) or xla",
		config, model, strings.Join(missing, " and "))
}

// CheckBackend returns the error that a run with configuration cfg would
// give, before it starts, on backend b (configured as config) when b lacks
// an op needed to train cfg's model on images of shape dims ([N, H, W, C])
// with numClasses classes; nil when it has them. Only when b lacks one of
// convTrainingOps is the model built (on a throwaway graph), to see
// whether it has convolutions.
func CheckBackend(b backends.Backend, config string, cfg Config, dims []int, numClasses int) error {
	missing := missingConvOps(b)
	if len(missing) == 0 {
		return nil
	}
	spec, err := models.Get(cfg.Model)
	if err != nil {
		return &FieldError{Field: "model", Err: err}
	}
	size, err := buildProbe(b, spec, dims, numClasses, cfg.modelParams())
	if err != nil {
		return unsupportedOp(fmt.Errorf("model %s: %w", cfg.Model, err), config, cfg.Model)
	}
	return backendOpsError(config, cfg.Model, missing, size.conv)
}

// unsupportedOp turns an error of a graph that needs an op the backend
// lacks into one naming --backend and the model; other errors pass.
func unsupportedOp(err error, config, model string) error {
	if err == nil || !errors.Is(err, notimplemented.NotImplementedError) {
		return err
	}
	return fieldErrorf("backend", "backend %q cannot train model %s: %w; use --backend cpu (sgt's own, the default) or xla", config, model, err)
}
