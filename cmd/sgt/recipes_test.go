package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/train"
)

// TestRecipesCommand checks "sgt recipes": one line per recipe with its
// summary and extensions marked; the JSON form holds every recipe.
func TestRecipesCommand(t *testing.T) {
	recipes, err := train.Recipes()
	if err != nil || len(recipes) == 0 {
		t.Fatalf("shipped recipes: %d, %v", len(recipes), err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"recipes"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	for _, r := range recipes {
		i := strings.Index(out.String(), "\n"+r.Name+" ")
		if i < 0 {
			t.Errorf("listing lacks recipe %s", r.Name)
			continue
		}
		line, _, _ := strings.Cut(out.String()[i+1:], "\n")
		if !strings.HasSuffix(line, r.Description) {
			t.Errorf("%s: line %q lacks the summary %q", r.Name, line, r.Description)
		}
		if strings.Contains(line, "[extension") != r.Extension {
			t.Errorf("%s (extension %v): line %q", r.Name, r.Extension, line)
		}
	}
	if len(lines) < len(recipes)+1 {
		t.Errorf("listing has %d lines for %d recipes", len(lines), len(recipes))
	}

	out.Reset()
	if code := run([]string{"recipes", "--json"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("--json: exit %d, stderr %s", code, errb.String())
	}
	var got []train.Recipe
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("--json output: %v", err)
	}
	if len(got) != len(recipes) {
		t.Fatalf("--json: %d recipes, want %d", len(got), len(recipes))
	}
	for i := range got {
		a, _ := json.Marshal(got[i])
		b, _ := json.Marshal(recipes[i])
		if string(a) != string(b) {
			t.Errorf("--json recipe %d:\n%s\nwant\n%s", i, a, b)
		}
	}
	errb.Reset()
	if code := run([]string{"recipes", "--yaml"}, strings.NewReader(""), &out, &errb); code != 2 || !strings.Contains(errb.String(), "yaml") {
		t.Errorf("bad flag: exit %d, stderr %q", code, errb.String())
	}
}

// TestRecipesCommandOne checks "sgt recipes NAME": every setting with its
// value and source, the trials as flags, and the paper's results.
func TestRecipesCommandOne(t *testing.T) {
	const name = "imagenet-resnet50-ls-ablation"
	r, err := train.LookupRecipe(name)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"recipes", name}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	text := out.String()
	for _, k := range train.ConfigKeys() {
		i := strings.Index(text, "\n  "+k+" ")
		if i < 0 {
			t.Errorf("no line for setting %s", k)
			continue
		}
		line, _, _ := strings.Cut(text[i+1:], "\n")
		if !strings.HasSuffix(line, r.Sources[k]) {
			t.Errorf("setting %s: line %q lacks its source %q", k, line, r.Sources[k])
		}
	}
	for _, want := range []string{
		"  lr                  0.4 ", "  min_lr              0.0004 ", "  lr_update           epoch ", // values
		"step-pgt0.3", "--schedule step --milestones 30,60,90 --label-smoothing 0 --alpha 0.3", // a trial
		"76.494", "3.066", "tab:ablation_table", // its reference
		r.Notes[0],
	} {
		if !strings.Contains(text, want) {
			t.Errorf("sgt recipes %s lacks %q:\n%s", name, want, text)
		}
	}
	// --json after the name gives that recipe alone.
	out.Reset()
	if code := run([]string{"recipes", name, "--json"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("NAME --json: exit %d, stderr %s", code, errb.String())
	}
	var one train.Recipe
	if err := json.Unmarshal(out.Bytes(), &one); err != nil || one.Name != name || len(one.Rows) != 8 || len(one.Sources) != len(r.Sources) {
		t.Errorf("NAME --json: %+v, %v", one, err)
	}
	// An extension says so.
	out.Reset()
	if code := run([]string{"recipes", "fashion-mnist-resnet20"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "extension") {
		t.Errorf("extension: exit %d, output %s", code, out.String())
	}
	errb.Reset()
	if code := run([]string{"recipes", "no-such-recipe"}, strings.NewReader(""), &out, &errb); code != 2 || !strings.Contains(errb.String(), "no-such-recipe") {
		t.Errorf("unknown recipe: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"recipes", name, "extra"}, strings.NewReader(""), &out, &errb); code != 2 || !strings.Contains(errb.String(), "extra") {
		t.Errorf("two names: exit %d, stderr %q", code, errb.String())
	}
}
