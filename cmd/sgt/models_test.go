package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/models"
)

// runCLI runs the sgt command line in-process and returns its exit status and outputs.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestModelsCommand(t *testing.T) {
	code, out, errOut := runCLI(t, "models", "--json", "--classes", "1000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Classes int         `json:"classes"`
		Models  []modelInfo `json:"models"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, out)
	}
	if got.Classes != 1000 || len(got.Models) != len(models.Names()) {
		t.Fatalf("classes %d, %d models; want 1000 and %d", got.Classes, len(got.Models), len(models.Names()))
	}
	params := map[string]int{}
	origins := map[string]string{}
	for _, m := range got.Models {
		params[m.Name] = m.Parameters
		origins[m.Name] = m.Origin
		if m.Description == "" || len(m.InputShape) != 3 || (m.Origin == "paper") != (m.Paper != "") {
			t.Errorf("incomplete entry %+v", m)
		}
	}
	for name, want := range map[string]string{
		"resnet18": "paper", "resnet18-nobn": "paper", "resnet18-nobn-skipinit": "extension",
		"resnet20": "paper", "resnet20-nobn": "extension", "seresnet50": "paper", "resnet34": "extension", "mlp": "extension",
	} {
		if origins[name] != want {
			t.Errorf("%s: origin %q, want %q", name, origins[name], want)
		}
	}
	for name, want := range map[string]int{"resnet18": 11689512, "resnet50": 25557032, "seresnet50": 28088024} {
		if params[name] != want {
			t.Errorf("%s: %d parameters with 1000 classes, want %d", name, params[name], want)
		}
	}

	code, out, errOut = runCLI(t, "models")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"mlp ", "203530", "resnet20 ", "269722", "resnet110-nobn", "ORIGIN"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{`(?m)^resnet18-nobn-skipinit +extension `, `(?m)^resnet18-nobn +paper `, `(?m)^  resnet18-nobn: .*resnet18_wobn`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("table does not match %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "resnet20 ") > strings.Index(out, "resnet110 ") {
		t.Error("models are not in natural order (resnet20 before resnet110)")
	}

	for _, args := range [][]string{{"--classes", "0"}, {"--classes", "x"}, {"--bogus"}, {"extra"}} {
		if code, _, _ := runCLI(t, append([]string{"models"}, args...)...); code != 2 {
			t.Errorf("sgt models %v: exit %d, want 2", args, code)
		}
	}
}

func TestNaturalCompare(t *testing.T) {
	names := []string{"resnet110", "resnet20-nobn", "seresnet18", "resnet18", "mlp", "resnet20", "resnet9"}
	slices.SortFunc(names, naturalCompare)
	want := []string{"mlp", "resnet9", "resnet18", "resnet20", "resnet20-nobn", "resnet110", "seresnet18"}
	if !slices.Equal(names, want) {
		t.Errorf("sorted %v, want %v", names, want)
	}
}
