package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/sgt-dev/sgt/experiment"
)

func init() {
	register("grid", "train every combination of listed flag values over seeds (resumable, shardable); \"grid collect DIR\" merges results", runGrid)
}

// gridUsage explains how sgt grid reads its arguments.
const gridUsage = `Usage: sgt grid [grid flags] [train flags]
       sgt grid collect DIR

Runs "sgt train" once per combination of the listed values of the train
flags, each combination repeated over the seeds. Any train flag may be given a
comma-separated list, e.g. --alpha 0.05,0.3,1 --label-smoothing 0,0.1 (write
\, for a literal comma; alternatives of --milestones are separated by ";").
Every trial is an ordinary run directory under --out, named after its varied
settings (e.g. alpha=0.3_label-smoothing=0.1_seed=1); the grid directory also
holds grid.json (the manifest), results.csv and results.json.

Rerunning the same command skips finished trials, resumes interrupted ones and
retries failed ones. With --shard I/N a process runs only the trials whose index
mod N is I, so N machines sharing the grid directory can split a grid; run
"sgt grid collect DIR" afterwards to merge their results. The exit status is 1
when a trial failed.

Grid flags:
`

// gridFlags are the flags of sgt grid itself (everything else goes to train).
type gridFlags struct {
	out      string
	seeds    string
	parallel int
	shard    string
	dryRun   bool
}

func newGridFlagSet(stderr io.Writer, g *gridFlags) *flag.FlagSet {
	fs := newFlagSet("grid", stderr)
	fs.StringVar(&g.out, "out", "runs/grid", "grid directory")
	fs.StringVar(&g.seeds, "seeds", "", "seeds of every setting: a count N (0..N-1), a list 1,2,3 or a range 5:7 (default: --seed, else 0)")
	fs.IntVar(&g.parallel, "parallel", 1, "number of trials that run at once")
	fs.StringVar(&g.shard, "shard", "", "run only shard I of N (\"I/N\": trials whose index mod N is I)")
	fs.BoolVar(&g.dryRun, "dry-run", false, "list the trials and their arguments without running them")
	fs.Usage = func() {
		fmt.Fprint(stderr, gridUsage)
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nTrain flags: see \"sgt train -h\".")
	}
	return fs
}

// runGrid implements "sgt grid".
func runGrid(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "collect" {
		return runGridCollect(args[1:], stdout, stderr)
	}
	var gf gridFlags
	fs := newGridFlagSet(stderr, &gf)
	info, err := trainFlagInfo()
	if err != nil {
		return err
	}
	own, trainArgs, err := splitFlags(args, fs, info)
	if err != nil {
		return err
	}
	if err := parseFlags(fs, own, false); err != nil {
		return err
	}
	var seeds []int
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
	g, err := experiment.NewGrid(trainArgs, seeds, info.kinds())
	if err != nil {
		return usageError{err}
	}
	trials := g.Trials()
	if gf.dryRun {
		for _, t := range trials {
			if experiment.InShard(t.Index, shard, shards) {
				fmt.Fprintf(stdout, "%s\tsgt train %s --out %s\n", t.Name, strings.Join(t.Args, " "), gridJoin(gf.out, t.Dir))
			}
		}
		return nil
	}
	r := &experiment.Runner{Train: trainTrial, Parallel: gf.parallel, Shard: shard, Shards: shards, ResumeArgs: trainResumeArgs, Progress: stdout}
	fmt.Fprintf(stdout, "grid %s: %d trials", gf.out, len(trials))
	if shards > 1 {
		fmt.Fprintf(stdout, " (shard %d/%d)", shard, shards)
	}
	fmt.Fprintln(stdout)
	sum, results, err := experiment.RunGrid(context.Background(), gf.out, g, append([]string{"sgt", "grid"}, args...), r)
	if err != nil {
		return err
	}
	var mine []experiment.Result
	for i, res := range results {
		if experiment.InShard(i, shard, shards) {
			mine = append(mine, res)
		}
	}
	printResults(stdout, mine)
	return summaryError(sum)
}

// summaryError turns failed trials into the command's error (exit status 1).
func summaryError(sum experiment.RunSummary) error {
	if len(sum.Failed) == 0 {
		return nil
	}
	names := make([]string, len(sum.Failed))
	for i, f := range sum.Failed {
		names[i] = f.Trial
	}
	return fmt.Errorf("%d of %d trials failed (%s); see their %s", len(sum.Failed), sum.Selected, strings.Join(names, ", "), experiment.LogFile)
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
	fmt.Fprintf(stdout, "%d trials: %d done, %d failed, %d not finished\n", len(m.Trials), count[experiment.StateDone],
		count[experiment.StateFailed], len(m.Trials)-count[experiment.StateDone]-count[experiment.StateFailed])
	if count[experiment.StateDone] != len(m.Trials) {
		return fmt.Errorf("%s: %d of %d trials are not done", fs.Arg(0), len(m.Trials)-count[experiment.StateDone], len(m.Trials))
	}
	return nil
}

// printResults prints one line per trial: status and final metrics.
func printResults(w io.Writer, results []experiment.Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRIAL\tSTATUS\tEPOCHS\tTEST ACC\tBEST TEST ACC\tTRAIN LOSS")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Trial, r.Status, r.Epochs,
			pct(r.Final, "test_acc"), pct(r.Best, "test_acc"), num(r.Final, "train_loss"))
	}
	tw.Flush()
}

func pct(m map[string]float64, key string) string {
	v, ok := m[key]
	if !ok || math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*v)
}

func num(m map[string]float64, key string) string {
	v, ok := m[key]
	if !ok || math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.4f", v)
}

func gridJoin(dir, sub string) string {
	return strings.TrimSuffix(dir, "/") + "/" + sub
}

// trainTrial runs one trial through the train command in this process,
// writing its output to the trial's log.
func trainTrial(ctx context.Context, args []string, dir string, log io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cmd, ok := commands["train"]
	if !ok {
		return errors.New("the train command is not available")
	}
	return cmd.run(append(append([]string(nil), args...), "--out", dir), strings.NewReader(""), log, log)
}

// trainResumeArgs continues an interrupted run with train's --resume: the
// settings come from the run's config.json, so no other flag may be given.
func trainResumeArgs(_ []string, dir string) []string {
	return []string{"--resume", dir}
}

// trainFlags describes the flags of "sgt train", read from its help text
// so that grid and search follow whatever flags train has.
type trainFlags struct {
	// types maps each flag name to its type word in the help ("" for
	// booleans, "value" for custom types).
	types map[string]string
	// usage maps each flag name to its help text.
	usage map[string]string
}

// trainFlagInfo asks the train command for its flags.
func trainFlagInfo() (*trainFlags, error) {
	cmd, ok := commands["train"]
	if !ok {
		return nil, errors.New("the train command is not available")
	}
	var help bytes.Buffer
	if err := cmd.run([]string{"-h"}, strings.NewReader(""), io.Discard, &help); !errors.Is(err, errHelp) {
		return nil, fmt.Errorf("reading the flags of sgt train: %v", err)
	}
	return parseFlagHelp(help.String()), nil
}

// parseFlagHelp reads the output of flag.PrintDefaults: lines "  -name type"
// (no type for booleans) followed by indented usage lines.
func parseFlagHelp(help string) *trainFlags {
	tf := &trainFlags{types: map[string]string{}, usage: map[string]string{}}
	var last string
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "  -"):
			head, usage, _ := strings.Cut(strings.TrimPrefix(line, "  -"), "\t")
			name, typ, _ := strings.Cut(strings.TrimSpace(head), " ")
			last = name
			tf.types[name] = typ
			tf.usage[name] = usage
		case strings.HasPrefix(line, "    ") && last != "":
			tf.usage[last] += " " + strings.TrimSpace(line)
		}
	}
	return tf
}

// kinds tells the experiment package which train flags are booleans and
// which take a comma-separated list of their own.
func (tf *trainFlags) kinds() experiment.FlagKinds {
	return experiment.FlagKinds{
		IsBool: func(name string) bool {
			typ, ok := tf.types[name]
			return ok && typ == ""
		},
		IsList: func(name string) bool {
			return tf.types[name] == "value" && strings.Contains(tf.usage[name], "comma-separated")
		},
	}
}

// splitFlags separates the flags of own (a grid or search flag set) from the
// train flags in args. Unknown flags are usage errors; -h and --help print
// own's usage.
func splitFlags(args []string, own *flag.FlagSet, tf *trainFlags) (ownArgs, trainArgs []string, err error) {
	kinds := tf.kinds()
	ownBool := func(name string) bool {
		f := own.Lookup(name)
		if f == nil {
			return false
		}
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		return ok && b.IsBoolFlag()
	}
	isBool := kinds.IsBool
	kinds.IsBool = func(name string) bool {
		if own.Lookup(name) != nil {
			return ownBool(name)
		}
		return isBool(name) || name == "h" || name == "help"
	}
	flags, err := experiment.ParseFlags(args, kinds)
	if err != nil {
		return nil, nil, usageError{err}
	}
	var unknown []string
	for _, f := range flags {
		switch {
		case f.Name == "h" || f.Name == "help":
			ownArgs = append(ownArgs, "-h")
		case own.Lookup(f.Name) != nil:
			ownArgs = append(ownArgs, f.Arg())
		case tf.types[f.Name] != "" || kinds.IsBool(f.Name):
			trainArgs = append(trainArgs, f.Arg())
		default:
			unknown = append(unknown, "--"+f.Name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, nil, usagef("unknown flag %s (neither a flag of this command nor of sgt train; see -h and \"sgt train -h\")", strings.Join(unknown, ", "))
	}
	return ownArgs, trainArgs, nil
}
