package report

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sgt-dev/sgt/experiment"
	"github.com/sgt-dev/sgt/rundir"
)

// RunInfo is one training run as the report sees it.
type RunInfo struct {
	// Dir is the run directory.
	Dir string
	// Alpha and LabelSmoothing are the run's SGT exponent and label smoothing.
	Alpha, LabelSmoothing float64
	// Seed is the run's seed.
	Seed int
	// Context describes the settings other than alpha, label smoothing and
	// seed that differ between the runs of a report ("" when none do).
	Context string
	// Run holds the run's files.
	Run *rundir.Run
	// Failure is the error of a grid trial that failed (for example
	// because its training diverged); "" for a finished run. A failed run
	// is reported with the epochs it finished, flagged, and left out of
	// the means.
	Failure string
	// Flags says why the run is flagged (see flagRuns); nil when it is
	// not.
	Flags []string
}

// Load reads the runs of the given directories. Each may be an experiment
// directory (grid.json: its finished trials are read, and its failed
// trials that finished an epoch, with their error in Failure), a run directory
// (config.json and metrics.csv), or a directory whose subdirectories are
// either. A run reached twice (the same directory given twice, or through a
// parent and itself) counts once. Notes collects what was skipped or
// assumed. Errors name the offending file.
func Load(dirs []string) (runs []*RunInfo, notes []string, err error) {
	if len(dirs) == 0 {
		return nil, nil, errors.New("no directories to report on")
	}
	seen := map[string]string{}
	for _, dir := range dirs {
		found, n, err := loadDir(dir, true)
		if err != nil {
			return nil, nil, err
		}
		if len(found) == 0 {
			return nil, nil, fmt.Errorf("%s: no finished runs found (want an experiment directory with %s, a run directory with %s, or a directory of those)",
				dir, experiment.ManifestFile, rundir.MetricsFile)
		}
		notes = append(notes, n...)
		for _, r := range found {
			if first, dup := seen[r.Run.Key()]; dup {
				notes = append(notes, fmt.Sprintf("%s is the run of %s, reached twice: counted once", r.Dir, first))
				continue
			}
			seen[r.Run.Key()] = r.Dir
			runs = append(runs, r)
		}
	}
	resolveSettings(runs)
	return runs, notes, nil
}

func loadDir(dir string, top bool) (runs []*RunInfo, notes []string, err error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, nil, err
	}
	if !info.IsDir() {
		return nil, nil, fmt.Errorf("%s: not a directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, experiment.ManifestFile)); err == nil {
		return loadExperiment(dir)
	}
	if _, err := os.Stat(filepath.Join(dir, rundir.MetricsFile)); err == nil {
		run, err := rundir.Read(dir)
		if err != nil {
			return nil, nil, err
		}
		if run.Summary == nil {
			notes = append(notes, fmt.Sprintf("%s has no %s: the run did not finish; its last epoch is used", dir, rundir.SummaryFile))
		}
		if len(run.Metrics) == 0 {
			return nil, append(notes, fmt.Sprintf("%s: no epoch finished yet; left out", dir)), nil
		}
		return []*RunInfo{{Dir: dir, Run: run}}, notes, nil
	}
	if !top {
		return nil, nil, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		found, n, err := loadDir(filepath.Join(dir, e.Name()), false)
		if err != nil {
			return nil, nil, err
		}
		runs = append(runs, found...)
		notes = append(notes, n...)
	}
	return runs, notes, nil
}

func loadExperiment(dir string) (runs []*RunInfo, notes []string, err error) {
	m, err := experiment.ReadManifest(dir)
	if err != nil {
		return nil, nil, err
	}
	skipped := 0
	for _, t := range m.Trials {
		tdir := filepath.Join(dir, t.Dir)
		st, err := experiment.TrialState(tdir)
		if err != nil {
			return nil, nil, err
		}
		switch st.State {
		case experiment.StateDone:
			run, err := rundir.Read(tdir)
			if err != nil {
				return nil, nil, err
			}
			runs = append(runs, &RunInfo{Dir: tdir, Run: run})
		case experiment.StateFailed:
			failure := st.Error
			if failure == "" {
				failure = "failed (no message recorded)"
			}
			run, err := rundir.Read(tdir)
			if err != nil || len(run.Metrics) == 0 {
				notes = append(notes, fmt.Sprintf("%s failed before finishing an epoch: %s", tdir, failure))
				continue
			}
			runs = append(runs, &RunInfo{Dir: tdir, Run: run, Failure: failure})
		default:
			skipped++
		}
	}
	if skipped > 0 {
		verb := "are"
		if skipped == 1 {
			verb = "is"
		}
		notes = append(notes, fmt.Sprintf("%s: %d of %d trials %s not finished and left out", dir, skipped, len(m.Trials), verb))
	}
	return runs, notes, nil
}

// ignoredKeys are the config.json settings that never distinguish runs in
// a report: the seed and the two settings the tables are about, and where
// things ran or came from.
var ignoredKeys = map[string]bool{
	"seed": true, "alpha": true, "label_smoothing": true, "data_dir": true, "backend": true, "recipe": true,
}

// resolveSettings fills in each run's alpha, label smoothing, seed and
// context from its config.json.
func resolveSettings(runs []*RunInfo) {
	values := make([]map[string]string, len(runs))
	keys := map[string]bool{}
	for i, r := range runs {
		c := r.Run.Record.Config
		r.Alpha, r.LabelSmoothing, r.Seed = c.Alpha, c.LabelSmoothing, int(c.Seed)
		values[i] = map[string]string{}
		for _, f := range c.Fields() {
			if !ignoredKeys[f.Key] {
				values[i][f.Key] = f.Value
				keys[f.Key] = true
			}
		}
	}
	var varying []string
	for k := range keys {
		for i := 1; i < len(runs); i++ {
			if values[i][k] != values[0][k] {
				varying = append(varying, k)
				break
			}
		}
	}
	sort.Strings(varying)
	for i, r := range runs {
		var parts []string
		for _, k := range varying {
			parts = append(parts, k+"="+values[i][k])
		}
		r.Context = strings.Join(parts, ", ")
	}
}

// errNoColumn is wrapped by errors about required metrics.
var errNoColumn = errors.New("missing metric")

// finalValue returns a run's final value of a metric, or an error naming
// its metrics file.
func finalValue(r *RunInfo, metric string) (float64, error) {
	v, ok := r.Run.Final(metric)
	if !ok {
		return math.NaN(), fmt.Errorf("%s: %w %q", filepath.Join(r.Dir, rundir.MetricsFile), errNoColumn, metric)
	}
	return v, nil
}
