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

const reportUsage = `Usage: sgt report DIR... [--out FILE.html|FILE.md] [flags]

Each DIR is a grid or search directory (grid.json), a run directory
(metrics.csv) or a directory holding those. The report has the paper's tables:
baseline (alpha = 1) against SGT per alpha with train/test accuracy and their
differences, the label-smoothing ablation with the generalisation gap, and what
SGT changes inside the network (logit norm, training loss, training fit,
zeroed filters). Every number is mean ± sample standard deviation over seeds;
every difference has its two-sided Welch t-test p-value and says whether it
exceeds the seed-to-seed noise (p < 0.05). Its findings say in words which
differences do, and how many seeds a difference of the observed size would
need. Runs that failed, collapsed or did not learn are flagged and left out of
the means. Runs from a recipe (sgt grid --recipe) are shown beside the paper's
numbers, saying whether they followed the full protocol.

Figures: the transform on example distributions, accuracy against epoch with
every seed, the final values against alpha, the paper's curves beside ours,
loss against logit norm with a least-squares line per label smoothing, and
per-filter weight norms (filter_norms.csv); figures without data are skipped
with a note. An .html report is one self-contained file; an .md report writes
its SVG figures beside it. Without --out the tables and findings are printed.

Flags:
`

// runReport implements "sgt report".
func runReport(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", stderr)
	out := fs.String("out", "", "report file, ending in .html or .md (default: print the tables and findings only)")
	title := fs.String("title", "", "report title")
	logLog := fs.Bool("loglog", false, "draw accuracy against epoch on log-log axes")
	layers := fs.String("layers", "", "comma-separated layers for the filter-norm figures (default: the first and last layer)")
	quiet := fs.Bool("quiet", false, "do not print the tables (with --out)")
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
	if *out != "" && !strings.HasSuffix(strings.ToLower(*out), ".html") && !strings.HasSuffix(strings.ToLower(*out), ".htm") && !strings.HasSuffix(strings.ToLower(*out), ".md") {
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
	if *out == "" {
		fmt.Fprint(stdout, rep.Text())
		return nil
	}
	if err := rep.Write(*out); err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprint(stdout, rep.Text())
	}
	fmt.Fprintf(stdout, "report written to %s (%s, %s)\n", *out, plural(len(rep.Tables), "table"), plural(len(rep.Figures), "figure"))
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
