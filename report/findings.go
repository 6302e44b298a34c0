package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/train"
)

// maxListed is the number of SGT settings per comparison the findings
// describe one by one; beyond it they are summarised.
const maxListed = 6

// methodTopic is the findings topic that states how they are made.
const methodTopic = "How these statements are made"

// comparison is one setting's difference to its baseline in a quantity.
type comparison struct {
	q       quantity
	subject string // what g is: "α = 0.3"
	g, base *group
	w       Welch
	vals    []float64 // shown values of g
	bvals   []float64 // shown values of base
}

func compare(q quantity, g, base *group) comparison {
	c := comparison{q: q, subject: "α = " + fmtNum(g.alpha), g: g, base: base, vals: q.scaled(g.values[q.key]), bvals: q.scaled(base.values[q.key])}
	c.w = WelchTest(c.vals, c.bvals)
	return c
}

// ok reports whether both sides have values.
func (c comparison) ok() bool { return len(c.vals) > 0 && len(c.bvals) > 0 }

// seedsNeeded estimates the seeds per setting that would show a true
// difference of the observed size with the observed spread.
func (c comparison) seedsNeeded() (int, bool) {
	return SeedsForPower(c.w.Diff, PooledSD(c.vals, c.bvals))
}

// numbers states the comparison's numbers: "α = 0.3 vs baseline: 85.30 ±
// 1.27 vs 87.30 ± 2.12 %, Δ -2.00 points, p = 0.393".
func (c comparison) numbers(baseName string) string {
	s := fmt.Sprintf("%s vs %s: %s vs %s%s, Δ %s%s", c.subject, baseName, c.q.meanSD(c.vals), c.q.meanSD(c.bvals), unitSuffix(c.q), c.q.diff(c.w.Diff), c.q.diffUnit())
	if c.w.OK {
		s += ", " + pPhrase(c.w.P)
	}
	return s
}

func unitSuffix(q quantity) string {
	if q.percent() {
		return " %"
	}
	return ""
}

// statement states the comparison with its verdict: whether the
// difference exceeds the noise and, when it does not, how many seeds one
// of its size would need.
func (c comparison) statement(where, baseName string) Statement {
	s := Statement{Text: where + c.numbers(baseName) + "."}
	switch {
	case !c.w.OK:
		s.Verdict, s.Tone = "not tested", ToneUntested
		s.Text += " Fewer than 2 seeds on a side: run 3 or more per setting to see the noise."
		return s
	case c.w.Significant():
		s.Verdict, s.Tone = "exceeds noise", ToneClear
		return s
	}
	s.Verdict, s.Tone = "within noise", ToneNoise
	n, ok := c.seedsNeeded()
	switch {
	case ok && n >= maxSeeds:
		s.Text += fmt.Sprintf(" A true difference this small would need more than %d seeds per setting to show.", maxSeeds)
	case ok:
		s.Text += fmt.Sprintf(" A true difference of this size, with this spread (pooled sd %s%s), would need %s seeds per setting to show; here there are %d and %d.",
			c.q.num(PooledSD(c.vals, c.bvals)), c.q.diffUnit(), aboutSeeds(n), len(c.vals), len(c.bvals))
	case c.w.Diff == 0:
		s.Text += " The means are equal."
	default:
		s.Text += " The seeds do not vary at all, so the noise cannot be estimated."
	}
	return s
}

// aboutSeeds rounds a seed count for a sentence: "about 14", "about 1000".
func aboutSeeds(n int) string {
	if n < 100 {
		return "about " + strconv.Itoa(n)
	}
	mag := math.Pow(10, math.Floor(math.Log10(float64(n)))-1)
	return "about " + strconv.Itoa(int(math.Round(float64(n)/mag)*mag))
}

// findings says in words what the data show.
func (d *data) findings(p *paperData) []Finding {
	var out []Finding
	if f, ok := d.flaggedFinding(); ok {
		out = append(out, f)
	}
	multi := len(d.contexts()) > 1
	var acc, gap, ls []Statement
	var tests []comparison
	for _, ctx := range d.contexts() {
		for _, l := range d.smoothings(ctx) {
			base := d.find(ctx, 1, l)
			where := settingWhere(ctx, l, multi, len(d.smoothings(ctx)) > 1)
			sgts := d.sgtGroups(ctx, l)
			if base == nil {
				if len(sgts) > 0 {
					acc = append(acc, Statement{Verdict: "no baseline", Tone: ToneUntested, Text: where + "no runs at alpha = 1, so nothing to compare SGT with."})
				}
				continue
			}
			acc = append(acc, d.summarise(qTest, sgts, base, where)...)
			for _, g := range sgts {
				if c := compare(qTest, g, base); c.ok() {
					tests = append(tests, c)
				}
			}
			gap = append(gap, d.summarise(d.gap, sgts, base, where)...)
		}
		base := d.find(ctx, 1, 0)
		if base == nil {
			continue
		}
		where := ""
		if multi && ctx != "" {
			where = ctx + ": "
		}
		for _, g := range d.lsBaselines(ctx) {
			c := compare(qTest, g, base)
			c.subject = fmt.Sprintf("test accuracy with label smoothing %s", fmtNum(g.ls))
			if c.ok() {
				ls = append(ls, c.statement(where, "without, both at alpha = 1"))
			}
		}
	}
	if len(acc) > 0 {
		out = append(out, Finding{Topic: "Test accuracy", Lines: acc})
	}
	if len(gap) > 0 {
		out = append(out, Finding{Topic: capitalise(d.gap.name), Lines: gap})
	}
	if len(ls) > 0 {
		out = append(out, Finding{Topic: "Label smoothing", Lines: ls})
	}
	mech, mechComps, ok := d.mechanismFinding(multi)
	if ok {
		out = append(out, mech)
	}
	if f, ok := p.finding(); ok {
		out = append(out, f)
	}
	if f, ok := d.summary(tests, mechComps, p); ok {
		out = append([]Finding{f}, out...)
	}
	out = append(out, Finding{Topic: methodTopic, Lines: []Statement{
		{Text: fmt.Sprintf("A difference exceeds the seed-to-seed noise when a two-sided Welch t-test over the seeds gives p < %g; with fewer than 2 seeds on a side no test is made.", SignificanceLevel)},
		{Text: fmt.Sprintf("Seeds needed: the smallest n per setting with n ≥ 2 (t(%.3f, 2n−2) + t(%.2f, 2n−2))² (s/Δ)², where t(q, ν) is Student's t quantile (gonum's distuv), s the pooled standard deviation of the two settings and Δ the observed difference: the usual t-approximation of the power of a two-sample t-test at p < %g with %.0f%% power. It takes the observed difference and spread for the true ones, so it is a rough guide.",
			1-SignificanceLevel/2, TargetPower, SignificanceLevel, TargetPower*100)},
		{Text: FlagRules() + " Flagged runs are left out of the means and tests, unless every run of a setting is flagged."},
	}})
	return out
}

// settingWhere prefixes a statement with its context and label smoothing
// when the report has several.
func settingWhere(ctx string, ls float64, multiCtx, multiLS bool) string {
	var parts []string
	if multiCtx && ctx != "" {
		parts = append(parts, ctx)
	}
	if multiLS || ls != 0 {
		parts = append(parts, "label smoothing "+fmtNum(ls))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, ", ") + " — "
}

// lsBaselines returns a context's alpha = 1 groups with label smoothing.
func (d *data) lsBaselines(ctx string) []*group {
	var out []*group
	for _, g := range d.contextGroups(ctx) {
		if g.alpha == 1 && g.ls != 0 {
			out = append(out, g)
		}
	}
	return out
}

// summarise states the SGT settings' differences to the baseline in q: one
// statement each, or for many settings the ones beyond the noise, a
// summary of the rest and the best one.
func (d *data) summarise(q quantity, sgts []*group, base *group, where string) []Statement {
	var cs []comparison
	for _, g := range sgts {
		if c := compare(q, g, base); c.ok() {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return nil
	}
	var out []Statement
	if len(cs) <= maxListed {
		for _, c := range cs {
			out = append(out, c.statement(where, "baseline"))
		}
		return out
	}
	var within []comparison
	for _, c := range cs {
		if c.w.Significant() {
			out = append(out, c.statement(where, "baseline"))
		} else {
			within = append(within, c)
		}
	}
	if len(within) > 0 {
		lo, hi := math.Inf(1), 0.0
		nlo, nhi := maxSeeds, 0
		tested := 0
		for _, c := range within {
			lo, hi = math.Min(lo, math.Abs(c.w.Diff)), math.Max(hi, math.Abs(c.w.Diff))
			if n, ok := c.seedsNeeded(); ok {
				nlo, nhi = min(nlo, n), max(nhi, n)
				tested++
			}
		}
		s := Statement{Verdict: "within noise", Tone: ToneNoise,
			Text: fmt.Sprintf("%s%d of %d alphas against the baseline (%s%s) are within the noise or untested, with |Δ| from %s to %s%s",
				where, len(within), len(cs), q.meanSD(cs[0].bvals), unitSuffix(q), q.num(lo), q.num(hi), q.diffUnit())}
		if tested > 0 {
			s.Text += fmt.Sprintf("; differences of those sizes would need %s to %s seeds per setting to show", strings.TrimPrefix(aboutSeeds(nlo), "about "), aboutSeeds(nhi))
		}
		s.Text += "."
		out = append(out, s)
	}
	if q.key == qTest.key {
		best := cs[0]
		for _, c := range cs[1:] {
			if m, bm := mean(c.vals), mean(best.vals); m > bm {
				best = c
			}
		}
		out = append(out, Statement{Text: fmt.Sprintf("%sthe highest mean is at α = %s: %s%s (the baseline: %s%s).", where, fmtNum(best.g.alpha), q.num(mean(best.vals)), unitSuffix(q), q.num(mean(best.bvals)), unitSuffix(q))})
	}
	return out
}

func mean(xs []float64) float64 {
	m, _ := meanSD(xs)
	return m
}

// mechanism is one effect of SGT the report states.
type mechanism struct {
	q quantity
	// up is the direction the paper reports for SGT (0: none stated).
	up int
	// what names the effect; short names it inside a sentence.
	what, short string
}

// mechanisms lists the effects of SGT the report states.
var mechanisms = []mechanism{
	{qLogitNorm, +1, "Logit norm", "the logit norm"},
	{qTrainLoss, +1, "Training loss", "the training loss"},
	{qTrainRunning, +1, "Training fit, running train accuracy", "the running train accuracy"},
	{qTrainClean, 0, "Training fit, clean train accuracy", "the clean train accuracy"},
	{qZeroed, 0, "Zeroed filters", "the zeroed filters"},
}

// mechanismFinding states, per effect, each SGT setting against its
// baseline, and whether it moves the way the paper reports.
func (d *data) mechanismFinding(multi bool) (Finding, map[string][]comparison, bool) {
	f := Finding{Topic: "What SGT changes inside the network"}
	comps := map[string][]comparison{}
	if note := paperMechanismNote(); note != "" {
		f.Lines = append(f.Lines, Statement{Text: note})
	}
	n := 0
	for _, m := range mechanisms {
		if !d.has(m.q) {
			continue
		}
		if d.allZero(m.q) {
			f.Lines = append(f.Lines, Statement{Verdict: "none", Tone: ToneNoise, Text: m.what + " — none in any run."})
			n++
			continue
		}
		for _, ctx := range d.contexts() {
			for _, l := range d.smoothings(ctx) {
				base := d.find(ctx, 1, l)
				sgts := d.sgtGroups(ctx, l)
				if base == nil || len(sgts) == 0 {
					continue
				}
				listed := sgts
				if len(listed) > maxListed {
					// The largest and the smallest alpha below 1.
					listed = []*group{sgts[0], sgts[len(sgts)-1]}
				}
				where := m.what
				if w := settingWhere(ctx, l, multi, len(d.smoothings(ctx)) > 1); w != "" {
					where += ", " + strings.TrimSuffix(w, " — ")
				}
				for _, g := range listed {
					c := compare(m.q, g, base)
					if !c.ok() {
						continue
					}
					s := Statement{Text: where + " — " + c.numbers("baseline") + "."}
					s.Verdict, s.Tone = direction(c, m.up)
					f.Lines = append(f.Lines, s)
					comps[m.q.key] = append(comps[m.q.key], c)
					n++
				}
			}
		}
	}
	return f, comps, n > 0
}

// allZero reports whether every value of q in every group is 0.
func (d *data) allZero(q quantity) bool {
	for _, g := range d.groups {
		for _, v := range g.values[q.key] {
			if v != 0 {
				return false
			}
		}
	}
	return true
}

// summary sums the findings up: test accuracy, the mechanism effects the
// paper reports, flagged runs and the protocol.
func (d *data) summary(tests []comparison, mech map[string][]comparison, p *paperData) (Finding, bool) {
	f := Finding{Topic: "In short"}
	if len(tests) > 0 {
		var up, down []string
		within, untested := 0, 0
		best := 0
		for _, c := range tests {
			label := c.subject
			if len(d.smoothings(c.g.context)) > 1 || c.g.ls != 0 {
				label += ", LS " + fmtNum(c.g.ls)
			}
			if len(d.contexts()) > 1 && c.g.context != "" {
				label += " (" + c.g.context + ")"
			}
			switch {
			case !c.w.OK:
				untested++
			case c.w.Significant() && c.w.Diff > 0:
				up = append(up, fmt.Sprintf("%s (%s points)", label, c.q.diff(c.w.Diff)))
			case c.w.Significant():
				down = append(down, fmt.Sprintf("%s (%s points)", label, c.q.diff(c.w.Diff)))
			default:
				within++
				if n, ok := c.seedsNeeded(); ok && (best == 0 || n < best) {
					best = n
				}
			}
		}
		s := Statement{Text: fmt.Sprintf("Test accuracy of %s, each against its baseline: ", plural(len(tests), "SGT setting", "SGT settings"))}
		var parts []string
		if len(up) > 0 {
			parts = append(parts, "higher beyond the noise: "+strings.Join(up, ", "))
		}
		if len(down) > 0 {
			parts = append(parts, "lower beyond the noise: "+strings.Join(down, ", "))
		}
		if within > 0 {
			w := fmt.Sprintf("%d within the noise", within)
			if best > 0 {
				w += fmt.Sprintf(" (the most visible of those differences would need %s seeds per setting to show)", aboutSeeds(best))
			}
			parts = append(parts, w)
		}
		if untested > 0 {
			parts = append(parts, fmt.Sprintf("%d not tested (fewer than 2 seeds)", untested))
		}
		s.Text += strings.Join(parts, "; ") + "."
		switch {
		case len(up) > 0 && len(down) == 0:
			s.Verdict, s.Tone = "SGT higher", ToneClear
		case len(down) > 0 && len(up) == 0:
			s.Verdict, s.Tone = "SGT lower", ToneAgainst
		case len(up) > 0:
			s.Verdict, s.Tone = "mixed", ToneClear
		case within > 0:
			s.Verdict, s.Tone = "within noise", ToneNoise
		default:
			s.Verdict, s.Tone = "not tested", ToneUntested
		}
		f.Lines = append(f.Lines, s)
	}
	var agree, against, none []string
	for _, m := range mechanisms {
		cs := mech[m.q.key]
		if m.up == 0 || len(cs) == 0 {
			continue
		}
		as, opp := 0, 0
		for _, c := range cs {
			switch {
			case !c.w.Significant():
			case (c.w.Diff > 0) == (m.up > 0):
				as++
			default:
				opp++
			}
		}
		switch {
		case opp > 0:
			against = append(against, fmt.Sprintf("%s %s (%d of %d comparisons)", map[bool]string{true: "raised", false: "lowered"}[m.up < 0], m.short, opp, len(cs)))
		case as > 0:
			agree = append(agree, fmt.Sprintf("%s (%d of %d comparisons)", m.short, as, len(cs)))
		default:
			none = append(none, m.short)
		}
	}
	if len(agree)+len(against)+len(none) > 0 {
		var parts []string
		if len(agree) > 0 {
			parts = append(parts, "SGT raised "+joinAnd(agree)+", as the paper reports")
		}
		if len(against) > 0 {
			parts = append(parts, "it "+joinAnd(against)+", which the paper reports raised")
		}
		if len(none) > 0 {
			parts = append(parts, "it changed "+joinAnd(none)+" no more than the noise")
		}
		s := Statement{Text: "Inside the network: " + strings.Join(parts, "; ") + "."}
		switch {
		case len(against) > 0:
			s.Verdict, s.Tone = "partly unlike the paper", ToneAgainst
		case len(agree) > 0:
			s.Verdict, s.Tone = "as in the paper", ToneClear
		default:
			s.Verdict, s.Tone = "within noise", ToneNoise
		}
		f.Lines = append(f.Lines, s)
	}
	if n := d.flaggedCount(); n > 0 {
		they := "they are"
		if n == 1 {
			they = "it is"
		}
		f.Lines = append(f.Lines, Statement{Verdict: "flagged", Tone: ToneFlag, Text: fmt.Sprintf("%s of %d diverged, collapsed, failed or did not learn; %s left out of the means (see Flagged runs).", plural(n, "run", "runs"), len(d.runs), they)})
	}
	for _, rec := range p.recipes() {
		rows := p.rowsOf(rec.Name)
		if allFull(rows) {
			f.Lines = append(f.Lines, Statement{Verdict: "full protocol", Tone: ToneClear, Text: fmt.Sprintf("The runs follow recipe %s's full protocol; the paper's numbers are beside ours.", rec.Name)})
		} else {
			f.Lines = append(f.Lines, Statement{Verdict: "reduced protocol", Tone: ToneUntested, Text: fmt.Sprintf("The runs are a reduced version of recipe %s: the paper's numbers beside ours are context, not a replication.", rec.Name)})
		}
	}
	return f, len(f.Lines) > 0
}

// joinAnd joins "a", "b" and "c" as "a, b and c".
func joinAnd(parts []string) string {
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// direction says how SGT moved a quantity, against the paper's direction.
func direction(c comparison, up int) (verdict, tone string) {
	if !c.w.OK {
		return "not tested", ToneUntested
	}
	if !c.w.Significant() {
		return "within noise", ToneNoise
	}
	moved, sign := "raised", +1
	if c.w.Diff < 0 {
		moved, sign = "lowered", -1
	}
	switch {
	case up == 0:
		return moved, ToneClear
	case sign == up:
		return moved + ", as in the paper", ToneClear
	}
	return moved + ", unlike the paper", ToneAgainst
}

// paperMechanismNote states, from the recipes' reference numbers, what the
// paper reports about the logit norm, the loss and the train accuracy.
func paperMechanismNote() string {
	var parts []string
	if r, err := train.LookupRecipe("imagenet-resnet18-alpha-grid-50ep"); err == nil {
		ref := func(row string) (train.PaperResult, bool) {
			i := slices.IndexFunc(r.Reference, func(p train.PaperResult) bool { return p.Row == row })
			if i < 0 {
				return train.PaperResult{}, false
			}
			return r.Reference[i], true
		}
		a, okA := ref("alpha=1")
		b, okB := ref("alpha=0.25")
		if okA && okB && a.LogitNorm != nil && b.LogitNorm != nil && a.Loss != nil && b.Loss != nil {
			parts = append(parts, fmt.Sprintf("the logit norm and the loss rise as alpha falls (ResNet-18 on ImageNet, 50 epochs: logit norm ≈%.0f at alpha = 1 and ≈%.0f at alpha = 0.25, loss ≈%.2f and ≈%.2f, read off its figures)",
				*a.LogitNorm, *b.LogitNorm, *a.Loss, *b.Loss))
		}
	}
	if up, all := paperTrainDiffs(); all > 0 {
		parts = append(parts, fmt.Sprintf("PGT's running train accuracy is above its baseline's in %d of the %d PGT rows of its tables that state a train difference", up, all))
	}
	if len(parts) == 0 {
		return ""
	}
	return "The paper reports that " + strings.Join(parts, "; ") + ". It gives no count of zeroed filters."
}

// paperTrainDiffs counts the paper's PGT rows (alpha < 1) with a stated
// train difference to their baseline, and those where it is positive.
func paperTrainDiffs() (up, all int) {
	recipes, err := train.Recipes()
	if err != nil {
		return 0, 0
	}
	for _, r := range recipes {
		for _, tr := range r.NamedTrials() {
			i := slices.IndexFunc(r.Reference, func(p train.PaperResult) bool { return p.Row == tr.Name })
			if i < 0 || r.Reference[i].TrainDiff == nil {
				continue
			}
			cfg, err := r.TrialConfig(tr)
			if err != nil || cfg.Alpha >= 1 {
				continue
			}
			all++
			if *r.Reference[i].TrainDiff > 0 {
				up++
			}
		}
	}
	return up, all
}

// flaggedFinding states how many runs were flagged and what that means.
func (d *data) flaggedFinding() (Finding, bool) {
	n := d.flaggedCount()
	if n == 0 {
		return Finding{}, false
	}
	f := Finding{Topic: "Flagged runs"}
	multi := len(d.contexts()) > 1
	verb := "are"
	if n == 1 {
		verb = "is"
	}
	f.Lines = append(f.Lines, Statement{Verdict: "flagged", Tone: ToneFlag,
		Text: fmt.Sprintf("%s of %d %s flagged; each is listed under Flagged runs with the reason.", plural(n, "run", "runs"), len(d.runs), verb)})
	for _, g := range d.groups {
		k := 0
		for _, r := range g.runs {
			if len(r.Flags) > 0 {
				k++
			}
		}
		switch {
		case k == 0:
		case g.allFlagged:
			f.Lines = append(f.Lines, Statement{Verdict: "all flagged", Tone: ToneFlag,
				Text: fmt.Sprintf("%s: all %d runs are flagged, so its numbers describe flagged runs and say little about SGT.", groupLabel(g, multi), k)})
		default:
			f.Lines = append(f.Lines, Statement{Verdict: "left out", Tone: ToneFlag,
				Text: fmt.Sprintf("%s: %d of %d runs %s flagged and left out of the means; count %s as %s of the setting, not as noise.", groupLabel(g, multi), k, len(g.runs),
					map[bool]string{true: "is", false: "are"}[k == 1], map[bool]string{true: "it", false: "them"}[k == 1], map[bool]string{true: "a failure", false: "failures"}[k == 1])})
		}
	}
	return f, true
}

// finding states how the runs relate to their recipes' protocols.
func (p *paperData) finding() (Finding, bool) {
	if len(p.rows) == 0 {
		return Finding{}, false
	}
	f := Finding{Topic: "Against the paper"}
	for _, rec := range p.recipes() {
		rows := p.rowsOf(rec.Name)
		refs := 0
		for _, row := range rows {
			if row.match.HasReference {
				refs++
			}
		}
		s := Statement{Text: fmt.Sprintf("Recipe %s (%s). %s ", rec.Name, strings.TrimSuffix(rec.Description, "."), protocolSummary(rows))}
		switch {
		case refs == 0:
			s.Verdict, s.Tone = "no paper numbers", ToneUntested
			s.Text += "The recipe has no paper numbers for these trials."
		case allFull(rows):
			s.Verdict, s.Tone = "full protocol", ToneClear
			s.Text += "Their numbers are comparable with the paper's, which the tables and figures show beside them."
		default:
			s.Verdict, s.Tone = "reduced protocol", ToneUntested
			s.Text += "The tables and figures show the paper's numbers beside ours, but with another protocol the differences say nothing about the paper's claims."
		}
		f.Lines = append(f.Lines, s)
	}
	return f, true
}

func allFull(rows []*paperRow) bool {
	for _, r := range rows {
		if !r.match.Full() {
			return false
		}
	}
	return true
}
