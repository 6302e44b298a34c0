package rundir

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sgt-dev/sgt/atomicfile"
)

// EpochMetrics is one row of metrics.csv: what a run measured after one
// epoch. Optional measurements that a run does not make are NaN, and their
// columns are left out of metrics.csv and summary.json.
type EpochMetrics struct {
	// Epoch counts from 1.
	Epoch int
	// LR is the mean learning rate over the epoch's optimizer steps (with a
	// per-step schedule it changes within the epoch).
	LR float64
	// TrainLoss and TrainAcc are running means over the epoch's augmented
	// training batches, with the weights of the moment, in training mode:
	// what timm and the paper report as train accuracy.
	TrainLoss float64
	TrainAcc  float64
	// TrainEvalLoss and TrainEvalAcc are measured after the epoch on a fixed
	// subset of the training set (Config.TrainEvalSize examples), without
	// augmentation and in inference mode (a clean pass); NaN when that pass
	// is off.
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
	// the clean training-set pass).
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
	// trainer spent waiting for the data loader.
	DataWaitShare float64
	// Seconds is the epoch's wall-clock time, training and evaluation.
	Seconds float64
	// ImagesPerSecond is the training throughput of the epoch.
	ImagesPerSecond float64
}

// Unit is what a metric's numbers measure.
type Unit int

// The units of metrics.
const (
	// Plain numbers: losses, norms, learning rates.
	Plain Unit = iota
	// Fraction is a share in [0, 1], shown as a percentage (accuracies,
	// gaps, shares of time).
	Fraction
	// Count is a non-negative whole number.
	Count
	// Seconds is a duration.
	Seconds
	// PerSecond is a throughput.
	PerSecond
)

// Direction says which values of a metric are better.
type Direction int

// The directions of metrics.
const (
	// Neutral metrics (learning rate, counts of filters) are neither.
	Neutral Direction = iota
	// HigherIsBetter: accuracies, throughput.
	HigherIsBetter
	// LowerIsBetter: losses, gaps, times.
	LowerIsBetter
)

// Metric describes one column of metrics.csv.
type Metric struct {
	// Name is the column name.
	Name string
	// Doc says what the column holds.
	Doc string
	// Unit and Better describe its values.
	Unit   Unit
	Better Direction
	// Optional columns are written only by runs that measure them.
	Optional bool
	// Tracked marks the metrics whose best value over the epochs, and the
	// epoch of it, results report (the losses and accuracies).
	Tracked bool
	float   func(m *EpochMetrics) *float64
	count   func(m *EpochMetrics) *int
}

// Of returns the metric's value in m.
func (c Metric) Of(m EpochMetrics) float64 {
	if c.count != nil {
		return float64(*c.count(&m))
	}
	return *c.float(&m)
}

// set stores v in m's field of the metric, checking it.
func (c Metric) set(m *EpochMetrics, v float64) error {
	if c.count != nil {
		if v != math.Trunc(v) || v < 0 || v > math.MaxInt32 {
			return fmt.Errorf("%s: %v is not a count", c.Name, v)
		}
		*c.count(m) = int(v)
		return nil
	}
	if math.IsNaN(v) && c.Optional {
		*c.float(m) = v
		return nil
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%s: %v is not a finite number", c.Name, v)
	}
	if c.Unit == Fraction && c.Better != LowerIsBetter && (v < 0 || v > 1) {
		return fmt.Errorf("%s: %v is not a fraction in [0, 1]", c.Name, v)
	}
	if c.Unit == Fraction && (v < -1 || v > 1) {
		return fmt.Errorf("%s: %v is not in [-1, 1]", c.Name, v)
	}
	*c.float(m) = v
	return nil
}

// Metrics lists the columns of metrics.csv after "epoch", in file order.
var Metrics = []Metric{
	{Name: "lr", Doc: "mean learning rate of the epoch's steps", float: func(m *EpochMetrics) *float64 { return &m.LR }},
	{Name: "train_loss", Doc: "running mean training loss over the epoch's augmented batches", Better: LowerIsBetter, Tracked: true, float: func(m *EpochMetrics) *float64 { return &m.TrainLoss }},
	{Name: "train_acc", Doc: "running top-1 accuracy over the epoch's augmented batches (the paper's train accuracy)", Unit: Fraction, Better: HigherIsBetter, Tracked: true, float: func(m *EpochMetrics) *float64 { return &m.TrainAcc }},
	{Name: "train_eval_loss", Doc: "loss of a clean pass over a fixed training subset", Better: LowerIsBetter, Optional: true, Tracked: true, float: func(m *EpochMetrics) *float64 { return &m.TrainEvalLoss }},
	{Name: "train_eval_acc", Doc: "top-1 accuracy of a clean pass over a fixed training subset", Unit: Fraction, Better: HigherIsBetter, Optional: true, Tracked: true, float: func(m *EpochMetrics) *float64 { return &m.TrainEvalAcc }},
	{Name: "test_loss", Doc: "test loss", Better: LowerIsBetter, Tracked: true, float: func(m *EpochMetrics) *float64 { return &m.TestLoss }},
	{Name: "test_acc", Doc: "test top-1 accuracy", Unit: Fraction, Better: HigherIsBetter, Tracked: true, float: func(m *EpochMetrics) *float64 { return &m.TestAcc }},
	{Name: "test_top5", Doc: "test top-5 accuracy", Unit: Fraction, Better: HigherIsBetter, Optional: true, Tracked: true, float: func(m *EpochMetrics) *float64 { return &m.TestTop5 }},
	{Name: "gap", Doc: "generalisation gap: clean train accuracy minus test accuracy", Unit: Fraction, Better: LowerIsBetter, Optional: true, float: func(m *EpochMetrics) *float64 { return &m.Gap }},
	{Name: "logit_norm", Doc: "mean L2 norm of the test set's logit vectors", float: func(m *EpochMetrics) *float64 { return &m.LogitNorm }},
	{Name: "zeroed_filters", Doc: "convolution filters whose weight norm is below the zero threshold", Unit: Count, count: func(m *EpochMetrics) *int { return &m.ZeroedFilters }},
	{Name: "filters", Doc: "convolution filters", Unit: Count, count: func(m *EpochMetrics) *int { return &m.Filters }},
	{Name: "zeroed_features", Doc: "pooled features whose mean |activation| is below the zero threshold", Unit: Count, count: func(m *EpochMetrics) *int { return &m.ZeroedFeatures }},
	{Name: "features", Doc: "pooled features", Unit: Count, count: func(m *EpochMetrics) *int { return &m.Features }},
	{Name: "data_wait_share", Doc: "share of the training time spent waiting for data", Unit: Fraction, Better: LowerIsBetter, float: func(m *EpochMetrics) *float64 { return &m.DataWaitShare }},
	{Name: "seconds", Doc: "wall-clock seconds of the epoch", Unit: Seconds, Better: LowerIsBetter, float: func(m *EpochMetrics) *float64 { return &m.Seconds }},
	{Name: "images_per_second", Doc: "training throughput", Unit: PerSecond, Better: HigherIsBetter, float: func(m *EpochMetrics) *float64 { return &m.ImagesPerSecond }},
}

// EpochColumn is the first column of metrics.csv.
const EpochColumn = "epoch"

// LookupMetric returns the metric of that column name.
func LookupMetric(name string) (Metric, bool) {
	for _, m := range Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// MetricNames returns the names of all metrics, in file order.
func MetricNames() []string {
	names := make([]string, len(Metrics))
	for i, m := range Metrics {
		names[i] = m.Name
	}
	return names
}

// Unmeasured returns metrics with every optional measurement marked absent
// (NaN).
func Unmeasured() EpochMetrics {
	var m EpochMetrics
	for _, c := range Metrics {
		if c.Optional {
			*c.float(&m) = math.NaN()
		}
	}
	return m
}

// formatFloat formats x for metrics.csv and summary.json.
func formatFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// Columns returns the metrics rows need: the required ones and the optional
// ones measured in any row.
func Columns(rows []EpochMetrics) []Metric {
	var cols []Metric
	for _, c := range Metrics {
		keep := !c.Optional
		for i := range rows {
			if !keep && !math.IsNaN(c.Of(rows[i])) {
				keep = true
			}
		}
		if keep {
			cols = append(cols, c)
		}
	}
	return cols
}

// EncodeMetrics returns the content of a metrics.csv holding rows.
func EncodeMetrics(rows []EpochMetrics) []byte {
	cols := Columns(rows)
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	record := []string{EpochColumn}
	for _, c := range cols {
		record = append(record, c.Name)
	}
	_ = w.Write(record)
	for _, r := range rows {
		record = append(record[:0], strconv.Itoa(r.Epoch))
		for _, c := range cols {
			record = append(record, formatFloat(c.Of(r)))
		}
		_ = w.Write(record)
	}
	w.Flush()
	return b.Bytes()
}

// WriteMetrics writes rows as dir's metrics.csv.
func WriteMetrics(dir string, rows []EpochMetrics) error {
	return atomicfile.WriteFile(filepath.Join(dir, MetricsFile), EncodeMetrics(rows))
}

// ReadMetrics reads dir's metrics.csv.
func ReadMetrics(dir string) ([]EpochMetrics, error) {
	path := filepath.Join(dir, MetricsFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := DecodeMetrics(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rows, nil
}

// DecodeMetrics parses a metrics.csv: the "epoch" column, then known
// columns (every required one), one row per epoch numbered 1, 2, ...
// Optional columns the file lacks read as NaN. Every value is checked
// against its metric: finite, fractions in [0, 1], counts whole.
func DecodeMetrics(r io.Reader) ([]EpochMetrics, error) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty file: want a header row")
	}
	if err != nil {
		return nil, err
	}
	if header[0] != EpochColumn {
		return nil, fmt.Errorf("line 1: the first column is %q, want %q", header[0], EpochColumn)
	}
	cols := make([]Metric, len(header)-1)
	seen := map[string]bool{}
	for i, name := range header[1:] {
		c, ok := LookupMetric(name)
		if !ok || seen[name] {
			return nil, fmt.Errorf("line 1: unknown or repeated column %q", name)
		}
		seen[name] = true
		cols[i] = c
	}
	for _, c := range Metrics {
		if !c.Optional && !seen[c.Name] {
			return nil, fmt.Errorf("line 1: missing column %q", c.Name)
		}
	}
	var rows []EpochMetrics
	for {
		record, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		m := Unmeasured()
		if m.Epoch, err = strconv.Atoi(record[0]); err != nil || m.Epoch != len(rows)+1 {
			return nil, fmt.Errorf("line %d: epoch %q, want %d", line, record[0], len(rows)+1)
		}
		for j, c := range cols {
			v, err := strconv.ParseFloat(record[j+1], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %q is not a number", line, c.Name, record[j+1])
			}
			if err := c.set(&m, v); err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
		}
		rows = append(rows, m)
	}
	return rows, nil
}

// MarshalJSON writes the metrics as a JSON object keyed by the metrics.csv
// column names; unmeasured (NaN) values are left out.
func (m EpochMetrics) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"epoch":` + strconv.Itoa(m.Epoch))
	for _, c := range Metrics {
		v := c.Of(m)
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			b.WriteString(`,"` + c.Name + `":` + formatFloat(v))
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON writes: missing optional values
// read as NaN; missing required ones and bad values are errors.
func (m *EpochMetrics) UnmarshalJSON(raw []byte) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("epoch metrics: %w", err)
	}
	if obj == nil {
		return errors.New("epoch metrics: null")
	}
	out := Unmeasured()
	e, ok := obj[EpochColumn]
	if !ok {
		return errors.New("epoch metrics: no epoch")
	}
	if err := json.Unmarshal(e, &out.Epoch); err != nil || out.Epoch < 1 {
		return fmt.Errorf("epoch metrics: epoch %s is not a positive integer", e)
	}
	for _, c := range Metrics {
		v, ok := obj[c.Name]
		if !ok || string(v) == "null" {
			if !c.Optional {
				return fmt.Errorf("epoch metrics: no %s", c.Name)
			}
			continue
		}
		var x float64
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("epoch metrics: %s: %s is not a number", c.Name, v)
		}
		if err := c.set(&out, x); err != nil {
			return fmt.Errorf("epoch metrics: %w", err)
		}
	}
	*m = out
	return nil
}
