package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sgt-dev/sgt/rundir"
)

// browserWidth is the window width the report is rendered at.
const browserWidth = 1400

// browserTestEnv, when set (.ci/run sets it after installing Chromium and
// Liberation Sans), makes a missing browser or font a failure, not a skip.
const browserTestEnv = "SGT_BROWSER_TEST"

// chromium returns a headless Chromium (or Chrome) to render with, or
// skips the test (fails it when SGT_BROWSER_TEST is set).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	skipOrFail(t, "no chromium on PATH (Debian: apt-get install chromium fonts-liberation): the report is not checked in a browser")
	return ""
}

// skipOrFail skips the test, or fails it when SGT_BROWSER_TEST is set.
func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv(browserTestEnv) != "" {
		t.Fatalf("%s is set but %s", browserTestEnv, msg)
	}
	t.Skip(msg)
}

// runChromium runs a headless browser on file with the given extra flags
// and returns its standard output.
func runChromium(t *testing.T, bin, file string, flags ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), fmt.Sprintf("--window-size=%d,2000", browserWidth)}, flags...)
	args = append(args, "file://"+file)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", flags, err, stderr.String())
	}
	return stdout.Bytes()
}

// probeScript measures the rendered report and writes the result as JSON
// into the element #probe: the width of the content and of every figure,
// tables wider than their box, table cells whose text wraps, overlapping
// texts inside each figure, and the fonts of the figures' texts.
const probeScript = `<script>
(function () {
  const out = {content: document.querySelector('#figures').getBoundingClientRect().width, figures: [], overflowing: [], wrapped: [], overlaps: [], fonts: []};
  document.querySelectorAll('figure').forEach(function (f) {
    const svg = f.querySelector('svg');
    out.figures.push({name: f.id, width: svg.getBoundingClientRect().width});
    const boxes = [];
    svg.querySelectorAll('text').forEach(function (t) {
      if (t.textContent.trim() === '') return;
      const r = t.getBoundingClientRect();
      boxes.push({text: t.textContent, l: r.left, r: r.right, t: r.top, b: r.bottom});
      const ff = getComputedStyle(t).fontFamily;
      if (out.fonts.indexOf(ff) < 0) out.fonts.push(ff);
    });
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      const w = Math.min(a.r, b.r) - Math.max(a.l, b.l), h = Math.min(a.b, b.b) - Math.max(a.t, b.t);
      if (w > 1.5 && h > 1.5) out.overlaps.push(f.id + ': "' + a.text + '" and "' + b.text + '"');
    }
  });
  document.querySelectorAll('.table-wrap').forEach(function (w) {
    if (w.scrollWidth > w.clientWidth + 1) out.overflowing.push(w.previousElementSibling ? w.previousElementSibling.textContent : '?');
  });
  document.querySelectorAll('table:not(.flagged) td, table:not(.flagged) th').forEach(function (c) {
    const range = document.createRange();
    range.selectNodeContents(c);
    const tops = new Set();
    Array.from(range.getClientRects()).forEach(function (r) { if (r.width > 0) tops.add(Math.round(r.top)); });
    if (tops.size > 1) out.wrapped.push(c.textContent);
  });
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>`

type probe struct {
	Content float64 `json:"content"`
	Figures []struct {
		Name  string  `json:"name"`
		Width float64 `json:"width"`
	} `json:"figures"`
	Overflowing []string `json:"overflowing"`
	Wrapped     []string `json:"wrapped"`
	Overlaps    []string `json:"overlaps"`
	Fonts       []string `json:"fonts"`
}

// TestReportInBrowser renders a report, with every kind of table and
// figure, in headless Chromium: the figures fill the text width, no table
// is wider than the page or wraps a cell, no two texts of a figure overlap,
// the figures' texts are set in Liberation Sans, and a screenshot of the
// page is the window's width and not blank.
func TestReportInBrowser(t *testing.T) {
	bin := chromium(t)
	if out, err := exec.Command("fc-match", "Liberation Sans").Output(); err == nil && !bytes.Contains(out, []byte("Liberation")) {
		skipOrFail(t, fmt.Sprintf("Liberation Sans is not installed (Debian: apt-get install fonts-liberation); fc-match gives %s", out))
	}
	root := recipeRuns(t)
	for i, r := range []fakeRun{
		{alpha: 1, ls: 0.1, seed: 0, trainAcc: 0.8, trainEval: 0.95, testAcc: 0.905, trainLoss: 0.8, logitNorm: 6},
		{alpha: 1, ls: 0.1, seed: 1, trainAcc: 0.81, trainEval: 0.95, testAcc: 0.91, trainLoss: 0.81, logitNorm: 6.5},
		{alpha: 0.5, ls: 0.1, seed: 0, trainAcc: 0.78, trainEval: 0.95, testAcc: 0.90, trainLoss: 1.2, logitNorm: 12},
		{alpha: 0.5, ls: 0.1, seed: 1, trainAcc: 0.79, trainEval: 0.95, testCurve: []float64{0.85, 0.2, 0.3}, trainLoss: 1.3, logitNorm: 13},
	} {
		r.filterNorms = true
		cfg := recipeConfig(t, r.alpha, r.seed)
		cfg.LabelSmoothing = r.ls
		r.config = func(c *rundir.Config) { *c = cfg }
		writeRun(t, filepath.Join(root, fmt.Sprintf("ls%d", i)), r)
	}
	rep := build(t, root)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := rep.Write(page); err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	probed := filepath.Join(dir, "probe.html")
	if err := os.WriteFile(probed, bytes.Replace(raw, []byte("</body>"), []byte(probeScript+"\n</body>"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := string(runChromium(t, bin, probed, "--virtual-time-budget=5000", "--dump-dom"))
	start := strings.Index(dom, `<pre id="probe">`)
	end := strings.Index(dom[max(start, 0):], "</pre>")
	if start < 0 || end < 0 {
		t.Fatalf("the probe did not run; DOM tail:\n%s", dom[max(0, len(dom)-500):])
	}
	var got probe
	if err := json.Unmarshal([]byte(html.UnescapeString(dom[start+len(`<pre id="probe">`):start+end])), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Figures) != len(rep.Figures) || len(got.Figures) < 6 {
		t.Errorf("%d figures rendered, the report has %d", len(got.Figures), len(rep.Figures))
	}
	for _, f := range got.Figures {
		if f.Width < 0.99*got.Content || f.Width < 1000 {
			t.Errorf("figure %s is %.0f px wide; the text is %.0f px wide", f.Name, f.Width, got.Content)
		}
	}
	if len(got.Overflowing) > 0 {
		t.Errorf("tables wider than the page: %q", got.Overflowing)
	}
	if len(got.Wrapped) > 0 {
		t.Errorf("table cells that wrap: %q", got.Wrapped)
	}
	if len(got.Overlaps) > 0 {
		t.Errorf("overlapping texts in figures: %q", got.Overlaps)
	}
	if len(got.Fonts) == 0 || !strings.HasPrefix(strings.Trim(got.Fonts[0], `"'`), "Liberation Sans") {
		t.Errorf("figure fonts %q, want Liberation Sans first", got.Fonts)
	}

	shot := filepath.Join(dir, "report.png")
	runChromium(t, bin, page, "--screenshot="+shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w != browserWidth {
		t.Errorf("screenshot is %d px wide, want the window's %d", w, browserWidth)
	}
	// Not blank: a real page has text and rules in many shades.
	shades := map[uint32]bool{}
	dark := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			shades[(r>>12)<<8|(g>>12)<<4|bl>>12] = true
			if r+g+bl < 3*0x8000 {
				dark++
			}
		}
	}
	if len(shades) < 20 || dark < 1000 {
		t.Errorf("screenshot looks blank: %d shades, %d dark pixels", len(shades), dark)
	}
	if dst := os.Getenv("SGT_REPORT_SCREENSHOT"); dst != "" {
		if b, err := os.ReadFile(shot); err == nil {
			_ = os.WriteFile(dst, b, 0o644)
		}
	}
}
