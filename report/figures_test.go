package report

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/rundir"
)

func figureByName(t *testing.T, rep *Report, name string) Figure {
	t.Helper()
	for _, f := range rep.Figures {
		if f.Name == name {
			return f
		}
	}
	var names []string
	for _, f := range rep.Figures {
		names = append(names, f.Name)
	}
	t.Fatalf("no figure %s (have %v; notes %q)", name, names, rep.Notes)
	return Figure{}
}

func TestFigures(t *testing.T) {
	rep, err := Build([]string{standardRuns(t)}, Options{LogLog: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"transform", "accuracy_vs_epoch", "vs_alpha", "loss_vs_logit_norm", "filter_norms_conv1", "filter_norms_dense"} {
		f := figureByName(t, rep, name)
		svg := string(f.SVG)
		if !strings.Contains(svg, "<svg") {
			t.Errorf("figure %s is not SVG", name)
		}
		// Sans-serif text: Liberation Sans, then its metric-compatible
		// equivalents.
		if strings.Contains(svg, "Liberation Serif") || !strings.Contains(svg, svgFontStack) {
			t.Errorf("figure %s does not use the sans-serif font stack", name)
		}
		// Drawn full width.
		if !strings.Contains(svg, `width="864pt"`) {
			t.Errorf("figure %s is not %v wide", name, figWidth)
		}
	}
	// Every seed is drawn faintly behind the means.
	acc := string(figureByName(t, rep, "accuracy_vs_epoch").SVG)
	if n := strings.Count(acc, fmt.Sprintf("stroke-opacity:%.5g", float64(uint32(seedOpacity)*0x101)/0xffff)); n < 8 {
		t.Errorf("%d faint per-seed traces in the accuracy figure, want one per run with seeds (8)", n)
	}
	// Two filter-norm panels (baseline and alpha 0.3) per layer, the
	// zeroed filter counted by the run's absolute threshold.
	fn := figureByName(t, rep, "filter_norms_conv1")
	if !strings.Contains(fn.Caption, "α = 1 (baseline) (run ") || !strings.Contains(fn.Caption, "α = 0.3 (run ") ||
		!strings.Contains(fn.Caption, "1 of 4 filters zeroed (threshold 0.001)") || !strings.Contains(fn.Caption, "absolute threshold") {
		t.Errorf("filter-norm caption: %s", fn.Caption)
	}
}

// TestTransformSeries checks the drawn tampered distributions against
// p_i^alpha / sum_j p_j^alpha.
func TestTransformSeries(t *testing.T) {
	p := orderedExample()
	for _, c := range transformSeries(p) {
		var norm float64
		for _, v := range p {
			norm += math.Pow(v, c.alpha)
		}
		for i, y := range c.ys {
			if want := math.Pow(p[i], c.alpha) / norm; math.Abs(y-want) > 1e-12 {
				t.Errorf("alpha %v class %d: %v, want %v", c.alpha, i, y, want)
			}
		}
	}
}

// TestFitPerLabelSmoothing draws runs whose loss is an exact linear
// function of the logit norm within each label smoothing, with different
// lines: fitted per label smoothing each has R² = 1, where one pooled line
// (the report's old fit) explains little.
func TestFitPerLabelSmoothing(t *testing.T) {
	root := t.TempDir()
	var xs, ys []float64
	for i, a := range []float64{1, 0.5, 0.3, 0.1} {
		for li, ls := range []float64{0, 0.1} {
			norm := 10 + 10*float64(i)
			loss := 0.1 + 0.01*norm
			if ls != 0 {
				norm = 5 + 2*float64(i)
				loss = 3 - 0.2*norm
			}
			xs, ys = append(xs, norm), append(ys, loss)
			writeRun(t, filepath.Join(root, fmt.Sprintf("r%d_%d", i, li)), fakeRun{alpha: a, ls: ls, trainAcc: 0.9, testAcc: 0.8, trainLoss: loss, logitNorm: norm})
		}
	}
	pooled, _ := FitLine(xs, ys)
	if pooled.R2 > 0.5 {
		t.Fatalf("pooled R² %v: the data do not show the point", pooled.R2)
	}
	f := figureByName(t, build(t, root), "loss_vs_logit_norm")
	re := regexp.MustCompile(`LS (\S+): loss = (\S+) ([+−]) (\S+) × logit norm \(R² = (\S+), (\d+) runs\)`)
	m := re.FindAllStringSubmatch(f.Caption, -1)
	if len(m) != 2 {
		t.Fatalf("caption has %d fits, want 2 (one per label smoothing): %s", len(m), f.Caption)
	}
	for _, fit := range m {
		slope, _ := strconv.ParseFloat(fit[4], 64)
		if fit[3] == "−" {
			slope = -slope
		}
		want := 0.01
		if fit[1] == "0.1" {
			want = -0.2
		}
		if math.Abs(slope-want) > 1e-9 || fit[5] != "1.000" || fit[6] != "4" {
			t.Errorf("fit for LS %s: slope %v R² %s over %s runs, want slope %v R² 1.000 over 4", fit[1], slope, fit[5], fit[6], want)
		}
	}
}

// TestZeroedFiltersUseAbsoluteThreshold checks that the filter-norm figure
// counts zeroed filters by the run's absolute --zero-threshold, the rule
// of the zeroed_filters column, not by a share of the largest initial
// norm.
func TestZeroedFiltersUseAbsoluteThreshold(t *testing.T) {
	root := t.TempDir()
	for i, a := range []float64{1, 0.3} {
		dir := filepath.Join(root, fmt.Sprintf("r%d", i))
		writeRun(t, dir, fakeRun{alpha: a, trainAcc: 0.9, testAcc: 0.8, trainLoss: 0.1, logitNorm: 3, config: func(c *rundir.Config) { c.ZeroThreshold = 0.01 }})
		// Filter 0 starts at 100 (so 0.1% of the largest initial norm is
		// 0.1); filter 1 ends at 0.005 (below both rules), filter 2 at 0.05
		// (below the relative rule only), filter 3 stays at 1.
		start := []float64{100, 1, 1, 1}
		end := []float64{90, 0.005, 0.05, 1}
		for step, norms := range [][]float64{start, end} {
			if err := rundir.AppendFilterNorms(dir, step*100, []rundir.LayerNorms{{Layer: "conv", Norms: norms}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	f := figureByName(t, build(t, root), "filter_norms_conv")
	if strings.Count(f.Caption, "1 of 4 filters zeroed (threshold 0.01)") != 2 {
		t.Errorf("caption %s: want 1 of 4 zeroed in each run by the absolute threshold 0.01", f.Caption)
	}
	if _, err := os.Stat(filepath.Join(root, "r0", rundir.FilterNormsFile)); err != nil {
		t.Fatal(err)
	}
}
