package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/sgt-dev/sgt/report"
)

func init() {
	register("report", "tables and figures of runs, grids and searches as self-contained HTML or Markdown", runReport)
}

const reportUsage = `Usage: sgt report DIR... --out FILE.html|FILE.md [flags]

Each DIR is a grid or search directory (grid.json), a run directory
(metrics.csv) or a directory holding those. The report has the paper's tables:
baseline (alpha = 1) against SGT per alpha with train/test accuracy and their
differences, and the label-smoothing ablation with the generalisation gap;
every number is mean ± standard deviation over seeds, and every difference says
whether it exceeds the seed-to-seed noise (two-sided Welch t-test, p < 0.05).
Figures: the transform on example distributions, accuracy against epoch,
test accuracy, loss, logit norm and gap against alpha, loss against logit
norm with a least-squares line, and per-filter weight norms (filter_norms.csv);
figures without data are skipped with a note. An .html report is one
self-contained file; an .md report writes its SVG figures beside it.

Flags:
`

// runReport implements "sgt report".
func runReport(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", stderr)
	out := fs.String("out", "", "report file, ending in .html or .md (required)")
	title := fs.String("title", "", "report title")
	logLog := fs.Bool("loglog", false, "draw accuracy against epoch on log-log axes")
	layers := fs.String("layers", "", "comma-separated layers for the filter-norm figures (default: the first and last layer)")
	quiet := fs.Bool("quiet", false, "do not print the tables")
	fs.Usage = func() {
		fmt.Fprint(stderr, reportUsage)
		fs.PrintDefaults()
	}
	dirs, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return usagef("no run directories given (see sgt report -h)")
	}
	if *out == "" {
		return usagef("--out is required (a .html or .md file)")
	}
	if !strings.HasSuffix(strings.ToLower(*out), ".html") && !strings.HasSuffix(strings.ToLower(*out), ".htm") && !strings.HasSuffix(strings.ToLower(*out), ".md") {
		return usagef("--out %s: the report file must end in .html or .md", *out)
	}
	opts := report.Options{Title: *title, LogLog: *logLog}
	if *layers != "" {
		opts.Layers = strings.Split(*layers, ",")
	}
	rep, err := report.Build(dirs, opts)
	if err != nil {
		return usageError{err}
	}
	if err := rep.Write(*out); err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprint(stdout, rep.Text())
	}
	fmt.Fprintf(stdout, "report written to %s (%d tables, %d figures)\n", *out, len(rep.Tables), len(rep.Figures))
	return nil
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, and returns the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args, true); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if rest[0] == "--" {
			return append(positional, rest[1:]...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
