package report

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/experiment"
	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train"
)

// fakeRun describes a run directory to write.
type fakeRun struct {
	alpha, ls float64
	seed      int
	// final values of the last of three epochs; earlier epochs get lower
	// accuracy.
	trainAcc, testAcc, trainLoss, logitNorm float64
	// trainEval is the clean train accuracy (0: not measured).
	trainEval float64
	// testCurve, when set, is the test accuracy of every epoch (and sets
	// the number of epochs).
	testCurve []float64
	// zeroed and filters are the final zeroed_filters and filters.
	zeroed, filters int
	// classes is recorded in config.json (0: not recorded).
	classes     int
	filterNorms bool
	// config adjusts the recorded configuration.
	config func(*rundir.Config)
}

// writeRun writes a run directory through package rundir, as a training
// run does: three epochs (or len(testCurve)) ending at r's values.
func writeRun(t testing.TB, dir string, r fakeRun) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	epochs := 3
	if r.testCurve != nil {
		epochs = len(r.testCurve)
	}
	cfg := rundir.Config{Data: "mnist", Model: "mlp", Alpha: r.alpha, LabelSmoothing: r.ls, Seed: int64(r.seed), Epochs: epochs, ZeroThreshold: 1e-3}
	if r.config != nil {
		r.config(&cfg)
	}
	rec := &rundir.Record{ID: rundir.NewID(), CodeVersion: "abc", Started: "now-" + strconv.Itoa(r.seed), Config: cfg, Classes: r.classes}
	if err := rundir.WriteRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	var rows []rundir.EpochMetrics
	for e := 1; e <= epochs; e++ {
		f := float64(e) / float64(epochs) // the last epoch has the given values
		m := rundir.Unmeasured()
		m.Epoch, m.LR, m.TrainLoss, m.TrainAcc, m.TestLoss, m.TestAcc, m.Seconds = e, 0.1, r.trainLoss/f, r.trainAcc*f, r.trainLoss*2, r.testAcc*f, 2
		if r.testCurve != nil {
			m.TestAcc = r.testCurve[e-1]
		}
		if r.trainEval > 0 {
			m.TrainEvalAcc, m.TrainEvalLoss = r.trainEval*f, r.trainLoss
			m.Gap = m.TrainEvalAcc - m.TestAcc
		}
		m.LogitNorm = r.logitNorm * f
		if e == epochs {
			m.ZeroedFilters, m.Filters = r.zeroed, r.filters
		}
		rows = append(rows, m)
	}
	if err := rundir.WriteMetrics(dir, rows); err != nil {
		t.Fatal(err)
	}
	best := 0.0
	bestEpoch := 1
	for _, m := range rows {
		if m.TestAcc > best {
			best, bestEpoch = m.TestAcc, m.Epoch
		}
	}
	if err := rundir.WriteSummary(dir, &rundir.Summary{Epochs: epochs, Final: rows[epochs-1], BestTestAcc: best, BestEpoch: bestEpoch, Steps: 10 * epochs}); err != nil {
		t.Fatal(err)
	}
	if r.filterNorms {
		for step := 0; step <= 200; step += 100 {
			var layers []rundir.LayerNorms
			for _, layer := range []string{"conv1", "block1/conv", "dense"} {
				l := rundir.LayerNorms{Layer: layer}
				for f := range 4 {
					norm := 1.0
					if f == 0 && r.alpha < 1 {
						norm = 1 - float64(step)/200 // zeroed by the end
					}
					l.Norms = append(l.Norms, norm)
				}
				layers = append(layers, l)
			}
			if err := rundir.AppendFilterNorms(dir, step, layers); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func mustWrite(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// standardRuns writes the runs whose statistics the tests check by hand:
//
//	baseline (alpha 1, LS 0):  test 90, 91, 92 %, train 99 % each
//	SGT alpha 0.3, LS 0:       test 93, 94, 95 %, train 97 % each
//	baseline + LS 0.1:         test 91.5, 92.5 %, train 98 %
//	SGT 0.3 + LS 0.1:          test 95 % (one seed), train 96 %
func standardRuns(t testing.TB) string {
	root := t.TempDir()
	runs := []fakeRun{
		{alpha: 1, seed: 0, trainAcc: 0.99, testAcc: 0.90, trainLoss: 0.05, logitNorm: 20, filterNorms: true},
		{alpha: 1, seed: 1, trainAcc: 0.99, testAcc: 0.91, trainLoss: 0.06, logitNorm: 19},
		{alpha: 1, seed: 2, trainAcc: 0.99, testAcc: 0.92, trainLoss: 0.07, logitNorm: 18},
		{alpha: 0.3, seed: 0, trainAcc: 0.97, testAcc: 0.93, trainLoss: 0.20, logitNorm: 8, filterNorms: true},
		{alpha: 0.3, seed: 1, trainAcc: 0.97, testAcc: 0.94, trainLoss: 0.21, logitNorm: 7},
		{alpha: 0.3, seed: 2, trainAcc: 0.97, testAcc: 0.95, trainLoss: 0.22, logitNorm: 6},
		{alpha: 1, ls: 0.1, seed: 0, trainAcc: 0.98, testAcc: 0.915, trainLoss: 0.3, logitNorm: 10},
		{alpha: 1, ls: 0.1, seed: 1, trainAcc: 0.98, testAcc: 0.925, trainLoss: 0.31, logitNorm: 9},
		{alpha: 0.3, ls: 0.1, seed: 0, trainAcc: 0.96, testAcc: 0.95, trainLoss: 0.5, logitNorm: 4},
	}
	for i, r := range runs {
		writeRun(t, filepath.Join(root, fmt.Sprintf("run%d", i)), r)
	}
	return root
}

func build(t *testing.T, dirs ...string) *Report {
	t.Helper()
	rep, err := Build(dirs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func findTable(t *testing.T, rep *Report, title string) Table {
	t.Helper()
	for _, tb := range rep.Tables {
		if strings.Contains(tb.Title, title) {
			return tb
		}
	}
	t.Fatalf("no table titled %q; have %d tables", title, len(rep.Tables))
	return Table{}
}

// cellOf returns the cell of the row whose first cell is method, in the
// column of that group and name.
func cellOf(t *testing.T, tb Table, method, group, name string) Cell {
	t.Helper()
	c := -1
	for i, col := range tb.Columns {
		if col.Group == group && col.Name == name {
			c = i
			break
		}
	}
	if c < 0 {
		t.Fatalf("table %q has no column %q/%q", tb.Title, group, name)
	}
	for _, row := range tb.Rows {
		if row[0].Text == method {
			return row[c]
		}
	}
	t.Fatalf("table %q has no row %q", tb.Title, method)
	return Cell{}
}

func cell(t *testing.T, tb Table, method, group, name string) string {
	t.Helper()
	return cellOf(t, tb, method, group, name).Text
}

// p4 is the two-sided p-value of Student's t with 4 degrees of freedom,
// from I_x(2, 1/2) integrated by hand: 1 - 1.5*sqrt(y) + 0.5*y^1.5 with
// y = t^2/(4+t^2).
func p4(t float64) float64 {
	y := t * t / (4 + t*t)
	return 1 - 1.5*math.Sqrt(y) + 0.5*math.Pow(y, 1.5)
}

func TestReportTablesHandComputed(t *testing.T) {
	rep := build(t, standardRuns(t))
	main0 := findTable(t, rep, "label smoothing 0")
	train, test, gap := "Train % (running)", "Test %", "Gap % (running)"
	checks := []struct{ method, group, col, want string }{
		{"Baseline", "", "n", "3"},
		{"Baseline", train, "mean ± sd", "99.00 ± 0.00"},
		{"Baseline", test, "mean ± sd", "91.00 ± 1.00"},
		{"Baseline", gap, "mean ± sd", "8.00 ± 1.00"},
		{"SGT", test, "mean ± sd", "94.00 ± 1.00"},
		{"SGT", train, "mean ± sd", "97.00 ± 0.00"},
		{"SGT", gap, "mean ± sd", "3.00 ± 1.00"},
		// Zero variance on both sides makes any difference exceed the noise.
		{"SGT", train, "Δ", "-2.00"},
		{"SGT", train, "p", "< 0.001"},
		// Test diff +3.00 with t = 3/sqrt(1/3+1/3) on 4 degrees of freedom;
		// the gap diff (3 - 8) has the same spread.
		{"SGT", test, "Δ", "+3.00"},
		{"SGT", test, "p", fmt.Sprintf("%.3f", p4(3/math.Sqrt(2.0/3)))},
		{"SGT", gap, "Δ", "-5.00"},
		{"SGT", gap, "p", fmt.Sprintf("%.3f", p4(5/math.Sqrt(2.0/3)))},
	}
	for _, c := range checks {
		if got := cell(t, main0, c.method, c.group, c.col); got != c.want {
			t.Errorf("main table %s / %s %s = %q, want %q", c.method, c.group, c.col, got, c.want)
		}
	}
	if c := cellOf(t, main0, "SGT", test, "Δ"); !c.Strong {
		t.Error("a difference with p < 0.05 is not marked strong")
	}

	main1 := findTable(t, rep, "label smoothing 0.1")
	if got := cell(t, main1, "Baseline", test, "mean ± sd"); got != "92.00 ± 0.71" {
		t.Errorf("LS baseline test acc %q", got)
	}
	if got := cell(t, main1, "SGT", test, "mean ± sd"); got != "95.00" {
		t.Errorf("single-seed cell %q", got)
	}
	if c := cellOf(t, main1, "SGT", test, "p"); c.Text != "–" || !c.Muted || c.Strong {
		t.Errorf("single-seed p cell %+v, want a muted –", c)
	}
	if got := cell(t, main1, "SGT", test, "Δ"); got != "+3.00" {
		t.Errorf("single-seed diff %q", got)
	}

	abl := findTable(t, rep, "Ablation")
	var order []string
	for _, row := range abl.Rows {
		order = append(order, row[0].Text)
	}
	if strings.Join(order, ",") != "Baseline,+LS,+SGT,+SGT+LS" {
		t.Errorf("ablation rows %v", order)
	}
	// +LS: n = 2 (sd 0.71) against n = 3 (sd 1): the test is made and the
	// +1.00 difference is within the noise.
	if c := cellOf(t, abl, "+LS", test, "Δ"); c.Text != "+1.00" || c.Strong {
		t.Errorf("+LS test diff %+v", c)
	}
	if p, _ := strconv.ParseFloat(cell(t, abl, "+LS", test, "p"), 64); !(p > SignificanceLevel) {
		t.Errorf("+LS p %v, want within noise", p)
	}
	if got := cell(t, abl, "+SGT+LS", test, "p"); got != "–" {
		t.Errorf("+SGT+LS p %q", got)
	}
	if got := cell(t, abl, "+LS", gap, "mean ± sd"); got != "6.00 ± 0.71" {
		t.Errorf("+LS gap %q", got)
	}
	if c := cellOf(t, abl, "+SGT", gap, "Δ"); c.Text != "-5.00" || !c.Strong {
		t.Errorf("+SGT gap diff %+v", c)
	}

	// What SGT changes: logit norm 20, 19, 18 against 8, 7, 6 and training
	// loss 0.05..0.07 against 0.20..0.22, both with sd 1 and 0.01.
	mech := findTable(t, rep, "What SGT changes")
	if got := cell(t, mech, "Baseline", "Logit norm", "mean ± sd"); got != "19.00 ± 1.00" {
		t.Errorf("baseline logit norm %q", got)
	}
	if got := cell(t, mech, "SGT", "Logit norm", "Δ"); got != "-12.00" {
		t.Errorf("SGT logit norm diff %q", got)
	}
	if got, want := cell(t, mech, "SGT", "Logit norm", "p"), formatP(p4(12/math.Sqrt(2.0/3))); got != want {
		t.Errorf("logit norm p %q, want %q", got, want)
	}
	if got := cell(t, mech, "SGT", "Train loss", "mean ± sd"); got != "0.210 ± 0.010" {
		t.Errorf("SGT train loss %q", got)
	}
	for _, c := range mech.Columns {
		if c.Group == "Train % (running)" {
			t.Error("the mechanism table repeats the running train accuracy the main table shows")
		}
	}
	text := strings.Join(strings.Fields(rep.Text()), " ")
	for _, want := range []string{"Ablation", "± is the sample standard deviation over seeds", "p the two-sided Welch t-test"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q", want)
		}
	}
}

// TestTextFitsTerminal checks that every line of the terminal output fits
// in 100 columns, even for a table as wide as the mechanism table with
// every quantity.
func TestTextFitsTerminal(t *testing.T) {
	root := standardRuns(t)
	writeRun(t, filepath.Join(root, "wide"), fakeRun{alpha: 0.05, seed: 0, trainAcc: 1, trainEval: 1, testAcc: 0.999, trainLoss: 123.456, logitNorm: 1234.5, zeroed: 3, filters: 100})
	rep := build(t, root)
	for _, line := range strings.Split(rep.Text(), "\n") {
		if n := len([]rune(line)); n > textWidth {
			t.Errorf("line of %d columns: %q", n, line)
		}
	}
	// A table too wide for one part is split, repeating its leading
	// columns.
	tb := Table{Columns: []Column{{Name: "Method", Left: true}}, Rows: [][]Cell{{{Text: "Baseline"}}}}
	for i := range 8 {
		g := fmt.Sprintf("Group %d", i)
		tb.Columns = append(tb.Columns, statColumns(g)...)
		tb.Rows[0] = append(tb.Rows[0], Cell{Text: "100.00 ± 10.00"}, Cell{Text: "+10.00"}, Cell{Text: "< 0.001"})
	}
	out := textTable(tb, textWidth)
	if strings.Count(out, "Method") < 2 || !strings.Contains(out, "Group 7") {
		t.Errorf("wide table not split into parts:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if len([]rune(line)) > textWidth {
			t.Errorf("split table line of %d columns", len([]rune(line)))
		}
	}
}

// TestUnitsFromDeclaration checks that every quantity is shown in its
// metric's declared unit: fractions as percentages, whatever the values.
func TestUnitsFromDeclaration(t *testing.T) {
	for _, q := range []quantity{qTest, qBestTest, qTrainRunning, qTrainClean, qGapClean, qGapMain, qGapRunning, qTrainLoss, qTestLoss, qLogitNorm, qZeroed} {
		name := q.key
		if q.derivedFrom != "" {
			name = q.derivedFrom
		}
		m, ok := rundir.LookupMetric(name)
		if !ok {
			t.Errorf("quantity %s: no metric %s", q.key, name)
			continue
		}
		if q.percent() != (m.Unit == rundir.Fraction) {
			t.Errorf("quantity %s: percent %v, but metric %s has unit %v", q.key, q.percent(), name, m.Unit)
		}
	}
	// Tiny accuracies stay percentages, a logit norm below 1 stays as it
	// is, and a gap can be negative.
	root := t.TempDir()
	for seed := range 2 {
		writeRun(t, filepath.Join(root, fmt.Sprintf("a%d", seed)), fakeRun{alpha: 1, seed: seed, trainAcc: 0.004, trainEval: 0.004, testAcc: 0.006, trainLoss: 2, logitNorm: 0.5})
	}
	tb := findTable(t, build(t, root), "label smoothing 0")
	if got := cell(t, tb, "Baseline", "Test %", "mean ± sd"); got != "0.60 ± 0.00" {
		t.Errorf("test accuracy 0.006 shown as %q, want 0.60 (%%)", got)
	}
	if got := cell(t, tb, "Baseline", "Gap % (clean)", "mean ± sd"); got != "-0.20 ± 0.00" {
		t.Errorf("gap -0.002 shown as %q, want -0.20 (points)", got)
	}
	if got := findTable(t, build(t, root), "What SGT changes"); cell(t, got, "Baseline", "Logit norm", "mean ± sd") != "0.50 ± 0.00" {
		t.Errorf("logit norm 0.5 shown as %q", cell(t, got, "Baseline", "Logit norm", "mean ± sd"))
	}
}

// findStatement returns the first statement of a topic that contains
// every one of parts.
func findStatement(rep *Report, topic string, parts ...string) (Statement, bool) {
	for _, f := range rep.Findings {
		if f.Topic != topic {
			continue
		}
		for _, s := range f.Lines {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(s.Text, p)
			}
			if all {
				return s, true
			}
		}
	}
	return Statement{}, false
}

func TestFindings(t *testing.T) {
	rep := build(t, standardRuns(t))
	// The LS 0 comparison exceeds the noise (p = p4(...) < 0.05).
	s, ok := findStatement(rep, "Test accuracy", "label smoothing 0 —", "94.00 ± 1.00 vs 91.00 ± 1.00 %", "Δ +3.00 points")
	if !ok || s.Verdict != "exceeds noise" || s.Tone != ToneClear {
		t.Errorf("LS 0 test accuracy statement %+v (found %v)", s, ok)
	}
	// The single-seed comparison is not tested.
	if s, ok := findStatement(rep, "Test accuracy", "label smoothing 0.1 —"); !ok || s.Verdict != "not tested" {
		t.Errorf("single-seed statement %+v", s)
	}
	// Label smoothing: +1.00 points, within the noise, with the seeds a
	// t-test would need at the pooled sd of (91.5, 92.5) and (90, 91, 92).
	s, ok = findStatement(rep, "Label smoothing", "Δ +1.00 points")
	n, _ := SeedsForPower(1, math.Sqrt((0.5+2)/3))
	if !ok || s.Verdict != "within noise" || !strings.Contains(s.Text, fmt.Sprintf("about %d seeds", n)) || !strings.Contains(s.Text, "pooled sd 0.91") {
		t.Errorf("label smoothing statement %+v, want within noise and about %d seeds at pooled sd 0.91", s, n)
	}
	// Mechanism: logit norm lowered (the paper reports it raised), stated
	// as "alpha vs baseline: mean ± sd, difference, p".
	s, ok = findStatement(rep, "What SGT changes inside the network", "Logit norm, label smoothing 0 — α = 0.3 vs baseline: 7.00 ± 1.00 vs 19.00 ± 1.00, Δ -12.00, p < 0.001.")
	if !ok || s.Verdict != "lowered, unlike the paper" || s.Tone != ToneAgainst {
		t.Errorf("logit norm statement %+v (found %v)", s, ok)
	}
	s, ok = findStatement(rep, "What SGT changes inside the network", "Training loss", "label smoothing 0 —", "Δ +0.150")
	if !ok || s.Verdict != "raised, as in the paper" {
		t.Errorf("training loss statement %+v (found %v)", s, ok)
	}
	// The paper's claims come from the recipes' reference numbers.
	if _, ok := findStatement(rep, "What SGT changes inside the network", "≈79 at alpha = 1", "≈218 at alpha = 0.25", "11 of the 12"); !ok {
		t.Error("the paper's mechanism numbers are missing")
	}
	// The summary concludes.
	if s, ok := findStatement(rep, "In short", "Test accuracy of 2 SGT settings", "higher beyond the noise: α = 0.3, LS 0 (+3.00 points)", "1 not tested"); !ok || s.Verdict != "SGT higher" {
		t.Errorf("summary %+v (found %v)", s, ok)
	}
	if _, ok := findStatement(rep, "In short", "SGT raised the training loss (1 of 2 comparisons)", "it lowered the logit norm (1 of 2 comparisons)", "which the paper reports raised"); !ok {
		t.Errorf("summary lacks the mechanism sentence: %+v", rep.Findings[0])
	}
	// The method is stated.
	if _, ok := findStatement(rep, methodTopic, "t(0.975, 2n−2) + t(0.80, 2n−2)", "pooled standard deviation"); !ok {
		t.Error("the power method is not stated")
	}
}

func TestSummariseManyAlphas(t *testing.T) {
	root := t.TempDir()
	alphas := []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1}
	for _, a := range alphas {
		for seed := range 3 {
			test := 0.90 + 0.002*float64(seed)
			if a == 0.4 {
				test += 0.05 // clearly better
			}
			writeRun(t, filepath.Join(root, fmt.Sprintf("a%g_s%d", a, seed)), fakeRun{alpha: a, seed: seed, trainAcc: 0.95, testAcc: test, trainLoss: 0.1, logitNorm: 10 / a})
		}
	}
	rep := build(t, root)
	var lines []Statement
	for _, f := range rep.Findings {
		if f.Topic == "Test accuracy" {
			lines = f.Lines
		}
	}
	if len(lines) != 3 {
		t.Fatalf("%d test accuracy statements for 8 alphas, want 3 (the one beyond the noise, the rest, the best): %+v", len(lines), lines)
	}
	if !strings.Contains(lines[0].Text, "α = 0.4 vs baseline") || lines[0].Verdict != "exceeds noise" {
		t.Errorf("first statement %+v", lines[0])
	}
	if !strings.Contains(lines[1].Text, "7 of 8 alphas") || lines[1].Verdict != "within noise" {
		t.Errorf("summary statement %+v", lines[1])
	}
	if !strings.Contains(lines[2].Text, "highest mean is at α = 0.4") {
		t.Errorf("best statement %+v", lines[2])
	}
}

func TestFlaggedRuns(t *testing.T) {
	root := t.TempDir()
	for seed := range 3 {
		writeRun(t, filepath.Join(root, fmt.Sprintf("base%d", seed)), fakeRun{alpha: 1, seed: seed, trainAcc: 0.95, testAcc: 0.90 + 0.01*float64(seed), trainLoss: 0.1, logitNorm: 10, classes: 10})
	}
	// Two good SGT seeds and one that collapsed at epoch 3 and recovered a
	// little.
	writeRun(t, filepath.Join(root, "sgt0"), fakeRun{alpha: 0.5, seed: 0, trainAcc: 0.95, testAcc: 0.91, trainLoss: 0.1, logitNorm: 12, classes: 10})
	writeRun(t, filepath.Join(root, "sgt1"), fakeRun{alpha: 0.5, seed: 1, trainAcc: 0.95, testAcc: 0.93, trainLoss: 0.1, logitNorm: 12, classes: 10})
	writeRun(t, filepath.Join(root, "sgt2"), fakeRun{alpha: 0.5, seed: 2, trainAcc: 0.95, testCurve: []float64{0.85, 0.2, 0.3}, testAcc: 0.3, trainLoss: 0.1, logitNorm: 12, classes: 10})
	// A setting whose every run stayed at chance.
	for seed := range 2 {
		writeRun(t, filepath.Join(root, fmt.Sprintf("dead%d", seed)), fakeRun{alpha: 0.01, seed: seed, trainAcc: 0.1, testAcc: 0.105, trainLoss: 2.3, logitNorm: 1, classes: 10})
	}
	rep := build(t, root)
	tb := findTable(t, rep, "label smoothing 0")
	if got := cell(t, tb, "SGT", "", "n"); got != "2 of 3" {
		t.Errorf("n %q, want 2 of 3", got)
	}
	// The collapsed run is left out: the mean is of 91 and 93.
	var alpha05 []Cell
	for _, row := range tb.Rows {
		if row[1].Text == "0.5" {
			alpha05 = row
		}
	}
	if alpha05 == nil || alpha05[6].Text != "92.00 ± 1.41" {
		t.Errorf("alpha 0.5 row %v, want test 92.00 ± 1.41 without the collapsed run", alpha05)
	}
	var dead []Cell
	for _, row := range tb.Rows {
		if row[1].Text == "0.01" {
			dead = row
		}
	}
	if dead == nil || dead[2].Text != "2, all flagged" || dead[6].Text != "10.50 ± 0.00" {
		t.Errorf("all-flagged row %v", dead)
	}
	byRun := map[string]FlaggedRun{}
	for _, f := range rep.Flagged {
		byRun[filepath.Base(f.Run)] = f
	}
	if len(rep.Flagged) != 3 {
		t.Errorf("%d flagged runs, want 3: %+v", len(rep.Flagged), rep.Flagged)
	}
	if f := byRun["sgt2"]; !strings.Contains(strings.Join(f.Why, ";"), "collapsed: test accuracy fell from 85.00% (epoch 1) to 20.00% (epoch 2), 30.00% at the last epoch") {
		t.Errorf("collapsed run: %+v", f)
	}
	if f := byRun["dead0"]; !strings.Contains(strings.Join(f.Why, ";"), "did not learn: final test accuracy 10.50%, chance is 10.00% (10 classes)") {
		t.Errorf("chance-level run: %+v", f)
	}
	if s, ok := findStatement(rep, "Flagged runs", "α = 0.5: 1 of 3 runs is flagged and left out"); !ok || s.Tone != ToneFlag {
		t.Errorf("flagged finding %+v", rep.Findings)
	}
	if _, ok := findStatement(rep, "Flagged runs", "α = 0.01: all 2 runs are flagged"); !ok {
		t.Error("no finding for the all-flagged setting")
	}
	// The flagged run is drawn, in red.
	for _, f := range rep.Figures {
		if f.Name == "accuracy_vs_epoch" && (!strings.Contains(string(f.SVG), "#D62728") || !strings.Contains(f.Caption, "flagged")) {
			t.Error("the accuracy figure does not mark the flagged run")
		}
	}
	if !strings.Contains(rep.Text(), "Flagged runs (left out of the means)") {
		t.Error("text output does not list the flagged runs")
	}
}

func TestOutlierRule(t *testing.T) {
	run := func(final float64) *RunInfo {
		return &RunInfo{Run: &rundir.Run{Record: &rundir.Record{}, Metrics: []rundir.EpochMetrics{{Epoch: 1, TestAcc: final}}}}
	}
	check := func(finals []float64, want []bool) {
		t.Helper()
		var runs []*RunInfo
		values := map[*RunInfo]map[string]float64{}
		for _, f := range finals {
			r := run(f)
			runs = append(runs, r)
			values[r] = map[string]float64{qTest.key: f}
		}
		flagRuns(runs, values)
		for i, r := range runs {
			if (len(r.Flags) > 0) != want[i] {
				t.Errorf("finals %v: run %d flagged %v, want %v (%v)", finals, i, len(r.Flags) > 0, want[i], r.Flags)
			}
		}
	}
	// One run far below three close ones.
	check([]float64{0.90, 0.91, 0.92, 0.5}, []bool{false, false, false, true})
	// A wide spread is not an outlier: 19 is 21 points below the median
	// 40, but the median absolute deviation is 21 too.
	check([]float64{0.19, 0.40, 0.78}, []bool{false, false, false})
	// Two runs are too few to tell which is the odd one.
	check([]float64{0.9, 0.2}, []bool{false, false})
}

// TestFailedTrialIsFlagged runs a grid whose trial diverges after an
// epoch: the report draws its epoch, flags it with the error, and leaves
// it out of the means.
func TestFailedTrialIsFlagged(t *testing.T) {
	dir := t.TempDir()
	g, err := experiment.NewGrid("", []train.Setting{{Name: "alpha", Value: "0.5,1"}}, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	trainFake := func(ctx context.Context, tr experiment.Trial, d string, _ bool, log io.Writer, _ func(train.StepProgress)) error {
		if err := rundir.WriteRecord(d, &rundir.Record{ID: rundir.NewID(), Config: rundir.Config(tr.Config)}); err != nil {
			return err
		}
		m := rundir.Unmeasured()
		m.Epoch, m.TrainAcc, m.TestAcc = 1, 0.9, 0.8+0.01*float64(tr.Config.Seed)
		if err := rundir.WriteMetrics(d, []rundir.EpochMetrics{m}); err != nil {
			return err
		}
		if tr.Config.Alpha == 0.5 && tr.Config.Seed == 1 {
			return fmt.Errorf("epoch 2, step 7: the training loss is NaN: %w", train.ErrDiverged)
		}
		return rundir.WriteSummary(d, &rundir.Summary{Epochs: 1, Final: m, BestTestAcc: m.TestAcc, BestEpoch: 1, Steps: 1})
	}
	if _, _, err := experiment.RunGrid(context.Background(), dir, g, nil, &experiment.Runner{Train: trainFake}); err != nil {
		t.Fatal(err)
	}
	rep := build(t, dir)
	if len(rep.Flagged) != 1 || !strings.Contains(strings.Join(rep.Flagged[0].Why, ";"), "failed after 1 epoch") || !strings.Contains(strings.Join(rep.Flagged[0].Why, ";"), "training diverged") {
		t.Fatalf("flagged %+v", rep.Flagged)
	}
	if got := cell(t, findTable(t, rep, "label smoothing 0"), "SGT", "", "n"); got != "1 of 2" {
		t.Errorf("n %q, want 1 of 2", got)
	}
}

func TestMissingDataSkipsFigures(t *testing.T) {
	root := t.TempDir()
	writeRun(t, filepath.Join(root, "a"), fakeRun{alpha: 1, trainAcc: 0.9, testAcc: 0.8, trainLoss: 0.1, logitNorm: 3})
	writeRun(t, filepath.Join(root, "b"), fakeRun{alpha: 0.5, trainAcc: 0.9, testAcc: 0.85, trainLoss: 0.1, logitNorm: 5})
	rep := build(t, filepath.Join(root, "a"), filepath.Join(root, "b"))
	notes := strings.Join(rep.Notes, "\n")
	if !strings.Contains(notes, "filter_norms.csv") {
		t.Errorf("notes do not explain the missing filter_norms.csv:\n%s", notes)
	}
	for _, f := range rep.Figures {
		if strings.HasPrefix(f.Name, "filter_norms") {
			t.Errorf("figure %s drawn without data", f.Name)
		}
	}
	// No ablation without label smoothing; no test with one seed each.
	for _, tb := range rep.Tables {
		if tb.ID == "ablation" {
			t.Error("ablation table without label-smoothing runs")
		}
	}
	tb := findTable(t, rep, "label smoothing 0")
	if got := cell(t, tb, "SGT", "Test %", "Δ"); got != "+5.00" {
		t.Errorf("test diff %q", got)
	}
	if got := cell(t, tb, "SGT", "Test %", "p"); got != "–" {
		t.Errorf("test p %q", got)
	}
	if !strings.HasPrefix(rep.Intro[0], "2 runs in 2 settings, 1 seed (0).") {
		t.Errorf("intro %q", rep.Intro[0])
	}
	one := build(t, filepath.Join(root, "a"))
	if !strings.HasPrefix(one.Intro[0], "1 run in 1 setting, 1 seed (0).") {
		t.Errorf("intro of one run %q", one.Intro[0])
	}
}

func TestMalformedInputsNameTheFile(t *testing.T) {
	cases := map[string]func(dir string){
		"metrics.csv": func(dir string) { mustWrite(t, filepath.Join(dir, "metrics.csv"), "epoch,test_acc\n1,0.5,7\n") },
		"config.json": func(dir string) { mustWrite(t, filepath.Join(dir, "config.json"), "{") },
		"summary.json": func(dir string) {
			mustWrite(t, filepath.Join(dir, "summary.json"), "[1,")
		},
		"filter_norms.csv": func(dir string) {
			mustWrite(t, filepath.Join(dir, "filter_norms.csv"), "step,layer,filter,norm\n0,conv,x,1\n")
		},
	}
	for file, breakIt := range cases {
		t.Run(file, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "run")
			writeRun(t, dir, fakeRun{alpha: 1, trainAcc: 0.9, testAcc: 0.8, trainLoss: 0.1, logitNorm: 3})
			breakIt(dir)
			_, err := Build([]string{root}, Options{})
			if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, file)) {
				t.Errorf("error %v does not name %s", err, filepath.Join(dir, file))
			}
		})
	}
	// A run without test_acc.
	root := t.TempDir()
	writeRun(t, root, fakeRun{alpha: 1, trainAcc: 0.9, testAcc: 0.8, trainLoss: 0.1, logitNorm: 3})
	var header, values []string
	for _, m := range rundir.Metrics {
		if !m.Optional && m.Name != "test_acc" {
			header, values = append(header, m.Name), append(values, "0.5")
		}
	}
	mustWrite(t, filepath.Join(root, "metrics.csv"), "epoch,"+strings.Join(header, ",")+"\n1,"+strings.Join(values, ",")+"\n")
	if _, err := Build([]string{root}, Options{}); err == nil || !strings.Contains(err.Error(), "test_acc") || !strings.Contains(err.Error(), "metrics.csv") {
		t.Errorf("missing column: %v", err)
	}
	// A directory without runs.
	if _, err := Build([]string{t.TempDir()}, Options{}); err == nil || !strings.Contains(err.Error(), "no finished runs") {
		t.Errorf("empty dir: %v", err)
	}
	// A broken manifest.
	root = t.TempDir()
	mustWrite(t, filepath.Join(root, "grid.json"), `{"kind":"nonsense"}`)
	if _, err := Build([]string{root}, Options{}); err == nil || !strings.Contains(err.Error(), "grid.json") {
		t.Errorf("bad manifest: %v", err)
	}
}

func TestReportOfGrid(t *testing.T) {
	// A grid made by the experiment package, with a fake trial that
	// records its run through package rundir.
	dir := t.TempDir()
	g, err := experiment.NewGrid("", []train.Setting{{Name: "alpha", Value: "0.5,1"}, {Name: "lr", Value: "0.1"}}, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	trainFake := func(ctx context.Context, tr experiment.Trial, d string, _ bool, log io.Writer, _ func(train.StepProgress)) error {
		acc := 0.8
		if tr.Config.Alpha == 0.5 {
			acc = 0.85
		}
		if tr.Config.Seed == 1 {
			acc += 0.01
		}
		if err := rundir.WriteRecord(d, &rundir.Record{ID: rundir.NewID(), Config: rundir.Config(tr.Config)}); err != nil {
			return err
		}
		m := rundir.Unmeasured()
		m.Epoch, m.TrainAcc, m.TestAcc = 1, 0.9, acc
		if err := rundir.WriteMetrics(d, []rundir.EpochMetrics{m}); err != nil {
			return err
		}
		return rundir.WriteSummary(d, &rundir.Summary{Epochs: 1, Final: m, BestTestAcc: acc, BestEpoch: 1, Steps: 1})
	}
	if _, _, err := experiment.RunGrid(context.Background(), dir, g, nil, &experiment.Runner{Train: trainFake}); err != nil {
		t.Fatal(err)
	}
	rep := build(t, dir)
	tb := findTable(t, rep, "label smoothing 0")
	if got := cell(t, tb, "SGT", "Test %", "mean ± sd"); got != "85.50 ± 0.71" {
		t.Errorf("SGT test acc %q", got)
	}
	if got := cell(t, tb, "Baseline", "", "n"); got != "2" {
		t.Errorf("baseline n %q", got)
	}
	// The same runs reached twice count once.
	again := build(t, dir, dir, filepath.Join(dir, "alpha=1_seed=0"))
	if got := cell(t, findTable(t, again, "label smoothing 0"), "Baseline", "", "n"); got != "2" {
		t.Errorf("runs reached twice: baseline n %q, want 2", got)
	}
}
