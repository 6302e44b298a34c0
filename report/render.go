package report

import (
	"bytes"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"strings"
)

// Write writes the report to path: a self-contained HTML file when path
// ends in .html or .htm, Markdown with the figures as SVG files beside it
// when it ends in .md.
func (r *Report) Write(path string) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".html", ".htm":
		return writeFile(path, r.HTML())
	case ".md", ".markdown":
		return r.writeMarkdown(path)
	default:
		return fmt.Errorf("report file %s: unknown format (want a name ending in .html or .md)", path)
	}
}

func writeFile(path string, data []byte) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

// Text returns the report's tables and notes as plain text for a terminal.
func (r *Report) Text() string {
	var b strings.Builder
	for _, t := range r.Tables {
		b.WriteString(t.Title + "\n\n")
		b.WriteString(textTable(t))
		if t.Caption != "" {
			b.WriteString(t.Caption + "\n")
		}
		b.WriteByte('\n')
	}
	for _, n := range r.Notes {
		b.WriteString("note: " + n + "\n")
	}
	return b.String()
}

const css = `body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child,td:last-child{text-align:left}
caption{caption-side:bottom;text-align:left;font-size:.9rem;color:#555;padding-top:.3rem}
figure{margin:1.5rem 0}figure svg{max-width:100%;height:auto}figcaption{font-size:.9rem;color:#555}
.notes li{color:#555;font-size:.9rem}code{background:#f5f5f5;padding:0 .2rem}`

// HTML returns the report as one self-contained HTML document: inline CSS
// and inline SVG figures, no scripts, fonts or other external resources.
func (r *Report) HTML() []byte {
	var b bytes.Buffer
	esc := html.EscapeString
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	fmt.Fprintf(&b, "<title>%s</title>\n<style>\n%s\n</style>\n</head>\n<body>\n", esc(r.Title), css)
	fmt.Fprintf(&b, "<h1>%s</h1>\n", esc(r.Title))
	if len(r.Sources) > 0 {
		quoted := make([]string, len(r.Sources))
		for i, s := range r.Sources {
			quoted[i] = "<code>" + esc(s) + "</code>"
		}
		fmt.Fprintf(&b, "<p>Runs from %s.</p>\n", strings.Join(quoted, ", "))
	}
	for _, p := range r.Intro {
		fmt.Fprintf(&b, "<p>%s</p>\n", esc(p))
	}
	b.WriteString("<h2>Tables</h2>\n")
	for _, t := range r.Tables {
		fmt.Fprintf(&b, "<h3>%s</h3>\n<table id=\"%s\">\n", esc(t.Title), esc(t.ID))
		if t.Caption != "" {
			fmt.Fprintf(&b, "<caption>%s</caption>\n", esc(t.Caption))
		}
		b.WriteString("<thead><tr>")
		for _, h := range t.Header {
			fmt.Fprintf(&b, "<th>%s</th>", esc(h))
		}
		b.WriteString("</tr></thead>\n<tbody>\n")
		for _, row := range t.Rows {
			b.WriteString("<tr>")
			for _, c := range row {
				fmt.Fprintf(&b, "<td>%s</td>", esc(c))
			}
			b.WriteString("</tr>\n")
		}
		b.WriteString("</tbody>\n</table>\n")
	}
	b.WriteString("<h2>Figures</h2>\n")
	for _, f := range r.Figures {
		fmt.Fprintf(&b, "<figure id=\"%s\">\n", esc(f.Name))
		b.Write(inlineSVG(f.SVG))
		fmt.Fprintf(&b, "<figcaption><strong>%s.</strong> %s</figcaption>\n</figure>\n", esc(f.Title), esc(f.Caption))
	}
	if len(r.Notes) > 0 {
		b.WriteString("<h2>Notes</h2>\n<ul class=\"notes\">\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "<li>%s</li>\n", esc(n))
		}
		b.WriteString("</ul>\n")
	}
	b.WriteString("</body>\n</html>\n")
	return b.Bytes()
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
// <base>_<figure>.svg in the same directory.
func (r *Report) writeMarkdown(path string) error {
	dir := filepath.Dir(path)
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", r.Title)
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
	b.WriteString("## Tables\n\n")
	for _, t := range r.Tables {
		fmt.Fprintf(&b, "### %s\n\n", mdEscape(t.Title))
		b.WriteString("| " + strings.Join(mdCells(t.Header), " | ") + " |\n|")
		for i := range t.Header {
			if i == 0 || i == len(t.Header)-1 {
				b.WriteString(" --- |")
			} else {
				b.WriteString(" ---: |")
			}
		}
		b.WriteByte('\n')
		for _, row := range t.Rows {
			b.WriteString("| " + strings.Join(mdCells(row), " | ") + " |\n")
		}
		if t.Caption != "" {
			b.WriteString("\n" + mdEscape(t.Caption) + "\n")
		}
		b.WriteByte('\n')
	}
	b.WriteString("## Figures\n\n")
	for _, f := range r.Figures {
		file := base + "_" + f.Name + ".svg"
		if err := os.WriteFile(filepath.Join(dir, file), f.SVG, 0o644); err != nil {
			return fmt.Errorf("writing figure: %w", err)
		}
		fmt.Fprintf(&b, "![%s](%s)\n\n**%s.** %s\n\n", mdEscape(f.Title), file, mdEscape(f.Title), mdEscape(f.Caption))
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
