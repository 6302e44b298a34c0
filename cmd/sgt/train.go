package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/sgt-dev/sgt/models"
	"github.com/sgt-dev/sgt/train"
	"github.com/sgt-dev/sgt/train/optim"
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

// trainCLI holds the values of the flags of "sgt train".
type trainCLI struct {
	cfg        train.Config
	milestones intList
	recipe     string
	out        string
	force      bool
	resume     string
	keep       int
	quiet      bool
}

// defineTrainFlags defines the flags of "sgt train" on fs, bound to c; the
// settings' defaults are c.cfg's values.
func defineTrainFlags(fs *flag.FlagSet, c *trainCLI) {
	cfg := &c.cfg
	fs.StringVar(&c.recipe, "recipe", "", "start from this named recipe (see \"sgt recipes\"); flags given explicitly override its settings")
	fs.StringVar(&cfg.Data, "data", cfg.Data, "dataset: "+strings.Join(train.DataNames(), ", ")+" (imagefolder: --data-dir holds train/<class>/ and val/<class>/ image folders)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory holding the dataset files (default: the dataset's usual location; required for imagefolder)")
	fs.BoolVar(&cfg.SmallStem, "small-stem", cfg.SmallStem, "give ImageNet-style ResNets a 3x3/1 stem without max pool, for small images (28x28, 32x32)")
	fs.IntVar(&cfg.ImageSize, "image-size", cfg.ImageSize, "side of the square images of --data imagefolder (0: 224); training takes random resized crops, evaluation resizes and centre-crops")
	fs.StringVar(&cfg.Model, "model", cfg.Model, "model: "+strings.Join(models.Names(), ", "))
	fs.Float64Var(&cfg.Alpha, "alpha", cfg.Alpha, "SGT exponent of the backward pass, 0 <= alpha <= 1 in the paper (1: plain training)")
	fs.Float64Var(&cfg.LabelSmoothing, "label-smoothing", cfg.LabelSmoothing, "label smoothing eps in [0, 1)")
	fs.IntVar(&cfg.Epochs, "epochs", cfg.Epochs, "number of epochs")
	fs.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "training batch size (the last incomplete batch of an epoch is dropped)")
	fs.IntVar(&cfg.EvalBatchSize, "eval-batch-size", cfg.EvalBatchSize, "evaluation batch size (0: --batch-size)")
	fs.Float64Var(&cfg.LR, "lr", cfg.LR, "peak learning rate")
	fs.Float64Var(&cfg.Momentum, "momentum", cfg.Momentum, "SGD momentum in [0, 1)")
	fs.BoolVar(&cfg.Nesterov, "nesterov", cfg.Nesterov, "use Nesterov momentum")
	fs.Float64Var(&cfg.WeightDecay, "weight-decay", cfg.WeightDecay, "weight decay added to the gradient (PyTorch SGD style)")
	fs.BoolVar(&cfg.ExemptVectors, "wd-exempt-vectors", cfg.ExemptVectors, "do not decay biases and batch-norm parameters (rank <= 1)")
	fs.Float64Var(&cfg.ClipNorm, "clip-norm", cfg.ClipNorm, "clip the gradient to this global L2 norm (0: off)")
	fs.Float64Var(&cfg.AGC, "agc", cfg.AGC, "adaptive gradient clipping factor lambda (0: off)")
	fs.BoolVar(&cfg.AGCFinal, "agc-final", cfg.AGCFinal, "apply adaptive gradient clipping to the final layer too")
	fs.StringVar(&cfg.Schedule, "schedule", cfg.Schedule, "learning-rate schedule: "+strings.Join(optim.ScheduleNames, ", "))
	fs.Float64Var(&cfg.WarmupEpochs, "warmup-epochs", cfg.WarmupEpochs, "linear warm-up length in epochs (0: none)")
	fs.Float64Var(&cfg.WarmupStartLR, "warmup-start-lr", cfg.WarmupStartLR, "learning rate at the start of the warm-up")
	c.milestones = intList(slices.Clone(cfg.Milestones))
	fs.Var(&c.milestones, "milestones", "comma-separated epochs at which --schedule step divides the learning rate by 10")
	fs.StringVar(&cfg.Augment, "augment", cfg.Augment, "training augmentation: "+strings.Join(train.AugmentNames, ", ")+" (auto: pad-crop-flip for CIFAR, random-resized-crop for imagefolder, none otherwise)")
	fs.Int64Var(&cfg.Seed, "seed", cfg.Seed, "random seed (weights, data order)")
	fs.IntVar(&cfg.TrainSize, "train-size", cfg.TrainSize, "use only N training examples (0: all)")
	fs.IntVar(&cfg.TestSize, "test-size", cfg.TestSize, "use only N test examples (0: all)")
	fs.IntVar(&cfg.TrainEvalSize, "train-eval-size", cfg.TrainEvalSize, "training examples evaluated after every epoch without augmentation, in inference mode (train_eval_acc, gap); 0: off, more than the training set: all of it")
	fs.Float64Var(&cfg.ZeroThreshold, "zero-threshold", cfg.ZeroThreshold, "absolute threshold below which a conv filter's weight L2 norm, or a pooled feature's mean |activation| on the test set, counts as zeroed out")
	fs.IntVar(&cfg.FilterNormsEvery, "filter-norms-every", cfg.FilterNormsEvery, "append every conv filter's weight norm to filter_norms.csv every N steps (-1: at the end of every epoch, 0: never)")
	fs.StringVar(&cfg.Backend, "backend", cfg.Backend, "GoMLX backend (default: automatic); convolutional models need cpu or xla")
	fs.StringVar(&c.out, "out", c.out, "run directory for config.json, metrics.csv, filter_norms.csv, summary.json and checkpoints")
	fs.BoolVar(&c.force, "force", c.force, "overwrite a run directory that holds a finished or unfinished run")
	fs.StringVar(&c.resume, "resume", c.resume, "continue the unfinished run in this directory from its last checkpoint")
	fs.IntVar(&c.keep, "keep-checkpoints", c.keep, "number of recent epoch checkpoints to keep besides the best (-1: no checkpoints)")
	fs.BoolVar(&c.quiet, "quiet", c.quiet, "no progress output")
}

// applyRecipe returns the settings of the named recipe with the flags that
// were given explicitly (set) applied over them, as parsed into fs. A flag
// that overrides one of two exclusive settings clears the recipe's other
// one: --schedule other than step drops the recipe's milestones, --clip-norm
// its adaptive clipping and vice versa, and --data other than imagefolder
// its image size.
func applyRecipe(name string, fs *flag.FlagSet, parsed *trainCLI, set map[string]bool, stderr io.Writer) (*trainCLI, error) {
	r, err := train.LookupRecipe(name)
	if err != nil {
		return nil, usagef("--recipe: %w", err)
	}
	base := r.Config
	if set["schedule"] && !set["milestones"] && parsed.cfg.Schedule != optim.ScheduleStep {
		base.Milestones = nil
	}
	if set["clip-norm"] && !set["agc"] && parsed.cfg.ClipNorm > 0 {
		base.AGC = 0
	}
	if set["agc"] && !set["clip-norm"] && parsed.cfg.AGC > 0 {
		base.ClipNorm = 0
	}
	if set["data"] && !set["image-size"] && parsed.cfg.Data != train.DataImageFolder {
		base.ImageSize = 0
	}
	out := &trainCLI{cfg: base, keep: 1}
	over := newFlagSet("train", stderr)
	defineTrainFlags(over, out)
	var setErr error
	fs.Visit(func(f *flag.Flag) {
		if err := over.Set(f.Name, f.Value.String()); err != nil && setErr == nil {
			setErr = usagef("--%s: %w", f.Name, err)
		}
	})
	return out, setErr
}

// runTrain implements "sgt train".
func runTrain(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cli := &trainCLI{cfg: train.DefaultConfig(), keep: 1}
	fs := newFlagSet("train", stderr)
	defineTrainFlags(fs, cli)
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	opts := train.Options{Out: cli.out, Force: cli.force, KeepCheckpoints: cli.keep}
	if cli.resume != "" {
		if set["recipe"] {
			return usagef("--recipe and --resume exclude each other: a resumed run keeps the settings recorded in its config.json")
		}
		var bad []string
		for name := range set {
			if !resumeAllowed[name] {
				bad = append(bad, "--"+name)
			}
		}
		if len(bad) > 0 {
			slices.Sort(bad)
			return usagef("--resume continues a run with its recorded settings; drop %s", strings.Join(bad, ", "))
		}
		if cli.out != "" && filepath.Clean(cli.out) != filepath.Clean(cli.resume) {
			return usagef("--out %s and --resume %s name different directories", cli.out, cli.resume)
		}
		opts.Out, opts.Resume = cli.resume, true
	}
	if cli.keep < -1 {
		return usagef("--keep-checkpoints: must be >= -1, got %d", cli.keep)
	}
	if cli.keep == 0 {
		return usagef("--keep-checkpoints: must be at least 1, or -1 for none")
	}
	if set["recipe"] {
		var err error
		if cli, err = applyRecipe(cli.recipe, fs, cli, set, stderr); err != nil {
			return err
		}
	}
	cfg := cli.cfg
	cfg.Milestones = []int(cli.milestones)
	if !cli.quiet {
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
	f := sum.Final
	fmt.Fprintf(stdout, "test accuracy %.2f%% (best %.2f%% at epoch %d), test loss %.4f, epochs %d, %.1fs\n",
		100*f.TestAcc, 100*sum.BestTestAcc, sum.BestEpoch, f.TestLoss, sum.Epochs, sum.TotalSeconds)
	if !math.IsNaN(f.TrainEvalAcc) {
		fmt.Fprintf(stdout, "train accuracy (clean) %.2f%%, generalisation gap %.2f points\n", 100*f.TrainEvalAcc, 100*f.Gap)
	}
	if f.Filters > 0 {
		fmt.Fprintf(stdout, "zeroed-out filters %d of %d, pooled features %d of %d\n", f.ZeroedFilters, f.Filters, f.ZeroedFeatures, f.Features)
	}
	if opts.Out != "" {
		fmt.Fprintf(stdout, "run recorded in %s\n", opts.Out)
	}
	return nil
}
