package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Figure geometry. Figures are drawn 12 inches wide, which an HTML report
// shows at its full text width at about their natural size.
const (
	figWidth    = 12 * vg.Inch
	panelHeight = 3.3 * vg.Inch
	// figMargin surrounds the panels; legendGap separates them from the
	// legend column on the right.
	figMargin = 6
	legendGap = 14
)

// sansFamily is the face of every text in the figures: Liberation Sans,
// shipped with gonum/plot (go-fonts/liberation) and metric-compatible with
// Arial and Helvetica, so that the layout holds in browsers that lack it.
var sansFamily = font.Font{Typeface: "Liberation", Variant: "Sans"}

// svgFontStack replaces Liberation Sans's family name in the SVG: the same
// face first, then its metric-compatible equivalents.
const svgFontStack = `font-family:'Liberation Sans',Arimo,Arial,Helvetica,sans-serif;`

func sans(size vg.Length) font.Font { return font.From(sansFamily, size) }

// Colours.
var (
	baselineColor = color.NRGBA{R: 34, G: 34, B: 34, A: 255}
	flaggedColor  = color.NRGBA{R: 214, G: 39, B: 40, A: 255}
	gridColor     = color.NRGBA{R: 225, G: 225, B: 225, A: 255}
	paperColor    = color.NRGBA{R: 120, G: 120, B: 120, A: 255}
	// categorical is the Tableau 10 palette, for label smoothing and
	// other categories.
	categorical = []color.NRGBA{
		{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {148, 103, 189, 255},
		{140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}, {188, 189, 34, 255}, {23, 190, 207, 255},
	}
	// viridis holds stops of the viridis colour map up to a green, so that
	// no line is too light to see on white.
	viridis = []color.NRGBA{{68, 1, 84, 255}, {59, 82, 139, 255}, {33, 145, 140, 255}, {53, 183, 121, 255}, {122, 209, 81, 255}}
)

func categoryColor(i int) color.NRGBA { return categorical[i%len(categorical)] }

// faint returns c with the given opacity (0-255).
func faint(c color.NRGBA, a uint8) color.NRGBA {
	c.A = a
	return c
}

// rampColor returns the colour at t in [0, 1] of the viridis stops.
func rampColor(t float64) color.NRGBA {
	t = math.Max(0, math.Min(1, t))
	pos := t * float64(len(viridis)-1)
	i := int(pos)
	if i >= len(viridis)-1 {
		return viridis[len(viridis)-1]
	}
	f := pos - float64(i)
	mix := func(a, b uint8) uint8 { return uint8(math.Round(float64(a)*(1-f) + float64(b)*f)) }
	a, b := viridis[i], viridis[i+1]
	return color.NRGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 255}
}

// alphaColors maps alphas to colours: the baseline (1) near-black, the
// others along the colour map from the smallest alpha (dark) up.
type alphaColors struct{ sgt []float64 }

func newAlphaColors(alphas []float64) alphaColors {
	var sgt []float64
	seen := map[float64]bool{}
	for _, a := range alphas {
		if a != 1 && !seen[a] {
			seen[a] = true
			sgt = append(sgt, a)
		}
	}
	sort.Float64s(sgt)
	return alphaColors{sgt: sgt}
}

func (ac alphaColors) of(alpha float64) color.NRGBA {
	if alpha == 1 {
		return baselineColor
	}
	i := sort.SearchFloat64s(ac.sgt, alpha)
	if len(ac.sgt) <= 1 {
		return rampColor(0.25)
	}
	return rampColor(0.8 * float64(i) / float64(len(ac.sgt)-1))
}

// newPlot returns a plot with the report's fonts, a light grid and no
// legend (legends are drawn beside the panels).
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(12)
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text, p.Y.Label.Text = x, y
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(11)
		a.Tick.Label.Font = sans(10)
		a.Padding = vg.Points(4)
		a.LineStyle.Color = color.NRGBA{110, 110, 110, 255}
		a.Tick.LineStyle.Color = color.NRGBA{110, 110, 110, 255}
	}
	g := plotter.NewGrid()
	g.Vertical.Color, g.Horizontal.Color = gridColor, gridColor
	p.Add(g)
	return p
}

// newLegend returns an empty legend in the report's font.
func newLegend() *plot.Legend {
	l := plot.NewLegend()
	l.TextStyle.Font = sans(10.5)
	l.Top, l.Left = true, true
	l.ThumbnailWidth = vg.Points(22)
	l.Padding = vg.Points(3)
	return &l
}

// pad widens the axes' ranges by a share of their span on each side, so
// that no point sits on the frame.
func pad(p *plot.Plot, share float64) {
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		if _, isLog := a.Scale.(plot.LogScale); isLog {
			continue
		}
		span := a.Max - a.Min
		if span <= 0 || math.IsInf(span, 0) || math.IsNaN(span) {
			span = math.Max(math.Abs(a.Max), 1)
		}
		a.Min -= share * span
		a.Max += share * span
	}
}

// composition is a figure: panels on a grid, and a legend to their right.
type composition struct {
	panels [][]*plot.Plot // rows of columns; nil panels are left empty
	legend *plot.Legend   // nil or empty: no legend
	height vg.Length      // 0: panelHeight per row
}

// render draws the composition as SVG. gonum/plot reports some problems by
// panicking (e.g. non-positive values on a log axis); they become errors.
func (c composition) render() (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("drawing: %v", r)
		}
	}()
	rows := len(c.panels)
	if rows == 0 {
		return nil, fmt.Errorf("no panels")
	}
	cols := len(c.panels[0])
	h := c.height
	if h == 0 {
		h = panelHeight * vg.Length(rows)
	}
	canvas := vgsvg.New(figWidth, h)
	dc := draw.New(canvas)
	area := dc
	area.Min.X += figMargin
	area.Min.Y += figMargin
	area.Max.Y -= figMargin
	area.Max.X -= figMargin
	if c.legend != nil && len(c.panels) > 0 {
		lr := c.legend.Rectangle(dc)
		w := lr.Max.X - lr.Min.X
		if w > 0 {
			legendArea := area
			legendArea.Min.X = area.Max.X - w
			legendArea.Max.Y -= 22 // level with the first panel's title
			area.Max.X = legendArea.Min.X - legendGap
			c.legend.Draw(legendArea)
		}
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(22), PadY: vg.Points(14)}
	canvases := plot.Align(c.panels, tiles, area)
	for i, row := range c.panels {
		for j, p := range row {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	var buf bytes.Buffer
	if _, err := canvas.WriteTo(&buf); err != nil {
		return nil, err
	}
	return bytes.ReplaceAll(buf.Bytes(), []byte("font-family:Liberation Sans;"), []byte(svgFontStack)), nil
}

// Drawing elements.

// line adds a polyline to p.
func line(p *plot.Plot, xs, ys []float64, c color.Color, width vg.Length, dashes []vg.Length) (*plotter.Line, error) {
	l, err := plotter.NewLine(xyOf(xs, ys))
	if err != nil {
		return nil, err
	}
	l.Color, l.Width, l.Dashes = c, width, dashes
	p.Add(l)
	return l, nil
}

// points adds glyphs to p.
func points(p *plot.Plot, xs, ys []float64, c color.Color, g draw.GlyphDrawer, radius vg.Length) (*plotter.Scatter, error) {
	s, err := plotter.NewScatter(xyOf(xs, ys))
	if err != nil {
		return nil, err
	}
	s.GlyphStyle = draw.GlyphStyle{Color: c, Shape: g, Radius: radius}
	p.Add(s)
	return s, nil
}

// errorBars adds vertical error bars of ± errs to p.
func errorBars(p *plot.Plot, xs, ys, errs []float64, c color.Color) error {
	eb, err := plotter.NewYErrorBars(errXYs{xs, ys, errs})
	if err != nil {
		return err
	}
	eb.Color, eb.Width = c, vg.Points(1.2)
	eb.CapWidth = vg.Points(6)
	p.Add(eb)
	return nil
}

type errXYs struct{ xs, ys, errs []float64 }

func (e errXYs) Len() int                        { return len(e.xs) }
func (e errXYs) XY(i int) (float64, float64)     { return e.xs[i], e.ys[i] }
func (e errXYs) YError(i int) (float64, float64) { return e.errs[i], e.errs[i] }

func xyOf(xs, ys []float64) plotter.XYs {
	out := make(plotter.XYs, len(xs))
	for i := range xs {
		out[i] = plotter.XY{X: xs[i], Y: ys[i]}
	}
	return out
}

// Legend thumbnails that stand for a style, not for data.

func lineThumb(c color.Color, width vg.Length, dashes []vg.Length) plot.Thumbnailer {
	return &plotter.Line{LineStyle: draw.LineStyle{Color: c, Width: width, Dashes: dashes}}
}

func glyphThumb(c color.Color, g draw.GlyphDrawer, radius vg.Length) plot.Thumbnailer {
	return &plotter.Scatter{GlyphStyle: draw.GlyphStyle{Color: c, Shape: g, Radius: radius}}
}
