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
// one per experiment of the paper (the ImageNet ResNet and SE-ResNet rows,
// the non-normalised ResNet-18 rows, the label-smoothing ablation, the
// CIFAR-10 ResNet-20 alpha grid), plus small practical ones. A recipe runs
// one alpha; AlphaGrid lists the values the experiment compares.
type Recipe struct {
	// Name is the recipe's name, the file name without ".json".
	Name string `json:"name"`
	// Description says what the recipe trains and how.
	Description string `json:"description"`
	// Paper names the experiment of the paper the recipe reproduces.
	Paper string `json:"paper"`
	// AlphaGrid lists the alphas the experiment compares (Config.Alpha
	// among them); vary it with "sgt grid --recipe NAME --alpha ...".
	AlphaGrid []float64 `json:"alpha_grid,omitempty"`
	// Config holds every training setting; Config.Recipe is the name.
	Config Config `json:"config"`
}

// recipeFile is the on-disk form of a recipe: the settings stay raw until
// every key has been checked.
type recipeFile struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Paper       string          `json:"paper"`
	AlphaGrid   []float64       `json:"alpha_grid"`
	Config      json.RawMessage `json:"config"`
}

// configKeys returns the JSON keys of every Config field that a recipe must
// set: all but "recipe", which comes from the recipe's name.
func configKeys() []string {
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
// form: an object with "name" (equal to name), "description", "paper",
// optionally "alpha_grid", and "config" giving every setting of Config
// (by its JSON name) except "recipe". Unknown keys are errors, and the
// settings must pass Config.Validate.
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
	for _, k := range configKeys() {
		if _, ok := keys[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fail("config lacks %s (a recipe gives every setting)", strings.Join(missing, ", "))
	}
	r := Recipe{Name: f.Name, Description: f.Description, Paper: f.Paper, AlphaGrid: f.AlphaGrid}
	if err := decodeStrict(f.Config, &r.Config); err != nil {
		return fail("config: %v", err)
	}
	r.Config.Recipe = name
	if err := r.Config.Validate(); err != nil {
		return fail("%v", err)
	}
	for _, a := range r.AlphaGrid {
		if err := sgt.ValidateAlpha(a); err != nil {
			return fail("alpha_grid: %v", err)
		}
	}
	if len(r.AlphaGrid) > 0 && !slices.Contains(r.AlphaGrid, r.Config.Alpha) {
		return fail("alpha %g is not in its alpha_grid %v", r.Config.Alpha, r.AlphaGrid)
	}
	return r, nil
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
