package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sgt-dev/sgt/train"
)

func init() {
	register("recipes", "list the training recipes shipped with sgt (the paper's experiments); \"sgt recipes NAME\" shows one with the source of every value", runRecipes)
}

// runRecipes implements "sgt recipes [--json] [NAME]": the shipped recipes
// one per line, or one recipe in full (every setting with its source, its
// trials and the paper's results), or with --json the same as JSON.
func runRecipes(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("recipes", stderr)
	asJSON := fs.Bool("json", false, "print as JSON: every recipe (or the named one) with its settings, sources, trials and reference results")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: sgt recipes [--json] [NAME]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, true); err != nil {
		return err
	}
	name := ""
	if fs.NArg() > 0 {
		// Flags may also follow the name: sgt recipes NAME --json.
		name = fs.Arg(0)
		if err := parseFlags(fs, fs.Args()[1:], false); err != nil {
			return err
		}
	}
	if name != "" {
		r, err := train.LookupRecipe(name)
		if err != nil {
			return usageError{err}
		}
		if *asJSON {
			return writeJSON(stdout, r)
		}
		return printRecipe(stdout, r)
	}
	recipes, err := train.Recipes()
	if err != nil {
		return fmt.Errorf("reading the shipped recipes: %w", err)
	}
	if *asJSON {
		return writeJSON(stdout, recipes)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSUMMARY")
	for _, r := range recipes {
		summary := r.Description
		if r.Extension {
			summary = "[extension, not in the paper] " + summary
		}
		fmt.Fprintf(tw, "%s\t%s\n", r.Name, summary)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nEvery value with its source: sgt recipes NAME.")
	fmt.Fprintln(stdout, "Run one with \"sgt train --recipe NAME [flags]\": flags given explicitly override its settings.")
	return nil
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printRecipe prints one recipe in full: what it is, its notes, every
// setting with its value and source, its trials and the paper's results.
func printRecipe(w io.Writer, r train.Recipe) error {
	fmt.Fprintf(w, "%s\n  %s\n  paper: %s\n", r.Name, r.Description, r.Paper)
	if r.Extension {
		fmt.Fprintln(w, "  extension: not an experiment of the paper")
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
	raw, err := json.Marshal(r.Config)
	if err != nil {
		return err
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(raw, &values); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nSettings (config key, value, source):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range train.ConfigKeys() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", k, settingText(values[k]), r.Sources[k])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	trials := r.NamedTrials()
	switch {
	case len(r.Rows) > 0:
		fmt.Fprintf(w, "\nTrials (rows; %s):\n", r.Sources["rows"])
	case len(r.AlphaGrid) > 0:
		fmt.Fprintf(w, "\nTrials (alpha grid; %s):\n", r.Sources["alpha_grid"])
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, tr := range trials {
		fmt.Fprintf(tw, "  %s\t%s\n", tr.Name, flagsText(tr.Settings))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Reference) > 0 {
		fmt.Fprintln(w, "\nThe paper's results (percent; train: running top-1 on augmented batches; diffs: against the segment's baseline):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  trial\ttrain\ttest\tgap\ttrain diff\ttest diff\tloss\tlogit norm\tsource")
		for _, p := range r.Reference {
			src := p.Source
			if p.Approximate {
				src = "approximate: " + src
			}
			if p.Note != "" {
				src += " (" + p.Note + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Row, numText(p.TrainAcc), numText(p.TestAcc), numText(p.Gap),
				numText(p.TrainDiff), numText(p.TestDiff), numText(p.Loss), numText(p.LogitNorm), src)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	dataDir := ""
	if r.Config.Data == train.DataImageFolder {
		dataDir = " --data-dir IMAGENET"
	}
	fmt.Fprintf(w, "\nRun a trial: sgt train --recipe %s%s --out DIR [the trial's flags]\n", r.Name, dataDir)
	return nil
}

// settingText shows a setting's JSON value, strings without quotes.
func settingText(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return `""`
		}
		return s
	}
	if len(raw) == 0 {
		return "[]" // an omitted empty list
	}
	return string(raw)
}

// flagsText writes settings as command-line flags.
func flagsText(settings []train.Setting) string {
	if len(settings) == 0 {
		return "(the recipe's settings)"
	}
	parts := make([]string, len(settings))
	for i, s := range settings {
		parts[i] = "--" + s.Name + " " + s.Value
	}
	return strings.Join(parts, " ")
}

// numText shows an optional number, "-" when absent.
func numText(x *float64) string {
	if x == nil {
		return "-"
	}
	return strconv.FormatFloat(*x, 'g', -1, 64)
}
