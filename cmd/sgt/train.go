package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/sgt-dev/sgt/data"
	"github.com/sgt-dev/sgt/models"
	"github.com/sgt-dev/sgt/train"
)

func init() {
	register("train", "train a classifier with the SGT (PowerGrad) loss and record the run", runTrain)
}

// intList is a flag.Value holding a comma-separated list of integers.
type intList []int

// String implements flag.Value.
func (l *intList) String() string {
	parts := make([]string, len(*l))
	for i, v := range *l {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value.
func (l *intList) Set(s string) error {
	*l = nil
	if strings.TrimSpace(s) == "" {
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("%q is not an integer", part)
		}
		*l = append(*l, v)
	}
	return nil
}

// resumeAllowed are the flags that may accompany --resume; every other
// setting comes from the run's config.json.
var resumeAllowed = map[string]bool{"resume": true, "out": true, "keep-checkpoints": true, "quiet": true}

// runTrain implements "sgt train".
func runTrain(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cfg := train.DefaultConfig()
	fs := newFlagSet("train", stderr)
	fs.StringVar(&cfg.Data, "data", cfg.Data, "dataset: "+strings.Join(data.Names(), ", "))
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory holding the dataset files (default: the dataset's usual location)")
	fs.StringVar(&cfg.Model, "model", cfg.Model, "model: "+strings.Join(models.Names(), ", "))
	fs.Float64Var(&cfg.Alpha, "alpha", cfg.Alpha, "SGT exponent of the backward pass, 0 <= alpha <= 1 in the paper (1: plain training)")
	fs.Float64Var(&cfg.LabelSmoothing, "label-smoothing", 0, "label smoothing eps in [0, 1)")
	fs.IntVar(&cfg.Epochs, "epochs", cfg.Epochs, "number of epochs")
	fs.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "training batch size (the last incomplete batch of an epoch is dropped)")
	fs.IntVar(&cfg.EvalBatchSize, "eval-batch-size", 0, "evaluation batch size (default: --batch-size)")
	fs.Float64Var(&cfg.LR, "lr", cfg.LR, "peak learning rate")
	fs.Float64Var(&cfg.Momentum, "momentum", cfg.Momentum, "SGD momentum in [0, 1)")
	fs.BoolVar(&cfg.Nesterov, "nesterov", cfg.Nesterov, "use Nesterov momentum")
	fs.Float64Var(&cfg.WeightDecay, "weight-decay", cfg.WeightDecay, "weight decay added to the gradient (PyTorch SGD style)")
	fs.BoolVar(&cfg.ExemptVectors, "wd-exempt-vectors", false, "do not decay biases and batch-norm parameters (rank <= 1)")
	fs.Float64Var(&cfg.ClipNorm, "clip-norm", 0, "clip the gradient to this global L2 norm (0: off)")
	fs.Float64Var(&cfg.AGC, "agc", 0, "adaptive gradient clipping factor lambda (0: off)")
	fs.BoolVar(&cfg.AGCFinal, "agc-final", false, "apply adaptive gradient clipping to the final layer too")
	fs.StringVar(&cfg.Schedule, "schedule", cfg.Schedule, "learning-rate schedule: "+strings.Join(train.ScheduleNames, ", "))
	fs.Float64Var(&cfg.WarmupEpochs, "warmup-epochs", 0, "linear warm-up length in epochs (0: none)")
	fs.Float64Var(&cfg.WarmupStartLR, "warmup-start-lr", 0, "learning rate at the start of the warm-up")
	milestones := intList{}
	fs.Var(&milestones, "milestones", "comma-separated epochs at which --schedule step divides the learning rate by 10")
	fs.StringVar(&cfg.Augment, "augment", cfg.Augment, "training augmentation: "+strings.Join(train.AugmentNames, ", ")+" (auto: pad-crop-flip for CIFAR, none otherwise)")
	fs.Int64Var(&cfg.Seed, "seed", cfg.Seed, "random seed (weights, data order)")
	fs.IntVar(&cfg.TrainSize, "train-size", 0, "use only the first N training examples (0: all)")
	fs.IntVar(&cfg.TestSize, "test-size", 0, "use only the first N test examples (0: all)")
	fs.StringVar(&cfg.Backend, "backend", "", "GoMLX backend (default: automatic)")
	out := fs.String("out", "", "run directory for config.json, metrics.csv, summary.json and checkpoints")
	force := fs.Bool("force", false, "overwrite a run directory that holds a finished or unfinished run")
	resume := fs.String("resume", "", "continue the unfinished run in this directory from its last checkpoint")
	keep := fs.Int("keep-checkpoints", 1, "number of recent epoch checkpoints to keep besides the best (-1: no checkpoints)")
	quiet := fs.Bool("quiet", false, "no progress output")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	cfg.Milestones = milestones

	opts := train.Options{Out: *out, Force: *force, KeepCheckpoints: *keep}
	if *resume != "" {
		var bad []string
		fs.Visit(func(f *flag.Flag) {
			if !resumeAllowed[f.Name] {
				bad = append(bad, "--"+f.Name)
			}
		})
		if len(bad) > 0 {
			return usagef("--resume continues a run with its recorded settings; drop %s", strings.Join(bad, ", "))
		}
		if *out != "" && filepath.Clean(*out) != filepath.Clean(*resume) {
			return usagef("--out %s and --resume %s name different directories", *out, *resume)
		}
		opts.Out, opts.Resume = *resume, true
	}
	if *keep < -1 {
		return usagef("--keep-checkpoints: must be >= -1, got %d", *keep)
	}
	if *keep == 0 {
		return usagef("--keep-checkpoints: must be at least 1, or -1 for none")
	}
	if !*quiet {
		opts.Progress = stderr
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			opts.Interactive = true
		}
	}

	sum, err := train.Run(cfg, opts)
	var fe *train.FieldError
	switch {
	case errors.As(err, &fe):
		return usageError{err}
	case errors.Is(err, train.ErrFinishedRun), errors.Is(err, train.ErrUnfinishedRun):
		return usagef("--out: %w", err)
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "test accuracy %.2f%% (best %.2f%% at epoch %d), test loss %.4f, epochs %d, %.1fs\n",
		100*sum.Final.TestAcc, 100*sum.BestTestAcc, sum.BestEpoch, sum.Final.TestLoss, sum.Epochs, sum.TotalSeconds)
	if opts.Out != "" {
		fmt.Fprintf(stdout, "run recorded in %s\n", opts.Out)
	}
	return nil
}
