package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/sgt-dev/sgt/experiment"
	"github.com/sgt-dev/sgt/train"
)

func init() {
	register("search", "successive-halving search over alpha: train many, keep the best, grow the epoch budget", runSearch)
}

const searchUsage = `Usage: sgt search [search flags] [train flags]

Successive halving over the SGT exponent alpha: every alpha (--alpha list or
--alpha-range lo:hi:n) is trained for --epochs epochs over the seeds, the best
fraction --keep by --metric survive, the epoch budget is multiplied by --eta,
and so on until one alpha is left (or --rounds rounds ran). Other train flags
(the flags of "sgt train") are shared by every trial. The search directory holds the trial run
directories, grid.json, results.csv, results.json, and the final ranking
(ranking.csv, ranking.txt), so "sgt report" works on it. Rerunning the same
command skips finished trials.

Flags (search flags first, then the run settings shared by every trial):
`

// runSearch implements "sgt search".
func runSearch(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("search", stderr)
	out := fs.String("out", "runs/search", "search directory")
	alphaList := fs.String("alpha", "", "comma-separated alpha values to search (default 0.05,0.1,0.2,0.3,0.5,0.7,1 unless --alpha-range)")
	alphaRange := fs.String("alpha-range", "", "lo:hi:n, n alpha values evenly spaced from lo to hi")
	epochs := fs.Int("epochs", 1, "epoch budget of the first round")
	eta := fs.Float64("eta", 2, "factor by which the epoch budget grows from round to round")
	keep := fs.Float64("keep", 0, "fraction of alphas kept after each round (default 1/eta)")
	rounds := fs.Int("rounds", 0, "maximum number of rounds (0: until one alpha is left)")
	metric := fs.String("metric", "test_acc", "metric ranking the alphas: a metric of metrics.csv (its last value) or best_<metric>; losses, gaps and times are minimised")
	seedsFlag := fs.String("seeds", "1", "seeds of every alpha: a count N (0..N-1), a list 1,2,3 or a range 5:7")
	parallel := fs.Int("parallel", 1, "number of trials that run at once")
	recipe := fs.String("recipe", "", "start every trial from this recipe (see \"sgt recipes\")")
	var settings []train.Setting
	defineSettingFlags(fs, &settings, experiment.AlphaFlag, experiment.EpochsFlag, experiment.SeedFlag)
	fs.Usage = func() {
		fmt.Fprint(stderr, searchUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	var alphas []float64
	var err error
	switch {
	case *alphaList != "" && *alphaRange != "":
		return usagef("give either --alpha or --alpha-range, not both")
	case *alphaRange != "":
		if alphas, err = experiment.ParseAlphaRange(*alphaRange); err != nil {
			return usagef("--alpha-range: %v", err)
		}
	default:
		list := *alphaList
		if list == "" {
			list = "0.05,0.1,0.2,0.3,0.5,0.7,1"
		}
		if alphas, err = experiment.ParseAlphaList(list); err != nil {
			return usagef("--alpha: %v", err)
		}
	}
	seeds, err := experiment.ParseSeeds(*seedsFlag)
	if err != nil {
		return usagef("--seeds: %v", err)
	}
	if *parallel < 1 {
		return usagef("--parallel: must be at least 1, got %d", *parallel)
	}
	spec, err := experiment.NewSearchSpec(*recipe, settings, alphas, seeds, *epochs, *eta, *keep, *rounds, *metric)
	if err != nil {
		return usageError{err}
	}
	fmt.Fprintf(stdout, "search %s: %s x %s, %s in the first round, keeping %.3g per round\n",
		*out, plural(len(spec.Alphas), "alpha"), plural(len(spec.Seeds), "seed"), plural(spec.MinEpochs, "epoch"), spec.Keep)
	r := &experiment.Runner{Train: experiment.TrainTrial, Parallel: *parallel}
	terminal, width := terminalWidth(stdout)
	display := experiment.NewProgress(stdout, terminal, experiment.ProgressOptions{Parallel: *parallel, Width: width})
	display.Attach(r)
	outcome, err := experiment.RunSearch(ctx, *out, spec, append([]string{"sgt", "search"}, args...), r)
	display.Close()
	if err != nil {
		return experimentError(err)
	}
	fmt.Fprintf(stdout, "\nranking after %s (written to %s):\n", plural(outcome.Rounds, "round"), filepath.Join(*out, experiment.RankingText))
	if err := experiment.WriteRankingTable(stdout, spec.Metric, outcome.Ranking); err != nil {
		return err
	}
	return summaryError(experiment.RunSummary{Selected: len(outcome.Results), Failed: outcome.Failed})
}
