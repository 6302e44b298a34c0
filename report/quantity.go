package report

import (
	"fmt"
	"strconv"

	"github.com/sgt-dev/sgt/rundir"
)

// quantity is a per-run value of the report: a metric's final value, or one
// derived from metrics. Its unit is the metric's declared unit
// (rundir.Metric.Unit), never guessed from the values: fractions are shown
// as percentages and their differences in points.
type quantity struct {
	// key is the metric's name, or the derived value's name.
	key string
	// name describes the quantity in sentences, header in table headers.
	name, header string
	// kind is "clean" or "running" for the train accuracies, else "".
	kind string
	// derivedFrom names the metric whose unit a derived quantity has.
	derivedFrom string
	// decimals is the number of decimals shown.
	decimals int
}

// The quantities of a report.
var (
	qTest         = quantity{key: "test_acc", name: "test accuracy", header: "Test %", decimals: 2}
	qBestTest     = quantity{key: "best_test_acc", name: "best test accuracy over the epochs", header: "Best test %", derivedFrom: "test_acc", decimals: 2}
	qTrainRunning = quantity{key: "train_acc", name: "running train accuracy (train_acc)", header: "Train % (running)", kind: "running", decimals: 2}
	qTrainClean   = quantity{key: "train_eval_acc", name: "clean train accuracy (train_eval_acc)", header: "Train % (clean)", kind: "clean", decimals: 2}
	qGapClean     = quantity{key: "gap", name: "generalisation gap (clean train − test)", header: "Gap % (clean)", decimals: 2}
	// qGapMain is the gap of the main tables when not every run measured
	// the clean one: the running train accuracy minus the test accuracy.
	qGapMain    = quantity{key: "gap_main", name: "generalisation gap (running train − test)", header: "Gap % (running)", derivedFrom: "gap", decimals: 2}
	qGapRunning = quantity{key: "gap_running", name: "running train − test accuracy", header: "Gap % (running)", derivedFrom: "gap", decimals: 2}
	qTrainLoss  = quantity{key: "train_loss", name: "training loss", header: "Train loss", decimals: 3}
	qTestLoss   = quantity{key: "test_loss", name: "test loss", header: "Test loss", decimals: 3}
	qLogitNorm  = quantity{key: "logit_norm", name: "logit norm", header: "Logit norm", decimals: 2}
	qZeroed     = quantity{key: "zeroed_filters", name: "zeroed filters", header: "Zeroed filters", decimals: 1}
)

// unit returns the quantity's unit: its metric's declared unit.
func (q quantity) unit() rundir.Unit {
	name := q.key
	if q.derivedFrom != "" {
		name = q.derivedFrom
	}
	m, ok := rundir.LookupMetric(name)
	if !ok {
		return rundir.Plain
	}
	return m.Unit
}

// percent reports whether the quantity is shown as a percentage.
func (q quantity) percent() bool { return q.unit() == rundir.Fraction }

// scale returns the factor from stored values to shown ones.
func (q quantity) scale() float64 {
	if q.percent() {
		return 100
	}
	return 1
}

// scaled returns values in the shown unit.
func (q quantity) scaled(values []float64) []float64 {
	out := make([]float64, len(values))
	for i, v := range values {
		out[i] = v * q.scale()
	}
	return out
}

// num formats a shown value.
func (q quantity) num(x float64) string { return strconv.FormatFloat(x, 'f', q.decimals, 64) }

// meanSD formats shown values as "mean ± sd" ("mean" alone for one value,
// "–" for none).
func (q quantity) meanSD(values []float64) string {
	if len(values) == 0 {
		return "–"
	}
	m, sd := meanSD(values)
	if len(values) == 1 {
		return q.num(m)
	}
	return q.num(m) + " ± " + q.num(sd)
}

// diff formats a difference of shown values with its sign.
func (q quantity) diff(x float64) string {
	s := q.num(x)
	if x >= 0 || trimMinus(s) == q.num(0) {
		return "+" + trimMinus(s)
	}
	return s
}

func trimMinus(s string) string {
	if len(s) > 0 && s[0] == '-' {
		return s[1:]
	}
	return s
}

// unitWord is what a shown value is in, for sentences: " %" or "".
func (q quantity) unitWord() string {
	if q.percent() {
		return "%"
	}
	return ""
}

// diffUnit is what a difference is in, for sentences: " points" or "".
func (q quantity) diffUnit() string {
	if q.percent() {
		return " points"
	}
	return ""
}

// describe says what the quantity is in a caption.
func (q quantity) describe() string {
	switch q.key {
	case qLogitNorm.key:
		return "logit norm is the mean L2 norm of the test set's logit vectors"
	case qTrainLoss.key:
		return "train loss is the running mean training loss over the last epoch's augmented batches (label smoothing included)"
	case qTrainRunning.key:
		return "Train % (running) is the running top-1 over the last epoch's augmented batches (train_acc, the paper's train accuracy)"
	case qZeroed.key:
		return "zeroed filters counts the convolution filters whose weight L2 norm is below the run's --zero-threshold (an absolute threshold)"
	case qGapClean.key:
		return "the gap is the clean train accuracy (train_eval_acc) minus the test accuracy"
	case qGapMain.key, qGapRunning.key:
		return "the gap is the running train accuracy (train_acc) minus the test accuracy"
	case qTest.key:
		return ""
	}
	return fmt.Sprintf("%s is %s", q.header, q.name)
}
