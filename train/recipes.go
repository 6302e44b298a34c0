package train

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt"
)

// recipeFiles holds the shipped recipes, one JSON file per recipe.
//
//go:embed recipes/*.json
var recipeFiles embed.FS

// recipeDir is the folder of recipeFiles that holds the recipes.
const recipeDir = "recipes"

// Recipe is a named, complete set of training settings shipped with sgt:
// one per experiment of the paper (arXiv 2111.12495; the values and their
// sources are collected in the project's pgt-reference.md), plus practical
// extensions the paper never ran (Extension). Its Config is one trial of the
// experiment; Rows or AlphaGrid list every trial the experiment compares
// (see Trials), and Reference holds the paper's results for them.
//
// Every setting is labelled with its source in Sources, keyed by the JSON
// name of the Config field: "paper: <where>", "authors' code: <where>" (the
// authors' timm fork, bishshoy/power-grad-transform), or "chosen: <reason>"
// for values the sources do not state.
type Recipe struct {
	// Name is the recipe's name, the file name without ".json".
	Name string `json:"name"`
	// Description says in one line what the recipe trains.
	Description string `json:"description"`
	// Paper names the experiment of the paper the recipe reproduces (or,
	// for an extension, says that it is not in the paper).
	Paper string `json:"paper"`
	// Extension marks a recipe for an experiment the paper never ran.
	Extension bool `json:"extension,omitempty"`
	// Notes list known differences from the sources and the choices made
	// where the sources disagree.
	Notes []string `json:"notes,omitempty"`
	// AlphaGrid lists the alphas of an alpha grid experiment, one trial
	// each (Config.Alpha among them). A recipe has AlphaGrid or Rows.
	AlphaGrid []float64 `json:"alpha_grid,omitempty"`
	// Rows are the named trials of the experiment, each a list of settings
	// applied over Config (as flags over the recipe's values, see Apply).
	Rows []Row `json:"rows,omitempty"`
	// Reference holds the paper's results for the experiment's trials.
	Reference []PaperResult `json:"reference,omitempty"`
	// Sources maps the JSON name of every Config field (and "rows" or
	// "alpha_grid" when present) to the source of its value.
	Sources map[string]string `json:"sources"`
	// Config holds every training setting; Config.Recipe is the name.
	Config Config `json:"config"`
}

// Row is one named trial of a recipe's experiment: settings given as flags
// over the recipe's Config.
type Row struct {
	// Name names the trial, e.g. "baseline" or "pgt".
	Name string `json:"name"`
	// Settings are applied over the recipe's Config in order.
	Settings []Setting `json:"settings"`
}

// PaperResult is what the paper reports for one trial of an experiment.
// Percentages are as printed in the paper (e.g. 69.704). A field the paper
// does not state is nil.
type PaperResult struct {
	// Row names the trial (a Row's name, or "alpha=A" for the trial of
	// alpha A of an alpha grid; see NamedTrials).
	Row string `json:"row"`
	// TrainAcc is the paper's "train accuracy" in percent: timm's running
	// top-1 over the epoch on augmented batches in training mode (sgt's
	// train_acc, not train_eval_acc).
	TrainAcc *float64 `json:"train_acc_pct,omitempty"`
	// TestAcc is the top-1 accuracy on the test (ImageNet: validation) set
	// in percent.
	TestAcc *float64 `json:"test_acc_pct,omitempty"`
	// Gap is the paper's generalisation gap, train minus test, in points.
	Gap *float64 `json:"gap_pct,omitempty"`
	// TrainDiff and TestDiff are the paper's differences to the baseline of
	// the same table segment, in points.
	TrainDiff *float64 `json:"train_diff_pct,omitempty"`
	TestDiff  *float64 `json:"test_diff_pct,omitempty"`
	// Loss is a cross-entropy loss the paper states (see Note for which).
	Loss *float64 `json:"loss,omitempty"`
	// LogitNorm is the mean per-image logit norm on the test set.
	LogitNorm *float64 `json:"logit_norm,omitempty"`
	// Source says where the numbers are: table and line, or figure.
	Source string `json:"source"`
	// Approximate marks numbers read off a figure, not printed numbers.
	Approximate bool `json:"approximate,omitempty"`
	// Note qualifies the numbers.
	Note string `json:"note,omitempty"`
}

// Source label prefixes: every entry of Recipe.Sources starts with one.
const (
	SourcePaper      = "paper: "
	SourceAuthorCode = "authors' code: "
	SourceChosen     = "chosen: "
)

// sourcePrefixes lists the accepted source labels.
var sourcePrefixes = []string{SourcePaper, SourceAuthorCode, SourceChosen}

// recipeFile is the on-disk form of a recipe: the settings stay raw until
// every key has been checked.
type recipeFile struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Paper       string            `json:"paper"`
	Extension   bool              `json:"extension"`
	Notes       []string          `json:"notes"`
	AlphaGrid   []float64         `json:"alpha_grid"`
	Rows        []Row             `json:"rows"`
	Reference   []PaperResult     `json:"reference"`
	Sources     map[string]string `json:"sources"`
	Config      json.RawMessage   `json:"config"`
}

// ConfigKeys returns the JSON names of the Config fields a recipe sets, in
// the order of Config's fields: all but "recipe", which comes from the
// recipe's name.
func ConfigKeys() []string {
	var keys []string
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" && name != "recipe" {
			keys = append(keys, name)
		}
	}
	return keys
}

// decodeStrict decodes raw into v, refusing unknown keys and trailing data.
func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// ParseRecipe parses and validates the recipe named name from its JSON
// form: an object with "name" (equal to name), a one-line "description",
// "paper", optionally "extension", "notes", "alpha_grid" or "rows", and
// "reference", then "sources" and "config". The config gives every setting
// of Config (by its JSON name) except "recipe", and sources label every one
// of them (and "rows" or "alpha_grid") with "paper: ", "authors' code: " or
// "chosen: " and a reason. Unknown keys are errors; the settings, and those
// of every trial, must pass Config.Validate; the recipe's own settings must
// be one of its trials; every reference row must name a trial.
func ParseRecipe(name string, raw []byte) (Recipe, error) {
	fail := func(format string, args ...any) (Recipe, error) {
		return Recipe{}, fmt.Errorf("recipe %s: %s", name, fmt.Sprintf(format, args...))
	}
	var f recipeFile
	if err := decodeStrict(raw, &f); err != nil {
		return fail("%v", err)
	}
	if f.Name != name {
		return fail("its \"name\" is %q, want the file's name %q", f.Name, name)
	}
	if strings.TrimSpace(f.Description) == "" || strings.TrimSpace(f.Paper) == "" {
		return fail("\"description\" and \"paper\" must not be empty")
	}
	if strings.Contains(f.Description, "\n") {
		return fail("\"description\" must be one line (details go in \"notes\")")
	}
	if len(f.Config) == 0 {
		return fail("no \"config\" object")
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(f.Config, &keys); err != nil {
		return fail("config: %v", err)
	}
	if _, ok := keys["recipe"]; ok {
		return fail("config must not set \"recipe\": it is the recipe's name")
	}
	var missing []string
	for _, k := range ConfigKeys() {
		if _, ok := keys[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fail("config lacks %s (a recipe gives every setting)", strings.Join(missing, ", "))
	}
	r := Recipe{Name: f.Name, Description: f.Description, Paper: f.Paper, Extension: f.Extension, Notes: f.Notes,
		AlphaGrid: f.AlphaGrid, Rows: f.Rows, Reference: f.Reference, Sources: f.Sources}
	if err := decodeStrict(f.Config, &r.Config); err != nil {
		return fail("config: %v", err)
	}
	r.Config.Recipe = name
	if err := r.Config.Validate(); err != nil {
		return fail("%v", err)
	}
	if err := r.checkSources(); err != nil {
		return fail("%v", err)
	}
	if err := r.checkTrials(); err != nil {
		return fail("%v", err)
	}
	if err := r.checkReference(); err != nil {
		return fail("%v", err)
	}
	return r, nil
}

// checkSources checks that every setting, and the rows or alpha grid, has a
// labelled source, and that nothing else has one.
func (r *Recipe) checkSources() error {
	want := ConfigKeys()
	if len(r.Rows) > 0 {
		want = append(want, "rows")
	}
	if len(r.AlphaGrid) > 0 {
		want = append(want, "alpha_grid")
	}
	var missing []string
	for _, k := range want {
		src, ok := r.Sources[k]
		if !ok {
			missing = append(missing, k)
			continue
		}
		if err := checkSourceLabel(src); err != nil {
			return fmt.Errorf("sources: %s: %w", k, err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("sources lack %s (every value says where it comes from)", strings.Join(missing, ", "))
	}
	for k := range r.Sources {
		if !slices.Contains(want, k) {
			return fmt.Errorf("sources: %q is no setting of the recipe", k)
		}
	}
	return nil
}

// checkSourceLabel checks that src starts with a source label followed by
// text.
func checkSourceLabel(src string) error {
	for _, p := range sourcePrefixes {
		if rest, ok := strings.CutPrefix(src, p); ok {
			if strings.TrimSpace(rest) == "" {
				return fmt.Errorf("%q says nothing after its label", src)
			}
			return nil
		}
	}
	return fmt.Errorf("%q must start with %q, %q or %q", src, SourcePaper, SourceAuthorCode, SourceChosen)
}

// checkTrials checks the alpha grid or rows: each trial's settings must be
// valid, trials distinct, and the recipe's own settings one of them.
func (r *Recipe) checkTrials() error {
	if len(r.Rows) > 0 && len(r.AlphaGrid) > 0 {
		return errors.New("a recipe has rows or an alpha_grid, not both")
	}
	for _, a := range r.AlphaGrid {
		if err := sgt.ValidateAlpha(a); err != nil {
			return fmt.Errorf("alpha_grid: %w", err)
		}
	}
	for i, row := range r.Rows {
		if strings.TrimSpace(row.Name) == "" {
			return fmt.Errorf("rows: row %d has no name", i+1)
		}
		if len(row.Settings) == 0 {
			return fmt.Errorf("rows: row %s has no settings", row.Name)
		}
	}
	trials := r.NamedTrials()
	own := false
	var names []string
	var configs []Config
	for _, tr := range trials {
		if slices.Contains(names, tr.Name) {
			return fmt.Errorf("two trials are named %q", tr.Name)
		}
		cfg, err := r.TrialConfig(tr)
		if err != nil {
			return err
		}
		for i, other := range configs {
			if len(Settings(other, cfg)) == 0 {
				return fmt.Errorf("trials %s and %s have the same settings", names[i], tr.Name)
			}
		}
		names, configs = append(names, tr.Name), append(configs, cfg)
		own = own || len(Settings(r.Config, cfg)) == 0
	}
	if !own {
		if len(r.AlphaGrid) > 0 {
			return fmt.Errorf("alpha %g is not in its alpha_grid %v", r.Config.Alpha, r.AlphaGrid)
		}
		return errors.New("its config is none of its rows: it must run one trial of its experiment")
	}
	return nil
}

// checkReference checks that every reference entry names a trial, once,
// gives a number and a source.
func (r *Recipe) checkReference() error {
	var trials []string
	for _, tr := range r.NamedTrials() {
		trials = append(trials, tr.Name)
	}
	seen := map[string]bool{}
	for _, ref := range r.Reference {
		if !slices.Contains(trials, ref.Row) {
			return fmt.Errorf("reference: row %q is none of the trials %s", ref.Row, strings.Join(trials, ", "))
		}
		if seen[ref.Row] {
			return fmt.Errorf("reference: row %q given twice", ref.Row)
		}
		seen[ref.Row] = true
		if strings.TrimSpace(ref.Source) == "" {
			return fmt.Errorf("reference: row %q has no source", ref.Row)
		}
		if ref.TrainAcc == nil && ref.TestAcc == nil && ref.Gap == nil && ref.Loss == nil && ref.LogitNorm == nil {
			return fmt.Errorf("reference: row %q gives no number", ref.Row)
		}
	}
	return nil
}

// NamedTrials returns the trials of the recipe's experiment: its rows; else
// one per alpha of its alpha grid, named "alpha=A" with the setting
// {alpha, A}; else one trial named "default" with no settings.
func (r Recipe) NamedTrials() []Row {
	if len(r.Rows) > 0 {
		out := make([]Row, len(r.Rows))
		for i, row := range r.Rows {
			out[i] = Row{Name: row.Name, Settings: slices.Clone(row.Settings)}
		}
		return out
	}
	if len(r.AlphaGrid) > 0 {
		out := make([]Row, len(r.AlphaGrid))
		for i, a := range r.AlphaGrid {
			v := strconv.FormatFloat(a, 'g', -1, 64)
			out[i] = Row{Name: "alpha=" + v, Settings: []Setting{{Name: "alpha", Value: v}}}
		}
		return out
	}
	return []Row{{Name: "default"}}
}

// Trials returns the settings of each trial of the recipe's experiment, to
// apply over its Config (see NamedTrials for their names).
func (r Recipe) Trials() [][]Setting {
	var out [][]Setting
	for _, tr := range r.NamedTrials() {
		out = append(out, tr.Settings)
	}
	return out
}

// TrialConfig returns the configuration of one trial: the recipe's Config
// with the trial's settings applied.
func (r Recipe) TrialConfig(trial Row) (Config, error) {
	cfg, err := Apply(r.Config, trial.Settings)
	if err != nil {
		return Config{}, fmt.Errorf("trial %s: %w", trial.Name, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("trial %s: %w", trial.Name, err)
	}
	return cfg, nil
}

// experimentFlags are the settings that tell the paper's experiments and
// their rows apart. ReferenceFor requires a run to agree on them (and on the
// trial's own settings) with a trial; the other settings (learning-rate
// details, seeds, data location and sizes, measurements) may differ.
var experimentFlags = []string{"data", "model", "small-stem", "alpha", "label-smoothing", "epochs", "batch-size",
	"schedule", "milestones", "clip-norm", "agc"}

// ReferenceFor returns the paper's result for the trial of the recipe's
// experiment that cfg runs: the trial whose settings cfg has, and which
// agrees with cfg on the settings that define the experiment (dataset,
// model, alpha, label smoothing, epochs, batch size, schedule, milestones,
// clipping). It reports false when no trial with a reference matches. It
// does not say whether cfg follows the recipe in every other setting:
// compare Settings(trialConfig, cfg) for that.
func (r Recipe) ReferenceFor(cfg Config) (PaperResult, bool) {
	got := FlagSet(&cfg)
	for _, tr := range r.NamedTrials() {
		i := slices.IndexFunc(r.Reference, func(p PaperResult) bool { return p.Row == tr.Name })
		if i < 0 {
			continue
		}
		want, err := r.TrialConfig(tr)
		if err != nil {
			continue
		}
		wantFlags := FlagSet(&want)
		names := slices.Clone(experimentFlags)
		for _, s := range tr.Settings {
			names = append(names, s.Name)
		}
		if !slices.ContainsFunc(names, func(n string) bool {
			return got.Lookup(n).Value.String() != wantFlags.Lookup(n).Value.String()
		}) {
			return r.Reference[i], true
		}
	}
	return PaperResult{}, false
}

// RecipeNames returns the names of the shipped recipes, sorted.
func RecipeNames() []string {
	entries, err := recipeFiles.ReadDir(recipeDir)
	if err != nil {
		return nil // cannot happen: the folder is embedded
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// LookupRecipe returns the shipped recipe of that name, or an error listing
// the known ones.
func LookupRecipe(name string) (Recipe, error) {
	if !slices.Contains(RecipeNames(), name) {
		return Recipe{}, fmt.Errorf("unknown recipe %q (known: %s)", name, strings.Join(RecipeNames(), ", "))
	}
	raw, err := recipeFiles.ReadFile(path.Join(recipeDir, name+".json"))
	if err != nil {
		return Recipe{}, fmt.Errorf("recipe %s: %w", name, err)
	}
	return ParseRecipe(name, raw)
}

// Recipes returns every shipped recipe, sorted by name.
func Recipes() ([]Recipe, error) {
	var out []Recipe
	for _, name := range RecipeNames() {
		r, err := LookupRecipe(name)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
