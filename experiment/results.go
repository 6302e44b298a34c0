package experiment

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/atomicfile"
	"github.com/sgt-dev/sgt/rundir"
)

// Result is one trial's row of results.csv and results.json: the trial, its
// state, and its run directory read through package rundir.
type Result struct {
	// Trial is the trial.
	Trial Trial
	// Status is the trial's state and Error its failure message (or a
	// problem reading its run directory).
	Status string
	Error  string
	// Run is the trial's run directory (nil when it could not be read).
	Run *rundir.Run
}

// Metric returns a result's value of a metric name as used by searches and
// reports: "best_X" is the best value of metric X over the epochs (by its
// direction), any other name the final value of that metric.
func (r Result) Metric(name string) (float64, bool) {
	if r.Run == nil {
		return 0, false
	}
	if col, ok := strings.CutPrefix(name, "best_"); ok {
		v, _, ok := r.Run.Best(col)
		return v, ok
	}
	return r.Run.Final(name)
}

// Epochs returns the number of epochs the trial recorded.
func (r Result) Epochs() int {
	if r.Run == nil {
		return 0
	}
	return len(r.Run.Metrics)
}

// CheckMetric validates a metric name as Result.Metric takes it, naming
// the known ones when it is unknown.
func CheckMetric(name string) error {
	if _, ok := rundir.LookupMetric(strings.TrimPrefix(name, "best_")); !ok {
		return fmt.Errorf("unknown metric %q (known: %s, each also as best_<name>)", name, strings.Join(rundir.MetricNames(), ", "))
	}
	return nil
}

// MarshalJSON writes the result as results.json has it: the trial's name,
// directory, settings and seed, status, error, the number of epochs, the
// final value of every metric, and the best value (and its epoch) of every
// tracked metric (losses and accuracies).
func (r Result) MarshalJSON() ([]byte, error) {
	settings := map[string]string{}
	for _, s := range r.Trial.Settings {
		settings[s.Name] = s.Value
	}
	final, best, bestEpoch := map[string]float64{}, map[string]float64{}, map[string]int{}
	if r.Run != nil {
		for _, m := range rundir.Metrics {
			if v, ok := r.Run.Final(m.Name); ok {
				final[m.Name] = v
			}
			if !m.Tracked {
				continue
			}
			if v, e, ok := r.Run.Best(m.Name); ok {
				best[m.Name], bestEpoch[m.Name] = v, e
			}
		}
	}
	return json.Marshal(struct {
		Trial     string             `json:"trial"`
		Dir       string             `json:"dir"`
		Settings  map[string]string  `json:"settings"`
		Seed      int                `json:"seed"`
		Status    string             `json:"status"`
		Error     string             `json:"error,omitempty"`
		Epochs    int                `json:"epochs"`
		Final     map[string]float64 `json:"final,omitempty"`
		Best      map[string]float64 `json:"best,omitempty"`
		BestEpoch map[string]int     `json:"best_epoch,omitempty"`
	}{r.Trial.Name, r.Trial.Dir, settings, r.Trial.Seed, r.Status, r.Error, r.Epochs(), final, best, bestEpoch})
}

// ResultOf builds the result of one trial whose run directory is
// experimentDir/t.Dir, with status st.
func ResultOf(experimentDir string, t Trial, st Status) Result {
	res := Result{Trial: t, Status: st.State, Error: st.Error}
	run, err := rundir.Read(filepath.Join(experimentDir, t.Dir))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) || st.State == StateDone {
			res.Error = joinErr(res.Error, err.Error())
		}
		return res
	}
	res.Run = run
	return res
}

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
// final_<metric> for every metric some trial recorded and best_<metric>,
// best_<metric>_epoch for the tracked ones (losses and accuracies).
func WriteResults(dir string, m *Manifest, results []Result) error {
	if err := atomicfile.WriteJSON(filepath.Join(dir, ResultsJSON), results); err != nil {
		return err
	}
	var axes []string
	for _, a := range m.Axes {
		axes = append(axes, a.Name)
	}
	var metrics []rundir.Metric
	for _, c := range rundir.Metrics {
		for _, r := range results {
			if _, ok := r.Metric(c.Name); ok {
				metrics = append(metrics, c)
				break
			}
		}
	}
	header := []string{"trial", "dir"}
	header = append(header, axes...)
	header = append(header, "seed", "status", "error", "epochs")
	for _, c := range metrics {
		header = append(header, "final_"+c.Name)
	}
	for _, c := range metrics {
		if c.Tracked {
			header = append(header, "best_"+c.Name, "best_"+c.Name+"_epoch")
		}
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(header)
	for _, r := range results {
		row := []string{r.Trial.Name, r.Trial.Dir}
		for _, a := range axes {
			v, _ := r.Trial.Setting(a)
			row = append(row, v)
		}
		row = append(row, strconv.Itoa(r.Trial.Seed), r.Status, r.Error, strconv.Itoa(r.Epochs()))
		for _, c := range metrics {
			v, ok := r.Metric(c.Name)
			row = append(row, formatOptional(v, ok))
		}
		for _, c := range metrics {
			if !c.Tracked {
				continue
			}
			var v float64
			var e int
			ok := false
			if r.Run != nil {
				v, e, ok = r.Run.Best(c.Name)
			}
			row = append(row, formatOptional(v, ok), formatOptional(float64(e), ok))
		}
		_ = w.Write(row)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("writing %s: %w", ResultsCSV, err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, ResultsCSV), buf.Bytes())
}

func formatOptional(v float64, ok bool) string {
	if !ok || math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
