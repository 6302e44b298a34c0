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
	// final values of the last epoch; earlier epochs get lower accuracy.
	trainAcc, testAcc, trainLoss, logitNorm float64
	filterNorms                             bool
}

// writeRun writes a run directory through package rundir, as a training
// run does: three epochs ending at r's values.
func writeRun(t testing.TB, dir string, r fakeRun) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := &rundir.Record{ID: rundir.NewID(), CodeVersion: "abc", Started: "now-" + strconv.Itoa(r.seed),
		Config: rundir.Config{Data: "mnist", Model: "mlp", Alpha: r.alpha, LabelSmoothing: r.ls, Seed: int64(r.seed), Epochs: 3}}
	if err := rundir.WriteRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	var rows []rundir.EpochMetrics
	for e := 1; e <= 3; e++ {
		f := float64(e) / 3 // the last epoch has the given values
		m := rundir.Unmeasured()
		m.Epoch, m.LR, m.TrainLoss, m.TrainAcc, m.TestLoss, m.TestAcc, m.Seconds = e, 0.1, r.trainLoss/f, r.trainAcc*f, r.trainLoss*2, r.testAcc*f, 2
		m.LogitNorm = r.logitNorm * f
		rows = append(rows, m)
	}
	if err := rundir.WriteMetrics(dir, rows); err != nil {
		t.Fatal(err)
	}
	if err := rundir.WriteSummary(dir, &rundir.Summary{Epochs: 3, Final: rows[2], BestTestAcc: rows[2].TestAcc, BestEpoch: 3, Steps: 30}); err != nil {
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

// cell returns the cell of the row whose first cell is method, in column col.
func cell(t *testing.T, tb Table, method, col string) string {
	t.Helper()
	c := -1
	for i, h := range tb.Header {
		if h == col && c < 0 {
			c = i
		}
	}
	for _, row := range tb.Rows {
		if row[0] == method {
			return row[c]
		}
	}
	t.Fatalf("table %q has no row %q", tb.Title, method)
	return ""
}

// p4 is the two-sided p-value of Student's t with 4 degrees of freedom,
// from I_x(2, 1/2) integrated by hand: 1 - 1.5*sqrt(y) + 0.5*y^1.5 with
// y = t^2/(4+t^2).
func p4(t float64) float64 {
	y := t * t / (4 + t*t)
	return 1 - 1.5*math.Sqrt(y) + 0.5*math.Pow(y, 1.5)
}

func TestReportTablesHandComputed(t *testing.T) {
	root := standardRuns(t)
	rep, err := Build([]string{root}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	main0 := findTable(t, rep, "label smoothing 0")
	checks := []struct{ method, col, want string }{
		{"Baseline", "n", "3"},
		{"Baseline", "Train acc", "99.00 ± 0.00"},
		{"Baseline", "Test acc", "91.00 ± 1.00"},
		{"Baseline", "Gap", "8.00 ± 1.00"},
		{"SGT (alpha = 0.3)", "Test acc", "94.00 ± 1.00"},
		{"SGT (alpha = 0.3)", "Train acc", "97.00 ± 0.00"},
		{"SGT (alpha = 0.3)", "Gap", "3.00 ± 1.00"},
		// Train diff is the first "Diff" column; zero variance on both sides
		// makes any difference exceed the noise.
		{"SGT (alpha = 0.3)", "Diff", "-2.00 (exceeds noise, p < 0.001)"},
	}
	for _, c := range checks {
		if got := cell(t, main0, c.method, c.col); got != c.want {
			t.Errorf("main table %s / %s = %q, want %q", c.method, c.col, got, c.want)
		}
	}
	// Test diff +3.00 with t = 3/sqrt(1/3+1/3) on 4 degrees of freedom; the
	// gap diff (3 - 8) has the same spread.
	sgtRow := main0.Rows[1]
	wantP := p4(3 / math.Sqrt(2.0/3))
	if want := fmt.Sprintf("+3.00 (exceeds noise, p = %.3f)", wantP); sgtRow[6] != want {
		t.Errorf("test diff %q, want %q", sgtRow[6], want)
	}
	if want := fmt.Sprintf("-5.00 (exceeds noise, p = %.3f)", p4(5/math.Sqrt(2.0/3))); sgtRow[8] != want {
		t.Errorf("gap diff %q, want %q", sgtRow[8], want)
	}

	main1 := findTable(t, rep, "label smoothing 0.1")
	if got := cell(t, main1, "Baseline", "Test acc"); got != "92.00 ± 0.71" {
		t.Errorf("LS baseline test acc %q", got)
	}
	if got := cell(t, main1, "SGT (alpha = 0.3)", "Test acc"); got != "95.00" {
		t.Errorf("single-seed cell %q", got)
	}
	if got := main1.Rows[1][6]; got != "+3.00 (not tested, < 2 seeds)" {
		t.Errorf("single-seed diff %q", got)
	}

	abl := findTable(t, rep, "Ablation")
	var order []string
	for _, row := range abl.Rows {
		order = append(order, row[0])
	}
	if strings.Join(order, ",") != "Baseline,+LS,+SGT,+SGT+LS" {
		t.Errorf("ablation rows %v", order)
	}
	testDiff := func(method string) string { // the second "Diff" column
		for _, row := range abl.Rows {
			if row[0] == method {
				return row[7]
			}
		}
		return ""
	}
	// +LS: n = 2 (sd 0.71) against n = 3 (sd 1): the test is made and the
	// +1.00 difference is within the noise.
	if got := testDiff("+LS"); !strings.HasPrefix(got, "+1.00 (within noise, p = ") {
		t.Errorf("+LS test diff %q", got)
	}
	if got := testDiff("+SGT+LS"); got != "+4.00 (not tested, < 2 seeds)" {
		t.Errorf("+SGT+LS test diff %q", got)
	}
	if got := cell(t, abl, "+LS", "Gap"); got != "6.00 ± 0.71" {
		t.Errorf("+LS gap %q", got)
	}
	if got := cell(t, abl, "+SGT", "Gap diff"); !strings.HasPrefix(got, "-5.00 (exceeds noise") {
		t.Errorf("+SGT gap diff %q", got)
	}
	if !strings.Contains(rep.Text(), "Ablation") {
		t.Error("text output lacks the ablation table")
	}
}

func TestReportFiguresAndHTML(t *testing.T) {
	root := standardRuns(t)
	rep, err := Build([]string{root}, Options{Title: "Demo <report>", LogLog: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"transform_ordered", "transform_unordered", "accuracy_vs_epoch", "test_acc_vs_alpha",
		"train_loss_vs_alpha", "logit_norm_vs_alpha", "gap_vs_alpha", "loss_vs_logit_norm"}
	have := map[string]bool{}
	filterFigs := 0
	for _, f := range rep.Figures {
		have[f.Name] = true
		if strings.HasPrefix(f.Name, "filter_norms_") {
			filterFigs++
		}
		if !strings.Contains(string(f.SVG), "<svg") {
			t.Errorf("figure %s is not SVG", f.Name)
		}
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("missing figure %s (have %v; notes %q)", w, have, rep.Notes)
		}
	}
	// Baseline and smallest alpha, first and last layer.
	if filterFigs != 4 {
		t.Errorf("%d filter-norm figures, want 4", filterFigs)
	}
	for _, f := range rep.Figures {
		if strings.HasPrefix(f.Name, "filter_norms_") && strings.Contains(f.Title, "alpha=0.3") && !strings.Contains(f.Caption, "1 filters end below") {
			t.Errorf("SGT filter figure should count one zeroed filter: %s", f.Caption)
		}
	}
	for _, f := range rep.Figures {
		if f.Name == "loss_vs_logit_norm" && !strings.Contains(f.Caption, "Least-squares line") {
			t.Errorf("fit missing from caption: %s", f.Caption)
		}
	}

	path := filepath.Join(t.TempDir(), "out", "report.html")
	if err := rep.Write(path); err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(path)
	s := string(html)
	if n := strings.Count(s, "<svg"); n != len(rep.Figures) {
		t.Errorf("%d inline SVGs, want %d", n, len(rep.Figures))
	}
	for _, bad := range []string{"<script", "<link", "src=\"http", "href=\"http", "url(http", "@import", "<?xml"} {
		if strings.Contains(s, bad) {
			t.Errorf("HTML is not self-contained: contains %q", bad)
		}
	}
	for _, tb := range rep.Tables {
		if !strings.Contains(s, tb.Title) {
			t.Errorf("HTML lacks table %q", tb.Title)
		}
	}
	if !strings.Contains(s, "Demo &lt;report&gt;") || !strings.Contains(s, "91.00 ± 1.00") {
		t.Error("HTML lacks the escaped title or a table value")
	}

	md := filepath.Join(t.TempDir(), "r.md")
	if err := rep.Write(md); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(md)
	for _, f := range rep.Figures {
		file := "r_" + f.Name + ".svg"
		if !strings.Contains(string(text), "("+file+")") {
			t.Errorf("Markdown does not reference %s", file)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(md), file)); err != nil {
			t.Errorf("figure file: %v", err)
		}
	}
	if !strings.Contains(string(text), "| Baseline | 1 | 3 | 99.00 ± 0.00 |") {
		t.Errorf("Markdown table row missing:\n%s", text)
	}
	if err := rep.Write(filepath.Join(t.TempDir(), "r.pdf")); err == nil {
		t.Error("unknown extension: want an error")
	}
}

func TestMissingDataSkipsFigures(t *testing.T) {
	root := t.TempDir()
	writeRun(t, filepath.Join(root, "a"), fakeRun{alpha: 1, trainAcc: 0.9, testAcc: 0.8, trainLoss: 0.1, logitNorm: 3})
	writeRun(t, filepath.Join(root, "b"), fakeRun{alpha: 0.5, trainAcc: 0.9, testAcc: 0.85, trainLoss: 0.1, logitNorm: 5})
	rep, err := Build([]string{filepath.Join(root, "a"), filepath.Join(root, "b")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(rep.Notes, "\n")
	for _, want := range []string{"filter_norms.csv"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes do not explain the missing %s:\n%s", want, notes)
		}
	}
	for _, f := range rep.Figures {
		if strings.HasPrefix(f.Name, "filter_norms") {
			t.Errorf("figure %s drawn without data", f.Name)
		}
	}
	// No ablation without label smoothing; the main table has no verdicts
	// with one seed each.
	for _, tb := range rep.Tables {
		if tb.ID == "ablation" {
			t.Error("ablation table without label-smoothing runs")
		}
	}
	if tb := findTable(t, rep, "label smoothing 0"); tb.Rows[1][6] != "+5.00 (not tested, < 2 seeds)" {
		t.Errorf("test diff %q", tb.Rows[1][6])
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
	rep, err := Build([]string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tb := findTable(t, rep, "label smoothing 0")
	if got := cell(t, tb, "SGT (alpha = 0.5)", "Test acc"); got != "85.50 ± 0.71" {
		t.Errorf("SGT test acc %q", got)
	}
	if got := cell(t, tb, "Baseline", "n"); got != "2" {
		t.Errorf("baseline n %q", got)
	}
	// The same runs reached twice count once.
	again, err := Build([]string{dir, dir, filepath.Join(dir, "alpha=1_seed=0")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cell(t, findTable(t, again, "label smoothing 0"), "Baseline", "n"); got != "2" {
		t.Errorf("runs reached twice: baseline n %q, want 2", got)
	}
}

func TestTransformSeries(t *testing.T) {
	p := orderedExample()
	for _, s := range transformSeries(p) {
		alpha, _ := strconv.ParseFloat(strings.TrimPrefix(s.label, "alpha="), 64)
		var norm float64
		for _, v := range p {
			norm += math.Pow(v, alpha)
		}
		for i, y := range s.ys {
			if want := math.Pow(p[i], alpha) / norm; math.Abs(y-want) > 1e-12 {
				t.Errorf("alpha %v class %d: %v, want %v", alpha, i, y, want)
			}
		}
	}
}

func TestStatistics(t *testing.T) {
	// Closed forms: df = 1 is the Cauchy distribution, P(|T| >= 1) = 1/2;
	// df = 2 has P(|T| >= t) = 1 - t/sqrt(2+t^2).
	if p := StudentTTwoSided(1, 1); math.Abs(p-0.5) > 1e-12 {
		t.Errorf("df 1: %v", p)
	}
	for _, tv := range []float64{0.5, 2, 7} {
		if p, want := StudentTTwoSided(tv, 2), 1-tv/math.Sqrt(2+tv*tv); math.Abs(p-want) > 1e-12 {
			t.Errorf("df 2, t %v: %v want %v", tv, p, want)
		}
		if p, want := StudentTTwoSided(tv, 4), p4(tv); math.Abs(p-want) > 1e-12 {
			t.Errorf("df 4, t %v: %v want %v", tv, p, want)
		}
	}
	// Tabulated critical value: t = 2.228139 at df = 10 gives p = 0.05.
	if p := StudentTTwoSided(2.228139, 10); math.Abs(p-0.05) > 1e-5 {
		t.Errorf("df 10: %v", p)
	}
	if p := StudentTTwoSided(0, 7); p != 1 {
		t.Errorf("t = 0: %v", p)
	}
	w := WelchTest([]float64{1, 2, 3}, []float64{1, 2, 3})
	if !w.OK || w.P != 1 || w.Significant() {
		t.Errorf("equal samples: %+v", w)
	}
	if w := WelchTest([]float64{1}, []float64{1, 2}); w.OK {
		t.Errorf("one value: %+v", w)
	}
	if w := WelchTest([]float64{2, 2}, []float64{1, 1}); !w.Significant() {
		t.Errorf("zero variance, different means: %+v", w)
	}
	fit, ok := FitLine([]float64{0, 1, 2, 3}, []float64{2, 5, 8, 11})
	if !ok || math.Abs(fit.Slope-3) > 1e-12 || math.Abs(fit.Intercept-2) > 1e-12 || math.Abs(fit.R2-1) > 1e-12 {
		t.Errorf("fit %+v", fit)
	}
	fit, _ = FitLine([]float64{0, 1, 2, 3}, []float64{1, 0, 1, 4})
	// Sxx = 5, Sxy = 5 -> slope 1, intercept 1.5 - 1.5 = 0; Syy = 9 -> R2 = 25/45.
	if math.Abs(fit.Slope-1) > 1e-12 || math.Abs(fit.Intercept) > 1e-12 || math.Abs(fit.R2-25.0/45) > 1e-12 {
		t.Errorf("noisy fit %+v", fit)
	}
	if _, ok := FitLine([]float64{1, 1}, []float64{1, 2}); ok {
		t.Error("constant x: want no fit")
	}
}
