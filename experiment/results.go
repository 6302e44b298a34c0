package experiment

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Result is one trial's row of results.csv and results.json.
type Result struct {
	// Trial is the trial name and Dir its directory relative to the
	// experiment directory.
	Trial string `json:"trial"`
	Dir   string `json:"dir"`
	// Settings are the trial's varied settings, the seed included.
	Settings map[string]string `json:"settings"`
	// Seed is the trial's seed.
	Seed int `json:"seed"`
	// Status is the trial's state and Error its failure message (or a
	// problem reading its run directory).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Epochs is the number of epochs recorded in metrics.csv.
	Epochs int `json:"epochs"`
	// Final holds the last epoch's value of every metrics column.
	Final map[string]float64 `json:"final,omitempty"`
	// Best holds, for every accuracy and loss column, the best value over
	// the epochs (highest accuracy, lowest loss), and BestEpoch the epoch
	// where it was reached.
	Best      map[string]float64 `json:"best,omitempty"`
	BestEpoch map[string]float64 `json:"best_epoch,omitempty"`
}

// Metric returns a result's value of a metric name as used by searches and
// reports: "best_X" is the best value of column X, any other name the final
// value of that column.
func (r Result) Metric(name string) (float64, bool) {
	if col, ok := strings.CutPrefix(name, "best_"); ok {
		v, ok := r.Best[col]
		return v, ok
	}
	v, ok := r.Final[name]
	return v, ok
}

// hasBest reports whether a column gets a best value in results.
func hasBest(column string) bool {
	return strings.Contains(column, "acc") || strings.Contains(column, "loss")
}

// ResultOf builds the result of one trial whose run directory is
// experimentDir/t.Dir, with status st.
func ResultOf(experimentDir string, t Trial, st Status) Result {
	res := Result{Trial: t.Name, Dir: t.Dir, Settings: map[string]string{}, Seed: t.Seed, Status: st.State, Error: st.Error}
	for _, s := range t.Settings {
		res.Settings[s.Name] = s.Value
	}
	run, err := ReadRun(filepath.Join(experimentDir, t.Dir))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) || st.State == StateDone {
			res.Error = joinErr(res.Error, err.Error())
		}
		return res
	}
	res.Epochs = run.Epochs()
	res.Final = map[string]float64{}
	res.Best = map[string]float64{}
	res.BestEpoch = map[string]float64{}
	for _, c := range run.Columns {
		if c == "epoch" {
			continue
		}
		if v, ok := run.Final(c); ok && isFinite(v) {
			res.Final[c] = v
		}
		if hasBest(c) {
			if v, e, ok := run.Best(c); ok && isFinite(v) {
				res.Best[c] = v
				res.BestEpoch[c] = e
			}
		}
	}
	return res
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// Collect refreshes the manifest of the experiment directory dir from the
// trial status files and writes results.csv and results.json, one row per
// trial. It returns the manifest and the results.
func Collect(dir string) (*Manifest, []Result, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the experiment in %s: %w", dir, err)
	}
	if err := WriteManifest(dir, m); err != nil {
		return nil, nil, err
	}
	results := make([]Result, len(m.Trials))
	for i, t := range m.Trials {
		results[i] = ResultOf(dir, t.Trial, t.Status)
	}
	if err := WriteResults(dir, m, results); err != nil {
		return nil, nil, err
	}
	return m, results, nil
}

// WriteResults writes results.csv and results.json into dir. The CSV has
// the columns trial, dir, the manifest's axes, seed, status, error, epochs,
// final_<column> for every metrics column and best_<column>,
// best_<column>_epoch for the accuracy and loss columns.
func WriteResults(dir string, m *Manifest, results []Result) error {
	if err := writeJSONAtomic(filepath.Join(dir, ResultsJSON), results); err != nil {
		return err
	}
	var axes []string
	for _, a := range m.Axes {
		axes = append(axes, a.Name)
	}
	finals, bests := metricColumns(results)
	header := []string{"trial", "dir"}
	header = append(header, axes...)
	header = append(header, "seed", "status", "error", "epochs")
	for _, c := range finals {
		header = append(header, "final_"+c)
	}
	for _, c := range bests {
		header = append(header, "best_"+c, "best_"+c+"_epoch")
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(header)
	for _, r := range results {
		row := []string{r.Trial, r.Dir}
		for _, a := range axes {
			row = append(row, r.Settings[a])
		}
		row = append(row, strconv.Itoa(r.Seed), r.Status, r.Error, strconv.Itoa(r.Epochs))
		for _, c := range finals {
			row = append(row, formatOptional(r.Final, c))
		}
		for _, c := range bests {
			row = append(row, formatOptional(r.Best, c), formatOptional(r.BestEpoch, c))
		}
		_ = w.Write(row)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("writing %s: %w", ResultsCSV, err)
	}
	return writeFileAtomic(filepath.Join(dir, ResultsCSV), buf.Bytes())
}

// metricColumns returns the union of final and best columns over results,
// the standard metrics first in their usual order, then the rest sorted.
func metricColumns(results []Result) (finals, bests []string) {
	fs, bs := map[string]bool{}, map[string]bool{}
	for _, r := range results {
		for c := range r.Final {
			fs[c] = true
		}
		for c := range r.Best {
			bs[c] = true
		}
	}
	return orderColumns(fs), orderColumns(bs)
}

// standardColumns is the usual order of metrics columns.
var standardColumns = []string{"lr", "train_loss", "train_acc", "test_loss", "test_acc", "train_eval_acc", "gap", "logit_norm", "zeroed_filters", "test_top5", "seconds"}

func orderColumns(set map[string]bool) []string {
	var out, rest []string
	for _, c := range standardColumns {
		if set[c] {
			out = append(out, c)
		}
	}
	for c := range set {
		if indexOf(standardColumns, c) < 0 {
			rest = append(rest, c)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func formatOptional(m map[string]float64, key string) string {
	v, ok := m[key]
	if !ok || math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
