package rundir

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// Run is a run directory read into memory.
type Run struct {
	// Dir is the run directory as given; Path is its absolute, symlink-free
	// form, the same however the directory is reached.
	Dir, Path string
	// Record is config.json.
	Record *Record
	// Metrics holds metrics.csv, one row per epoch.
	Metrics []EpochMetrics
	// Summary is summary.json; nil while the run is unfinished.
	Summary *Summary
}

// Read reads the run directory dir: config.json and metrics.csv are
// required, summary.json is read when it exists. Errors name the file.
func Read(dir string) (*Run, error) {
	path, err := filepath.Abs(dir)
	if err == nil {
		path, err = filepath.EvalSymlinks(path)
	}
	if err != nil {
		return nil, fmt.Errorf("run directory %s: %w", dir, err)
	}
	run := &Run{Dir: dir, Path: path}
	if run.Record, err = ReadRecord(dir); err != nil {
		return nil, err
	}
	if run.Metrics, err = ReadMetrics(dir); err != nil {
		return nil, err
	}
	run.Summary, err = ReadSummary(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		run.Summary = nil
	case err != nil:
		return nil, err
	case run.Summary.Epochs != len(run.Metrics):
		return nil, fmt.Errorf("%s: %d epochs, but %s has %d rows", filepath.Join(dir, SummaryFile), run.Summary.Epochs, MetricsFile, len(run.Metrics))
	}
	return run, nil
}

// Key identifies the run for deduplication: its recorded ID, else its
// resolved path.
func (r *Run) Key() string {
	if r.Record != nil && r.Record.ID != "" {
		return "id:" + r.Record.ID
	}
	return "path:" + r.Path
}

// Column returns the named metric over the epochs; ok is false for an
// unknown name or a column the run did not measure.
func (r *Run) Column(name string) (values []float64, ok bool) {
	if name == EpochColumn {
		out := make([]float64, len(r.Metrics))
		for i, m := range r.Metrics {
			out[i] = float64(m.Epoch)
		}
		return out, true
	}
	c, ok := LookupMetric(name)
	if !ok {
		return nil, false
	}
	out := make([]float64, len(r.Metrics))
	measured := false
	for i, m := range r.Metrics {
		out[i] = c.Of(m)
		measured = measured || !math.IsNaN(out[i])
	}
	return out, measured
}

// Has reports whether the run measured the named metric.
func (r *Run) Has(name string) bool {
	_, ok := r.Column(name)
	return ok
}

// Final returns the metric's value at the last epoch that measured it.
func (r *Run) Final(name string) (float64, bool) {
	col, ok := r.Column(name)
	if !ok {
		return 0, false
	}
	for i := len(col) - 1; i >= 0; i-- {
		if !math.IsNaN(col[i]) {
			return col[i], true
		}
	}
	return 0, false
}

// Best returns the metric's best value over the epochs (by its Direction;
// the largest for neutral metrics) and the epoch it was reached.
func (r *Run) Best(name string) (value float64, epoch int, ok bool) {
	col, ok := r.Column(name)
	if !ok {
		return 0, 0, false
	}
	m, _ := LookupMetric(name)
	lower := m.Better == LowerIsBetter
	found := false
	for i, v := range col {
		if math.IsNaN(v) {
			continue
		}
		if !found || (lower && v < value) || (!lower && v > value) {
			value, epoch, found = v, r.Metrics[i].Epoch, true
		}
	}
	return value, epoch, found
}
