package experiment

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Run is a train run directory read into memory.
type Run struct {
	// Dir is the run directory.
	Dir string
	// Config is config.json flattened to dotted keys ("optimizer.lr"); nil
	// when the file is missing.
	Config map[string]any
	// Columns are the numeric columns of metrics.csv in file order.
	Columns []string
	// Rows holds one row per epoch, aligned with Columns; empty cells are NaN.
	Rows [][]float64
	// Summary is summary.json decoded; nil when the file is missing.
	Summary map[string]any
}

// ReadRun reads the run directory dir. metrics.csv is required; config.json
// and summary.json are optional, but a file that exists must be well formed.
// Columns whose cells are not all numbers are left out of Columns. Errors
// name the offending file (and line).
func ReadRun(dir string) (*Run, error) {
	run := &Run{Dir: dir}
	var cfg map[string]any
	if err := readJSON(filepath.Join(dir, ConfigFile), &cfg); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if cfg != nil {
		run.Config = map[string]any{}
		flatten("", cfg, run.Config)
	}
	if err := readJSON(filepath.Join(dir, SummaryFile), &run.Summary); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	path := filepath.Join(dir, MetricsFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	run.Columns, run.Rows, err = ReadMetricsCSV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return run, nil
}

// ReadMetricsCSV reads a metrics table: a header row of distinct non-empty
// column names and rows of equal length. Cells are parsed as numbers (empty
// cells and "NaN" give NaN); a column with any other text is dropped. The
// "epoch" column is required.
func ReadMetricsCSV(r io.Reader) (columns []string, rows [][]float64, err error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	records, err := cr.ReadAll()
	if err != nil {
		return nil, nil, err
	}
	if len(records) == 0 {
		return nil, nil, errors.New("empty file: want a header row")
	}
	header := records[0]
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, nil, fmt.Errorf("line 1: column %d has no name", i+1)
		}
		if seen[h] {
			return nil, nil, fmt.Errorf("line 1: column %q appears twice", h)
		}
		seen[h] = true
		header[i] = h
	}
	if !seen["epoch"] {
		return nil, nil, fmt.Errorf("line 1: no %q column (columns: %s)", "epoch", strings.Join(header, ","))
	}
	numeric := make([]bool, len(header))
	for i := range numeric {
		numeric[i] = true
	}
	values := make([][]float64, len(records)-1)
	for r, rec := range records[1:] {
		values[r] = make([]float64, len(header))
		for c, cell := range rec {
			cell = strings.TrimSpace(cell)
			if cell == "" {
				values[r][c] = math.NaN()
				continue
			}
			v, perr := strconv.ParseFloat(cell, 64)
			if perr != nil {
				if header[c] == "epoch" {
					return nil, nil, fmt.Errorf("line %d: epoch %q is not a number", r+2, cell)
				}
				numeric[c] = false
				continue
			}
			values[r][c] = v
		}
		if math.IsNaN(values[r][indexOf(header, "epoch")]) {
			return nil, nil, fmt.Errorf("line %d: empty epoch", r+2)
		}
	}
	for c, h := range header {
		if numeric[c] {
			columns = append(columns, h)
		}
	}
	rows = make([][]float64, len(values))
	for r, row := range values {
		for c := range header {
			if numeric[c] {
				rows[r] = append(rows[r], row[c])
			}
		}
	}
	return columns, rows, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// flatten copies a decoded JSON object into out with dotted keys.
func flatten(prefix string, v map[string]any, out map[string]any) {
	for k, x := range v {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if m, ok := x.(map[string]any); ok {
			flatten(key, m, out)
			continue
		}
		out[key] = x
	}
}

// HasColumn reports whether metrics.csv has the named numeric column.
func (r *Run) HasColumn(name string) bool { return indexOf(r.Columns, name) >= 0 }

// Column returns the named metrics column, one value per epoch.
func (r *Run) Column(name string) ([]float64, bool) {
	c := indexOf(r.Columns, name)
	if c < 0 {
		return nil, false
	}
	out := make([]float64, len(r.Rows))
	for i, row := range r.Rows {
		out[i] = row[c]
	}
	return out, true
}

// Final returns the value of the named column in the last row where it is
// not NaN.
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

// Best returns the best value of the named column (the largest, or the
// smallest when LowerIsBetter(name)) and the epoch it was reached.
func (r *Run) Best(name string) (value, epoch float64, ok bool) {
	col, ok := r.Column(name)
	if !ok {
		return 0, 0, false
	}
	epochs, _ := r.Column("epoch")
	lower := LowerIsBetter(name)
	found := false
	for i, v := range col {
		if math.IsNaN(v) {
			continue
		}
		if !found || (lower && v < value) || (!lower && v > value) {
			value, epoch, found = v, epochs[i], true
		}
	}
	return value, epoch, found
}

// Epochs returns the number of epochs recorded (rows of metrics.csv).
func (r *Run) Epochs() int {
	return len(r.Rows)
}

// LowerIsBetter reports whether smaller values of a metric are better: losses,
// gaps, norms, errors and times.
func LowerIsBetter(metric string) bool {
	m := strings.ToLower(metric)
	for _, s := range []string{"loss", "gap", "err", "seconds", "time", "norm"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// ConfigValue returns the first config.json value whose key, or whose last
// dotted component, matches one of names after normalisation (case, "-" and
// "_" ignored).
func (r *Run) ConfigValue(names ...string) (any, bool) {
	if r.Config == nil {
		return nil, false
	}
	keys := make([]string, 0, len(r.Config))
	for k := range r.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic choice among matches
	for _, name := range names {
		want := normKey(name)
		for _, k := range keys {
			last := k[strings.LastIndex(k, ".")+1:]
			if normKey(k) == want || normKey(last) == want {
				return r.Config[k], true
			}
		}
	}
	return nil, false
}

// ConfigFloat is ConfigValue for numbers (JSON numbers or numeric strings).
func (r *Run) ConfigFloat(names ...string) (float64, bool) {
	v, ok := r.ConfigValue(names...)
	if !ok {
		return 0, false
	}
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func normKey(s string) string {
	s = strings.ToLower(s)
	s = strings.ReplaceAll(s, "-", "")
	return strings.ReplaceAll(s, "_", "")
}
