package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/train"
)

func init() {
	register("recipes", "list the training recipes shipped with sgt, one per experiment of the paper", runRecipes)
}

// runRecipes implements "sgt recipes": the shipped recipes with their
// descriptions, or with --json every recipe with all its settings.
func runRecipes(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("recipes", stderr)
	asJSON := fs.Bool("json", false, "print the recipes, with every setting, as a JSON array")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	recipes, err := train.Recipes()
	if err != nil {
		return fmt.Errorf("reading the shipped recipes: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(recipes)
	}
	for _, r := range recipes {
		c := r.Config
		alphas := make([]string, len(r.AlphaGrid))
		for i, a := range r.AlphaGrid {
			alphas[i] = strconv.FormatFloat(a, 'g', -1, 64)
		}
		fmt.Fprintf(stdout, "%s\n    %s on %s, %d epochs, batch %d, alpha %g (compared: %s)\n    %s\n    paper: %s\n\n",
			r.Name, c.Model, c.Data, c.Epochs, c.BatchSize, c.Alpha, strings.Join(alphas, ", "), r.Description, r.Paper)
	}
	fmt.Fprintln(stdout, "Run one with \"sgt train --recipe NAME [flags]\": flags given explicitly override its settings.")
	fmt.Fprintln(stdout, "Vary alpha with \"sgt grid --recipe NAME --alpha 1,0.3 --out DIR\".")
	return nil
}
