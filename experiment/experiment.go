package experiment

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// PrepareGrid returns the manifest of grid g in the experiment directory dir:
// a new one, or the existing one when dir already holds the same grid (the
// same trials with the same arguments), so that rerunning a grid resumes
// it. A directory holding a different experiment is an error.
func PrepareGrid(dir string, g *Grid, command []string) (*Manifest, error) {
	trials := g.Trials()
	old, err := ReadManifest(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if old.Kind != KindGrid {
			return nil, fmt.Errorf("%s holds a %s, not a grid; choose another --out", dir, old.Kind)
		}
		if !sameTrials(old.Trials, trials) {
			return nil, fmt.Errorf("%s holds a different grid (%d trials, made by %q); rerun that command to resume it, or choose another --out",
				dir, len(old.Trials), strings.Join(old.Command, " "))
		}
	}
	m := &Manifest{Kind: KindGrid, Command: command, Grid: g, Axes: g.Axes, Seeds: g.Seeds}
	for _, t := range trials {
		m.Trials = append(m.Trials, TrialRecord{Trial: t})
	}
	return m, nil
}

func sameTrials(old []TrialRecord, trials []Trial) bool {
	if len(old) != len(trials) {
		return false
	}
	for i, t := range trials {
		o := old[i].Trial
		if o.Index != t.Index || o.Name != t.Name || o.Dir != t.Dir || !slices.Equal(o.Args, t.Args) {
			return false
		}
	}
	return true
}

// RunGrid runs grid g in the experiment directory dir with runner r: it
// writes or checks the manifest, runs the trials of r's shard (skipping
// finished ones) and writes results.csv and results.json. command is
// recorded in the manifest. The summary says which trials failed; the error
// is for bookkeeping failures and cancellation.
func RunGrid(ctx context.Context, dir string, g *Grid, command []string, r *Runner) (RunSummary, []Result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return RunSummary{}, nil, fmt.Errorf("creating grid directory: %w", err)
	}
	m, err := PrepareGrid(dir, g, command)
	if err != nil {
		return RunSummary{}, nil, err
	}
	sum, runErr := r.Run(ctx, dir, m, nil)
	_, results, err := Collect(dir)
	if runErr != nil {
		return sum, results, runErr
	}
	return sum, results, err
}
