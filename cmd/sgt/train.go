package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/term"

	"github.com/sgt-dev/sgt/data"
	"github.com/sgt-dev/sgt/train"
)

func init() {
	register("train", "train a classifier with the SGT (PowerGrad) loss and record the run", runTrain)
}

// trainError maps an error of train.Run to the command's: bad settings and
// data are usage errors (exit status 2); an interrupted run says how to
// continue it.
func trainError(err error, out string) error {
	var fe *train.FieldError
	switch {
	case errors.As(err, &fe), errors.Is(err, data.ErrBadData):
		return usageError{err}
	case errors.Is(err, train.ErrFinishedRun), errors.Is(err, train.ErrUnfinishedRun):
		return usagef("--out: %w", err)
	case errors.Is(err, train.ErrInterrupted) && out != "":
		return fmt.Errorf("%w\ncontinue it with: sgt train --resume %s", err, out)
	}
	return err
}

// resumeAllowed are the flags that may accompany --resume; every other
// setting comes from the run's config.json.
var resumeAllowed = map[string]bool{"resume": true, "out": true, "keep-checkpoints": true, "quiet": true}

// trainCLI holds the values of the flags of "sgt train".
type trainCLI struct {
	cfg    train.Config
	recipe string
	out    string
	force  bool
	resume string
	keep   int
	quiet  bool
}

// ownTrainFlags are the flags of "sgt train" that are not settings of the
// run (train.DefineFlags defines those).
var ownTrainFlags = map[string]bool{"recipe": true, "out": true, "force": true, "resume": true, "keep-checkpoints": true, "quiet": true}

// defineTrainFlags defines the flags of "sgt train" on fs, bound to c; the
// settings' defaults are c.cfg's values.
func defineTrainFlags(fs *flag.FlagSet, c *trainCLI) {
	fs.StringVar(&c.recipe, "recipe", "", "start from this named recipe (see \"sgt recipes\"); flags given explicitly override its settings")
	train.DefineFlags(fs, &c.cfg)
	fs.StringVar(&c.out, "out", c.out, "run directory for config.json, metrics.csv, filter_norms.csv, summary.json and checkpoints")
	fs.BoolVar(&c.force, "force", c.force, "overwrite a run directory that holds a finished or unfinished run")
	fs.StringVar(&c.resume, "resume", c.resume, "continue the unfinished run in this directory from its last checkpoint")
	fs.IntVar(&c.keep, "keep-checkpoints", c.keep, "number of recent epoch checkpoints to keep besides the best (-1: no checkpoints)")
	fs.BoolVar(&c.quiet, "quiet", c.quiet, "no progress output")
}

// explicitSettings returns the run settings given explicitly on fs's
// command line, in the order of the flag set.
func explicitSettings(fs *flag.FlagSet) []train.Setting {
	var out []train.Setting
	fs.Visit(func(f *flag.Flag) {
		if !ownTrainFlags[f.Name] {
			out = append(out, train.Setting{Name: f.Name, Value: f.Value.String()})
		}
	})
	return out
}

const trainUsage = `Usage: sgt train [flags]
       sgt train --recipe NAME [flags]
       sgt train --resume DIR

Trains one classifier with the SGT (PowerGrad) loss: the forward pass and the
loss are ordinary cross-entropy (with label smoothing if asked), and the
backward pass uses softmax(alpha*z) in place of softmax(z) (alpha = 1 is plain
training). With --out the run is recorded in a run directory: config.json
(every setting), metrics.csv (one row per epoch), filter_norms.csv,
summary.json and checkpoints. Ctrl-C or SIGTERM stop after the current step
and save a checkpoint; --resume DIR continues exactly where the run stopped.
A recipe (see "sgt recipes") sets every value of one of the paper's
experiments; flags given with it override single settings.

Flags:
`

// runTrain implements "sgt train".
func runTrain(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cli := &trainCLI{cfg: train.DefaultConfig(), keep: 1}
	fs := newFlagSet("train", stderr)
	defineTrainFlags(fs, cli)
	fs.Usage = func() {
		fmt.Fprint(stderr, trainUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	opts := train.Options{Out: cli.out, Force: cli.force}
	if set["keep-checkpoints"] || cli.resume == "" {
		// A resumed run keeps its recorded number unless told otherwise.
		opts.KeepCheckpoints = cli.keep
	}
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
	cfg := cli.cfg
	if set["recipe"] {
		var err error
		if cfg, err = train.ConfigFor(cli.recipe, explicitSettings(fs)); err != nil {
			return usageError{err}
		}
	}
	if !cli.quiet {
		opts.Progress = stderr
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			opts.Interactive = true
		}
	}

	sum, err := train.Run(ctx, cfg, opts)
	if err != nil {
		return trainError(err, opts.Out)
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
