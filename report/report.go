// Package report turns training runs into the tables and figures of the SGT
// paper: accuracy of plain training (alpha = 1) against SGT per alpha with
// their differences, the label-smoothing ablation with the generalisation
// gap, and figures of the transform, of training curves and of what SGT does
// to losses, logit norms and filter norms. Every number is a mean ± standard
// deviation over seeds, and every difference says whether it exceeds the
// seed-to-seed noise (Welch's t-test). Reports are written as one
// self-contained HTML file or as Markdown with SVG files beside it.
package report

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/experiment"
)

// Options change what a report shows.
type Options struct {
	// Title is the report's title ("" gives a default).
	Title string
	// LogLog draws accuracy against epoch on log-log axes.
	LogLog bool
	// Layers names the layers whose filter norms are drawn (default: the
	// first and the last layer of filter_norms.csv).
	Layers []string
}

// Table is one table of a report; cells are formatted text.
type Table struct {
	// ID is a short stable name ("main", "ablation").
	ID string
	// Title and Caption describe the table.
	Title, Caption string
	// Header and Rows hold the cells.
	Header []string
	Rows   [][]string
}

// Figure is one figure of a report.
type Figure struct {
	// Name is a file-name-safe stable name ("test_acc_vs_alpha").
	Name string
	// Title and Caption describe the figure.
	Title, Caption string
	// SVG is the drawing.
	SVG []byte
}

// Report is a built report, ready to be written.
type Report struct {
	// Title is the report's title.
	Title string
	// Sources are the directories the runs came from.
	Sources []string
	// Intro explains how to read the numbers.
	Intro []string
	// Tables and Figures are the report's content in order.
	Tables  []Table
	Figures []Figure
	// Notes lists skipped figures, assumptions and left-out runs.
	Notes []string
}

// group is the runs of one setting (context, alpha, label smoothing) and
// their per-run values.
type group struct {
	context   string
	alpha, ls float64
	runs      []*RunInfo
	values    map[string][]float64 // metric -> one value per run
}

// Metric names of per-run values, as computed by the report.
const (
	mTrainAcc  = "train_acc"
	mTestAcc   = "test_acc"
	mGap       = "gap"
	mTrainLoss = "train_loss"
	mTestLoss  = "test_loss"
	mLogitNorm = "logit_norm"
	mBestTest  = "best_test_acc"
)

// data is everything the tables and figures are made from.
type data struct {
	runs     []*RunInfo
	groups   []*group // sorted by context, label smoothing, alpha descending
	trainCol string   // the metrics column used as training accuracy
	gapCol   string   // "gap" when every run records it, else ""
	scale    float64  // 100 when accuracies are fractions, else 1
}

// Build reads the runs in dirs (see Load) and builds the report.
func Build(dirs []string, opts Options) (*Report, error) {
	runs, notes, err := Load(dirs)
	if err != nil {
		return nil, err
	}
	d, err := prepare(runs)
	if err != nil {
		return nil, err
	}
	rep := &Report{Title: opts.Title, Sources: dirs, Notes: notes}
	if rep.Title == "" {
		rep.Title = "Softmax Gradient Tampering: results"
	}
	trainDesc := "the running training accuracy of the last epoch (train_acc)"
	if d.trainCol == "train_eval_acc" {
		trainDesc = "the accuracy on the training set evaluated after the last epoch (train_eval_acc)"
	}
	rep.Intro = []string{
		fmt.Sprintf("%d runs in %d settings. Every number is the mean ± sample standard deviation over seeds (n = number of seeds), taken at the last epoch; accuracies are in %%.", len(runs), len(d.groups)),
		"Train accuracy is " + trainDesc + "; the generalisation gap is train minus test accuracy.",
		fmt.Sprintf("Each Diff is the difference of means to the baseline (alpha = 1) with the same label smoothing (in the ablation: to alpha = 1 without label smoothing), followed by whether it exceeds the seed-to-seed noise: it does when a two-sided Welch t-test over the seeds gives p < %g. With fewer than 2 seeds on either side no test is made.", SignificanceLevel),
	}
	rep.Tables = d.tables()
	figs, figNotes, err := d.figures(opts)
	if err != nil {
		return nil, err
	}
	rep.Figures = figs
	rep.Notes = append(rep.Notes, figNotes...)
	return rep, nil
}

// prepare groups the runs and computes their per-run values.
func prepare(runs []*RunInfo) (*data, error) {
	d := &data{runs: runs, trainCol: "train_eval_acc", gapCol: "gap", scale: 100}
	for _, r := range runs {
		if !r.Run.Has("train_eval_acc") {
			d.trainCol = "train_acc"
		}
		if !r.Run.Has("gap") {
			d.gapCol = ""
		}
	}
	byKey := map[string]*group{}
	for _, r := range runs {
		test, err := finalValue(r, "test_acc")
		if err != nil {
			return nil, err
		}
		train, err := finalValue(r, d.trainCol)
		if err != nil {
			return nil, err
		}
		if test > 1 || train > 1 {
			d.scale = 1 // already in percent
		}
		key := fmt.Sprintf("%s\x00%g\x00%g", r.Context, r.LabelSmoothing, r.Alpha)
		g := byKey[key]
		if g == nil {
			g = &group{context: r.Context, alpha: r.Alpha, ls: r.LabelSmoothing, values: map[string][]float64{}}
			byKey[key] = g
			d.groups = append(d.groups, g)
		}
		g.runs = append(g.runs, r)
		gap := train - test
		if d.gapCol != "" {
			gap, _ = r.Run.Final(d.gapCol)
		}
		best, _, _ := r.Run.Best("test_acc")
		add := func(name string, v float64) { g.values[name] = append(g.values[name], v) }
		add(mTestAcc, test)
		add(mTrainAcc, train)
		add(mGap, gap)
		add(mBestTest, best)
		for _, c := range []string{mTrainLoss, mTestLoss, mLogitNorm} {
			if v, ok := r.Run.Final(c); ok {
				add(c, v)
			}
		}
	}
	sort.SliceStable(d.groups, func(i, j int) bool {
		a, b := d.groups[i], d.groups[j]
		if a.context != b.context {
			return a.context < b.context
		}
		if a.ls != b.ls {
			return a.ls < b.ls
		}
		return a.alpha > b.alpha
	})
	for _, g := range d.groups {
		sort.SliceStable(g.runs, func(i, j int) bool { return g.runs[i].Seed < g.runs[j].Seed })
	}
	return d, nil
}

// accScaled returns a group's accuracy-like values scaled to percent.
func (d *data) accScaled(g *group, metric string) []float64 {
	out := make([]float64, len(g.values[metric]))
	for i, v := range g.values[metric] {
		out[i] = v * d.scale
	}
	return out
}

// contexts returns the distinct contexts in order.
func (d *data) contexts() []string {
	var out []string
	for _, g := range d.groups {
		if len(out) == 0 || out[len(out)-1] != g.context {
			out = append(out, g.context)
		}
	}
	return out
}

func (d *data) find(context string, alpha, ls float64) *group {
	for _, g := range d.groups {
		if g.context == context && g.alpha == alpha && g.ls == ls {
			return g
		}
	}
	return nil
}

// smoothings returns the label-smoothing values of a context, ascending.
func (d *data) smoothings(context string) []float64 {
	var out []float64
	for _, g := range d.groups {
		if g.context == context && (len(out) == 0 || out[len(out)-1] != g.ls) {
			out = append(out, g.ls)
		}
	}
	return out
}

// FormatMeanSD formats values as "mean ± sd" with two decimals ("mean" alone for a
// single value, "–" for none).
func FormatMeanSD(values []float64) string {
	if len(values) == 0 {
		return "–"
	}
	m, sd := experiment.MeanSD(values)
	if len(values) == 1 {
		return fmt.Sprintf("%.2f", m)
	}
	return fmt.Sprintf("%.2f ± %.2f", m, sd)
}

// DiffCell formats a difference of means with a plain statement of whether
// it exceeds the seed-to-seed noise, e.g. "+3.00 (exceeds noise, p = 0.021)".
func DiffCell(w Welch) string {
	return fmt.Sprintf("%+.2f (%s)", w.Diff, Verdict(w))
}

// Verdict states whether a difference exceeds the seed-to-seed noise by
// Welch's t-test: "exceeds noise, p = ...", "within noise, p = ..." or
// "not tested, < 2 seeds".
func Verdict(w Welch) string {
	switch {
	case !w.OK:
		return "not tested, < 2 seeds"
	case w.Significant():
		return "exceeds noise, p " + formatP(w.P)
	default:
		return "within noise, p " + formatP(w.P)
	}
}

// formatP formats a p-value as "= 0.021" or "< 0.001".
func formatP(p float64) string {
	if p < 0.001 {
		return "< 0.001"
	}
	return "= " + strconv.FormatFloat(p, 'f', 3, 64)
}

func fmtNum(x float64) string { return strconv.FormatFloat(x, 'g', 4, 64) }

func sectionTitle(context string) string {
	if context == "" {
		return ""
	}
	return " — " + context
}

// tables builds the main tables (one per context and label smoothing) and
// the label-smoothing ablations (one per context that has runs without and
// with label smoothing).
func (d *data) tables() []Table {
	var out []Table
	for _, ctx := range d.contexts() {
		for _, ls := range d.smoothings(ctx) {
			out = append(out, d.mainTable(ctx, ls))
		}
		if t, ok := d.ablationTable(ctx); ok {
			out = append(out, t)
		}
	}
	return out
}

func (d *data) mainTable(ctx string, ls float64) Table {
	t := Table{
		ID:     "main",
		Title:  fmt.Sprintf("Baseline and SGT, label smoothing %s%s", fmtNum(ls), sectionTitle(ctx)),
		Header: []string{"Method", "alpha", "n", "Train acc", "Diff", "Test acc", "Diff", "Gap", "Gap diff"},
	}
	base := d.find(ctx, 1, ls)
	if base == nil {
		t.Caption = "No baseline (alpha = 1) runs with this setting: no differences are computed."
	}
	for _, g := range d.groups {
		if g.context != ctx || g.ls != ls {
			continue
		}
		name := fmt.Sprintf("SGT (alpha = %s)", fmtNum(g.alpha))
		if g.alpha == 1 {
			name = "Baseline"
		}
		row := []string{name, fmtNum(g.alpha), strconv.Itoa(len(g.runs)),
			FormatMeanSD(d.accScaled(g, mTrainAcc)), "", FormatMeanSD(d.accScaled(g, mTestAcc)), "", FormatMeanSD(d.accScaled(g, mGap)), ""}
		if base != nil && g != base {
			wTrain := WelchTest(d.accScaled(g, mTrainAcc), d.accScaled(base, mTrainAcc))
			wTest := WelchTest(d.accScaled(g, mTestAcc), d.accScaled(base, mTestAcc))
			wGap := WelchTest(d.accScaled(g, mGap), d.accScaled(base, mGap))
			row[4], row[6], row[8] = DiffCell(wTrain), DiffCell(wTest), DiffCell(wGap)
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// ablationTable builds the paper's ablation: baseline, +LS, +SGT, +SGT+LS,
// each compared with the baseline without label smoothing, with the
// generalisation gap.
func (d *data) ablationTable(ctx string) (Table, bool) {
	base := d.find(ctx, 1, 0)
	lss := d.smoothings(ctx)
	if base == nil || len(lss) < 2 || lss[0] != 0 {
		return Table{}, false
	}
	t := Table{
		ID:      "ablation",
		Title:   "Ablation with label smoothing (LS)" + sectionTitle(ctx),
		Caption: "Differences are to the baseline (alpha = 1, no label smoothing); the gap is train minus test accuracy.",
		Header:  []string{"Method", "alpha", "LS", "n", "Train acc", "Diff", "Test acc", "Diff", "Gap", "Gap diff"},
	}
	kind := func(g *group) (string, int) {
		switch {
		case g.alpha == 1 && g.ls == 0:
			return "Baseline", 0
		case g.alpha == 1:
			return "+LS", 1
		case g.ls == 0:
			return "+SGT", 2
		default:
			return "+SGT+LS", 3
		}
	}
	var gs []*group
	for _, g := range d.groups {
		if g.context == ctx {
			gs = append(gs, g)
		}
	}
	sort.SliceStable(gs, func(i, j int) bool {
		_, ki := kind(gs[i])
		_, kj := kind(gs[j])
		if ki != kj {
			return ki < kj
		}
		if gs[i].alpha != gs[j].alpha {
			return gs[i].alpha > gs[j].alpha
		}
		return gs[i].ls < gs[j].ls
	})
	for _, g := range gs {
		name, _ := kind(g)
		row := []string{name, fmtNum(g.alpha), fmtNum(g.ls), strconv.Itoa(len(g.runs)),
			FormatMeanSD(d.accScaled(g, mTrainAcc)), "", FormatMeanSD(d.accScaled(g, mTestAcc)), "", FormatMeanSD(d.accScaled(g, mGap)), ""}
		if g != base {
			wTrain := WelchTest(d.accScaled(g, mTrainAcc), d.accScaled(base, mTrainAcc))
			wTest := WelchTest(d.accScaled(g, mTestAcc), d.accScaled(base, mTestAcc))
			wGap := WelchTest(d.accScaled(g, mGap), d.accScaled(base, mGap))
			row[5], row[7], row[9] = DiffCell(wTrain), DiffCell(wTest), DiffCell(wGap)
		}
		t.Rows = append(t.Rows, row)
	}
	return t, true
}

// runLabel names a run in figures: its directory's last two elements.
func runLabel(r *RunInfo) string {
	dir := filepath.Clean(r.Dir)
	parent := filepath.Base(filepath.Dir(dir))
	if parent == "." || parent == string(filepath.Separator) {
		return filepath.Base(dir)
	}
	return parent + "/" + filepath.Base(dir)
}

// groupLabel names a group in figure legends.
func groupLabel(g *group, withContext bool) string {
	s := "alpha=" + fmtNum(g.alpha)
	if g.ls != 0 {
		s += " LS=" + fmtNum(g.ls)
	}
	if withContext && g.context != "" {
		s += " (" + g.context + ")"
	}
	return s
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// textTable formats a table with aligned columns for a terminal.
func textTable(t Table) string {
	widths := make([]int, len(t.Header))
	all := append([][]string{t.Header}, t.Rows...)
	for _, row := range all {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for r, row := range all {
		for i, c := range row {
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(c))))
			}
		}
		b.WriteByte('\n')
		if r == 0 {
			for i, w := range widths {
				if i > 0 {
					b.WriteString("  ")
				}
				b.WriteString(strings.Repeat("-", w))
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}
