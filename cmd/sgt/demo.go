package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/sgt-dev/sgt/data"
	"github.com/sgt-dev/sgt/experiment"
	"github.com/sgt-dev/sgt/report"
)

func init() {
	register("demo", "quick start: plain training against SGT on Fashion-MNIST/MNIST over seeds, with a report", runDemo)
}

const demoUsage = `Usage: sgt demo [flags]

A small but real comparison of plain training (alpha = 1) against SGT, with
and without label smoothing, over several seeds, on Fashion-MNIST when its
files are installed (Debian package dataset-fashion-mnist), else on MNIST. It
runs as a grid under --out (rerunning resumes it), prints the tables and writes
report.html there. Every size is a flag; the defaults aim at about ten minutes
on two CPU cores.

Flags:
`

// runDemo implements "sgt demo".
func runDemo(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	d := experiment.DefaultDemo()
	fs := newFlagSet("demo", stderr)
	out := fs.String("out", "runs/demo", "directory of the demo's grid and report")
	fs.StringVar(&d.Data, "data", "", "dataset (default: fashion-mnist when installed, else mnist)")
	fs.StringVar(&d.Model, "model", d.Model, "model to train (see sgt models)")
	fs.StringVar(&d.Alphas, "alpha", d.Alphas, "comma-separated alpha values (1 is the baseline)")
	fs.StringVar(&d.LabelSmoothings, "label-smoothing", d.LabelSmoothings, "comma-separated label-smoothing values")
	fs.IntVar(&d.Seeds, "seeds", d.Seeds, "number of seeds of every setting")
	fs.IntVar(&d.Epochs, "epochs", d.Epochs, "epochs of every run")
	fs.IntVar(&d.TrainSize, "train-size", d.TrainSize, "training examples of every run (0: all)")
	fs.IntVar(&d.TestSize, "test-size", d.TestSize, "test examples of every run (0: all)")
	fs.IntVar(&d.BatchSize, "batch-size", d.BatchSize, "batch size")
	fs.Float64Var(&d.LR, "lr", d.LR, "peak learning rate")
	fs.StringVar(&d.Backend, "backend", "", "GoMLX backend (default: automatic)")
	parallel := fs.Int("parallel", 1, "number of runs at once")
	fs.Usage = func() {
		fmt.Fprint(stderr, demoUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return usageError{err}
	}
	if *parallel < 1 {
		return usagef("--parallel: must be at least 1, got %d", *parallel)
	}
	dataset := d.DemoDataset(func(name string) bool {
		_, err := data.Load(name, "", data.SplitTest)
		return err == nil
	})
	g, err := d.Grid(dataset)
	if err != nil {
		return usageError{err}
	}
	trials, err := g.Trials()
	if err != nil {
		return usageError{err}
	}
	fmt.Fprintf(stdout, "demo: %s on %s, alpha %s x label smoothing %s x %d seeds = %d runs of %d epochs on %d images, in %s\n",
		d.Model, dataset, d.Alphas, d.LabelSmoothings, d.Seeds, len(trials), d.Epochs, d.TrainSize, *out)
	start := time.Now()
	r := &experiment.Runner{Train: experiment.TrainTrial, Parallel: *parallel, Progress: stdout}
	sum, _, err := experiment.RunGrid(ctx, *out, g, append([]string{"sgt", "demo"}, args...), r)
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
	fmt.Fprintf(stdout, "finished in %s; report written to %s\n", time.Since(start).Round(time.Second), path)
	return nil
}
