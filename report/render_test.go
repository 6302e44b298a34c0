package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/rundir"
)

func TestHTML(t *testing.T) {
	root := standardRuns(t)
	// A layer name with markup must come out as text.
	dir := filepath.Join(root, "run0")
	if err := rundir.AppendFilterNorms(dir, 300, []rundir.LayerNorms{{Layer: "<b>evil</b>", Norms: []float64{1, 2}}}); err != nil {
		t.Fatal(err)
	}
	rep, err := Build([]string{root}, Options{Title: "Demo <report>", Layers: []string{"<b>evil</b>"}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "out", "report.html")
	if err := rep.Write(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	s := string(raw)
	if n := strings.Count(s, "<svg"); n != len(rep.Figures) {
		t.Errorf("%d inline SVGs, want %d", n, len(rep.Figures))
	}
	for _, bad := range []string{"<script", "<link", "src=\"http", "href=\"http", "url(http", "@import", "<?xml", "<b>evil", "Demo <report>"} {
		if strings.Contains(s, bad) {
			t.Errorf("HTML contains %q (not self-contained, or not escaped)", bad)
		}
	}
	for _, want := range []string{"Demo &lt;report&gt;", "&lt;b&gt;evil&lt;/b&gt;", "91.00 ± 1.00", `<td class="strong">&#43;3.00</td>`,
		`id="findings"`, `class="verdict clear">exceeds noise</span>`, "white-space:nowrap", "figure svg{display:block;width:100%"} {
		if !strings.Contains(s, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	for _, tb := range rep.Tables {
		if !strings.Contains(s, tb.Title) {
			t.Errorf("HTML lacks table %q", tb.Title)
		}
	}
	// Group headers span their columns.
	if !strings.Contains(s, `<th class="grp gs" colspan="3">Test %</th>`) {
		t.Error("HTML lacks the spanning group header")
	}
}

func TestMarkdown(t *testing.T) {
	rep := build(t, standardRuns(t))
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
		if got, err := os.ReadFile(filepath.Join(filepath.Dir(md), file)); err != nil || !bytes.Equal(got, f.SVG) {
			t.Errorf("figure file %s: %v", file, err)
		}
	}
	for _, want := range []string{"| Baseline | 1 | 3 | 99.00 ± 0.00 |", "| SGT | 0.3 | 3 | 97.00 ± 0.00 | **-2.00** | **&lt; 0.001** |",
		"- **exceeds noise:** label smoothing 0 — α = 0.3 vs baseline"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, text)
		}
	}
	if err := rep.Write(filepath.Join(t.TempDir(), "r.pdf")); err == nil {
		t.Error("unknown extension: want an error")
	}
}
