package report

import (
	"bytes"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/atomicfile"
)

// Write writes the report to path: a self-contained HTML file when path
// ends in .html or .htm, Markdown with the figures as SVG files beside it
// when it ends in .md. Every file is written atomically (atomicfile), so a
// failed write (a full disk, say) leaves the previous report whole.
func (r *Report) Write(path string) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".html", ".htm":
		page, err := r.HTML()
		if err != nil {
			return err
		}
		return writeFile(path, page)
	case ".md", ".markdown":
		return r.writeMarkdown(path)
	default:
		return fmt.Errorf("report file %s: unknown format (want a name ending in .html or .md)", path)
	}
}

// writeFile creates path's directory and writes data to path atomically.
func writeFile(path string, data []byte) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
	}
	if err := atomicfile.WriteFile(path, data); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

// textWidth is the width terminal output fits in.
const textWidth = 100

// Text returns what the runs are, the report's tables, flagged runs,
// findings and notes as plain text that fits in 100 columns.
func (r *Report) Text() string {
	var b strings.Builder
	if len(r.Intro) > 0 {
		b.WriteString(wrap(r.Intro[0], textWidth, "") + "\n\n")
	}
	if len(r.Tables) > 0 {
		b.WriteString(wrap(tableLegend, textWidth, "") + "\n\n")
	}
	lastCaption := ""
	for _, t := range r.Tables {
		b.WriteString(t.Title + "\n\n")
		b.WriteString(textTable(t, textWidth))
		if t.Caption != "" && t.Caption != lastCaption {
			b.WriteString(wrap(t.Caption, textWidth, "") + "\n")
		}
		lastCaption = t.Caption
		b.WriteByte('\n')
	}
	if len(r.Flagged) > 0 {
		b.WriteString("Flagged runs (left out of the means)\n\n")
		for _, f := range r.Flagged {
			b.WriteString(wrap(fmt.Sprintf("- %s (%s, seed %d): %s", f.Run, f.Setting, f.Seed, strings.Join(f.Why, "; ")), textWidth, "  ") + "\n")
		}
		b.WriteByte('\n')
	}
	if len(r.Findings) > 0 {
		b.WriteString("Findings\n\n")
		for _, f := range r.Findings {
			b.WriteString(f.Topic + "\n")
			for _, l := range f.Lines {
				b.WriteString(wrap("- "+l.String(), textWidth, "  ") + "\n")
			}
			b.WriteByte('\n')
		}
	}
	for _, n := range r.Notes {
		b.WriteString(wrap("note: "+n, textWidth, "  ") + "\n")
	}
	return b.String()
}

// wrap breaks s into lines of at most width runes at spaces; lines after
// the first start with indent.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	lineLen := 0
	for i, w := range strings.Fields(s) {
		n := len([]rune(w))
		switch {
		case i == 0:
		case lineLen+1+n > width:
			b.WriteString("\n" + indent)
			lineLen = len([]rune(indent))
		default:
			b.WriteByte(' ')
			lineLen++
		}
		b.WriteString(w)
		lineLen += n
	}
	return b.String()
}

// textTable formats a table with aligned columns for a terminal: numbers
// right-aligned, "mean ± sd" written "mean±sd", one space between the
// columns of a group and two between groups, and a line of group titles
// above the column names. A table wider than width is split into parts
// that repeat its leading ungrouped columns.
func textTable(t Table, width int) string {
	cells := make([][]string, len(t.Rows))
	for i, row := range t.Rows {
		cells[i] = make([]string, len(row))
		for j, c := range row {
			cells[i][j] = strings.ReplaceAll(c.Text, " ± ", "±")
		}
	}
	names := make([]string, len(t.Columns))
	for j, c := range t.Columns {
		names[j] = strings.ReplaceAll(c.Name, " ± ", "±")
	}
	// The leading columns without a group are repeated in every part.
	lead := 0
	for lead < len(t.Columns) && t.Columns[lead].Group == "" {
		lead++
	}
	widths := make([]int, len(t.Columns))
	for j := range t.Columns {
		widths[j] = len([]rune(names[j]))
		for i := range cells {
			if j < len(cells[i]) {
				widths[j] = max(widths[j], len([]rune(cells[i][j])))
			}
		}
	}
	// Group spans, and their widths.
	type span struct{ from, to int }
	var spans []span
	for j := 0; j < len(t.Columns); {
		k := j + 1
		if t.Columns[j].Group != "" {
			for k < len(t.Columns) && t.Columns[k].Group == t.Columns[j].Group {
				k++
			}
		}
		spans = append(spans, span{j, k})
		j = k
	}
	spanWidth := func(s span) int {
		w := 0
		for j := s.from; j < s.to; j++ {
			w += widths[j]
		}
		w += s.to - s.from - 1
		if g := t.Columns[s.from].Group; g != "" {
			w = max(w, len([]rune(g)))
		}
		return w
	}
	leadSpans := 0
	for leadSpans < len(spans) && spans[leadSpans].to <= lead {
		leadSpans++
	}
	leadWidth := 0
	for _, s := range spans[:leadSpans] {
		leadWidth += spanWidth(s) + 2
	}
	// Cut the grouped spans into parts that fit.
	var parts [][]span
	var cur []span
	curWidth := leadWidth
	for _, s := range spans[leadSpans:] {
		w := spanWidth(s) + 2
		if len(cur) > 0 && curWidth+w-2 > width {
			parts = append(parts, cur)
			cur, curWidth = nil, leadWidth
		}
		cur = append(cur, s)
		curWidth += w
	}
	if len(cur) > 0 || len(parts) == 0 {
		parts = append(parts, cur)
	}
	var b strings.Builder
	for pi, part := range parts {
		if pi > 0 {
			b.WriteByte('\n')
		}
		all := append(append([]span(nil), spans[:leadSpans]...), part...)
		pad := func(s string, w int, left bool) string {
			n := w - len([]rune(s))
			if n <= 0 {
				return s
			}
			if left {
				return s + strings.Repeat(" ", n)
			}
			return strings.Repeat(" ", n) + s
		}
		// Group titles.
		var line strings.Builder
		hasGroup := false
		for si, s := range all {
			if si > 0 {
				line.WriteString("  ")
			}
			g := t.Columns[s.from].Group
			hasGroup = hasGroup || g != ""
			line.WriteString(pad(g, spanWidth(s), true))
		}
		if hasGroup {
			b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
		}
		row := func(get func(j int) string, fill string) {
			var line strings.Builder
			for si, s := range all {
				if si > 0 {
					line.WriteString("  ")
				}
				var sb strings.Builder
				for j := s.from; j < s.to; j++ {
					if j > s.from {
						sb.WriteString(" ")
					}
					var v string
					if fill != "" {
						v = strings.Repeat(fill, widths[j])
					} else {
						v = get(j)
					}
					sb.WriteString(pad(v, widths[j], t.Columns[j].Left))
				}
				line.WriteString(pad(sb.String(), spanWidth(s), true))
			}
			b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
		}
		row(func(j int) string { return names[j] }, "")
		row(nil, "-")
		for i := range cells {
			row(func(j int) string {
				if j < len(cells[i]) {
					return cells[i][j]
				}
				return ""
			}, "")
		}
	}
	return b.String()
}

// css styles the HTML report.
const css = `:root{--fg:#1d1d1f;--muted:#5f6368;--line:#e4e4e4;--accent:#1f77b4;--flag:#d62728}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",Arimo,Arial,sans-serif;max-width:80rem;margin:0 auto;padding:1.5rem 2rem 4rem;color:var(--fg);line-height:1.5;font-size:16px;background:#fff}
h1{font-size:1.8rem;margin:.5rem 0 .2rem;letter-spacing:-.01em}
h2{font-size:1.35rem;margin:2.8rem 0 .8rem;padding-bottom:.3rem;border-bottom:2px solid var(--line)}
h3{font-size:1.05rem;margin:1.6rem 0 .5rem}
a{color:var(--accent);text-decoration:none}
nav{margin:.6rem 0 1.2rem;font-size:.95rem}nav a{margin-right:1.2rem}
.sources,.intro{color:#333;max-width:62rem}
code{background:#f3f3f3;padding:0 .25rem;border-radius:3px;font-size:.9em}
.findings{background:#f6f8fb;border-left:4px solid var(--accent);padding:.6rem 1.4rem 1rem;border-radius:0 6px 6px 0}
.findings h3{margin:1rem 0 .3rem;font-size:1rem}
.findings ul{margin:.2rem 0;padding-left:1.2rem}.findings li{margin:.25rem 0;max-width:70rem}
.findings.method{background:#fafafa;border-left-color:#c8c8c8;margin-top:1rem}
.findings.method h3,.findings.method li{color:var(--muted);font-size:.92rem}
.verdict{display:inline-block;font-size:.78rem;font-weight:600;padding:0 .45rem;border-radius:.7rem;margin-right:.2rem;white-space:nowrap;vertical-align:.05rem;background:#e8e8e8;color:#444}
.verdict.clear{background:#dcefdc;color:#1e6b24}
.verdict.noise{background:#ececec;color:#555}
.verdict.untested{background:#fdf0d5;color:#8a5a00}
.verdict.against{background:#fbe0e0;color:#a11d1d}
.verdict.flag{background:#fbe0e0;color:#a11d1d}
.table-wrap{overflow-x:auto;margin:.3rem 0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:.9rem}
th,td{padding:.32rem .55rem;white-space:nowrap;text-align:right;border-bottom:1px solid var(--line)}
thead th{font-weight:600;background:#fafafa}
thead tr:last-child th{border-bottom:2px solid #c8c8c8}
th.grp{text-align:center;border-bottom:1px solid #d0d0d0;font-weight:600}
.l{text-align:left}
.gs{border-left:1px solid #d8d8d8}
td.strong{font-weight:700}
td.muted{color:#a0a0a0}
tbody tr:hover{background:#f4f7fb}
.caption{font-size:.86rem;color:var(--muted);max-width:72rem;margin:.4rem 0 1.4rem}
figure{margin:2.2rem 0}
figure svg{display:block;width:100%;height:auto}
figcaption{font-size:.9rem;color:var(--muted);max-width:72rem;margin-top:.5rem}
table.flagged td{white-space:normal;text-align:left;vertical-align:top}
table.flagged td:first-child,table.flagged td:nth-child(2),table.flagged td:nth-child(3){white-space:nowrap}
.notes li{color:var(--muted);font-size:.9rem}`

// page is the view of a report the HTML template renders.
type page struct {
	Title    string
	CSS      template.CSS
	Sources  []string
	Intro    []string
	Findings []Finding
	Method   *Finding
	Tables   []tableView
	Figures  []figureView
	Flagged  []FlaggedRun
	Rules    string
	Legend   string
	Notes    []string
}

type tableView struct {
	Anchor, Title, Caption, Class string
	Groups                        []groupView
	Header                        []cellView
	Rows                          [][]cellView
}

type groupView struct {
	Title string
	Span  int
	Class string
}

type cellView struct{ Text, Class, Title string }

type figureView struct {
	Name, Title, Caption string
	// SVG is trusted markup: gonum/plot writes it, escaping every text.
	SVG template.HTML
}

var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
{{.CSS}}
</style>
</head>
<body>
<header>
<h1>{{.Title}}</h1>
{{- if .Sources}}
<p class="sources">Runs from {{range $i, $s := .Sources}}{{if $i}}, {{end}}<code>{{$s}}</code>{{end}}.</p>
{{- end}}
<nav><a href="#findings">Findings</a><a href="#tables">Tables</a><a href="#figures">Figures</a>{{if .Flagged}}<a href="#flagged">Flagged runs</a>{{end}}{{if .Notes}}<a href="#notes">Notes</a>{{end}}</nav>
</header>
{{- range .Intro}}
<p class="intro">{{.}}</p>
{{- end}}
<section id="findings">
<h2>Findings</h2>
<div class="findings">
{{- range .Findings}}
<h3>{{.Topic}}</h3>
<ul>
{{- range .Lines}}
<li>{{if .Verdict}}<span class="verdict {{.Tone}}">{{.Verdict}}</span> {{end}}{{.Text}}</li>
{{- end}}
</ul>
{{- end}}
</div>
{{- with .Method}}
<div class="findings method">
<h3>{{.Topic}}</h3>
<ul>
{{- range .Lines}}
<li>{{.Text}}</li>
{{- end}}
</ul>
</div>
{{- end}}
</section>
<section id="tables">
<h2>Tables</h2>
<p class="caption">{{.Legend}}</p>
{{- range .Tables}}
<h3 id="{{.Anchor}}">{{.Title}}</h3>
<div class="table-wrap">
<table class="{{.Class}}">
<thead>
{{- if .Groups}}
<tr>{{range .Groups}}<th{{if .Class}} class="{{.Class}}"{{end}} colspan="{{.Span}}">{{.Title}}</th>{{end}}</tr>
{{- end}}
<tr>{{range .Header}}<th{{if .Class}} class="{{.Class}}"{{end}}>{{.Text}}</th>{{end}}</tr>
</thead>
<tbody>
{{- range .Rows}}
<tr>{{range .}}<td{{if .Class}} class="{{.Class}}"{{end}}{{if .Title}} title="{{.Title}}"{{end}}>{{.Text}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table>
</div>
{{- if .Caption}}
<p class="caption">{{.Caption}}</p>
{{- end}}
{{- end}}
</section>
<section id="figures">
<h2>Figures</h2>
{{- range .Figures}}
<figure id="{{.Name}}">
{{.SVG}}
<figcaption><strong>{{.Title}}.</strong> {{.Caption}}</figcaption>
</figure>
{{- end}}
</section>
{{- if .Flagged}}
<section id="flagged">
<h2>Flagged runs</h2>
<p class="caption">{{.Rules}}</p>
<div class="table-wrap">
<table class="flagged">
<thead><tr><th class="l">Run</th><th class="l">Setting</th><th class="l">Seed</th><th class="l">Why</th></tr></thead>
<tbody>
{{- range .Flagged}}
<tr><td><code>{{.Run}}</code></td><td>{{.Setting}}</td><td>{{.Seed}}</td><td>{{range $i, $w := .Why}}{{if $i}}; {{end}}{{$w}}{{end}}</td></tr>
{{- end}}
</tbody>
</table>
</div>
</section>
{{- end}}
{{- if .Notes}}
<section id="notes">
<h2>Notes</h2>
<ul class="notes">
{{- range .Notes}}
<li>{{.}}</li>
{{- end}}
</ul>
</section>
{{- end}}
</body>
</html>
`))

// HTML returns the report as one self-contained HTML document: inline CSS
// and inline SVG figures, no scripts, fonts or other external resources.
// It is rendered with html/template, which escapes every text.
func (r *Report) HTML() ([]byte, error) {
	p := page{Title: r.Title, CSS: template.CSS(css), Sources: r.Sources, Intro: r.Intro, Flagged: r.Flagged, Notes: r.Notes, Legend: tableLegend}
	for i := range r.Findings {
		if r.Findings[i].Topic == methodTopic {
			p.Method = &r.Findings[i]
			continue
		}
		p.Findings = append(p.Findings, r.Findings[i])
	}
	if len(r.Flagged) > 0 {
		p.Rules = FlagRules() + " Flagged runs are left out of the means and tests, unless every run of a setting is flagged; the figures draw them in red."
	}
	for i, t := range r.Tables {
		p.Tables = append(p.Tables, viewTable(t, "table-"+strconv.Itoa(i+1)))
	}
	for _, f := range r.Figures {
		p.Figures = append(p.Figures, figureView{Name: f.Name, Title: f.Title, Caption: f.Caption, SVG: template.HTML(inlineSVG(f.SVG))})
	}
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("rendering the report: %w", err)
	}
	return b.Bytes(), nil
}

// viewTable lays a table out for the template: group headers with their
// spans, alignment classes, and a rule before each group.
func viewTable(t Table, anchor string) tableView {
	v := tableView{Anchor: anchor, Title: t.Title, Caption: t.Caption, Class: t.ID}
	classOf := func(j int) string {
		c := t.Columns[j]
		var cls []string
		if c.Left {
			cls = append(cls, "l")
		}
		if j > 0 && c.Group != "" && c.Group != t.Columns[j-1].Group {
			cls = append(cls, "gs")
		}
		return strings.Join(cls, " ")
	}
	grouped := false
	for j := 0; j < len(t.Columns); {
		c := t.Columns[j]
		k := j + 1
		if c.Group != "" {
			grouped = true
			for k < len(t.Columns) && t.Columns[k].Group == c.Group {
				k++
			}
		}
		cls := ""
		if c.Group != "" {
			cls = "grp"
			if j > 0 {
				cls += " gs"
			}
		}
		v.Groups = append(v.Groups, groupView{Title: c.Group, Span: k - j, Class: cls})
		j = k
	}
	if !grouped {
		v.Groups = nil
	}
	for j, c := range t.Columns {
		v.Header = append(v.Header, cellView{Text: c.Name, Class: classOf(j)})
	}
	for _, row := range t.Rows {
		var cells []cellView
		for j, c := range row {
			cls := ""
			if j < len(t.Columns) {
				cls = classOf(j)
			}
			if c.Strong {
				cls = strings.TrimSpace(cls + " strong")
			}
			if c.Muted {
				cls = strings.TrimSpace(cls + " muted")
			}
			cells = append(cells, cellView{Text: c.Text, Class: cls, Title: c.Title})
		}
		v.Rows = append(v.Rows, cells)
	}
	return v
}

// inlineSVG strips the XML prolog and comments that precede an SVG
// document's root element, so that it can sit inside HTML.
func inlineSVG(svg []byte) []byte {
	if i := bytes.Index(svg, []byte("<svg")); i >= 0 {
		svg = svg[i:]
	}
	return append(bytes.TrimSpace(svg), '\n')
}

// writeMarkdown writes the report as Markdown to path and each figure as
// <base>_<figure>.svg in the same directory, every file atomically; the
// figures first, so that the Markdown never names a figure that is not
// there.
func (r *Report) writeMarkdown(path string) error {
	dir := filepath.Dir(path)
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", mdEscape(r.Title))
	if len(r.Sources) > 0 {
		quoted := make([]string, len(r.Sources))
		for i, s := range r.Sources {
			quoted[i] = "`" + s + "`"
		}
		fmt.Fprintf(&b, "Runs from %s.\n\n", strings.Join(quoted, ", "))
	}
	for _, p := range r.Intro {
		b.WriteString(mdEscape(p) + "\n\n")
	}
	if len(r.Findings) > 0 {
		b.WriteString("## Findings\n\n")
		for _, f := range r.Findings {
			fmt.Fprintf(&b, "### %s\n\n", mdEscape(f.Topic))
			for _, l := range f.Lines {
				if l.Verdict != "" {
					b.WriteString("- **" + mdEscape(l.Verdict) + ":** " + mdEscape(l.Text) + "\n")
				} else {
					b.WriteString("- " + mdEscape(l.Text) + "\n")
				}
			}
			b.WriteByte('\n')
		}
	}
	b.WriteString("## Tables\n\n")
	for _, t := range r.Tables {
		fmt.Fprintf(&b, "### %s\n\n", mdEscape(t.Title))
		header := make([]string, len(t.Columns))
		for j, c := range t.Columns {
			header[j] = strings.TrimSpace(c.Group + " " + c.Name)
		}
		b.WriteString("| " + strings.Join(mdCells(header), " | ") + " |\n|")
		for _, c := range t.Columns {
			if c.Left {
				b.WriteString(" --- |")
			} else {
				b.WriteString(" ---: |")
			}
		}
		b.WriteByte('\n')
		for _, row := range t.Rows {
			texts := make([]string, len(row))
			for j, c := range row {
				texts[j] = c.Text
			}
			cells := mdCells(texts)
			for j, c := range row {
				if c.Strong && c.Text != "" {
					cells[j] = "**" + cells[j] + "**"
				}
			}
			b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		}
		if t.Caption != "" {
			b.WriteString("\n" + mdEscape(t.Caption) + "\n")
		}
		b.WriteByte('\n')
	}
	b.WriteString("## Figures\n\n")
	for _, f := range r.Figures {
		file := base + "_" + f.Name + ".svg"
		if err := atomicfile.WriteFile(filepath.Join(dir, file), f.SVG); err != nil {
			return fmt.Errorf("writing figure: %w", err)
		}
		fmt.Fprintf(&b, "![%s](%s)\n\n**%s.** %s\n\n", mdEscape(f.Title), file, mdEscape(f.Title), mdEscape(f.Caption))
	}
	if len(r.Flagged) > 0 {
		b.WriteString("## Flagged runs\n\n" + mdEscape(FlagRules()) + "\n\n")
		for _, f := range r.Flagged {
			fmt.Fprintf(&b, "- `%s` (%s, seed %d): %s\n", f.Run, mdEscape(f.Setting), f.Seed, mdEscape(strings.Join(f.Why, "; ")))
		}
		b.WriteByte('\n')
	}
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			b.WriteString("- " + mdEscape(n) + "\n")
		}
	}
	return writeFile(path, []byte(b.String()))
}

func mdCells(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = strings.ReplaceAll(mdEscape(c), "|", `\|`)
	}
	return out
}

// mdEscape escapes the characters that Markdown would read as emphasis.
func mdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "<", "&lt;", ">", "&gt;").Replace(s)
}
