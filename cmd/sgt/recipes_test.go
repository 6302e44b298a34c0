package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/train"
)

func TestRecipesCommand(t *testing.T) {
	names := train.RecipeNames()
	if len(names) == 0 {
		t.Fatal("no recipes shipped")
	}
	var out, errb bytes.Buffer
	if code := run([]string{"recipes"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	for _, name := range names {
		r, err := train.LookupRecipe(name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), name+"\n") || !strings.Contains(out.String(), r.Description) {
			t.Errorf("listing lacks recipe %s or its description", name)
		}
	}
	out.Reset()
	if code := run([]string{"recipes", "--json"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("--json: exit %d, stderr %s", code, errb.String())
	}
	var got []train.Recipe
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("--json output: %v", err)
	}
	want, err := train.Recipes()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("--json: %d recipes, want %d", len(got), len(want))
	}
	for i := range got {
		a, _ := json.Marshal(got[i])
		b, _ := json.Marshal(want[i])
		if string(a) != string(b) {
			t.Errorf("--json recipe %d:\n%s\nwant\n%s", i, a, b)
		}
	}
	errb.Reset()
	if code := run([]string{"recipes", "--yaml"}, strings.NewReader(""), &out, &errb); code != 2 || !strings.Contains(errb.String(), "yaml") {
		t.Errorf("bad flag: exit %d, stderr %q", code, errb.String())
	}
}
