package train

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fullMetrics returns metrics with every column measured.
func fullMetrics(epoch int) EpochMetrics {
	return EpochMetrics{
		Epoch: epoch, LR: 0.1 / float64(epoch), TrainLoss: 1.0 / 3, TrainAcc: 0.8,
		TrainEvalLoss: 0.3, TrainEvalAcc: 0.9, TestLoss: 0.25, TestAcc: 0.85, TestTop5: 0.99,
		Gap: 0.9 - 0.85, LogitNorm: 12.5, ZeroedFilters: 3, Filters: 688, ZeroedFeatures: 1, Features: 64,
		DataWaitShare: 0.01, Seconds: 1.5, ImagesPerSecond: 1000,
	}
}

func TestMetricsCSVRoundTrip(t *testing.T) {
	dir := t.TempDir()
	full := []EpochMetrics{fullMetrics(1), fullMetrics(2)}
	partial := []EpochMetrics{fullMetrics(1)}
	partial[0].TrainEvalLoss, partial[0].TrainEvalAcc, partial[0].Gap, partial[0].TestTop5 = math.NaN(), math.NaN(), math.NaN(), math.NaN()
	for _, tc := range []struct {
		name   string
		rows   []EpochMetrics
		header string
	}{
		{"full", full, strings.Join(MetricsColumns, ",")},
		{"partial", partial, "epoch,lr,train_loss,train_acc,test_loss,test_acc,logit_norm,zeroed_filters,filters,zeroed_features,features,data_wait_share,seconds,images_per_second"},
	} {
		path := filepath.Join(dir, tc.name+".csv")
		if err := WriteFileAtomic(path, formatMetricsCSV(tc.rows)); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(path)
		if got := strings.SplitN(string(raw), "\n", 2)[0]; got != tc.header {
			t.Errorf("%s: header %q, want %q", tc.name, got, tc.header)
		}
		got, err := ReadMetricsCSV(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.rows) {
			t.Fatalf("%s: %d rows, want %d", tc.name, len(got), len(tc.rows))
		}
		for i := range got {
			if !equalMetrics(got[i], tc.rows[i]) {
				t.Errorf("%s: row %d: got %+v, want %+v", tc.name, i, got[i], tc.rows[i])
			}
		}
	}
	for name, content := range map[string]string{
		"unknown column":   "epoch,lr,bogus\n",
		"missing required": "epoch,lr\n1,0.1\n",
		"fractional count": formatHeaderAndRow(func(m *EpochMetrics) { m.Filters = 1 }, "filters", "1.5"),
		"short row":        strings.Join(MetricsColumns, ",") + "\n1,2\n",
		"no epoch":         "lr,epoch\n",
	} {
		path := filepath.Join(dir, "bad.csv")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadMetricsCSV(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err %v, want an error naming %s", name, err, path)
		}
	}
}

// formatHeaderAndRow writes one full row whose column col is replaced by value.
func formatHeaderAndRow(mutate func(*EpochMetrics), col, value string) string {
	m := fullMetrics(1)
	mutate(&m)
	lines := strings.Split(string(formatMetricsCSV([]EpochMetrics{m})), "\n")
	header := strings.Split(lines[0], ",")
	fields := strings.Split(lines[1], ",")
	for i, h := range header {
		if h == col {
			fields[i] = value
		}
	}
	return lines[0] + "\n" + strings.Join(fields, ",") + "\n"
}

func TestMetricsJSON(t *testing.T) {
	m := fullMetrics(3)
	m.TestTop5 = math.NaN()
	m.LogitNorm = math.Inf(1)
	raw, err := json.Marshal(Summary{Final: m, Epochs: 3})
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Final map[string]any `json:"final"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	final := obj.Final
	if _, ok := final["test_top5"]; ok {
		t.Errorf("unmeasured test_top5 written: %s", raw)
	}
	if _, ok := final["logit_norm"]; ok {
		t.Errorf("infinite logit_norm written: %s", raw)
	}
	if final["train_eval_acc"] != 0.9 || final["zeroed_filters"] != 3.0 || final["epoch"] != 3.0 || final["gap"] != m.Gap {
		t.Errorf("final %v", final)
	}
	var back Summary
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	want := m
	want.LogitNorm = math.NaN()
	if !equalMetrics(back.Final, want) {
		t.Errorf("round trip: %+v, want %+v", back.Final, want)
	}
}

func TestProgressShowsMeasurements(t *testing.T) {
	var out strings.Builder
	p := newProgress(&out, false, 3, 1, 10)
	m := fullMetrics(2)
	p.endEpoch(m)
	line := out.String()
	for _, want := range []string{"train-eval acc 90.00%", "top-5 99.00%", "zeroed filters 3/688", "data wait 1%"} {
		if !strings.Contains(line, want) {
			t.Errorf("epoch line %q lacks %q", line, want)
		}
	}
	out.Reset()
	m.TrainEvalAcc, m.TestTop5, m.Filters = math.NaN(), math.NaN(), 0
	p.endEpoch(m)
	if line := out.String(); strings.Contains(line, "train-eval") || strings.Contains(line, "top-5") || strings.Contains(line, "zeroed") {
		t.Errorf("epoch line %q shows unmeasured values", line)
	}
}
