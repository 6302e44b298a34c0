package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// EpochMetrics is one row of metrics.csv: what a run measured after one
// epoch. Optional measurements that a run does not make are NaN, and their
// columns are left out of metrics.csv and summary.json.
type EpochMetrics struct {
	// Epoch counts from 1.
	Epoch int
	// LR is the mean learning rate of the epoch's steps.
	LR float64
	// TrainLoss and TrainAcc are running means over the epoch's augmented
	// training batches (with the weights of the moment, in training mode).
	TrainLoss float64
	TrainAcc  float64
	// TrainEvalLoss and TrainEvalAcc are measured after the epoch on a fixed
	// subset of the training set (Config.TrainEvalSize examples), without
	// augmentation and in inference mode; NaN when that pass is off.
	TrainEvalLoss float64
	TrainEvalAcc  float64
	// TestLoss and TestAcc (top-1) are measured on the whole test set after
	// the epoch, in inference mode. Losses include label smoothing, so that
	// they are comparable with TrainLoss.
	TestLoss float64
	TestAcc  float64
	// TestTop5 is the top-5 test accuracy, measured with 100 or more
	// classes (NaN otherwise).
	TestTop5 float64
	// Gap is the generalisation gap TrainEvalAcc - TestAcc (NaN without
	// the training-set evaluation).
	Gap float64
	// LogitNorm is the mean L2 norm of the logit vectors of the test set.
	LogitNorm float64
	// ZeroedFilters counts the convolution filters (output channels) whose
	// weight L2 norm is below Config.ZeroThreshold, out of Filters.
	ZeroedFilters int
	Filters       int
	// ZeroedFeatures counts the pooled features (the inputs of the final
	// linear layer) whose mean absolute activation over the test set is
	// below Config.ZeroThreshold, out of Features (0 when the model does not
	// expose them).
	ZeroedFeatures int
	Features       int
	// DataWaitShare is the fraction of the epoch's training time that the
	// trainer spent waiting for the data loader (near 0: the prefetching
	// workers keep ahead).
	DataWaitShare float64
	// Seconds is the epoch's wall-clock time, training and evaluation.
	Seconds float64
	// ImagesPerSecond is the training throughput of the epoch.
	ImagesPerSecond float64
}

// metricColumn is one column of metrics.csv besides "epoch".
type metricColumn struct {
	name string
	// optional columns are written only when measured (not NaN).
	optional bool
	// integer columns hold counts.
	integer bool
	field   func(m *EpochMetrics) *float64
	count   func(m *EpochMetrics) *int
}

// get returns the column's value in m.
func (c metricColumn) get(m *EpochMetrics) float64 {
	if c.integer {
		return float64(*c.count(m))
	}
	return *c.field(m)
}

// set stores v in m's field of the column.
func (c metricColumn) set(m *EpochMetrics, v float64) error {
	if c.integer {
		if v != math.Trunc(v) || v < 0 || v > math.MaxInt32 {
			return fmt.Errorf("%s: %v is not a count", c.name, v)
		}
		*c.count(m) = int(v)
		return nil
	}
	*c.field(m) = v
	return nil
}

// metricColumns lists the columns after "epoch", in file order.
var metricColumns = []metricColumn{
	{name: "lr", field: func(m *EpochMetrics) *float64 { return &m.LR }},
	{name: "train_loss", field: func(m *EpochMetrics) *float64 { return &m.TrainLoss }},
	{name: "train_acc", field: func(m *EpochMetrics) *float64 { return &m.TrainAcc }},
	{name: "train_eval_loss", optional: true, field: func(m *EpochMetrics) *float64 { return &m.TrainEvalLoss }},
	{name: "train_eval_acc", optional: true, field: func(m *EpochMetrics) *float64 { return &m.TrainEvalAcc }},
	{name: "test_loss", field: func(m *EpochMetrics) *float64 { return &m.TestLoss }},
	{name: "test_acc", field: func(m *EpochMetrics) *float64 { return &m.TestAcc }},
	{name: "test_top5", optional: true, field: func(m *EpochMetrics) *float64 { return &m.TestTop5 }},
	{name: "gap", optional: true, field: func(m *EpochMetrics) *float64 { return &m.Gap }},
	{name: "logit_norm", field: func(m *EpochMetrics) *float64 { return &m.LogitNorm }},
	{name: "zeroed_filters", integer: true, count: func(m *EpochMetrics) *int { return &m.ZeroedFilters }},
	{name: "filters", integer: true, count: func(m *EpochMetrics) *int { return &m.Filters }},
	{name: "zeroed_features", integer: true, count: func(m *EpochMetrics) *int { return &m.ZeroedFeatures }},
	{name: "features", integer: true, count: func(m *EpochMetrics) *int { return &m.Features }},
	{name: "data_wait_share", field: func(m *EpochMetrics) *float64 { return &m.DataWaitShare }},
	{name: "seconds", field: func(m *EpochMetrics) *float64 { return &m.Seconds }},
	{name: "images_per_second", field: func(m *EpochMetrics) *float64 { return &m.ImagesPerSecond }},
}

// MetricsColumns are all the columns metrics.csv may have, in order. The
// optional ones (train_eval_loss, train_eval_acc, gap: with
// Config.TrainEvalSize > 0; test_top5: with 100 or more classes) appear
// only in runs that measure them.
var MetricsColumns = func() []string {
	names := []string{"epoch"}
	for _, c := range metricColumns {
		names = append(names, c.name)
	}
	return names
}()

// unmeasured returns metrics with every optional measurement marked absent
// (NaN).
func unmeasured() EpochMetrics {
	var m EpochMetrics
	for _, c := range metricColumns {
		if c.optional {
			*c.field(&m) = math.NaN()
		}
	}
	return m
}

// formatFloat formats x for metrics.csv and summary.json.
func formatFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// csvColumns returns the columns rows need: the required ones and the
// optional ones measured in any row.
func csvColumns(rows []EpochMetrics) []metricColumn {
	var cols []metricColumn
	for _, c := range metricColumns {
		keep := !c.optional
		for i := range rows {
			if !keep && !math.IsNaN(c.get(&rows[i])) {
				keep = true
			}
		}
		if keep {
			cols = append(cols, c)
		}
	}
	return cols
}

// formatMetricsCSV returns the full metrics.csv content for rows.
func formatMetricsCSV(rows []EpochMetrics) []byte {
	cols := csvColumns(rows)
	var b bytes.Buffer
	b.WriteString("epoch")
	for _, c := range cols {
		b.WriteString("," + c.name)
	}
	b.WriteByte('\n')
	for i := range rows {
		b.WriteString(strconv.Itoa(rows[i].Epoch))
		for _, c := range cols {
			b.WriteString("," + formatFloat(c.get(&rows[i])))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ReadMetricsCSV parses a metrics.csv written by a run. Optional columns
// that the file lacks read as NaN.
func ReadMetricsCSV(path string) ([]EpochMetrics, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading metrics: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	header := strings.Split(lines[0], ",")
	if len(header) == 0 || header[0] != "epoch" {
		return nil, fmt.Errorf("%s: line 1: header must start with \"epoch\", got %q", path, lines[0])
	}
	cols := make([]metricColumn, len(header)-1)
	seen := map[string]bool{}
	for i, name := range header[1:] {
		j := slices.IndexFunc(metricColumns, func(c metricColumn) bool { return c.name == name })
		if j < 0 || seen[name] {
			return nil, fmt.Errorf("%s: line 1: unknown or repeated column %q (known: %s)", path, name, strings.Join(MetricsColumns, ","))
		}
		seen[name] = true
		cols[i] = metricColumns[j]
	}
	for _, c := range metricColumns {
		if !c.optional && !seen[c.name] {
			return nil, fmt.Errorf("%s: line 1: missing column %q", path, c.name)
		}
	}
	rows := make([]EpochMetrics, 0, len(lines)-1)
	for i, line := range lines[1:] {
		fields := strings.Split(line, ",")
		if len(fields) != len(header) {
			return nil, fmt.Errorf("%s line %d: %d fields, want %d", path, i+2, len(fields), len(header))
		}
		m := unmeasured()
		if m.Epoch, err = strconv.Atoi(fields[0]); err != nil {
			return nil, fmt.Errorf("%s line %d: epoch: %w", path, i+2, err)
		}
		for j, c := range cols {
			v, err := strconv.ParseFloat(fields[j+1], 64)
			if err == nil {
				err = c.set(&m, v)
			}
			if err != nil {
				return nil, fmt.Errorf("%s line %d: %s: %w", path, i+2, c.name, err)
			}
		}
		rows = append(rows, m)
	}
	return rows, nil
}

// MarshalJSON writes the metrics as a JSON object keyed by the metrics.csv
// column names; NaN and infinite values (unmeasured or diverged) are left
// out, since JSON has no numbers for them.
func (m EpochMetrics) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"epoch":` + strconv.Itoa(m.Epoch))
	for _, c := range metricColumns {
		v := c.get(&m)
		if finite(v) {
			b.WriteString(`,"` + c.name + `":` + formatFloat(v))
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON writes: missing values read as NaN
// (0 for counts).
func (m *EpochMetrics) UnmarshalJSON(raw []byte) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("epoch metrics: %w", err)
	}
	var out EpochMetrics
	if e, ok := obj["epoch"]; ok {
		if err := json.Unmarshal(e, &out.Epoch); err != nil {
			return fmt.Errorf("epoch metrics: epoch: %w", err)
		}
	}
	for _, c := range metricColumns {
		if !c.integer {
			*c.field(&out) = math.NaN()
		}
		v, ok := obj[c.name]
		if !ok || string(v) == "null" {
			continue
		}
		var x float64
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("epoch metrics: %s: %w", c.name, err)
		}
		if err := c.set(&out, x); err != nil {
			return fmt.Errorf("epoch metrics: %w", err)
		}
	}
	*m = out
	return nil
}
