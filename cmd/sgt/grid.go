package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/sgt-dev/sgt/experiment"
	"github.com/sgt-dev/sgt/train"
)

func init() {
	register("grid", "train every combination of listed setting values over seeds (resumable, shardable); \"grid collect DIR\" merges results", runGrid)
}

// gridUsage explains how sgt grid reads its arguments.
const gridUsage = `Usage: sgt grid [grid flags] [run settings]
       sgt grid collect DIR

Trains once per combination of the listed values of the run settings (the
flags of "sgt train"), each combination repeated over the seeds. Any setting
may be given a comma-separated list, e.g. --alpha 0.05,0.3,1
--label-smoothing 0,0.1 (write \, for a literal comma; alternatives of
--milestones are separated by ";"). Every trial is an ordinary run directory
under --out, named after its varied settings (e.g.
alpha=0.3_label-smoothing=0.1_seed=1); the grid directory also holds grid.json
(the manifest), results.csv and results.json.

Rerunning the same command skips finished trials, resumes interrupted ones and
retries failed ones; adding values or seeds runs only the new trials. Ctrl-C
or SIGTERM stop every running trial after its current step with a
checkpoint. With --shard I/N a process runs only the trials whose index mod N
is I, so N machines sharing the grid directory can split a grid; run "sgt
grid collect DIR" afterwards to merge their results. The exit status is 1
when a trial failed.

Flags (grid flags first, then the run settings):
`

// gridFlags are the flags of sgt grid itself.
type gridFlags struct {
	out      string
	recipe   string
	seeds    string
	parallel int
	shard    string
	dryRun   bool
}

// settingValue is a flag.Value that records a run setting's raw text, so
// that its value may list alternatives; it keeps the boolean nature of the
// train flag it stands for.
type settingValue struct {
	name   string
	isBool bool
	into   *[]train.Setting
}

// String implements flag.Value.
func (v *settingValue) String() string { return "" }

// Set implements flag.Value.
func (v *settingValue) Set(s string) error {
	*v.into = append(*v.into, train.Setting{Name: v.name, Value: s})
	return nil
}

// IsBoolFlag tells the flag package that a bare --name is "true".
func (v *settingValue) IsBoolFlag() bool { return v.isBool }

// defineSettingFlags defines on fs one flag per run setting of "sgt train"
// (train.DefineFlags's names and usages, except those in skip), each
// appending its raw value to into in command-line order.
func defineSettingFlags(fs *flag.FlagSet, into *[]train.Setting, skip ...string) {
	train.FlagSet(new(train.Config)).VisitAll(func(f *flag.Flag) {
		for _, s := range skip {
			if s == f.Name {
				return
			}
		}
		fs.Var(&settingValue{name: f.Name, isBool: train.IsBoolFlag(f), into: into}, f.Name, f.Usage)
	})
}

// runGrid implements "sgt grid".
func runGrid(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "collect" {
		return runGridCollect(args[1:], stdout, stderr)
	}
	var gf gridFlags
	var settings []train.Setting
	fs := newFlagSet("grid", stderr)
	fs.StringVar(&gf.out, "out", "runs/grid", "grid directory")
	fs.StringVar(&gf.recipe, "recipe", "", "start every trial from this recipe (see \"sgt recipes\")")
	fs.StringVar(&gf.seeds, "seeds", "", "seeds of every setting: a count N (0..N-1), a list 1,2,3 or a range 5:7 (default: --seed, else 0)")
	fs.IntVar(&gf.parallel, "parallel", 1, "number of trials that run at once")
	fs.StringVar(&gf.shard, "shard", "", "run only shard I of N (\"I/N\": trials whose index mod N is I)")
	fs.BoolVar(&gf.dryRun, "dry-run", false, "list the trials and their commands without running them")
	defineSettingFlags(fs, &settings)
	fs.Usage = func() {
		fmt.Fprint(stderr, gridUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	var seeds []int
	var err error
	if gf.seeds != "" {
		if seeds, err = experiment.ParseSeeds(gf.seeds); err != nil {
			return usagef("--seeds: %v", err)
		}
	}
	if gf.parallel < 1 {
		return usagef("--parallel: must be at least 1, got %d", gf.parallel)
	}
	shard, shards := 0, 1
	if gf.shard != "" {
		if shard, shards, err = experiment.ParseShard(gf.shard); err != nil {
			return usagef("--shard: %v", err)
		}
	}
	g, err := experiment.NewGrid(gf.recipe, settings, seeds)
	if err != nil {
		return usageError{err}
	}
	trials, err := g.Trials()
	if err != nil {
		return usageError{err}
	}
	if gf.dryRun {
		for _, t := range trials {
			if experiment.InShard(t.Index, shard, shards) {
				fmt.Fprintf(stdout, "%s\t%s\n", t.Name, t.CommandLine(gridJoin(gf.out, t.Dir)))
			}
		}
		return nil
	}
	r := &experiment.Runner{Train: experiment.TrainTrial, Parallel: gf.parallel, Shard: shard, Shards: shards}
	mineCount := 0
	for _, t := range trials {
		if experiment.InShard(t.Index, shard, shards) {
			mineCount++
		}
	}
	fmt.Fprintf(stdout, "grid %s: %s", gf.out, plural(len(trials), "trial"))
	if shards > 1 {
		fmt.Fprintf(stdout, " (shard %d/%d: %s)", shard, shards, plural(mineCount, "trial"))
	}
	fmt.Fprintln(stdout)
	terminal, width := terminalWidth(stdout)
	display := experiment.NewProgress(stdout, terminal, experiment.ProgressOptions{Total: mineCount, Parallel: gf.parallel, Width: width})
	display.Attach(r)
	sum, results, err := experiment.RunGrid(ctx, gf.out, g, append([]string{"sgt", "grid"}, args...), r)
	display.Close()
	if err != nil {
		return experimentError(err)
	}
	var mine []experiment.Result
	for _, res := range results {
		if experiment.InShard(res.Trial.Index, shard, shards) {
			mine = append(mine, res)
		}
	}
	printResults(stdout, mine)
	return summaryError(sum)
}

// experimentError maps an error of a grid, search or demo: a refused
// directory or setting is bad input (exit status 2); an interrupted one
// says how to continue.
func experimentError(err error) error {
	switch {
	case err == nil:
		return nil
	case isContextError(err):
		return fmt.Errorf("%w\nrun the same command again to resume: finished trials are kept and interrupted ones continue from their checkpoints", err)
	}
	return usageError{err}
}

// plural returns "1 trial" or "n trials".
func plural(n int, word string) string { return experiment.Plural(n, word) }

// summaryError turns failed and busy trials into the command's error (exit
// status 1).
func summaryError(sum experiment.RunSummary) error {
	var parts []string
	if len(sum.Failed) > 0 {
		names := make([]string, len(sum.Failed))
		for i, f := range sum.Failed {
			names[i] = f.Trial
		}
		parts = append(parts, fmt.Sprintf("%d of %s failed (%s); see their %s", len(sum.Failed), plural(sum.Selected, "trial"), strings.Join(names, ", "), experiment.LogFile))
	}
	if len(sum.Busy) > 0 {
		names := make([]string, len(sum.Busy))
		for i, f := range sum.Busy {
			names[i] = f.Trial + " (" + f.Error + ")"
		}
		verb := "are"
		if len(sum.Busy) == 1 {
			verb = "is"
		}
		parts = append(parts, fmt.Sprintf("%s %s being run by another process and left alone: %s; run \"sgt grid collect\" once it is done",
			plural(len(sum.Busy), "trial"), verb, strings.Join(names, ", ")))
	}
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(parts, "; "))
}

// runGridCollect implements "sgt grid collect DIR".
func runGridCollect(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("grid collect", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: sgt grid collect DIR\n\nRefreshes the manifest of the grid (or search) directory DIR from its trials and\nwrites results.csv and results.json. The exit status is 1 while a trial failed or\nis not finished.")
	}
	if err := parseFlags(fs, args, true); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one grid directory, got %d arguments", fs.NArg())
	}
	m, results, err := experiment.Collect(fs.Arg(0))
	if err != nil {
		return usageError{err}
	}
	printResults(stdout, results)
	count := map[string]int{}
	for _, t := range m.Trials {
		count[t.State]++
	}
	fmt.Fprintf(stdout, "%s: %d done, %d failed, %d not finished\n", plural(len(m.Trials), "trial"), count[experiment.StateDone],
		count[experiment.StateFailed], len(m.Trials)-count[experiment.StateDone]-count[experiment.StateFailed])
	if count[experiment.StateDone] != len(m.Trials) {
		n, verb := len(m.Trials)-count[experiment.StateDone], "are"
		if n == 1 {
			verb = "is"
		}
		return fmt.Errorf("%s: %d of %s %s not done", fs.Arg(0), n, plural(len(m.Trials), "trial"), verb)
	}
	return nil
}

// printResults prints one line per trial: status and final metrics.
func printResults(w io.Writer, results []experiment.Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRIAL\tSTATUS\tEPOCHS\tTEST ACC\tBEST TEST ACC\tTRAIN LOSS")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Trial.Name, r.Status, r.Epochs(),
			pct(r.Metric("test_acc")), pct(r.Metric("best_test_acc")), num(r.Metric("train_loss")))
	}
	tw.Flush()
}

func pct(v float64, ok bool) string {
	if !ok || math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*v)
}

func num(v float64, ok bool) string {
	if !ok || math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.4f", v)
}

func gridJoin(dir, sub string) string {
	return strings.TrimSuffix(dir, "/") + "/" + sub
}
