package report

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/train"
)

// protocolFree are the settings that do not change what a run measures:
// where things are and run, the seed, and measurements. A run may differ
// from its recipe in them and still follow the recipe's protocol.
var protocolFree = []string{"seed", "data-dir", "backend", "eval-batch-size", "train-eval-size", "zero-threshold", "filter-norms-every"}

// Deviation is one setting in which a run differs from the recipe trial it
// was matched to.
type Deviation struct {
	// Flag is the setting's flag name ("epochs").
	Flag string
	// Run and Recipe are the two values as flags print them.
	Run, Recipe string
	// Reduced is set when the run does less than the protocol: fewer
	// epochs, a subset of the data or another dataset.
	Reduced bool
}

// String formats the deviation as "epochs 3 (recipe: 360)".
func (d Deviation) String() string {
	recipe := d.Recipe
	if (d.Flag == "train-size" || d.Flag == "test-size") && recipe == "0" {
		recipe = "all"
	}
	run := d.Run
	if run == "" {
		run = `""`
	}
	if recipe == "" {
		recipe = `""`
	}
	return fmt.Sprintf("%s %s (recipe: %s)", d.Flag, run, recipe)
}

// TrialMatch is the trial of a recipe that a run's settings select.
type TrialMatch struct {
	// Trial is the matched trial (a row, or "alpha=A" of an alpha grid).
	Trial train.Row
	// Reference is the paper's result for the trial; HasReference is false
	// when the recipe has none for it.
	Reference    train.PaperResult
	HasReference bool
	// Deviations lists the settings in which the run differs from the
	// trial's configuration, protocolFree settings left out.
	Deviations []Deviation
}

// Full reports whether the run follows the trial's protocol in every
// setting that matters.
func (m TrialMatch) Full() bool { return len(m.Deviations) == 0 }

// Protocol says in a word how the run relates to the trial's protocol:
// "full", "reduced" (fewer epochs, a data subset, another dataset),
// "changed" (other settings differ) or "reduced, changed".
func (m TrialMatch) Protocol() string {
	reduced, changed := false, false
	for _, d := range m.Deviations {
		if d.Reduced {
			reduced = true
		} else {
			changed = true
		}
	}
	switch {
	case reduced && changed:
		return "reduced, changed"
	case reduced:
		return "reduced"
	case changed:
		return "changed"
	}
	return "full"
}

// MatchTrial finds the trial of recipe r that a run with configuration cfg
// ran, by the trial's own settings (its row's settings, or the alpha of an
// alpha grid), whatever else differs; unlike train.Recipe.ReferenceFor it
// does not require the epochs or the data to match, and it lists every
// difference instead. When several trials match, the one with the fewest
// differences wins. ok is false when no trial's own settings match.
func MatchTrial(r train.Recipe, cfg train.Config) (m TrialMatch, ok bool) {
	got := train.FlagSet(&cfg)
	best := -1
	for _, tr := range r.NamedTrials() {
		want, err := r.TrialConfig(tr)
		if err != nil {
			continue
		}
		wantFlags := train.FlagSet(&want)
		if slices.ContainsFunc(tr.Settings, func(s train.Setting) bool {
			return got.Lookup(s.Name).Value.String() != wantFlags.Lookup(s.Name).Value.String()
		}) {
			continue
		}
		devs := deviations(want, cfg)
		if best >= 0 && len(devs) >= best {
			continue
		}
		best = len(devs)
		m = TrialMatch{Trial: tr, Deviations: devs}
		if i := slices.IndexFunc(r.Reference, func(p train.PaperResult) bool { return p.Row == tr.Name }); i >= 0 {
			m.Reference, m.HasReference = r.Reference[i], true
		}
	}
	return m, best >= 0
}

// deviations lists the settings of cfg that differ from the trial's want.
func deviations(want, cfg train.Config) []Deviation {
	var out []Deviation
	wantFlags := train.FlagSet(&want)
	for _, s := range train.Settings(want, cfg) {
		if slices.Contains(protocolFree, s.Name) {
			continue
		}
		d := Deviation{Flag: s.Name, Run: s.Value, Recipe: wantFlags.Lookup(s.Name).Value.String()}
		switch s.Name {
		case "epochs":
			d.Reduced = cfg.Epochs < want.Epochs
		case "train-size":
			d.Reduced = cfg.TrainSize > 0 && (want.TrainSize == 0 || cfg.TrainSize < want.TrainSize)
		case "test-size":
			d.Reduced = cfg.TestSize > 0 && (want.TestSize == 0 || cfg.TestSize < want.TestSize)
		case "data":
			d.Reduced = true
		}
		out = append(out, d)
	}
	return out
}

// paperRow is the runs of one trial of a recipe with the same deviations.
type paperRow struct {
	recipe train.Recipe
	match  TrialMatch
	runs   []*RunInfo
	alpha  float64
}

// paperData is every recipe trial the report's runs ran.
type paperData struct {
	rows []*paperRow
}

// recipes returns the distinct recipes of the rows in order.
func (p *paperData) recipes() []train.Recipe {
	var out []train.Recipe
	for _, r := range p.rows {
		if !slices.ContainsFunc(out, func(x train.Recipe) bool { return x.Name == r.recipe.Name }) {
			out = append(out, r.recipe)
		}
	}
	return out
}

// rowsOf returns the rows of one recipe.
func (p *paperData) rowsOf(name string) []*paperRow {
	var out []*paperRow
	for _, r := range p.rows {
		if r.recipe.Name == name {
			out = append(out, r)
		}
	}
	return out
}

// matchPaper matches every run that names a recipe to the recipe's trial.
func (d *data) matchPaper() (*paperData, []string) {
	p := &paperData{}
	var notes []string
	recipes := map[string]*train.Recipe{}
	unknown := map[string]bool{}
	unmatched := map[string]int{}
	byKey := map[string]*paperRow{}
	for _, g := range d.groups {
		for _, r := range g.runs {
			name := r.Run.Record.Config.Recipe
			if name == "" {
				continue
			}
			rec := recipes[name]
			if rec == nil && !unknown[name] {
				got, err := train.LookupRecipe(name)
				if err != nil {
					unknown[name] = true
					notes = append(notes, fmt.Sprintf("Runs name the recipe %q, which this sgt does not know: no paper numbers are shown for them.", name))
					continue
				}
				rec = &got
				recipes[name] = rec
			}
			if rec == nil {
				continue
			}
			m, ok := MatchTrial(*rec, train.Config(r.Run.Record.Config))
			if !ok {
				unmatched[name]++
				continue
			}
			var devs []string
			for _, dv := range m.Deviations {
				devs = append(devs, dv.String())
			}
			key := name + "\x00" + m.Trial.Name + "\x00" + strings.Join(devs, ";")
			row := byKey[key]
			if row == nil {
				row = &paperRow{recipe: *rec, match: m, alpha: r.Alpha}
				byKey[key] = row
				p.rows = append(p.rows, row)
			}
			row.runs = append(row.runs, r)
		}
	}
	for name, n := range unmatched {
		notes = append(notes, fmt.Sprintf("%s of recipe %s match none of its trials (their alpha or row settings differ from every trial's): no paper numbers for them.", plural(n, "run", "runs"), name))
	}
	sort.Strings(notes)
	// Order rows as the recipe lists its trials.
	sort.SliceStable(p.rows, func(i, j int) bool {
		a, b := p.rows[i], p.rows[j]
		if a.recipe.Name != b.recipe.Name {
			return a.recipe.Name < b.recipe.Name
		}
		return trialIndex(a.recipe, a.match.Trial.Name) < trialIndex(b.recipe, b.match.Trial.Name)
	})
	return p, notes
}

func trialIndex(r train.Recipe, name string) int {
	return slices.IndexFunc(r.NamedTrials(), func(t train.Row) bool { return t.Name == name })
}

// values returns the row's values of q over its runs, flagged runs left
// out unless every run is flagged.
func (row *paperRow) values(d *data, q quantity) []float64 {
	var used []*RunInfo
	for _, r := range row.runs {
		if len(r.Flags) == 0 {
			used = append(used, r)
		}
	}
	if len(used) == 0 {
		used = row.runs
	}
	var out []float64
	for _, r := range used {
		if v, ok := d.perRun[r][q.key]; ok {
			out = append(out, v)
		}
	}
	return q.scaled(out)
}

// paperValue formats a paper number: "≈91.66" when read off a figure.
func paperValue(x *float64, approximate bool, decimals int) Cell {
	if x == nil {
		return Cell{Text: "–", Muted: true, Title: "the paper states no number"}
	}
	s := strconv.FormatFloat(*x, 'f', decimals, 64)
	if approximate {
		return Cell{Text: "≈" + s, Title: "read off a figure of the paper: approximate"}
	}
	return Cell{Text: s}
}

// paperCells returns the paper, ours and Δ (ours − paper) cells.
func paperCells(ref *float64, approximate bool, ours []float64, q quantity) []Cell {
	cells := []Cell{paperValue(ref, approximate, q.decimals), {Text: q.meanSD(ours)}, {}}
	if len(ours) == 0 {
		cells[1].Muted = true
	}
	if ref != nil && len(ours) > 0 {
		m, _ := meanSD(ours)
		cells[2] = Cell{Text: q.diff(m - *ref)}
	}
	return cells
}

func paperColumns(group string) []Column {
	return []Column{{Name: "paper", Group: group}, {Name: "ours", Group: group}, {Name: "Δ", Group: group}}
}

// protocolCell says whether the row's runs followed the recipe's protocol.
func protocolCell(row *paperRow) Cell {
	c := Cell{Text: row.match.Protocol()}
	if !row.match.Full() {
		var parts []string
		for _, dv := range row.match.Deviations {
			parts = append(parts, dv.String())
		}
		c.Title = strings.Join(parts, "; ")
	}
	return c
}

// paperColumn is a quantity of ours and the paper's number for it.
type paperColumn struct {
	q      quantity
	header string
	ref    func(train.PaperResult) *float64
}

var (
	paperAccuracyColumns = []paperColumn{
		{qTrainRunning, qTrainRunning.header, func(p train.PaperResult) *float64 { return p.TrainAcc }},
		{qTest, qTest.header, func(p train.PaperResult) *float64 { return p.TestAcc }},
		{qGapRunning, qGapRunning.header, func(p train.PaperResult) *float64 { return p.Gap }},
	}
	paperLossColumns = []paperColumn{
		{qTrainLoss, "Loss", func(p train.PaperResult) *float64 { return p.Loss }},
		{qLogitNorm, qLogitNorm.header, func(p train.PaperResult) *float64 { return p.LogitNorm }},
	}
)

// paperTable builds one comparison table of the columns that the paper
// gives for at least one row; ok is false when it gives none.
func (p *paperData) paperTable(d *data, id, title, caption string, cols []paperColumn, rows []*paperRow) (Table, bool) {
	cols = slices.DeleteFunc(slices.Clone(cols), func(c paperColumn) bool {
		return !slices.ContainsFunc(rows, func(row *paperRow) bool { return c.ref(row.match.Reference) != nil })
	})
	if len(cols) == 0 {
		return Table{}, false
	}
	if slices.ContainsFunc(cols, func(c paperColumn) bool { return c.q == qTrainRunning || c.q == qGapRunning }) {
		caption = "The paper's train accuracy is the running one over augmented batches, so ours is train_acc (not the clean train_eval_acc), and its gap is running train minus test. " + caption
	}
	t := Table{ID: id, Title: title, Caption: caption,
		Columns: []Column{{Name: "Trial", Left: true}, {Name: "Protocol", Left: true}, {Name: "n"}}}
	for _, c := range cols {
		t.Columns = append(t.Columns, paperColumns(c.header)...)
	}
	for _, row := range rows {
		ref := row.match.Reference
		cells := []Cell{{Text: row.match.Trial.Name}, protocolCell(row), {Text: strconv.Itoa(len(row.values(d, qTest)))}}
		for _, c := range cols {
			cells = append(cells, paperCells(c.ref(ref), ref.Approximate, row.values(d, c.q), c.q)...)
		}
		t.Rows = append(t.Rows, cells)
	}
	return t, true
}

// tables returns, per recipe, the paper's accuracies beside ours and, when
// the paper states them, its losses and logit norms beside ours.
func (p *paperData) tables(d *data) []Table {
	var out []Table
	for _, rec := range p.recipes() {
		var rows []*paperRow
		for _, row := range p.rowsOf(rec.Name) {
			if row.match.HasReference {
				rows = append(rows, row)
			}
		}
		if len(rows) == 0 {
			continue
		}
		caption := p.caption(rec, rows)
		if t, ok := p.paperTable(d, "paper", "Against the paper: recipe "+rec.Name, caption, paperAccuracyColumns, rows); ok {
			out = append(out, t)
		}
		if t, ok := p.paperTable(d, "paper-loss", "Against the paper: loss and logit norm, recipe "+rec.Name,
			"Loss: the paper does not say whether its loss is the training or the test loss; ours is the training loss (running mean over the last epoch). Logit norm: the mean L2 norm of the test set's logit vectors, as in the paper. "+caption,
			paperLossColumns, rows); ok {
			out = append(out, t)
		}
	}
	return out
}

// caption describes a recipe's comparison: what the paper's numbers are,
// where they come from, and how the runs differ from the protocol.
func (p *paperData) caption(rec train.Recipe, rows []*paperRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Paper: %s. ", strings.TrimSuffix(rec.Paper, "."))
	b.WriteString("Δ is ours minus the paper's; ≈ marks numbers read off a figure (approximate). ")
	sources := map[string][]string{}
	var order []string
	for _, row := range rows {
		src := row.match.Reference.Source
		if _, ok := sources[src]; !ok {
			order = append(order, src)
		}
		sources[src] = append(sources[src], row.match.Trial.Name)
	}
	for _, src := range order {
		if len(order) == 1 {
			fmt.Fprintf(&b, "Source: %s. ", src)
		} else {
			fmt.Fprintf(&b, "Source of %s: %s. ", strings.Join(sources[src], ", "), src)
		}
	}
	b.WriteString(protocolSummary(rows))
	return strings.TrimSpace(b.String())
}

// protocolSummary says in a sentence whether the rows' runs followed the
// protocol, listing what differs.
func protocolSummary(rows []*paperRow) string {
	devs := map[string]bool{}
	var list []string
	full := 0
	for _, row := range rows {
		if row.match.Full() {
			full++
		}
		for _, dv := range row.match.Deviations {
			s := dv.String()
			if !devs[s] {
				devs[s] = true
				list = append(list, s)
			}
		}
	}
	switch {
	case len(list) == 0:
		return "Every run follows the recipe's full protocol (seeds, data location, backend and measurements aside)."
	case full > 0:
		return fmt.Sprintf("%s follow the full protocol; the others differ: %s.", plural(full, "trial's runs", "trials' runs"), strings.Join(list, ", "))
	}
	return "The runs do not follow the full protocol, so their numbers are not the paper's experiment: " + strings.Join(list, ", ") + "."
}
