package report

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/experiment"
)

// RunInfo is one training run as the report sees it.
type RunInfo struct {
	// Dir is the run directory.
	Dir string
	// Alpha and LabelSmoothing are the run's SGT exponent and label smoothing.
	Alpha, LabelSmoothing float64
	// Seed is the run's seed (-1 when unknown).
	Seed int
	// Context describes the settings other than alpha, label smoothing and
	// seed that differ between the runs of a report ("" when none do).
	Context string
	// Run holds the run's files.
	Run *experiment.Run

	settings map[string]string // the trial's settings when it came from an experiment
}

// Load reads the runs of the given directories. Each may be an experiment
// directory (grid.json: its finished trials are read), a run directory
// (metrics.csv), or a directory whose subdirectories are either. Notes
// collects what was skipped or assumed. Errors name the offending file.
func Load(dirs []string) (runs []*RunInfo, notes []string, err error) {
	if len(dirs) == 0 {
		return nil, nil, errors.New("no directories to report on")
	}
	for _, dir := range dirs {
		found, n, err := loadDir(dir, true)
		if err != nil {
			return nil, nil, err
		}
		if len(found) == 0 {
			return nil, nil, fmt.Errorf("%s: no finished runs found (want an experiment directory with %s, a run directory with %s, or a directory of those)",
				dir, experiment.ManifestFile, experiment.MetricsFile)
		}
		runs = append(runs, found...)
		notes = append(notes, n...)
	}
	notes = append(notes, resolveSettings(runs)...)
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
	if _, err := os.Stat(filepath.Join(dir, experiment.MetricsFile)); err == nil {
		run, err := experiment.ReadRun(dir)
		if err != nil {
			return nil, nil, err
		}
		if run.Summary == nil {
			notes = append(notes, fmt.Sprintf("%s has no %s: the run did not finish; its last epoch is used", dir, experiment.SummaryFile))
		}
		return []*RunInfo{{Dir: dir, Run: run, Seed: -1}}, notes, nil
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
		if st.State != experiment.StateDone {
			skipped++
			continue
		}
		run, err := experiment.ReadRun(tdir)
		if err != nil {
			return nil, nil, err
		}
		settings := map[string]string{}
		for _, s := range t.Settings {
			settings[s.Name] = s.Value
		}
		runs = append(runs, &RunInfo{Dir: tdir, Run: run, Seed: t.Seed, settings: settings})
	}
	if skipped > 0 {
		notes = append(notes, fmt.Sprintf("%s: %d of %d trials are not finished and were left out", dir, skipped, len(m.Trials)))
	}
	return runs, notes, nil
}

// Keys of config.json that never distinguish runs in a report: the seed
// and the two settings the tables are about, and where things came from.
var ignoredKeys = map[string]bool{
	"seed": true, "alpha": true, "labelsmoothing": true, "datadir": true, "backend": true, "out": true,
	"resume": true, "force": true, "codeversion": true, "goversion": true, "started": true, "backendconfig": true,
	"trainsources": true, "testsources": true, "warnings": true, "round": true,
}

// resolveSettings fills in each run's alpha, label smoothing, seed and
// context, from config.json, else from the experiment's trial settings,
// else from the defaults (alpha 1, no label smoothing), with a note.
func resolveSettings(runs []*RunInfo) (notes []string) {
	for _, r := range runs {
		var ok bool
		if r.Alpha, ok = r.Run.ConfigFloat("alpha"); !ok {
			if r.Alpha, ok = settingFloat(r.settings, experiment.AlphaFlag); !ok {
				r.Alpha = 1
				notes = append(notes, fmt.Sprintf("%s: alpha not recorded; assumed 1 (plain training)", r.Dir))
			}
		}
		if r.LabelSmoothing, ok = r.Run.ConfigFloat("label_smoothing"); !ok {
			if r.LabelSmoothing, ok = settingFloat(r.settings, experiment.LabelSmoothingFlag); !ok {
				r.LabelSmoothing = 0
			}
		}
		if s, ok := r.Run.ConfigFloat("seed"); ok {
			r.Seed = int(s)
		}
	}
	// The context: the settings whose values differ between runs.
	values := make([]map[string]string, len(runs))
	keys := map[string]bool{}
	for i, r := range runs {
		values[i] = contextSettings(r)
		for k := range values[i] {
			keys[k] = true
		}
	}
	var varying []string
	for k := range keys {
		first, firstOK := values[0][k]
		for i := 1; i < len(runs); i++ {
			if v, ok := values[i][k]; ok != firstOK || v != first {
				varying = append(varying, k)
				break
			}
		}
	}
	sort.Strings(varying)
	for i, r := range runs {
		var parts []string
		for _, k := range varying {
			v, ok := values[i][k]
			if !ok {
				v = "?"
			}
			parts = append(parts, k+"="+v)
		}
		r.Context = strings.Join(parts, ", ")
	}
	return notes
}

func settingFloat(settings map[string]string, name string) (float64, bool) {
	v, ok := settings[name]
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}

// contextSettings returns the settings of a run that may tell it apart from
// others: config.json's settings (those under "config." when the file nests
// them there), or the trial's settings when there is no config.json.
func contextSettings(r *RunInfo) map[string]string {
	out := map[string]string{}
	if r.Run.Config == nil {
		for k, v := range r.settings {
			if !ignoredKeys[normKey(k)] {
				out[k] = v
			}
		}
		return out
	}
	nested := false
	for k := range r.Run.Config {
		if strings.HasPrefix(k, "config.") {
			nested = true
			break
		}
	}
	for k, v := range r.Run.Config {
		name := k
		if nested {
			var ok bool
			if name, ok = strings.CutPrefix(k, "config."); !ok {
				continue
			}
		}
		if ignoredKeys[normKey(name[strings.LastIndex(name, ".")+1:])] {
			continue
		}
		out[name] = formatValue(v)
	}
	return out
}

func normKey(s string) string {
	return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
}

func formatValue(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return x
	case nil:
		return "null"
	default:
		return fmt.Sprint(x)
	}
}

// errNoColumn is wrapped by errors about required metrics columns.
var errNoColumn = errors.New("missing column")

// finalValue returns a run's final value of column, or an error naming its
// metrics file.
func finalValue(r *RunInfo, column string) (float64, error) {
	v, ok := r.Run.Final(column)
	if !ok {
		return math.NaN(), fmt.Errorf("%s: %w %q (columns: %s)", filepath.Join(r.Dir, experiment.MetricsFile), errNoColumn, column, strings.Join(r.Run.Columns, ","))
	}
	return v, nil
}
