package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/sgt-dev/sgt"
	"github.com/sgt-dev/sgt/experiment"
	"github.com/sgt-dev/sgt/rundir"
)

// Figure size in the SVG files.
const (
	figWidth  = 6.4 * vg.Inch
	figHeight = 4 * vg.Inch
)

// palette holds distinguishable line colours (the Tableau 10 colours).
var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}, {148, 103, 189, 255},
	{140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}, {188, 189, 34, 255}, {23, 190, 207, 255},
}

func colorAt(i int) color.RGBA { return palette[i%len(palette)] }

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	return p
}

// renderSVG draws p as SVG. gonum/plot reports some problems by panicking
// (e.g. non-positive values on a log axis); they become errors.
func renderSVG(p *plot.Plot) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("drawing %q: %v", p.Title.Text, r)
		}
	}()
	c := vgsvg.New(figWidth, figHeight)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// series is one line of a figure: points with optional error bars.
type series struct {
	label      string
	xs, ys     []float64
	errs       []float64 // standard deviations (nil: no error bars)
	dashed     bool
	pointsOnly bool
	lineOnly   bool
	color      color.RGBA
}

// errPoints adapts a series to gonum/plot's XYer and YErrorer.
type errPoints struct{ s *series }

func (e errPoints) Len() int                    { return len(e.s.xs) }
func (e errPoints) XY(i int) (float64, float64) { return e.s.xs[i], e.s.ys[i] }
func (e errPoints) YError(i int) (float64, float64) {
	return e.s.errs[i], e.s.errs[i]
}

func addSeries(p *plot.Plot, s *series) error {
	if len(s.xs) == 0 {
		return nil
	}
	xys := make(plotter.XYs, len(s.xs))
	for i := range s.xs {
		xys[i] = plotter.XY{X: s.xs[i], Y: s.ys[i]}
	}
	if s.pointsOnly {
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			return err
		}
		sc.Color = s.color
		p.Add(sc)
		if s.label != "" {
			p.Legend.Add(s.label, sc)
		}
		return nil
	}
	if s.lineOnly {
		line, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		line.Color = s.color
		line.Width = vg.Points(1)
		p.Add(line)
		if s.label != "" {
			p.Legend.Add(s.label, line)
		}
		return nil
	}
	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	line.Color = s.color
	line.Width = vg.Points(1.5)
	points.Color = s.color
	points.Radius = vg.Points(2)
	if s.dashed {
		line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	p.Add(line, points)
	if s.errs != nil {
		eb, err := plotter.NewYErrorBars(errPoints{s})
		if err != nil {
			return err
		}
		eb.Color = s.color
		p.Add(eb)
	}
	if s.label != "" {
		p.Legend.Add(s.label, line, points)
	}
	return nil
}

// figureOf draws the series into a new plot and returns the figure.
func figureOf(name, title, caption, x, y string, ss []*series, tweak func(*plot.Plot)) (Figure, error) {
	p := newPlot(title, x, y)
	for _, s := range ss {
		if err := addSeries(p, s); err != nil {
			return Figure{}, fmt.Errorf("figure %s: %w", name, err)
		}
	}
	if tweak != nil {
		tweak(p)
	}
	svg, err := renderSVG(p)
	if err != nil {
		return Figure{}, fmt.Errorf("figure %s: %w", name, err)
	}
	return Figure{Name: name, Title: title, Caption: caption, SVG: svg}, nil
}

// figures draws every figure whose data exists and notes the others. A
// malformed filter_norms.csv is an error.
func (d *data) figures(opts Options) (figs []Figure, notes []string, err error) {
	add := func(f Figure, err error) {
		if err != nil {
			notes = append(notes, "A figure was skipped: "+err.Error())
			return
		}
		figs = append(figs, f)
	}
	skip := func(title, why string) {
		notes = append(notes, fmt.Sprintf("Figure %q skipped: %s.", title, why))
	}
	add(transformFigure("transform_ordered", "Tampered probabilities of an ordered distribution", orderedExample()))
	add(transformFigure("transform_unordered", "Tampered probabilities of an unordered distribution", unorderedExample))
	add(d.accuracyCurves(opts.LogLog))
	add(d.versusAlpha("test_acc_vs_alpha", "Test accuracy against alpha", "test accuracy (%)", mTestAcc, true))
	for _, m := range []struct{ metric, title, y string }{
		{mTrainLoss, "Final training loss against alpha", "final training loss"},
		{mLogitNorm, "Final logit norm against alpha", "final logit norm"},
		{mGap, "Generalisation gap against alpha", "train − test accuracy (%)"},
	} {
		if !d.hasMetric(m.metric) {
			skip(m.title, "no run records "+m.metric+" in "+rundir.MetricsFile)
			continue
		}
		add(d.versusAlpha(m.metric+"_vs_alpha", m.title, m.y, m.metric, m.metric == mGap))
	}
	if d.hasMetric(mLogitNorm) && d.hasMetric(mTrainLoss) {
		add(d.lossVsLogitNorm())
	} else {
		skip("Training loss against logit norm", "it needs train_loss and logit_norm in "+rundir.MetricsFile)
	}
	fnFigs, fnNotes, err := d.filterNormFigures(opts.Layers)
	if err != nil {
		return nil, nil, err
	}
	figs = append(figs, fnFigs...)
	notes = append(notes, fnNotes...)
	return figs, notes, nil
}

// hasMetric reports whether some group has values of metric.
func (d *data) hasMetric(metric string) bool {
	for _, g := range d.groups {
		if len(g.values[metric]) > 0 {
			return true
		}
	}
	return false
}

// transformAlphas are the exponents drawn in the transform figures.
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

// transformFigure draws p' = softmax(alpha*log p) for several alpha,
// computed with the sgt package.
func transformFigure(name, title string, p []float64) (Figure, error) {
	logp := make([]float64, len(p))
	for i, v := range p {
		logp[i] = math.Log(v)
	}
	ss := transformSeries(p)
	caption := "The PowerGrad transform p'_i = p_i^alpha / sum_j p_j^alpha = softmax(alpha*z), computed with sgt.TamperedSoftmax; alpha = 1 (dashed) is p itself and alpha = 0 the uniform distribution."
	if t, err := sgt.StationaryThreshold(logp, 0.5); err == nil {
		caption += fmt.Sprintf(" Tampering raises exactly the probabilities below the stationary threshold t = (sum_j p_j^alpha)^(1/(alpha-1)); for alpha = 0.5 here t = %.3f.", t)
	}
	return figureOf(name, title, caption, "class", "probability", ss, func(p *plot.Plot) {
		p.Y.Min = 0
		p.Legend.Left = false
	})
}

// transformSeries returns, for each of transformAlphas, the tampered
// distribution of p against the class index.
func transformSeries(p []float64) []*series {
	logp := make([]float64, len(p))
	for i, v := range p {
		logp[i] = math.Log(v)
	}
	var ss []*series
	for i, a := range transformAlphas {
		pt := sgt.TamperedSoftmax(nil, logp, a)
		s := &series{label: "alpha=" + fmtNum(a), color: colorAt(i), dashed: a == 1}
		for c, v := range pt {
			s.xs = append(s.xs, float64(c))
			s.ys = append(s.ys, v)
		}
		ss = append(ss, s)
	}
	return ss
}

// accuracyCurves draws the mean train and test accuracy of every group
// against the epoch.
func (d *data) accuracyCurves(logLog bool) (Figure, error) {
	multi := len(d.contexts()) > 1
	var ss []*series
	for i, g := range d.groups {
		for _, col := range []struct {
			name   string
			dashed bool
		}{{d.trainCol, true}, {"test_acc", false}} {
			s := &series{dashed: col.dashed, color: colorAt(i)}
			if !col.dashed {
				s.label = groupLabel(g, multi)
			}
			s.xs, s.ys = meanCurve(g.runs, col.name, d.scale)
			if logLog {
				s.xs, s.ys = positive(s.xs, s.ys)
			}
			ss = append(ss, s)
		}
	}
	title := "Train (dashed) and test accuracy against epoch"
	caption := "Mean over seeds at every epoch; train accuracy is " + d.trainCol + "."
	if logLog {
		caption += " Both axes are logarithmic."
	}
	return figureOf("accuracy_vs_epoch", title, caption, "epoch", "accuracy (%)", ss, func(p *plot.Plot) {
		p.Legend.Top, p.Legend.Left = false, false
		if logLog {
			p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
			p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
		}
	})
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

// meanCurve returns the epochs and the mean of column over the runs that
// have a value at each epoch, times scale.
func meanCurve(runs []*RunInfo, column string, scale float64) (xs, ys []float64) {
	sum, count := map[float64]float64{}, map[float64]int{}
	for _, r := range runs {
		epochs, ok1 := r.Run.Column(rundir.EpochColumn)
		vals, ok2 := r.Run.Column(column)
		if !ok1 || !ok2 {
			continue
		}
		for i, e := range epochs {
			if isFinite(vals[i]) {
				sum[e] += vals[i]
				count[e]++
			}
		}
	}
	for e := range sum {
		xs = append(xs, e)
	}
	sort.Float64s(xs)
	for _, e := range xs {
		ys = append(ys, sum[e]/float64(count[e])*scale)
	}
	return xs, ys
}

// versusAlpha draws the mean ± sd of a metric against alpha, one line per
// context and label smoothing.
func (d *data) versusAlpha(name, title, ylabel, metric string, accuracy bool) (Figure, error) {
	multi := len(d.contexts()) > 1
	var ss []*series
	for _, ctx := range d.contexts() {
		for _, ls := range d.smoothings(ctx) {
			label := "LS=" + fmtNum(ls)
			if multi && ctx != "" {
				label += " (" + ctx + ")"
			}
			s := &series{label: label, color: colorAt(len(ss)), errs: []float64{}}
			var gs []*group
			for _, g := range d.groups {
				if g.context == ctx && g.ls == ls && len(g.values[metric]) > 0 {
					gs = append(gs, g)
				}
			}
			sort.Slice(gs, func(i, j int) bool { return gs[i].alpha < gs[j].alpha })
			for _, g := range gs {
				vals := g.values[metric]
				if accuracy {
					vals = d.accScaled(g, metric)
				}
				m, sd := experiment.MeanSD(vals)
				if !isFinite(m) {
					continue
				}
				s.xs = append(s.xs, g.alpha)
				s.ys = append(s.ys, m)
				s.errs = append(s.errs, sd)
			}
			ss = append(ss, s)
		}
	}
	caption := "Mean over seeds at the last epoch; error bars are ± one standard deviation."
	return figureOf(name, title, caption, "alpha", ylabel, ss, nil)
}

// lossVsLogitNorm draws every run's final training loss against its final
// logit norm with a least-squares line.
func (d *data) lossVsLogitNorm() (Figure, error) {
	var xs, ys []float64
	var ss []*series
	for i, g := range d.groups {
		s := &series{label: groupLabel(g, len(d.contexts()) > 1), color: colorAt(i), pointsOnly: true}
		for _, r := range g.runs {
			x, ok1 := r.Run.Final(mLogitNorm)
			y, ok2 := r.Run.Final(mTrainLoss)
			if ok1 && ok2 && isFinite(x) && isFinite(y) {
				s.xs = append(s.xs, x)
				s.ys = append(s.ys, y)
			}
		}
		xs = append(xs, s.xs...)
		ys = append(ys, s.ys...)
		ss = append(ss, s)
	}
	fit, ok := FitLine(xs, ys)
	caption := "One point per run (last epoch)."
	if ok {
		sign, slope := "+", fit.Slope
		if slope < 0 {
			sign, slope = "−", -slope
		}
		caption += fmt.Sprintf(" Least-squares line: loss = %.4g %s %.4g × logit norm (R² = %.3f, %d runs).", fit.Intercept, sign, slope, fit.R2, len(xs))
	} else {
		caption += " Too few distinct logit norms to fit a line."
	}
	return figureOf("loss_vs_logit_norm", "Final training loss against logit norm", caption, "final logit norm", "final training loss", ss, func(p *plot.Plot) {
		if !ok {
			return
		}
		f := plotter.NewFunction(func(x float64) float64 { return fit.Intercept + fit.Slope*x })
		f.Color = color.RGBA{A: 255}
		f.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		p.Add(f)
		p.Legend.Add("least squares", f)
	})
}

// maxFiltersDrawn caps the lines of a filter-norm figure.
const maxFiltersDrawn = 64

// filterNormFigures draws per-filter weight norms against the step for the
// chosen layers, for the baseline and for the run with the smallest alpha
// (the first seed of each, without label smoothing when there is such a run).
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
		for _, r := range best.runs {
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
	for _, r := range chosen {
		path := filepath.Join(r.Dir, rundir.FilterNormsFile)
		fn, err := rundir.ReadFilterNorms(r.Dir)
		if err != nil {
			return nil, nil, err
		}
		want := layers
		if len(want) == 0 && len(fn.Layers) > 0 {
			want = []string{fn.Layers[0]}
			if last := fn.Layers[len(fn.Layers)-1]; last != fn.Layers[0] {
				want = append(want, last)
			}
		}
		for _, layer := range want {
			filters, ok := fn.Series[layer]
			if !ok {
				notes = append(notes, fmt.Sprintf("Figure %q skipped for %s: %s has no layer %q (layers: %s).", title, runLabel(r), path, layer, strings.Join(fn.Layers, ", ")))
				continue
			}
			fig, err := filterNormFigure(r, layer, filters)
			if err != nil {
				notes = append(notes, "A figure was skipped: "+err.Error())
				continue
			}
			figs = append(figs, fig)
		}
	}
	return figs, notes, nil
}

func filterNormFigure(r *RunInfo, layer string, filters map[int][]rundir.FilterNormPoint) (Figure, error) {
	ids := make([]int, 0, len(filters))
	for id := range filters {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	var ss []*series
	zeroed, maxStart := 0, 0.0
	for _, id := range ids {
		if xy := filters[id]; len(xy) > 0 {
			maxStart = math.Max(maxStart, xy[0].Norm)
		}
	}
	for i, id := range ids {
		xy := filters[id]
		sort.SliceStable(xy, func(a, b int) bool { return xy[a].Step < xy[b].Step })
		if len(xy) > 0 && xy[len(xy)-1].Norm < 1e-3*maxStart {
			zeroed++
		}
		if i >= maxFiltersDrawn {
			continue
		}
		s := &series{color: colorAt(i), lineOnly: true}
		for _, p := range xy {
			s.xs = append(s.xs, float64(p.Step))
			s.ys = append(s.ys, p.Norm)
		}
		ss = append(ss, s)
	}
	name := "filter_norms_" + safeName(runLabel(r)) + "_" + safeName(layer)
	title := fmt.Sprintf("Filter norms, layer %s, alpha=%s", layer, fmtNum(r.Alpha))
	if r.LabelSmoothing != 0 {
		title += " LS=" + fmtNum(r.LabelSmoothing)
	}
	caption := fmt.Sprintf("Weight norm of each of the %d filters of layer %s against the training step, run %s (seed %d). %d filters end below 0.1%% of the largest initial norm (zeroed out).",
		len(ids), layer, runLabel(r), r.Seed, zeroed)
	if len(ids) > maxFiltersDrawn {
		caption += fmt.Sprintf(" The first %d filters are drawn.", maxFiltersDrawn)
	}
	return figureOf(name, title, caption, "step", "filter weight norm", ss, func(p *plot.Plot) { p.Y.Min = 0 })
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
