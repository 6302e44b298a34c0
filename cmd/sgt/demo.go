package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/sgt-dev/sgt/backend"
	"github.com/sgt-dev/sgt/backend/kernels"
	"github.com/sgt-dev/sgt/data"
	"github.com/sgt-dev/sgt/experiment"
	"github.com/sgt-dev/sgt/models"
	"github.com/sgt-dev/sgt/report"
	"github.com/sgt-dev/sgt/train"
)

func init() {
	register("demo", "quick start: plain training against SGT on Fashion-MNIST/MNIST over seeds, sized to about ten minutes on this machine, with a report", runDemo)
}

const demoUsage = `Usage: sgt demo [flags]

A small but real comparison of plain training (alpha = 1) against SGT, with
and without label smoothing, over several seeds, on Fashion-MNIST when its
files are installed (Debian package dataset-fashion-mnist), else on MNIST. It
runs as a grid under --out (rerunning resumes it), prints the tables and writes
report.html there.

Before it trains, the demo times a few training steps of its model on this
machine and chooses the number of training images (and if need be of epochs)
so that it ends in about --minutes minutes, which it says up front. --full
runs the full-size comparison instead (the fashion-mnist-resnet20 recipe on
all the images, 15 epochs, 5 seeds: hours on a CPU; its estimate is printed
first). Size flags given explicitly are kept as given. A directory that holds
a demo keeps its sizes: rerunning the command resumes it, and --seeds N or
more values grow it.

Flags:
`

// demoSizeFlags are the flags of "sgt demo" that size it.
var demoSizeFlags = []string{"epochs", "train-size", "test-size", "train-eval-size", "seeds"}

// runDemo implements "sgt demo".
func runDemo(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	started := time.Now()
	built := goRunBuildTime()
	d := experiment.DefaultDemo()
	fl := newFlagSet("demo", stderr)
	out := fl.String("out", "runs/demo", "directory of the demo's grid and report")
	fl.StringVar(&d.Data, "data", "", "dataset (default: fashion-mnist when installed, else mnist)")
	fl.StringVar(&d.Model, "model", d.Model, "model to train (see sgt models)")
	fl.StringVar(&d.Alphas, "alpha", d.Alphas, "comma-separated alpha values (1 is the baseline)")
	fl.StringVar(&d.LabelSmoothings, "label-smoothing", d.LabelSmoothings, "comma-separated label-smoothing values")
	fl.IntVar(&d.Seeds, "seeds", d.Seeds, "number of seeds of every setting")
	fl.IntVar(&d.Epochs, "epochs", d.Epochs, "epochs of every run (when not given: chosen for --minutes, 3 where they fit)")
	fl.IntVar(&d.TrainSize, "train-size", d.TrainSize, "training examples of every run (0: all; when not given: chosen for --minutes)")
	fl.IntVar(&d.TestSize, "test-size", d.TestSize, "test examples of every run (0: all)")
	fl.IntVar(&d.TrainEvalSize, "train-eval-size", d.TrainEvalSize, "training examples whose clean accuracy is measured after every epoch (0: none)")
	fl.IntVar(&d.BatchSize, "batch-size", d.BatchSize, "batch size")
	fl.Float64Var(&d.LR, "lr", d.LR, "peak learning rate")
	fl.StringVar(&d.Backend, "backend", "", "GoMLX backend (default: automatic)")
	minutes := fl.Float64("minutes", experiment.DemoBudget.Minutes(), "time the demo should take on this machine, in minutes (it chooses its sizes for it)")
	full := fl.Bool("full", false, "run the full-size comparison (hours on a CPU; see above)")
	isa := fl.String("isa", "", "kernel family of the cpu backend: "+strings.Join(kernels.AvailableISAs(), ", ")+" (default: the fastest this CPU has)")
	parallel := fl.Int("parallel", 1, "number of runs at once")
	fl.Usage = func() {
		fmt.Fprint(stderr, demoUsage)
		fl.PrintDefaults()
	}
	if err := parseFlags(fl, args, false); err != nil {
		return err
	}
	given := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { given[f.Name] = true })
	isGiven := func(name string) bool { return given[name] }
	if *parallel < 1 {
		return usagef("--parallel: must be at least 1, got %d", *parallel)
	}
	if !(*minutes > 0) || math.IsInf(*minutes, 0) {
		return usagef("--minutes: must be a positive number, got %v", *minutes)
	}
	if *full {
		f := experiment.FullDemo()
		d.Recipe = f.Recipe
		for _, name := range demoSizeFlags {
			if !given[name] {
				setDemoSize(&d, f, name)
			}
		}
	}
	if *isa != "" {
		previous := kernels.CurrentISA()
		if err := kernels.SetISA(*isa); err != nil {
			return usagef("--isa: %v", err)
		}
		defer func() { _ = kernels.SetISA(previous) }()
	}

	// A directory that holds a demo keeps its sizes.
	old, err := experiment.ReadManifest(*out)
	resuming := err == nil
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return usagef("--out %s: %v", *out, err)
	case old.Kind != experiment.KindGrid || old.Grid == nil:
		return usagef("--out %s holds a %s, not a demo; choose another --out", *out, old.Kind)
	default:
		if err := d.Adopt(old.Grid, isGiven); err != nil {
			return usagef("--out %s: %v; choose another --out", *out, err)
		}
		if given["minutes"] {
			fmt.Fprintf(stdout, "note: --minutes does not resize the demo %s already holds; choose another --out for a new one\n", *out)
		}
	}
	if err := d.Validate(); err != nil {
		return usageError{err}
	}
	dataset := d.DemoDataset(func(name string) bool {
		_, err := data.Load(name, "", data.SplitTest)
		return err == nil
	})
	loadStart := time.Now()
	trainSet, err := data.Load(dataset, "", data.SplitTrain)
	if err != nil {
		return usagef("--data %s: %v", dataset, err)
	}
	testSet, err := data.Load(dataset, "", data.SplitTest)
	if err != nil {
		return usagef("--data %s: %v", dataset, err)
	}
	loadTime := time.Since(loadStart)
	sizes := experiment.DatasetSizes{Train: trainSet.N, Test: testSet.N}
	shape := []int{trainSet.Height, trainSet.Width, trainSet.Channels}
	classes := max(trainSet.NumClasses, testSet.NumClasses)

	// Check the settings (and the backend) before measuring anything.
	g, err := d.Grid(dataset)
	if err != nil {
		return usageError{err}
	}
	trials, err := g.Trials()
	if err != nil {
		return usageError{err}
	}
	todo := 0
	for _, t := range trials {
		if st, err := experiment.TrialState(filepath.Join(*out, t.Dir)); err != nil || st.State != experiment.StateDone {
			todo++
		}
	}
	var speed experiment.DemoSpeed
	var estimate time.Duration
	if todo > 0 {
		fmt.Fprintf(stdout, "measuring this machine: compiling the training step of %s and timing a few steps on random data...\n", d.Model)
		speed, err = measureDemo(ctx, trials[0].Config, shape, classes, loadTime)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  loaded the data, compiled the training step and ran it once in %s; %.0f training and %.0f evaluated images/s (backend %s, kernels %s)\n",
			speed.Startup.Round(100*time.Millisecond), speed.TrainRate, speed.EvalRate, backend.Resolve(d.Backend), kernels.CurrentISA())
		budget := time.Duration(*minutes * float64(time.Minute))
		if built > 10*time.Second && !given["minutes"] && !resuming {
			// The promise counts from the command: "go run" building sgt
			// takes its share (at most half).
			budget -= min(built, budget/2)
			fmt.Fprintf(stdout, "  go run took %s to build sgt; the demo takes the rest of the %s\n", built.Round(time.Second), fmtMinutes(time.Duration(*minutes*float64(time.Minute))))
		}
		fitted := false
		if !resuming && !*full && !(given["epochs"] && given["train-size"]) {
			d, _ = d.Fit(speed, budget, sizes, isGiven)
			fitted = true
			if g, err = d.Grid(dataset); err != nil {
				return usageError{err}
			}
			if trials, err = g.Trials(); err != nil {
				return usageError{err}
			}
		}
		estimate = d.Estimate(speed, sizes)
		if resuming {
			estimate = time.Duration(todo)*d.TrialTime(speed, sizes) + 3*time.Second
		}
		what := d.Describe(dataset, sizes)
		switch {
		case resuming:
			fmt.Fprintf(stdout, "continuing the demo in %s (%s; %d of %s done): about %s left on this machine\n",
				*out, what, len(trials)-todo, plural(len(trials), "run"), fmtMinutes(estimate))
		default:
			fmt.Fprintf(stdout, "about %s on this machine: %s, alpha %s x label smoothing %s x %s, in %s\n",
				fmtMinutes(estimate), what, d.Alphas, d.LabelSmoothings, plural(d.Seeds, "seed"), *out)
		}
		if fitted && estimate > budget*11/10 {
			fmt.Fprintf(stdout, "  this machine is slow for the demo: its smallest size takes about %s, more than the %s asked for\n",
				fmtMinutes(estimate), fmtMinutes(budget))
		}
		if f := experiment.FullDemo(); !*full && !resuming && d.Model == f.Model {
			fmt.Fprintf(stdout, "  (the full-size comparison, sgt demo --full: %s, about %s here)\n",
				f.Describe(dataset, sizes), fmtMinutes(f.Estimate(speed, sizes)))
		}
	} else {
		fmt.Fprintf(stdout, "every run of the demo in %s is done (%s)\n", *out, d.Describe(dataset, sizes))
	}

	terminal, width := terminalWidth(stdout)
	display := experiment.NewProgress(stdout, terminal, experiment.ProgressOptions{
		Total: len(trials), TrialEstimate: d.TrialTime(speed, sizes), CompileEstimate: speed.Startup,
		Parallel: *parallel, Width: width,
	})
	r := &experiment.Runner{Train: experiment.TrainTrial, Parallel: *parallel}
	display.Attach(r)
	sum, _, err := experiment.RunGrid(ctx, *out, g, append([]string{"sgt", "demo"}, args...), r)
	display.Close()
	if err != nil {
		return experimentError(err)
	}
	if err := summaryError(sum); err != nil {
		return err
	}
	rep, err := report.Build([]string{*out}, report.Options{Title: fmt.Sprintf("sgt demo: %s on %s", d.Model, dataset)})
	if err != nil {
		return err
	}
	path := filepath.Join(*out, "report.html")
	if err := rep.Write(path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s", rep.Text())
	took := time.Since(started).Round(time.Second)
	if estimate > 0 {
		fmt.Fprintf(stdout, "finished in %s (estimated %s); report written to %s\n", took, estimate.Round(time.Second), path)
	} else {
		fmt.Fprintf(stdout, "report written to %s\n", path)
	}
	return nil
}

// setDemoSize copies the size flag name's value from f to d.
func setDemoSize(d *experiment.Demo, f experiment.Demo, name string) {
	switch name {
	case "epochs":
		d.Epochs = f.Epochs
	case "train-size":
		d.TrainSize = f.TrainSize
	case "test-size":
		d.TestSize = f.TestSize
	case "train-eval-size":
		d.TrainEvalSize = f.TrainEvalSize
	case "seeds":
		d.Seeds = f.Seeds
	}
}

// measureDemo times a run of configuration cfg on this machine, on random
// data of the dataset's image shape and classes: its start-up (loadTime,
// the time the data took to load, plus building and compiling the training
// step and its first step), training steps, compiling the evaluation step
// and evaluation batches.
func measureDemo(ctx context.Context, cfg train.Config, shape []int, classes int, loadTime time.Duration) (experiment.DemoSpeed, error) {
	var s experiment.DemoSpeed
	spec, err := models.Get(cfg.Model)
	if err != nil {
		return s, usagef("--model: %v", err)
	}
	b, config, err := backend.New(cfg.Backend)
	if err != nil {
		return s, usagef("--backend: %v", err)
	}
	defer b.Finalize()
	if err := train.CheckBackend(b, config, cfg, append([]int{cfg.BatchSize}, shape...), classes); err != nil {
		return s, usageError{err}
	}
	start := time.Now()
	timer, err := newStepTimer(b, cfg.Model+" on "+config, train.NewStep(cfg, spec, classes), nil, shape, cfg.BatchSize, 2, cfg.LR, uint64(cfg.Seed))
	if err != nil {
		return s, err
	}
	defer timer.Close()
	if _, err := timer.Train(); err != nil {
		return s, err
	}
	s.Startup = loadTime + time.Since(start)
	if err := ctx.Err(); err != nil {
		return s, fmt.Errorf("measuring the machine: %w", err)
	}
	// Training: at least 3 steps and 3 seconds after one more warm-up step.
	if _, err := timer.Train(); err != nil {
		return s, err
	}
	times, err := timeCalls(3, 3*time.Second, func() error { _, err := timer.Train(); return err })
	if err != nil {
		return s, err
	}
	s.TrainRate = float64(len(times)*cfg.BatchSize) / sumDurations(times).Seconds()
	if err := ctx.Err(); err != nil {
		return s, fmt.Errorf("measuring the machine: %w", err)
	}
	// Evaluation: its compilation, then at least 3 batches and a second.
	t := time.Now()
	if err := timer.Eval(); err != nil {
		return s, err
	}
	s.EvalCompile = time.Since(t)
	times, err = timeCalls(3, time.Second, timer.Eval)
	if err != nil {
		return s, err
	}
	s.EvalRate = float64(len(times)*cfg.BatchSize) / sumDurations(times).Seconds()
	return s, nil
}

func sumDurations(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s
}

// fmtMinutes formats a duration for people: "40 s", "9 minutes", "5.5 hours".
func fmtMinutes(d time.Duration) string {
	switch {
	case d < 90*time.Second:
		return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
	case d < 90*time.Minute:
		return plural(int(d.Round(time.Minute)/time.Minute), "minute")
	}
	return fmt.Sprintf("%.1f hours", d.Hours())
}
