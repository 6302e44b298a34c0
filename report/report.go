// Package report turns training runs into the tables and figures of the SGT
// paper, and says in words what they show: accuracy of plain training
// (alpha = 1) against SGT per alpha with their differences, the
// label-smoothing ablation with the generalisation gap, what SGT changes
// inside the network (logit norm, training loss, training fit, zeroed
// filters), the paper's own numbers beside ours when the runs come from a
// recipe, and figures of the transform, of training curves and of what SGT
// does to losses, logit norms and filter norms.
//
// Every number is a mean ± sample standard deviation over seeds, and every
// difference says whether it exceeds the seed-to-seed noise (Welch's
// t-test) and, when it does not, how many seeds would show a difference of
// its size. Runs that diverged, collapsed or failed are flagged, listed and
// left out of the means. Reports are written as one self-contained HTML
// file or as Markdown with SVG files beside it, always atomically.
package report

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/rundir"
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

// Column describes one column of a table.
type Column struct {
	// Name is the column's header.
	Name string
	// Group is a header spanning the consecutive columns of the same group
	// ("" for none), e.g. "Test %" over "mean ± sd", "Δ" and "p".
	Group string
	// Left aligns the column left (text); numbers align right.
	Left bool
}

// Cell is one cell of a table.
type Cell struct {
	// Text is the cell's content.
	Text string
	// Strong marks a difference that exceeds the seed-to-seed noise.
	Strong bool
	// Muted marks a cell that holds no result (no test made, no value).
	Muted bool
	// Title explains the cell (a tooltip in HTML).
	Title string
}

// Table is one table of a report.
type Table struct {
	// ID is a short stable name ("main", "ablation", "mechanism", "paper").
	ID string
	// Title and Caption describe the table.
	Title, Caption string
	// Columns and Rows hold the header and the cells.
	Columns []Column
	Rows    [][]Cell
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

// Finding is one topic of a report's findings, in words.
type Finding struct {
	// Topic names what the lines are about ("Test accuracy").
	Topic string
	// Lines are the statements, each a sentence or a few.
	Lines []Statement
}

// Statement is one finding: a short verdict and the sentences behind it.
type Statement struct {
	// Verdict sums the statement up in a few words ("exceeds noise"); ""
	// for none.
	Verdict string
	// Tone classifies the verdict: ToneClear, ToneNoise, ToneUntested,
	// ToneAgainst, ToneFlag or "" (plain).
	Tone string
	// Text is the statement.
	Text string
}

// String writes the statement as "verdict: text".
func (s Statement) String() string {
	if s.Verdict == "" {
		return s.Text
	}
	return "[" + s.Verdict + "] " + s.Text
}

// Tones of statements.
const (
	// ToneClear: a difference beyond the noise (as the paper reports, when
	// it reports one).
	ToneClear = "clear"
	// ToneNoise: within the seed-to-seed noise.
	ToneNoise = "noise"
	// ToneUntested: no test possible, or a reduced protocol.
	ToneUntested = "untested"
	// ToneAgainst: beyond the noise, opposite to the paper.
	ToneAgainst = "against"
	// ToneFlag: flagged runs.
	ToneFlag = "flag"
)

// FlaggedRun is a run the report left out of its means, and why.
type FlaggedRun struct {
	// Run names the run (its directory's last two elements).
	Run string
	// Setting names the run's setting (alpha, label smoothing, context).
	Setting string
	// Seed is the run's seed.
	Seed int
	// Why lists the rules the run broke, in words.
	Why []string
}

// Report is a built report, ready to be written.
type Report struct {
	// Title is the report's title.
	Title string
	// Sources are the directories the runs came from.
	Sources []string
	// Intro explains what the runs are and how to read the numbers.
	Intro []string
	// Findings say in words what the data show.
	Findings []Finding
	// Tables and Figures are the report's content in order.
	Tables  []Table
	Figures []Figure
	// Flagged lists the runs left out of the means.
	Flagged []FlaggedRun
	// Notes lists skipped figures, assumptions and left-out runs.
	Notes []string
}

// group is the runs of one setting (context, alpha, label smoothing) and
// the per-run values its statistics use.
type group struct {
	context   string
	alpha, ls float64
	runs      []*RunInfo           // every run, sorted by seed
	used      []*RunInfo           // the runs the statistics use
	values    map[string][]float64 // quantity key -> one value per used run
	// allFlagged is set when every run is flagged; then the statistics
	// use all of them.
	allFlagged bool
}

// data is everything the tables, findings and figures are made from.
type data struct {
	runs   []*RunInfo
	groups []*group // sorted by context, label smoothing, alpha descending
	// train and gap are the quantities the main tables use: the clean
	// train pass when every run measured it, else the running one.
	train, gap quantity
	// perRun holds each run's values by quantity key.
	perRun map[*RunInfo]map[string]float64
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
	rep.Intro = d.intro()
	paper, paperNotes := d.matchPaper()
	rep.Notes = append(rep.Notes, paperNotes...)
	rep.Flagged = d.flaggedList()
	rep.Findings = d.findings(paper)
	rep.Tables = d.tables()
	rep.Tables = append(rep.Tables, paper.tables(d)...)
	figs, figNotes, err := d.figures(opts, paper)
	if err != nil {
		return nil, err
	}
	rep.Figures = figs
	rep.Notes = append(rep.Notes, figNotes...)
	return rep, nil
}

// prepare computes every run's values, groups the runs, flags the ones
// that diverged, collapsed or failed, and gathers each group's values.
func prepare(runs []*RunInfo) (*data, error) {
	d := &data{runs: runs, train: qTrainClean, gap: qGapClean, perRun: map[*RunInfo]map[string]float64{}}
	for _, r := range runs {
		if !r.Run.Has(qTrainClean.key) {
			d.train = qTrainRunning
		}
		if !r.Run.Has(qGapClean.key) {
			d.gap = qGapMain
		}
	}
	byKey := map[string]*group{}
	for _, r := range runs {
		vals, err := d.runValues(r)
		if err != nil {
			return nil, err
		}
		d.perRun[r] = vals
		key := fmt.Sprintf("%s\x00%g\x00%g", r.Context, r.LabelSmoothing, r.Alpha)
		g := byKey[key]
		if g == nil {
			g = &group{context: r.Context, alpha: r.Alpha, ls: r.LabelSmoothing}
			byKey[key] = g
			d.groups = append(d.groups, g)
		}
		g.runs = append(g.runs, r)
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
		flagRuns(g.runs, d.perRun)
		for _, r := range g.runs {
			if len(r.Flags) == 0 {
				g.used = append(g.used, r)
			}
		}
		if len(g.used) == 0 {
			g.used, g.allFlagged = g.runs, true
		}
		g.values = map[string][]float64{}
		for _, r := range g.used {
			for k, v := range d.perRun[r] {
				g.values[k] = append(g.values[k], v)
			}
		}
	}
	return d, nil
}

// runValues returns a run's final values by quantity key. Test accuracy
// and the main table's train accuracy are required.
func (d *data) runValues(r *RunInfo) (map[string]float64, error) {
	test, err := finalValue(r, qTest.key)
	if err != nil {
		return nil, err
	}
	train, err := finalValue(r, d.train.key)
	if err != nil {
		return nil, err
	}
	v := map[string]float64{qTest.key: test, d.train.key: train}
	if d.gap == qGapClean {
		v[qGapClean.key], _ = r.Run.Final(qGapClean.key)
	} else {
		v[qGapMain.key] = train - test
	}
	if running, ok := r.Run.Final(qTrainRunning.key); ok {
		v[qTrainRunning.key] = running
		v[qGapRunning.key] = running - test
	}
	if best, _, ok := r.Run.Best(qTest.key); ok {
		v[qBestTest.key] = best
	}
	for _, q := range []quantity{qTrainLoss, qTestLoss, qLogitNorm} {
		if x, ok := r.Run.Final(q.key); ok && isFinite(x) {
			v[q.key] = x
		}
	}
	if n, ok := r.Run.Final("filters"); ok && n > 0 {
		if z, ok := r.Run.Final(qZeroed.key); ok {
			v[qZeroed.key] = z
		}
	}
	return v, nil
}

// has reports whether some group has values of q.
func (d *data) has(q quantity) bool {
	for _, g := range d.groups {
		if len(g.values[q.key]) > 0 {
			return true
		}
	}
	return false
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

// sgtGroups returns the groups of a context and label smoothing other than
// the baseline, alpha descending.
func (d *data) sgtGroups(context string, ls float64) []*group {
	var out []*group
	for _, g := range d.groups {
		if g.context == context && g.ls == ls && g.alpha != 1 {
			out = append(out, g)
		}
	}
	return out
}

// intro says what the runs are and how to read the numbers.
func (d *data) intro() []string {
	settings := len(d.groups)
	seeds := map[int]bool{}
	for _, r := range d.runs {
		seeds[r.Seed] = true
	}
	var seedList []int
	for s := range seeds {
		seedList = append(seedList, s)
	}
	sort.Ints(seedList)
	line := fmt.Sprintf("%s in %s, %s (%s).", plural(len(d.runs), "run", "runs"), plural(settings, "setting", "settings"),
		plural(len(seedList), "seed", "seeds"), joinInts(seedList))
	if common := d.commonSettings(); common != "" {
		line += " Common settings: " + common + "."
	}
	if ctxs := d.contexts(); len(ctxs) > 1 {
		line += " Settings that differ between the runs besides alpha and label smoothing are named in each table's title."
	}
	out := []string{line}
	out = append(out, "How to read the numbers: each is the mean over seeds at the last epoch. "+tableLegend)
	out = append(out, fmt.Sprintf("Train accuracy comes in two kinds: the running one (train_acc), the top-1 over each epoch's augmented batches in training mode, which is what the paper calls train accuracy; and the clean one (train_eval_acc), a pass over a fixed subset of the training set after the epoch, without augmentation and in inference mode. The main tables use the %s one%s; the comparison with the paper uses the running one.",
		d.train.kind, d.trainKindWhy()))
	return out
}

func (d *data) trainKindWhy() string {
	if d.train == qTrainClean {
		return " (every run measured it) and its gap, clean train minus test"
	}
	return " (not every run measured the clean one) and its gap, running train minus test"
}

// commonKeys are the settings the intro names when every run shares them.
var commonKeys = []string{"recipe", "model", "data", "epochs", "batch_size", "lr", "schedule", "train_size", "test_size"}

// commonSettings describes the settings every run shares.
func (d *data) commonSettings() string {
	var parts []string
	for _, key := range commonKeys {
		value, same := "", true
		for i, r := range d.runs {
			v := configValue(r.Run.Record.Config, key)
			if i == 0 {
				value = v
			} else if v != value {
				same = false
			}
		}
		if !same || value == "" {
			continue
		}
		switch key {
		case "train_size", "test_size":
			if value == "0" {
				value = "all"
			}
			parts = append(parts, strings.TrimSuffix(key, "_size")+" examples "+value)
		case "batch_size":
			parts = append(parts, "batch "+value)
		default:
			parts = append(parts, key+" "+value)
		}
	}
	return strings.Join(parts, ", ")
}

// configValue returns one config.json setting as text.
func configValue(c rundir.Config, key string) string {
	for _, f := range c.Fields() {
		if f.Key == key {
			return f.Value
		}
	}
	return ""
}

// tables builds the main tables (one per context and label smoothing), the
// label-smoothing ablations (one per context that has runs without and with
// label smoothing) and the tables of what SGT changes inside the network.
func (d *data) tables() []Table {
	var out []Table
	for _, ctx := range d.contexts() {
		for _, ls := range d.smoothings(ctx) {
			out = append(out, d.mainTable(ctx, ls))
		}
		if t, ok := d.ablationTable(ctx); ok {
			out = append(out, t)
		}
		if t, ok := d.mechanismTable(ctx); ok {
			out = append(out, t)
		}
	}
	return out
}

// statColumns returns the three columns of a quantity's group: mean ± sd,
// Δ and p.
func statColumns(group string) []Column {
	return []Column{{Name: "mean ± sd", Group: group}, {Name: "Δ", Group: group}, {Name: "p", Group: group}}
}

// statCells returns the cells of statColumns for group g against base (nil
// for no comparison).
func (d *data) statCells(q quantity, g, base *group) []Cell {
	vals := q.scaled(g.values[q.key])
	cells := []Cell{{Text: q.meanSD(vals)}, {}, {}}
	if len(vals) == 0 {
		cells[0].Muted = true
	}
	if base == nil || base == g {
		return cells
	}
	w := WelchTest(vals, q.scaled(base.values[q.key]))
	if len(vals) == 0 || len(base.values[q.key]) == 0 {
		return cells
	}
	cells[1] = Cell{Text: q.diff(w.Diff), Strong: w.Significant()}
	switch {
	case !w.OK:
		cells[2] = Cell{Text: "–", Muted: true, Title: "not tested: fewer than 2 seeds on a side"}
	default:
		cells[2] = Cell{Text: formatP(w.P), Strong: w.Significant()}
	}
	return cells
}

// nCell counts the runs a group's statistics use.
func nCell(g *group) Cell {
	switch {
	case g.allFlagged:
		return Cell{Text: fmt.Sprintf("%d, all flagged", len(g.runs)), Title: "every run of this setting is flagged (see Flagged runs); the statistics use all of them"}
	case len(g.used) < len(g.runs):
		return Cell{Text: fmt.Sprintf("%d of %d", len(g.used), len(g.runs)), Title: "flagged runs are left out (see Flagged runs)"}
	}
	return Cell{Text: strconv.Itoa(len(g.runs))}
}

// tableLegend says what the cells of the result tables are.
var tableLegend = fmt.Sprintf("± is the sample standard deviation over seeds; Δ the difference of means to the baseline; p the two-sided Welch t-test over seeds, and p < %g (bold) means the difference exceeds the seed-to-seed noise; – means no test (fewer than 2 seeds on a side). Accuracies are in %%, their differences in points.", SignificanceLevel)

// tableCaption explains a result table's differences and train accuracy.
func (d *data) tableCaption(diffTo string) string {
	return "Δ is to " + diffTo + ". " + d.trainCaption()
}

func (d *data) trainCaption() string {
	if d.train == qTrainClean {
		return "Train % is the clean pass over a training subset (train_eval_acc); the gap is clean train minus test accuracy."
	}
	return "Train % is the running accuracy over the epoch's augmented batches (train_acc, the paper's train accuracy); the gap is running train minus test accuracy."
}

func (d *data) mainTable(ctx string, ls float64) Table {
	t := Table{
		ID:      "main",
		Title:   fmt.Sprintf("Baseline and SGT, label smoothing %s%s", fmtNum(ls), sectionTitle(ctx)),
		Caption: d.tableCaption("the baseline (alpha = 1) with the same label smoothing"),
		Columns: []Column{{Name: "Method", Left: true}, {Name: "α"}, {Name: "n"}},
	}
	for _, q := range []quantity{d.train, qTest, d.gap} {
		t.Columns = append(t.Columns, statColumns(q.header)...)
	}
	base := d.find(ctx, 1, ls)
	if base == nil {
		t.Caption = "No baseline (alpha = 1) runs with this setting: no differences are computed. " + t.Caption
	}
	for _, g := range d.groups {
		if g.context != ctx || g.ls != ls {
			continue
		}
		name := "SGT"
		if g.alpha == 1 {
			name = "Baseline"
		}
		row := []Cell{{Text: name}, {Text: fmtNum(g.alpha)}, nCell(g)}
		for _, q := range []quantity{d.train, qTest, d.gap} {
			row = append(row, d.statCells(q, g, base)...)
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// ablationKind names a group's row of the ablation and orders the rows.
func ablationKind(g *group) (string, int) {
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
		Caption: d.tableCaption("the baseline (alpha = 1, no label smoothing)"),
		Columns: []Column{{Name: "Method", Left: true}, {Name: "α"}, {Name: "LS"}, {Name: "n"}},
	}
	for _, q := range []quantity{d.train, qTest, d.gap} {
		t.Columns = append(t.Columns, statColumns(q.header)...)
	}
	gs := d.contextGroups(ctx)
	sort.SliceStable(gs, func(i, j int) bool {
		_, ki := ablationKind(gs[i])
		_, kj := ablationKind(gs[j])
		if ki != kj {
			return ki < kj
		}
		if gs[i].alpha != gs[j].alpha {
			return gs[i].alpha > gs[j].alpha
		}
		return gs[i].ls < gs[j].ls
	})
	for _, g := range gs {
		name, _ := ablationKind(g)
		row := []Cell{{Text: name}, {Text: fmtNum(g.alpha)}, {Text: fmtNum(g.ls)}, nCell(g)}
		for _, q := range []quantity{d.train, qTest, d.gap} {
			row = append(row, d.statCells(q, g, base)...)
		}
		t.Rows = append(t.Rows, row)
	}
	return t, true
}

// contextGroups returns the groups of a context in the data's order.
func (d *data) contextGroups(ctx string) []*group {
	var gs []*group
	for _, g := range d.groups {
		if g.context == ctx {
			gs = append(gs, g)
		}
	}
	return gs
}

// mechanismQuantities returns the quantities of the mechanism table that
// some run measured: logit norm, training loss, the running train accuracy
// (when the main tables show the clean one) and zeroed filters.
func (d *data) mechanismQuantities() []quantity {
	var out []quantity
	for _, q := range []quantity{qLogitNorm, qTrainLoss, qTrainRunning, qZeroed} {
		if q == d.train || !d.has(q) || (q == qZeroed && d.allZero(q)) {
			continue
		}
		out = append(out, q)
	}
	return out
}

// mechanismTable compares, per label smoothing, what SGT changes inside the
// network with the baseline: the quantities of mechanismQuantities.
func (d *data) mechanismTable(ctx string) (Table, bool) {
	qs := d.mechanismQuantities()
	if len(qs) == 0 {
		return Table{}, false
	}
	t := Table{
		ID:      "mechanism",
		Title:   "What SGT changes inside the network" + sectionTitle(ctx),
		Columns: []Column{{Name: "Method", Left: true}, {Name: "α"}, {Name: "LS"}, {Name: "n"}},
	}
	var names []string
	for _, q := range qs {
		t.Columns = append(t.Columns, statColumns(q.header)...)
		names = append(names, q.describe())
	}
	t.Caption = "At the last epoch: " + strings.Join(names, "; ") + ". Δ is to the baseline (alpha = 1) with the same label smoothing."
	rows := 0
	for _, g := range d.contextGroups(ctx) {
		base := d.find(ctx, 1, g.ls)
		name := "SGT"
		if g.alpha == 1 {
			name = "Baseline"
		}
		row := []Cell{{Text: name}, {Text: fmtNum(g.alpha)}, {Text: fmtNum(g.ls)}, nCell(g)}
		for _, q := range qs {
			row = append(row, d.statCells(q, g, base)...)
		}
		t.Rows = append(t.Rows, row)
		rows++
	}
	return t, rows > 0
}

// formatP formats a p-value as "0.021" or "< 0.001".
func formatP(p float64) string {
	if p < 0.001 {
		return "< 0.001"
	}
	return strconv.FormatFloat(p, 'f', 3, 64)
}

// pPhrase formats a p-value for a sentence: "p = 0.021" or "p < 0.001".
func pPhrase(p float64) string {
	if p < 0.001 {
		return "p < 0.001"
	}
	return "p = " + strconv.FormatFloat(p, 'f', 3, 64)
}

func fmtNum(x float64) string { return strconv.FormatFloat(x, 'g', 4, 64) }

func sectionTitle(context string) string {
	if context == "" {
		return ""
	}
	return " — " + context
}

// plural returns "1 run" or "3 runs".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ", ")
}

// runLabel names a run: its directory's last two elements.
func runLabel(r *RunInfo) string {
	dir := filepath.Clean(r.Dir)
	parent := filepath.Base(filepath.Dir(dir))
	if parent == "." || parent == string(filepath.Separator) {
		return filepath.Base(dir)
	}
	return parent + "/" + filepath.Base(dir)
}

// groupLabel names a group in figure legends and findings.
func groupLabel(g *group, withContext bool) string {
	s := "α = " + fmtNum(g.alpha)
	if g.alpha == 1 {
		s += " (baseline)"
	}
	if g.ls != 0 {
		s += ", LS " + fmtNum(g.ls)
	}
	if withContext && g.context != "" {
		s += " (" + g.context + ")"
	}
	return s
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
