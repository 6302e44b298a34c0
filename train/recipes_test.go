package train

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/train/optim"
)

// TestShippedRecipes parses and validates every shipped recipe and checks
// that the paper's experiments are all there with their protocol.
func TestShippedRecipes(t *testing.T) {
	recipes, err := Recipes()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Recipe{}
	for _, r := range recipes {
		byName[r.Name] = r
		if r.Config.Recipe != r.Name {
			t.Errorf("%s: Config.Recipe %q", r.Name, r.Config.Recipe)
		}
		if err := r.Config.Validate(); err != nil {
			t.Errorf("%s: %v", r.Name, err)
		}
		if len(r.AlphaGrid) == 0 || !slices.Contains(r.AlphaGrid, r.Config.Alpha) || !slices.Contains(r.AlphaGrid, 1.0) {
			t.Errorf("%s: alpha %g, grid %v: want a grid with the baseline 1 and the recipe's alpha", r.Name, r.Config.Alpha, r.AlphaGrid)
		}
	}
	if names := RecipeNames(); len(names) != len(recipes) || !slices.IsSorted(names) {
		t.Errorf("RecipeNames() = %v", names)
	}
	// The ImageNet rows: step and cosine schedules for five models.
	for _, model := range []string{"resnet18", "resnet50", "resnet101", "seresnet18", "seresnet50"} {
		for _, sched := range []string{optim.ScheduleStep, optim.ScheduleCosine} {
			r, ok := byName["imagenet-"+model+"-"+sched]
			if !ok {
				t.Errorf("no recipe for ImageNet %s with the %s schedule", model, sched)
				continue
			}
			c := r.Config
			if c.Model != model || c.Data != DataImageFolder || c.Epochs != 100 || c.BatchSize != 256 || c.LR != 0.1 ||
				!c.Nesterov || c.Momentum != 0.9 || c.WeightDecay != 5e-4 || c.WarmupEpochs != 5 || c.Schedule != sched {
				t.Errorf("%s: %+v", r.Name, c)
			}
			if sched == optim.ScheduleStep && !slices.Equal(c.Milestones, []int{30, 60, 90}) {
				t.Errorf("%s: milestones %v", r.Name, c.Milestones)
			}
		}
	}
	// The non-normalised ResNet-18 rows: three batch sizes, GC and AGC,
	// with the learning rate scaled linearly.
	for _, bs := range []int{256, 512, 1024} {
		for _, clip := range []string{"gc", "agc"} {
			name := "imagenet-resnet18-nobn-b" + strconv.Itoa(bs) + "-" + clip
			r, ok := byName[name]
			if !ok {
				t.Errorf("no recipe %s", name)
				continue
			}
			c := r.Config
			if c.Model != "resnet18-nobn" || c.BatchSize != bs || c.LR != 0.1*float64(bs)/256 ||
				(clip == "gc") != (c.ClipNorm > 0) || (clip == "agc") != (c.AGC > 0) {
				t.Errorf("%s: %+v", name, c)
			}
		}
	}
	if r, ok := byName["imagenet-resnet50-ls"]; !ok || r.Config.LabelSmoothing != 0.1 || r.Config.Model != "resnet50" {
		t.Errorf("label-smoothing ablation recipe: %+v (found %v)", r.Config, ok)
	}
	if r, ok := byName["cifar10-resnet20"]; !ok || r.Config.Data != "cifar10" || r.Config.Model != "resnet20" || len(r.AlphaGrid) < 5 ||
		!strings.Contains(r.Description, "0.1") {
		t.Errorf("CIFAR-10 grid recipe: %+v (found %v)", r, ok)
	}
	if r, ok := byName["fashion-mnist-resnet20"]; !ok || r.Config.Data != "fashion-mnist" || r.Config.Model != "resnet20" || r.Config.Backend != "cpu" {
		t.Errorf("Fashion-MNIST recipe: %+v (found %v)", r.Config, ok)
	}
}

// recipeJSON returns a valid recipe file for name, changed by edit.
func recipeJSON(t *testing.T, name string, edit func(top, cfg map[string]any)) []byte {
	t.Helper()
	cfg := DefaultConfig()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	c["milestones"] = []int{}
	top := map[string]any{"name": name, "description": "d", "paper": "p", "alpha_grid": []float64{1, 0.5}, "config": c}
	if edit != nil {
		edit(top, c)
	}
	out, err := json.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseRecipeErrors(t *testing.T) {
	if r, err := ParseRecipe("ok", recipeJSON(t, "ok", nil)); err != nil || r.Config.Recipe != "ok" || r.Config.Model != "mlp" {
		t.Fatalf("valid recipe: %+v, %v", r, err)
	}
	cases := []struct {
		name string
		edit func(top, cfg map[string]any)
		want string
	}{
		{"missing setting", func(_, c map[string]any) { delete(c, "weight_decay") }, "weight_decay"},
		{"unknown setting", func(_, c map[string]any) { c["learning_rate"] = 0.1 }, "learning_rate"},
		{"unknown top key", func(top, _ map[string]any) { top["notes"] = "x" }, "notes"},
		{"recipe key", func(_, c map[string]any) { c["recipe"] = "x" }, "recipe"},
		{"bad value", func(_, c map[string]any) { c["alpha"] = -1 }, "--alpha"},
		{"contradiction", func(_, c map[string]any) { c["milestones"] = []int{1} }, "--milestones"},
		{"wrong type", func(_, c map[string]any) { c["epochs"] = "ten" }, "epochs"},
		{"name mismatch", func(top, _ map[string]any) { top["name"] = "other" }, "other"},
		{"no description", func(top, _ map[string]any) { top["description"] = " " }, "description"},
		{"alpha not in grid", func(top, _ map[string]any) { top["alpha_grid"] = []float64{0.5} }, "alpha_grid"},
	}
	for _, tc := range cases {
		_, err := ParseRecipe("r", recipeJSON(t, "r", tc.edit))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "recipe r") {
			t.Errorf("%s: err %v, want an error about recipe r mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, err := ParseRecipe("r", []byte(`{"name":"r"} {}`)); err == nil {
		t.Error("trailing data accepted")
	}
	_, err := LookupRecipe("no-such-recipe")
	if err == nil || !strings.Contains(err.Error(), "no-such-recipe") || !strings.Contains(err.Error(), "fashion-mnist-resnet20") {
		t.Errorf("unknown recipe: err %v, want the name and the known recipes", err)
	}
}
