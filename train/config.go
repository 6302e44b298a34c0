// Package train trains sgt's classifiers: the run configuration and the
// named recipes shipped with it (one per experiment of the paper, see
// LookupRecipe), the optimizer as a chain of small composable gradient
// transforms (weight decay, gradient clipping, adaptive gradient clipping,
// Nesterov momentum, the learning-rate step), learning-rate schedules, the
// GoMLX training loop with the SGT loss, and the run directory (config.json,
// metrics.csv, summary.json, checkpoints, written atomically, and
// filter_norms.csv).
//
// After every epoch a run measures, besides the running training loss and
// accuracy: a clean evaluation of a fixed training subset (train_eval_loss,
// train_eval_acc and the generalisation gap), the test loss, top-1 and, with
// 100 or more classes, top-5 accuracy, the mean logit norm on the test set,
// the convolution filters and pooled features that are zeroed out (below
// Config.ZeroThreshold), and the share of the training time spent waiting
// for data. See EpochMetrics.
package train

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/sgt-dev/sgt"
	"github.com/sgt-dev/sgt/data"
	"github.com/sgt-dev/sgt/models"
	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train/optim"
)

// Config holds every setting of a training run. Its fields and their JSON
// form (config.json) are defined once, by rundir.Config; Config adds the
// training semantics: defaults, validation, the optimizer and the schedule.
// The two convert into each other: rundir.Config(cfg), Config(rec.Config).
type Config rundir.Config

// DataImageFolder is the Config.Data value of an image folder dataset
// (DataDir/train/<class>/*.jpg and DataDir/val/<class>/*.jpg, or test/ for val/), read with the
// data package's ImageFolder.
const DataImageFolder = "imagefolder"

// DataNames returns the accepted Config.Data values, sorted.
func DataNames() []string {
	names := append(data.Names(), DataImageFolder)
	slices.Sort(names)
	return names
}

// FilterNormsEpoch is the Config.FilterNormsEvery value that records the
// filter norms at the end of every epoch.
const FilterNormsEpoch = -1

// Defaults of the measurement settings.
const (
	// DefaultTrainEvalSize is the default Config.TrainEvalSize.
	DefaultTrainEvalSize = 10000
	// DefaultZeroThreshold is the default Config.ZeroThreshold: a filter
	// whose norm fell from its initial ~1 (Kaiming initialisation) below
	// 1e-3 has been driven to zero by weight decay.
	DefaultZeroThreshold = 1e-3
)

// DefaultConfig returns the defaults of "sgt train": MNIST, the MLP, plain
// training (alpha 1), 1 epoch of batches of 128, SGD with lr 0.1, Nesterov
// momentum 0.9, weight decay 5e-4 and a cosine schedule to 0 updated at
// every step; a clean evaluation of 10000 training examples per epoch,
// filter norms once per epoch and a zero threshold of 1e-3.
func DefaultConfig() Config {
	return Config{
		Data:        "mnist",
		Model:       "mlp",
		Alpha:       1,
		Epochs:      1,
		BatchSize:   128,
		LR:          0.1,
		Momentum:    0.9,
		Nesterov:    true,
		WeightDecay: 5e-4,
		Schedule:    optim.ScheduleCosine,
		LRUpdate:    optim.LRUpdateStep,
		Precision:   PrecisionFloat32,
		Augment:     AugmentAuto,
		Seed:        1,

		TrainEvalSize:    DefaultTrainEvalSize,
		ZeroThreshold:    DefaultZeroThreshold,
		FilterNormsEvery: FilterNormsEpoch,
	}
}

// FieldError is a validation error about one setting; Field is the name of
// the matching command-line flag (without dashes).
type FieldError struct {
	// Field is the flag name, e.g. "alpha" for --alpha.
	Field string
	// Err says what is wrong with the value.
	Err error
}

// Error implements error.
func (e *FieldError) Error() string { return fmt.Sprintf("--%s: %v", e.Field, e.Err) }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// fieldErrorf returns a *FieldError for field with a formatted message.
func fieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// finite reports whether x is neither NaN nor infinite.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Validate checks every setting and returns a *FieldError naming the first
// bad one. It does not touch the disk: a missing dataset is reported when
// the run loads it.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.Data) == "" {
		return fieldErrorf("data", "a dataset name is required")
	}
	if !slices.Contains(DataNames(), c.Data) {
		return fieldErrorf("data", "unknown dataset %q (known: %s)", c.Data, strings.Join(DataNames(), ", "))
	}
	if c.ImageSize < 0 {
		return fieldErrorf("image-size", "must be >= 0 (0: 224), got %d", c.ImageSize)
	}
	if c.ImageSize > 0 && c.Data != DataImageFolder {
		return fieldErrorf("image-size", "only applies to --data %s, not to --data %s (whose images have a fixed size)", DataImageFolder, c.Data)
	}
	spec, err := models.Get(c.Model)
	if err != nil {
		return &FieldError{Field: "model", Err: err}
	}
	if c.SmallStem && !spec.SmallStem {
		return fieldErrorf("small-stem", "model %q has no small-image stem option (only the ImageNet-style ResNets and SE-ResNets have one)", c.Model)
	}
	if err := sgt.ValidateAlpha(c.Alpha); err != nil {
		return &FieldError{Field: "alpha", Err: err}
	}
	if err := sgt.ValidateLabelSmoothing(c.LabelSmoothing); err != nil {
		return &FieldError{Field: "label-smoothing", Err: err}
	}
	if c.Epochs < 1 {
		return fieldErrorf("epochs", "must be at least 1, got %d", c.Epochs)
	}
	if c.BatchSize < 1 {
		return fieldErrorf("batch-size", "must be at least 1, got %d", c.BatchSize)
	}
	if c.EvalBatchSize < 0 {
		return fieldErrorf("eval-batch-size", "must be >= 0, got %d", c.EvalBatchSize)
	}
	if !finite(c.LR) || c.LR <= 0 {
		return fieldErrorf("lr", "must be a positive number, got %g", c.LR)
	}
	if !finite(c.Momentum) || c.Momentum < 0 || c.Momentum >= 1 {
		return fieldErrorf("momentum", "must be in [0, 1), got %g", c.Momentum)
	}
	if !finite(c.WeightDecay) || c.WeightDecay < 0 {
		return fieldErrorf("weight-decay", "must be >= 0, got %g", c.WeightDecay)
	}
	if !finite(c.ClipNorm) || c.ClipNorm < 0 {
		return fieldErrorf("clip-norm", "must be >= 0 (0 disables it), got %g", c.ClipNorm)
	}
	if !finite(c.AGC) || c.AGC < 0 {
		return fieldErrorf("agc", "must be >= 0 (0 disables it), got %g", c.AGC)
	}
	if c.ClipNorm > 0 && c.AGC > 0 {
		return fieldErrorf("agc", "adaptive clipping and --clip-norm exclude each other; choose one")
	}
	if !finite(c.WarmupEpochs) || c.WarmupEpochs < 0 || c.WarmupEpochs >= float64(c.Epochs) {
		return fieldErrorf("warmup-epochs", "must be in [0, epochs=%d), got %g", c.Epochs, c.WarmupEpochs)
	}
	if !finite(c.WarmupStartLR) || c.WarmupStartLR < 0 {
		return fieldErrorf("warmup-start-lr", "must be >= 0, got %g", c.WarmupStartLR)
	}
	if !finite(c.MinLR) || c.MinLR < 0 || c.MinLR > c.LR {
		return fieldErrorf("min-lr", "must be in [0, --lr=%g], got %g", c.LR, c.MinLR)
	}
	if c.MinLR > 0 && c.Schedule != optim.ScheduleCosine {
		return fieldErrorf("min-lr", "is the floor of --schedule %s, not used by --schedule %s (set it to 0)", optim.ScheduleCosine, c.Schedule)
	}
	if c.CooldownEpochs < 0 {
		return fieldErrorf("cooldown-epochs", "must be >= 0, got %d", c.CooldownEpochs)
	}
	if c.CooldownEpochs > 0 && c.Schedule != optim.ScheduleCosine {
		return fieldErrorf("cooldown-epochs", "is a phase of --schedule %s, not of --schedule %s (set it to 0)", optim.ScheduleCosine, c.Schedule)
	}
	if c.CooldownEpochs > 0 && c.WarmupEpochs >= float64(c.Epochs-c.CooldownEpochs) {
		return fieldErrorf("cooldown-epochs", "%d cool-down and %g warm-up epochs leave none of the %d epochs for the cosine", c.CooldownEpochs, c.WarmupEpochs, c.Epochs)
	}
	if !slices.Contains(PrecisionNames, c.Precision) {
		return fieldErrorf("precision", "unknown precision %q (known: %s)", c.Precision, strings.Join(PrecisionNames, ", "))
	}
	if c.LRUpdate != "" && !slices.Contains(optim.LRUpdateNames, c.LRUpdate) {
		return fieldErrorf("lr-update", "unknown value %q (known: %s)", c.LRUpdate, strings.Join(optim.LRUpdateNames, ", "))
	}
	switch c.Schedule {
	case optim.ScheduleConstant, optim.ScheduleCosine:
		if len(c.Milestones) > 0 {
			return fieldErrorf("milestones", "only used by --schedule %s, got --schedule %s", optim.ScheduleStep, c.Schedule)
		}
	case optim.ScheduleStep:
		if _, err := optim.NewSchedule(c.scheduleConfig(1)); err != nil {
			return &FieldError{Field: "milestones", Err: err}
		}
	default:
		return fieldErrorf("schedule", "unknown schedule %q (known: %s)", c.Schedule, strings.Join(optim.ScheduleNames, ", "))
	}
	if _, err := augmentTransform(c.Augment, c.Data, c.ImageSize); err != nil {
		return &FieldError{Field: "augment", Err: err}
	}
	if c.TrainSize < 0 {
		return fieldErrorf("train-size", "must be >= 0 (0: all), got %d", c.TrainSize)
	}
	if c.TrainSize > 0 && c.TrainSize < c.BatchSize {
		return fieldErrorf("train-size", "%d examples make no full batch of --batch-size %d", c.TrainSize, c.BatchSize)
	}
	if c.TestSize < 0 {
		return fieldErrorf("test-size", "must be >= 0 (0: all), got %d", c.TestSize)
	}
	if c.TrainEvalSize < 0 {
		return fieldErrorf("train-eval-size", "must be >= 0 (0: off), got %d", c.TrainEvalSize)
	}
	if !finite(c.ZeroThreshold) || c.ZeroThreshold < 0 {
		return fieldErrorf("zero-threshold", "must be a number >= 0, got %g", c.ZeroThreshold)
	}
	if c.FilterNormsEvery < FilterNormsEpoch {
		return fieldErrorf("filter-norms-every", "must be a number of steps > 0, 0 (off) or %d (every epoch), got %d", FilterNormsEpoch, c.FilterNormsEvery)
	}
	return nil
}

// Warnings returns notes about valid settings outside the paper's range.
func (c *Config) Warnings() []string {
	var w []string
	if sgt.AlphaOutsidePaperRange(c.Alpha) {
		w = append(w, fmt.Sprintf("alpha %g > 1 is outside the paper's range [0, 1]: it sharpens the tampered distribution instead of smoothing it", c.Alpha))
	}
	return w
}

// evalBatchSize returns the batch size of evaluation.
func (c *Config) evalBatchSize() int {
	if c.EvalBatchSize > 0 {
		return c.EvalBatchSize
	}
	return c.BatchSize
}

// scheduleConfig returns the schedule settings for a run of stepsPerEpoch
// steps per epoch.
func (c *Config) scheduleConfig(stepsPerEpoch int) optim.ScheduleConfig {
	return optim.ScheduleConfig{
		Kind:           c.Schedule,
		Peak:           c.LR,
		Epochs:         c.Epochs,
		StepsPerEpoch:  stepsPerEpoch,
		WarmupEpochs:   c.WarmupEpochs,
		WarmupStart:    c.WarmupStartLR,
		WarmupReplaces: c.WarmupReplaces,
		MinLR:          c.MinLR,
		CooldownEpochs: c.CooldownEpochs,
		PerEpoch:       c.LRUpdate == optim.LRUpdateEpoch,
		Milestones:     c.Milestones,
	}
}

// Optimizer returns the run's optimizer as a chain of gradient transforms:
// clipping (global norm or adaptive, on the raw gradients), weight decay,
// momentum and the learning-rate step.
func (c *Config) Optimizer() optim.Chain {
	var chain optim.Chain
	if c.ClipNorm > 0 {
		chain = append(chain, optim.ClipGlobalNorm{MaxNorm: c.ClipNorm})
	}
	if c.AGC > 0 {
		chain = append(chain, optim.AdaptiveClip{Clip: c.AGC, IncludeFinal: c.AGCFinal})
	}
	if c.WeightDecay > 0 {
		chain = append(chain, optim.WeightDecay{Rate: c.WeightDecay, ExemptVectors: c.ExemptVectors})
	}
	if c.Momentum > 0 {
		chain = append(chain, optim.Momentum{Mu: c.Momentum, Nesterov: c.Nesterov})
	}
	return append(chain, optim.LearningRateStep{})
}

// modelParams returns the model hyperparameters the run sets in the GoMLX
// context, where the models read them.
func (c *Config) modelParams() map[string]any {
	params := map[string]any{models.ParamSmallStem: c.SmallStem}
	if c.Precision == PrecisionBF16 {
		params[models.ParamComputeDType] = "bfloat16"
	}
	return params
}

// The precisions of Config.Precision.
const (
	PrecisionFloat32 = "float32"
	PrecisionBF16    = "bfloat16"
)

// PrecisionNames lists the accepted Config.Precision values.
var PrecisionNames = []string{PrecisionFloat32, PrecisionBF16}
