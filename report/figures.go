package report

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/sgt-dev/sgt"
	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train"
)

// Line styles shared by the figures.
var (
	meanWidth   = vg.Points(2.2)
	seedWidth   = vg.Points(0.8)
	seedOpacity = uint8(80)
	flagDashes  = []vg.Length{vg.Points(3), vg.Points(2)}
	paperDashes = []vg.Length{vg.Points(5), vg.Points(3)}
)

// figures draws every figure whose data exists and notes the others. A
// malformed filter_norms.csv is an error.
func (d *data) figures(opts Options, paper *paperData) (figs []Figure, notes []string, err error) {
	add := func(f Figure, err error) {
		if err != nil {
			notes = append(notes, "A figure was skipped: "+err.Error())
			return
		}
		figs = append(figs, f)
	}
	add(transformFigure())
	add(d.accuracyCurves(opts.LogLog))
	if f, ok, err := d.versusAlpha(); ok || err != nil {
		add(f, err)
	} else {
		notes = append(notes, "Figure \"Against alpha\" skipped: no setting has runs at two or more alphas.")
	}
	for _, rec := range paper.recipes() {
		if f, ok, err := paper.versusAlpha(d, rec); ok || err != nil {
			add(f, err)
		}
	}
	if d.has(qLogitNorm) && d.has(qTrainLoss) {
		add(d.lossVsLogitNorm())
	} else {
		notes = append(notes, fmt.Sprintf("Figure \"Training loss against logit norm\" skipped: it needs train_loss and logit_norm in %s.", rundir.MetricsFile))
	}
	fnFigs, fnNotes, err := d.filterNormFigures(opts.Layers)
	if err != nil {
		return nil, nil, err
	}
	figs = append(figs, fnFigs...)
	notes = append(notes, fnNotes...)
	return figs, notes, nil
}

// transformAlphas are the exponents drawn in the transform figure.
var transformAlphas = []float64{1, 0.75, 0.5, 0.25, 0.1, 0}

// orderedExample is a distribution over 10 classes decreasing with the
// class index (p_i proportional to 0.55^i).
func orderedExample() []float64 {
	p := make([]float64, 10)
	var s float64
	for i := range p {
		p[i] = math.Pow(0.55, float64(i))
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
	return p
}

// unorderedExample is a peaked distribution over 10 classes in no order.
var unorderedExample = []float64{0.03, 0.12, 0.01, 0.52, 0.05, 0.02, 0.16, 0.005, 0.07, 0.015}

// transformCurve is the tampered distribution of one alpha.
type transformCurve struct {
	alpha  float64
	xs, ys []float64
}

// indices returns 0, 1, ..., n-1.
func indices(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i)
	}
	return out
}

// transformSeries returns, for each of transformAlphas, the tampered
// distribution p' = softmax(alpha*log p) against the class index, computed
// with the sgt package.
func transformSeries(p []float64) []transformCurve {
	logp := make([]float64, len(p))
	for i, v := range p {
		logp[i] = math.Log(v)
	}
	var out []transformCurve
	for _, a := range transformAlphas {
		pt := sgt.TamperedSoftmax(nil, logp, a)
		c := transformCurve{alpha: a}
		for i, v := range pt {
			c.xs = append(c.xs, float64(i))
			c.ys = append(c.ys, v)
		}
		out = append(out, c)
	}
	return out
}

// transformFigure draws the transform on an ordered and an unordered
// distribution, side by side.
func transformFigure() (Figure, error) {
	const name, title = "transform", "What the transform does to a distribution"
	colors := newAlphaColors(transformAlphas)
	legend := newLegend()
	var row []*plot.Plot
	for i, ex := range []struct {
		title string
		p     []float64
	}{{"An ordered distribution", orderedExample()}, {"An unordered distribution", unorderedExample}} {
		p := newPlot(ex.title, "class", "probability")
		for _, c := range transformSeries(ex.p) {
			col := colors.of(c.alpha)
			var dashes []vg.Length
			if c.alpha == 1 {
				dashes = paperDashes
			}
			l, err := line(p, c.xs, c.ys, col, vg.Points(1.8), dashes)
			if err != nil {
				return Figure{}, fmt.Errorf("figure %s: %w", name, err)
			}
			pts, err := points(p, c.xs, c.ys, col, draw.CircleGlyph{}, vg.Points(2.2))
			if err != nil {
				return Figure{}, fmt.Errorf("figure %s: %w", name, err)
			}
			if i == 0 {
				label := "α = " + fmtNum(c.alpha)
				switch c.alpha {
				case 1:
					label += " (p itself)"
				case 0:
					label += " (uniform)"
				}
				legend.Add(label, l, pts)
			}
		}
		p.X.Tick.Marker = valueTicks(indices(len(ex.p)))
		p.Y.Min = 0
		p.X.Min, p.X.Max = 0, float64(len(ex.p)-1)
		pad(p, 0.03)
		p.Y.Min = 0
		row = append(row, p)
	}
	caption := "The PowerGrad transform p'ᵢ = pᵢ^α / Σⱼ pⱼ^α = softmax(α·z), computed with sgt.TamperedSoftmax, on two example distributions over 10 classes; α = 1 (dashed) is p itself and α = 0 the uniform distribution."
	if t, err := sgt.StationaryThreshold(logOf(orderedExample()), 0.5); err == nil {
		caption += fmt.Sprintf(" Tampering raises exactly the probabilities below the stationary threshold t = (Σⱼ pⱼ^α)^(1/(α−1)); for α = 0.5 and the ordered example t = %.3f.", t)
	}
	svg, err := composition{panels: [][]*plot.Plot{row}, legend: legend}.render()
	if err != nil {
		return Figure{}, fmt.Errorf("figure %s: %w", name, err)
	}
	return Figure{Name: name, Title: title, Caption: caption, SVG: svg}, nil
}

func logOf(p []float64) []float64 {
	out := make([]float64, len(p))
	for i, v := range p {
		out[i] = math.Log(v)
	}
	return out
}

// alphas returns the distinct alphas of the groups.
func (d *data) alphas() []float64 {
	var out []float64
	for _, g := range d.groups {
		out = append(out, g.alpha)
	}
	return out
}

// curve returns a run's values of q against the epoch, in the shown unit.
func curve(r *RunInfo, q quantity) (xs, ys []float64) {
	epochs, ok1 := r.Run.Column(rundir.EpochColumn)
	vals, ok2 := r.Run.Column(q.key)
	if !ok1 || !ok2 {
		return nil, nil
	}
	for i, e := range epochs {
		if isFinite(vals[i]) {
			xs = append(xs, e)
			ys = append(ys, vals[i]*q.scale())
		}
	}
	return xs, ys
}

// meanCurve returns the epochs and the mean of q over the runs that have
// a value at each epoch, in the shown unit.
func meanCurve(runs []*RunInfo, q quantity) (xs, ys []float64) {
	sum, count := map[float64]float64{}, map[float64]int{}
	for _, r := range runs {
		ex, ey := curve(r, q)
		for i, e := range ex {
			sum[e] += ey[i]
			count[e]++
		}
	}
	for e := range sum {
		xs = append(xs, e)
	}
	sort.Float64s(xs)
	for _, e := range xs {
		ys = append(ys, sum[e]/float64(count[e]))
	}
	return xs, ys
}

func positive(xs, ys []float64) (ox, oy []float64) {
	for i := range xs {
		if xs[i] > 0 && ys[i] > 0 {
			ox = append(ox, xs[i])
			oy = append(oy, ys[i])
		}
	}
	return ox, oy
}

// rowTitle names a panel row of a context and label smoothing.
func (d *data) rowTitle(ctx string, ls float64) string {
	var parts []string
	if len(d.contexts()) > 1 && ctx != "" {
		parts = append(parts, ctx)
	}
	parts = append(parts, "LS "+fmtNum(ls))
	return strings.Join(parts, ", ")
}

// accuracyCurves draws test and train accuracy against the epoch: one row
// of panels per context and label smoothing, every seed faint behind the
// mean of its setting, flagged runs dashed in red.
func (d *data) accuracyCurves(logLog bool) (Figure, error) {
	const name = "accuracy_vs_epoch"
	colors := newAlphaColors(d.alphas())
	legend := newLegend()
	inLegend := map[float64]bool{}
	flagged := false
	var panels [][]*plot.Plot
	for _, ctx := range d.contexts() {
		for _, ls := range d.smoothings(ctx) {
			var row []*plot.Plot
			for _, q := range []quantity{qTest, d.train} {
				what := "Test accuracy"
				if q != qTest {
					what = "Train accuracy (" + q.kind + ")"
				}
				p := newPlot(what+" — "+d.rowTitle(ctx, ls), "epoch", "accuracy (%)")
				if !logLog {
					p.X.Tick.Marker = integerTicks{}
				}
				for _, g := range d.groups {
					if g.context != ctx || g.ls != ls {
						continue
					}
					col := colors.of(g.alpha)
					for _, r := range g.runs {
						xs, ys := curve(r, q)
						if logLog {
							xs, ys = positive(xs, ys)
						}
						if len(xs) == 0 {
							continue
						}
						if len(r.Flags) > 0 && !g.allFlagged {
							flagged = true
							if _, err := line(p, xs, ys, faint(flaggedColor, 200), vg.Points(1), flagDashes); err != nil {
								return Figure{}, err
							}
							if _, err := points(p, xs[len(xs)-1:], ys[len(ys)-1:], flaggedColor, draw.CrossGlyph{}, vg.Points(4.5)); err != nil {
								return Figure{}, err
							}
							continue
						}
						if len(g.runs) > 1 {
							if _, err := line(p, xs, ys, faint(col, seedOpacity), seedWidth, nil); err != nil {
								return Figure{}, err
							}
						}
					}
					xs, ys := meanCurve(g.used, q)
					if logLog {
						xs, ys = positive(xs, ys)
					}
					if len(xs) == 0 {
						continue
					}
					l, err := line(p, xs, ys, col, meanWidth, nil)
					if err != nil {
						return Figure{}, err
					}
					var pts plot.Thumbnailer
					if len(xs) <= 30 {
						s, err := points(p, xs, ys, col, draw.CircleGlyph{}, vg.Points(2.2))
						if err != nil {
							return Figure{}, err
						}
						pts = s
					}
					if !inLegend[g.alpha] {
						inLegend[g.alpha] = true
						if pts != nil {
							legend.Add(alphaLabel(g.alpha), l, pts)
						} else {
							legend.Add(alphaLabel(g.alpha), l)
						}
					}
				}
				if logLog {
					p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
					p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
				} else {
					pad(p, 0.04)
				}
				row = append(row, p)
			}
			panels = append(panels, row)
		}
	}
	legend.Add("single seed", lineThumb(faint(baselineColor, seedOpacity+40), seedWidth, nil))
	if flagged {
		legend.Add("flagged run", lineThumb(faint(flaggedColor, 200), vg.Points(1), flagDashes), glyphThumb(flaggedColor, draw.CrossGlyph{}, vg.Points(4.5)))
	}
	title := "Accuracy against epoch"
	caption := fmt.Sprintf("Thick lines: the mean over the seeds of each setting at every epoch; thin lines: single seeds. Train accuracy is the %s.", d.train.name)
	if flagged {
		caption += " Red dashed lines ending in × are flagged runs, left out of the means (see Flagged runs)."
	}
	if logLog {
		caption += " Both axes are logarithmic."
	}
	svg, err := composition{panels: panels, legend: legend}.render()
	if err != nil {
		return Figure{}, fmt.Errorf("figure %s: %w", name, err)
	}
	return Figure{Name: name, Title: title, Caption: caption, SVG: svg}, nil
}

func alphaLabel(a float64) string {
	if a == 1 {
		return "α = 1 (baseline)"
	}
	return "α = " + fmtNum(a)
}

// versusAlphaQuantities returns the quantities drawn against alpha.
func (d *data) versusAlphaQuantities() []quantity {
	var out []quantity
	for _, q := range []quantity{qTest, d.gap, qTrainLoss, qLogitNorm, qZeroed} {
		if d.has(q) && (q != qZeroed || !d.allZero(q)) {
			out = append(out, q)
		}
	}
	return out
}

// versusAlpha draws the final values of the main quantities against alpha:
// the mean ± sd of each setting, one line per context and label smoothing,
// every seed as a faint point and flagged runs as red crosses. ok is false
// when no line has two alphas.
func (d *data) versusAlpha() (Figure, bool, error) {
	const name = "vs_alpha"
	type lsLine struct {
		ctx string
		ls  float64
		gs  []*group
	}
	var lines []lsLine
	enough := false
	for _, ctx := range d.contexts() {
		for _, ls := range d.smoothings(ctx) {
			l := lsLine{ctx: ctx, ls: ls}
			for _, g := range d.groups {
				if g.context == ctx && g.ls == ls {
					l.gs = append(l.gs, g)
				}
			}
			sort.Slice(l.gs, func(i, j int) bool { return l.gs[i].alpha < l.gs[j].alpha })
			enough = enough || len(l.gs) >= 2
			lines = append(lines, l)
		}
	}
	if !enough {
		return Figure{}, false, nil
	}
	qs := d.versusAlphaQuantities()
	legend := newLegend()
	flagged := false
	// Lines at the same alphas are dodged sideways so that their error
	// bars do not cover each other.
	lo, hi := minMax(d.alphas())
	dodge := func(li int) float64 {
		if len(lines) < 2 {
			return 0
		}
		step := 0.012 * math.Max(hi-lo, 0.1)
		return (float64(li) - float64(len(lines)-1)/2) * step
	}
	var panels [][]*plot.Plot
	var row []*plot.Plot
	for qi, q := range qs {
		ylabel := strings.ToLower(q.header)
		if q.percent() {
			ylabel = "%"
		}
		p := newPlot(capitalise(q.name), "α", ylabel)
		p.X.Tick.Marker = valueTicks(d.alphas())
		for li, l := range lines {
			col := categoryColor(li)
			dx := dodge(li)
			var xs, ys, errs []float64
			for _, g := range l.gs {
				for _, r := range g.runs {
					v, ok := d.perRun[r][q.key]
					if !ok {
						continue
					}
					v *= q.scale()
					if len(r.Flags) > 0 && !g.allFlagged {
						flagged = true
						if _, err := points(p, []float64{g.alpha + dx}, []float64{v}, flaggedColor, draw.CrossGlyph{}, vg.Points(4.5)); err != nil {
							return Figure{}, true, err
						}
						continue
					}
					if _, err := points(p, []float64{g.alpha + dx}, []float64{v}, faint(col, 110), draw.CircleGlyph{}, vg.Points(2.4)); err != nil {
						return Figure{}, true, err
					}
				}
				vals := q.scaled(g.values[q.key])
				if len(vals) == 0 {
					continue
				}
				m, sd := meanSD(vals)
				xs, ys, errs = append(xs, g.alpha+dx), append(ys, m), append(errs, sd)
			}
			if len(xs) == 0 {
				continue
			}
			ln, err := line(p, xs, ys, col, meanWidth, nil)
			if err != nil {
				return Figure{}, true, err
			}
			pts, err := points(p, xs, ys, col, draw.CircleGlyph{}, vg.Points(3))
			if err != nil {
				return Figure{}, true, err
			}
			if err := errorBars(p, xs, ys, errs, col); err != nil {
				return Figure{}, true, err
			}
			if qi == 0 {
				label := "LS " + fmtNum(l.ls)
				if len(d.contexts()) > 1 && l.ctx != "" {
					label += ", " + l.ctx
				}
				legend.Add(label+": mean ± sd", ln, pts)
			}
		}
		pad(p, 0.05)
		row = append(row, p)
		if len(row) == 2 || qi == len(qs)-1 {
			for len(row) < 2 {
				row = append(row, nil)
			}
			panels = append(panels, row)
			row = nil
		}
	}
	legend.Add("single seed", glyphThumb(faint(baselineColor, 110), draw.CircleGlyph{}, vg.Points(2.4)))
	if flagged {
		legend.Add("flagged run", glyphThumb(flaggedColor, draw.CrossGlyph{}, vg.Points(4.5)))
	}
	var names []string
	for _, q := range qs {
		if s := q.describe(); s != "" {
			names = append(names, s)
		}
	}
	caption := "Final values (last epoch) against alpha: the mean over the seeds of each setting with error bars of ± one sample standard deviation, and every seed as a faint point. " + capitalise(strings.Join(names, "; ")) + "."
	if flagged {
		caption += " Red crosses are flagged runs, left out of the means."
	}
	svg, err := composition{panels: panels, legend: legend}.render()
	if err != nil {
		return Figure{}, true, fmt.Errorf("figure %s: %w", name, err)
	}
	return Figure{Name: name, Title: "Against alpha", Caption: caption, SVG: svg}, true, nil
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	if r[0] >= 'a' && r[0] <= 'z' {
		r[0] -= 'a' - 'A'
	}
	return string(r)
}

// paperQuantity pairs a quantity of ours with the paper's number for it.
type paperQuantity struct {
	q     quantity
	title string
	ref   func(train.PaperResult) *float64
}

var paperQuantities = []paperQuantity{
	{qTest, "Test accuracy (%)", func(p train.PaperResult) *float64 { return p.TestAcc }},
	{qTrainRunning, "Running train accuracy (%)", func(p train.PaperResult) *float64 { return p.TrainAcc }},
	{qTrainLoss, "Loss", func(p train.PaperResult) *float64 { return p.Loss }},
	{qLogitNorm, "Logit norm", func(p train.PaperResult) *float64 { return p.LogitNorm }},
}

// versusAlpha draws, for a recipe whose trials differ in alpha, our
// numbers (top row) above the paper's (bottom row) against alpha, for each
// quantity the paper gives at two or more alphas. ok is false when there is
// nothing to draw.
func (p *paperData) versusAlpha(d *data, rec train.Recipe) (Figure, bool, error) {
	name := "paper_vs_alpha_" + safeName(rec.Name)
	rows := p.rowsOf(rec.Name)
	var top, bottom []*plot.Plot
	approximate := false
	for _, pq := range paperQuantities {
		var pxs, pys, oxs, oys, oerr []float64
		for _, tr := range rec.NamedTrials() {
			cfg, err := rec.TrialConfig(tr)
			if err != nil {
				continue
			}
			for _, ref := range rec.Reference {
				if ref.Row == tr.Name && pq.ref(ref) != nil {
					pxs, pys = append(pxs, cfg.Alpha), append(pys, *pq.ref(ref))
					approximate = approximate || ref.Approximate
				}
			}
		}
		for _, row := range rows {
			vals := row.values(d, pq.q)
			if len(vals) == 0 {
				continue
			}
			m, sd := meanSD(vals)
			oxs, oys, oerr = append(oxs, row.alpha), append(oys, m), append(oerr, sd)
		}
		if len(pxs) < 2 || len(oxs) < 2 {
			continue
		}
		sortXY(pxs, pys, nil)
		sortXY(oxs, oys, oerr)
		ours := newPlot("ours: "+strings.ToLower(pq.title[:1])+pq.title[1:], "α", pq.title)
		ours.X.Tick.Marker = valueTicks(oxs)
		if _, err := line(ours, oxs, oys, categoryColor(0), meanWidth, nil); err != nil {
			return Figure{}, true, err
		}
		if _, err := points(ours, oxs, oys, categoryColor(0), draw.CircleGlyph{}, vg.Points(3)); err != nil {
			return Figure{}, true, err
		}
		if err := errorBars(ours, oxs, oys, oerr, categoryColor(0)); err != nil {
			return Figure{}, true, err
		}
		theirs := newPlot("paper: "+strings.ToLower(pq.title[:1])+pq.title[1:], "α", pq.title)
		theirs.X.Tick.Marker = valueTicks(pxs)
		if _, err := line(theirs, pxs, pys, paperColor, vg.Points(1.6), paperDashes); err != nil {
			return Figure{}, true, err
		}
		if _, err := points(theirs, pxs, pys, paperColor, draw.RingGlyph{}, vg.Points(3)); err != nil {
			return Figure{}, true, err
		}
		// The same alpha range above and below.
		lo, hi := math.Min(pxs[0], oxs[0]), math.Max(pxs[len(pxs)-1], oxs[len(oxs)-1])
		for _, pl := range []*plot.Plot{ours, theirs} {
			pad(pl, 0.06)
			span := hi - lo
			pl.X.Min, pl.X.Max = lo-0.06*span, hi+0.06*span
		}
		top, bottom = append(top, ours), append(bottom, theirs)
	}
	if len(top) == 0 {
		return Figure{}, false, nil
	}
	legend := newLegend()
	legend.Add("ours: mean ± sd", lineThumb(categoryColor(0), meanWidth, nil), glyphThumb(categoryColor(0), draw.CircleGlyph{}, vg.Points(3)))
	paperLabel := "paper"
	if approximate {
		paperLabel = "paper (approximate)"
	}
	legend.Add(paperLabel, lineThumb(paperColor, vg.Points(1.6), paperDashes), glyphThumb(paperColor, draw.RingGlyph{}, vg.Points(3)))
	caption := fmt.Sprintf("Our runs of recipe %s (top) and the paper's numbers for its trials (bottom) against alpha, each on its own scale: compare the shapes. %s", rec.Name, protocolSummary(rows))
	if approximate {
		caption += " The paper's numbers are read off its figures and approximate."
	}
	caption += " Our loss is the training loss; the paper does not say which loss it plots."
	svg, err := composition{panels: [][]*plot.Plot{top, bottom}, legend: legend}.render()
	if err != nil {
		return Figure{}, true, fmt.Errorf("figure %s: %w", name, err)
	}
	return Figure{Name: name, Title: "Against the paper: recipe " + rec.Name, Caption: caption, SVG: svg}, true, nil
}

// sortXY sorts points by x, keeping ys (and errs, when not nil) with them.
func sortXY(xs, ys, errs []float64) {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return xs[idx[a]] < xs[idx[b]] })
	reorder := func(v []float64) {
		if v == nil {
			return
		}
		c := append([]float64(nil), v...)
		for i, j := range idx {
			v[i] = c[j]
		}
	}
	reorder(xs)
	reorder(ys)
	reorder(errs)
}

// lsGlyphs are the glyphs of the label-smoothing values in the scatter.
var lsGlyphs = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.PyramidGlyph{}, draw.BoxGlyph{}, draw.TriangleGlyph{}}

// fitDashes are the dash patterns of the per-label-smoothing fits.
var fitDashes = [][]vg.Length{{vg.Points(7), vg.Points(3)}, {vg.Points(2), vg.Points(2)}, {vg.Points(9), vg.Points(3), vg.Points(2), vg.Points(3)}}

// lossVsLogitNorm draws every run's final training loss against its final
// logit norm, coloured by alpha, with a least-squares line per context and
// label smoothing (pooling label smoothing on and off would fit two
// different relations at once).
func (d *data) lossVsLogitNorm() (Figure, error) {
	const name = "loss_vs_logit_norm"
	colors := newAlphaColors(d.alphas())
	p := newPlot("Final training loss against final logit norm", "logit norm (mean L2 norm of the test logits)", "training loss")
	legend := newLegend()
	var fits []string
	flagged := false
	inLegend := map[float64]bool{}
	k := 0
	var fitLines []func() error
	for _, ctx := range d.contexts() {
		for li, ls := range d.smoothings(ctx) {
			glyph := lsGlyphs[li%len(lsGlyphs)]
			var xs, ys []float64
			for _, g := range d.groups {
				if g.context != ctx || g.ls != ls {
					continue
				}
				for _, r := range g.runs {
					x, ok1 := d.perRun[r][qLogitNorm.key]
					y, ok2 := d.perRun[r][qTrainLoss.key]
					if !ok1 || !ok2 {
						continue
					}
					if len(r.Flags) > 0 && !g.allFlagged {
						flagged = true
						if _, err := points(p, []float64{x}, []float64{y}, flaggedColor, draw.CrossGlyph{}, vg.Points(4.5)); err != nil {
							return Figure{}, err
						}
						continue
					}
					s, err := points(p, []float64{x}, []float64{y}, colors.of(g.alpha), glyph, vg.Points(3.2))
					if err != nil {
						return Figure{}, err
					}
					if !inLegend[g.alpha] && li == 0 {
						inLegend[g.alpha] = true
						legend.Add(alphaLabel(g.alpha), s)
					}
					xs, ys = append(xs, x), append(ys, y)
				}
			}
			label := d.rowTitle(ctx, ls)
			fit, ok := FitLine(xs, ys)
			if !ok {
				fits = append(fits, fmt.Sprintf("%s: too few distinct logit norms to fit a line (%d runs)", label, len(xs)))
				continue
			}
			dashes := fitDashes[k%len(fitDashes)]
			k++
			lo, hi := minMax(xs)
			fitLines = append(fitLines, func() error {
				_, err := line(p, []float64{lo, hi}, []float64{fit.Intercept + fit.Slope*lo, fit.Intercept + fit.Slope*hi}, baselineColor, vg.Points(1.3), dashes)
				return err
			})
			legend.Add(fmt.Sprintf("fit, %s (R² %.2f)", label, fit.R2), lineThumb(baselineColor, vg.Points(1.3), dashes), glyphThumb(faint(baselineColor, 160), glyph, vg.Points(3.2)))
			sign, slope := "+", fit.Slope
			if slope < 0 {
				sign, slope = "−", -slope
			}
			fits = append(fits, fmt.Sprintf("%s: loss = %.4g %s %.4g × logit norm (R² = %.3f, %d runs)", label, fit.Intercept, sign, slope, fit.R2, len(xs)))
		}
	}
	for _, f := range fitLines {
		if err := f(); err != nil {
			return Figure{}, err
		}
	}
	if flagged {
		legend.Add("flagged run", glyphThumb(flaggedColor, draw.CrossGlyph{}, vg.Points(4.5)))
	}
	pad(p, 0.06)
	caption := "One point per run at the last epoch, coloured by alpha, with one least-squares line per label smoothing (marker shape): " + strings.Join(fits, "; ") + ". The paper's ResNet-18 on ImageNet gives loss = 0.01074 × logit norm + 0.25816 over its alpha grid."
	if flagged {
		caption += " Red crosses are flagged runs, left out of the fits."
	}
	svg, err := composition{panels: [][]*plot.Plot{{p}}, legend: legend, height: 4 * vg.Inch}.render()
	if err != nil {
		return Figure{}, fmt.Errorf("figure %s: %w", name, err)
	}
	return Figure{Name: name, Title: "Training loss against logit norm", Caption: caption, SVG: svg}, nil
}

func minMax(xs []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range xs {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

// maxFiltersDrawn caps the filters drawn per panel; zeroed filters are
// always drawn.
const maxFiltersDrawn = 256

// filterNormFigures draws, for each chosen layer, the per-filter weight
// norms against the step of the baseline and of the run with the smallest
// alpha side by side (the first seed of each with filter_norms.csv,
// without label smoothing when there is such a run).
func (d *data) filterNormFigures(layers []string) (figs []Figure, notes []string, err error) {
	const title = "Per-filter weight norms"
	var chosen []*RunInfo
	pick := func(better func(a, b *group) bool) {
		var best *group
		for _, g := range d.groups {
			if best == nil || better(g, best) {
				best = g
			}
		}
		if best == nil {
			return
		}
		// An unflagged run when there is one.
		for _, r := range append(append([]*RunInfo(nil), best.used...), best.runs...) {
			if _, err := os.Stat(filepath.Join(r.Dir, rundir.FilterNormsFile)); err == nil {
				for _, c := range chosen {
					if c == r {
						return
					}
				}
				chosen = append(chosen, r)
				return
			}
		}
	}
	// Prefer no label smoothing, then the extreme alpha.
	pick(func(a, b *group) bool {
		if (a.ls == 0) != (b.ls == 0) {
			return a.ls == 0
		}
		return a.alpha > b.alpha
	})
	pick(func(a, b *group) bool {
		if (a.ls == 0) != (b.ls == 0) {
			return a.ls == 0
		}
		return a.alpha < b.alpha
	})
	if len(chosen) == 0 {
		return nil, []string{fmt.Sprintf("Figure %q skipped: no run of the baseline or of the smallest alpha has %s.", title, rundir.FilterNormsFile)}, nil
	}
	norms := make([]*rundir.FilterNorms, len(chosen))
	for i, r := range chosen {
		if norms[i], err = rundir.ReadFilterNorms(r.Dir); err != nil {
			return nil, nil, err
		}
	}
	want := layers
	if len(want) == 0 && len(norms[0].Layers) > 0 {
		fn := norms[0]
		want = []string{fn.Layers[0]}
		if last := fn.Layers[len(fn.Layers)-1]; last != fn.Layers[0] {
			want = append(want, last)
		}
	}
	for _, layer := range want {
		var runs []*RunInfo
		var series []map[int][]rundir.FilterNormPoint
		for i, r := range chosen {
			s, ok := norms[i].Series[layer]
			if !ok {
				notes = append(notes, fmt.Sprintf("Figure %q skipped for %s: %s has no layer %q (layers: %s).", title, runLabel(r),
					filepath.Join(r.Dir, rundir.FilterNormsFile), layer, strings.Join(norms[i].Layers, ", ")))
				continue
			}
			runs, series = append(runs, r), append(series, s)
		}
		if len(runs) == 0 {
			continue
		}
		fig, err := filterNormFigure(layer, runs, series)
		if err != nil {
			notes = append(notes, "A figure was skipped: "+err.Error())
			continue
		}
		figs = append(figs, fig)
	}
	return figs, notes, nil
}

// zeroedBy counts the filters whose last recorded norm is below threshold,
// the rule of the zeroed_filters metric (norm < --zero-threshold).
func zeroedBy(filters map[int][]rundir.FilterNormPoint, threshold float64) (zeroed map[int]bool) {
	zeroed = map[int]bool{}
	for id, xy := range filters {
		last, lastStep := math.NaN(), -1
		for _, p := range xy {
			if p.Step >= lastStep {
				last, lastStep = p.Norm, p.Step
			}
		}
		if last < threshold {
			zeroed[id] = true
		}
	}
	return zeroed
}

// filterNormFigure draws one layer's filter norms of each run in its own
// panel, on a shared scale, with the zero threshold and the zeroed filters
// marked.
func filterNormFigure(layer string, runs []*RunInfo, series []map[int][]rundir.FilterNormPoint) (Figure, error) {
	name := "filter_norms_" + safeName(layer)
	kept := faint(categoryColor(0), 120)
	var row []*plot.Plot
	var parts []string
	yMax := 0.0
	capped := false
	for i, r := range runs {
		filters := series[i]
		threshold := r.Run.Record.Config.ZeroThreshold
		zeroed := zeroedBy(filters, threshold)
		ids := make([]int, 0, len(filters))
		for id := range filters {
			ids = append(ids, id)
		}
		sort.Ints(ids)
		title := fmt.Sprintf("%s, seed %d", alphaLabel(r.Alpha), r.Seed)
		if r.LabelSmoothing != 0 {
			title += ", LS " + fmtNum(r.LabelSmoothing)
		}
		p := newPlot(title, "step", "filter weight L2 norm")
		drawn := 0
		maxStep := 0
		for pass := range 2 { // the zeroed filters last, on top
			for _, id := range ids {
				if zeroed[id] != (pass == 1) {
					continue
				}
				if pass == 0 && drawn >= maxFiltersDrawn {
					capped = true
					continue
				}
				xy := append([]rundir.FilterNormPoint(nil), filters[id]...)
				sort.SliceStable(xy, func(a, b int) bool { return xy[a].Step < xy[b].Step })
				var xs, ys []float64
				for _, pt := range xy {
					xs, ys = append(xs, float64(pt.Step)), append(ys, pt.Norm)
					yMax = math.Max(yMax, pt.Norm)
					maxStep = max(maxStep, pt.Step)
				}
				col, width := kept, vg.Points(0.8)
				if zeroed[id] {
					col, width = flaggedColor, vg.Points(1.4)
				}
				if _, err := line(p, xs, ys, col, width, nil); err != nil {
					return Figure{}, fmt.Errorf("figure %s: %w", name, err)
				}
				drawn++
			}
		}
		if _, err := line(p, []float64{0, float64(maxStep)}, []float64{threshold, threshold}, baselineColor, vg.Points(1), paperDashes); err != nil {
			return Figure{}, fmt.Errorf("figure %s: %w", name, err)
		}
		parts = append(parts, fmt.Sprintf("%s (run %s): %d of %d filters zeroed (threshold %g)", alphaLabel(r.Alpha), runLabel(r), len(zeroed), len(ids), threshold))
		row = append(row, p)
	}
	for _, p := range row {
		p.Y.Min, p.Y.Max = 0, yMax
		pad(p, 0.03)
		p.Y.Min = 0
	}
	legend := newLegend()
	legend.Add("filter", lineThumb(kept, vg.Points(0.8), nil))
	legend.Add("zeroed filter", lineThumb(flaggedColor, vg.Points(1.4), nil))
	legend.Add("--zero-threshold", lineThumb(baselineColor, vg.Points(1), paperDashes))
	caption := fmt.Sprintf("Weight L2 norm of every filter (output channel) of layer %s against the training step, on a shared scale. A filter counts as zeroed when its last recorded norm is below the run's --zero-threshold, an absolute threshold on the weight L2 norm (the rule of the zeroed_filters column): %s.",
		layer, strings.Join(parts, "; "))
	if capped {
		caption += fmt.Sprintf(" At most %d filters that are not zeroed are drawn per panel.", maxFiltersDrawn)
	}
	svg, err := composition{panels: [][]*plot.Plot{row}, legend: legend}.render()
	if err != nil {
		return Figure{}, fmt.Errorf("figure %s: %w", name, err)
	}
	return Figure{Name: name, Title: "Filter norms, layer " + layer, Caption: caption, SVG: svg}, nil
}

// integerTicks marks whole numbers only (epochs).
type integerTicks struct{}

// Ticks implements plot.Ticker.
func (integerTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	major := 0
	for _, t := range (plot.DefaultTicks{}).Ticks(lo, hi) {
		if t.Value != math.Trunc(t.Value) {
			continue
		}
		if t.Label != "" {
			t.Label = strconv.Itoa(int(t.Value))
			major++
		}
		out = append(out, t)
	}
	if major >= 2 {
		return out
	}
	out = nil
	for v := math.Ceil(lo); v <= hi; v++ {
		out = append(out, plot.Tick{Value: v, Label: strconv.Itoa(int(v))})
	}
	return out
}

// valueTicks marks the given values (the alphas run) when there are few,
// else falls back to the default ticks.
func valueTicks(values []float64) plot.Ticker {
	seen := map[float64]bool{}
	var ticks []plot.Tick
	for _, v := range values {
		if !seen[v] {
			seen[v] = true
			ticks = append(ticks, plot.Tick{Value: v, Label: fmtNum(v)})
		}
	}
	if len(ticks) > 10 {
		return plot.DefaultTicks{}
	}
	sort.Slice(ticks, func(i, j int) bool { return ticks[i].Value < ticks[j].Value })
	return plot.ConstantTicks(ticks)
}

// safeName maps a label to a file-name-safe word.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
