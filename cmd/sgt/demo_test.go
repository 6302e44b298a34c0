package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/experiment"
)

// TestDemoRunsAndGrows runs a tiny demo (the MLP, 1 epoch, a few hundred
// images) and checks its plain progress output; then "sgt demo --seeds 3"
// on the same directory, with no size flag, continues it with the sizes it
// holds (this machine's speed plays no part) and runs only the third seed.
func TestDemoRunsAndGrows(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 12 small runs")
	}
	dir := filepath.Join(t.TempDir(), "demo")
	code, out, errOut := runCLI(t, "demo", "--model", "mlp", "--epochs", "1", "--train-size", "512", "--test-size", "256",
		"--train-eval-size", "256", "--backend", "cpu", "--out", dir)
	if code != 0 {
		t.Fatalf("demo: exit %d: %s\n%s", code, errOut, out)
	}
	if strings.Contains(out, "\033") || strings.Contains(out, "\r") {
		t.Errorf("output to a buffer (not a terminal) holds escape sequences:\n%q", out)
	}
	// The demo trains on Fashion-MNIST where it is installed, else on MNIST.
	data := "mnist"
	if m := regexp.MustCompile(`on 512 (fashion-mnist|mnist) images`).FindStringSubmatch(out); m != nil {
		data = m[1]
	}
	for _, want := range []string{
		"measuring this machine",
		"on this machine: 8 runs of mlp on 512 " + data + " images for 1 epoch, alpha 1,0.3 x label smoothing 0,0.1 x 2 seeds",
		"[1/8] alpha=1_label-smoothing=0_seed=0: starting",
		"[8/8] alpha=0.3_label-smoothing=0.1_seed=1: done in",
		"report written to " + filepath.Join(dir, "report.html"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A line per trial start, per epoch and per end: 3 per trial.
	trialLine := regexp.MustCompile(`(?m)^\[\d/8\] `)
	if n := len(trialLine.FindAllString(out, -1)); n != 3*8 {
		t.Errorf("%d trial lines, want 24 (start, epoch, end of 8 runs):\n%s", n, out)
	}
	if strings.Contains(out, "1 epochs") || strings.Contains(out, "1 runs") {
		t.Errorf("output says \"1 epochs\" or \"1 runs\":\n%s", out)
	}

	code, out, errOut = runCLI(t, "demo", "--seeds", "3", "--out", dir)
	if code != 0 {
		t.Fatalf("demo --seeds 3: exit %d: %s\n%s", code, errOut, out)
	}
	if !strings.Contains(out, "continuing the demo in "+dir+" (12 runs of mlp on 512 "+data+" images for 1 epoch; 8 of 12 runs done)") {
		t.Errorf("demo --seeds 3 does not say it continues the demo with its sizes:\n%s", out)
	}
	if n := strings.Count(out, "already done, skipped"); n != 8 {
		t.Errorf("%d trials skipped, want 8:\n%s", n, out)
	}
	if n := strings.Count(out, ": starting"); n != 4 {
		t.Errorf("%d trials started, want the 4 of seed 2:\n%s", n, out)
	}
	if !strings.Contains(out, "[12/12] alpha=0.3_label-smoothing=0.1_seed=2: done in") {
		t.Errorf("the last new trial is not numbered 12 of 12:\n%s", out)
	}
	m, err := experiment.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := 0
	for _, tr := range m.Trials {
		if tr.State == experiment.StateDone {
			done++
		}
		if tr.Config.TrainSize != 512 || tr.Config.Epochs != 1 || tr.Config.Model != "mlp" {
			t.Errorf("trial %s: train size %d, %d epochs, model %s; want the demo's 512, 1, mlp", tr.Name, tr.Config.TrainSize, tr.Config.Epochs, tr.Config.Model)
		}
	}
	if len(m.Trials) != 12 || done != 12 {
		t.Errorf("manifest: %d trials, %d done; want 12 done", len(m.Trials), done)
	}

	// Everything done: the report again, nothing measured or trained.
	code, out, errOut = runCLI(t, "demo", "--seeds", "3", "--out", dir)
	if code != 0 || strings.Contains(out, "measuring") || strings.Contains(out, ": starting") || !strings.Contains(out, "every run of the demo") {
		t.Errorf("demo on a finished directory: exit %d, %s\n%s", code, errOut, out)
	}

	// --full starts every run from the full demo's recipe; sizes given
	// explicitly are kept (2 epochs: the recipe warms up for one).
	full := filepath.Join(t.TempDir(), "full")
	code, out, errOut = runCLI(t, "demo", "--full", "--model", "mlp", "--epochs", "2", "--train-size", "512", "--test-size", "256",
		"--train-eval-size", "256", "--seeds", "1", "--out", full)
	if code != 0 {
		t.Fatalf("demo --full: exit %d: %s\n%s", code, errOut, out)
	}
	m, err = experiment.ReadManifest(full)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Trials) != 4 {
		t.Errorf("demo --full --seeds 1: %d trials, want 4", len(m.Trials))
	}
	for _, tr := range m.Trials {
		if tr.Config.Recipe != experiment.FullDemoRecipe || tr.Config.Augment != "pad-crop-flip" || tr.Config.TrainSize != 512 {
			t.Errorf("demo --full trial %s: recipe %q, augment %q, train size %d; want the recipe's augmentation and the given size",
				tr.Name, tr.Config.Recipe, tr.Config.Augment, tr.Config.TrainSize)
		}
	}

	// A directory holding another grid is refused, naming --out.
	other := filepath.Join(t.TempDir(), "grid")
	if code, _, errOut := runCLI(t, "grid", "--data", "mnist", "--model", "mlp", "--epochs", "1", "--train-size", "256", "--test-size", "128",
		"--alpha", "1,0.5", "--out", other); code != 0 {
		t.Fatalf("grid: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "demo", "--out", other); code != 2 || !strings.Contains(errOut, "--out") || !strings.Contains(errOut, "not a demo") {
		t.Errorf("demo on a grid directory: exit %d, %q; want exit 2 naming --out", code, errOut)
	}
}

// TestBackendWithoutConvGradient checks that a backend lacking the ops of a
// convolution's gradient (GoMLX's pure-Go "go" lacks Reverse) is refused
// before anything runs, with an error naming --backend and the model, by
// "sgt train" (which writes no run directory) and by "sgt demo".
func TestBackendWithoutConvGradient(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, _, errOut := runCLI(t, "train", "--data", "mnist", "--model", "resnet20", "--epochs", "1", "--train-size", "256",
		"--test-size", "128", "--backend", "go", "--out", dir)
	if code != 2 || !strings.Contains(errOut, "--backend") || !strings.Contains(errOut, "resnet20") || !strings.Contains(errOut, "Reverse") {
		t.Errorf("train --backend go --model resnet20: exit %d, %q; want exit 2 naming --backend, the model and the op", code, errOut)
	}
	if strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
		t.Errorf("the error is not one line: %q", errOut)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("train --backend go wrote %s (%v)", dir, err)
	}
	demo := filepath.Join(t.TempDir(), "demo")
	code, _, errOut = runCLI(t, "demo", "--backend", "go", "--out", demo)
	if code != 2 || !strings.Contains(errOut, "--backend") || !strings.Contains(errOut, "resnet20") {
		t.Errorf("demo --backend go: exit %d, %q; want exit 2 naming --backend and the model", code, errOut)
	}
	if _, err := os.Stat(demo); !os.IsNotExist(err) {
		t.Errorf("demo --backend go wrote %s (%v)", demo, err)
	}
	// The MLP has no convolution: it trains on the go backend.
	if code, _, errOut := runCLI(t, "train", "--data", "mnist", "--model", "mlp", "--epochs", "1", "--train-size", "256",
		"--test-size", "128", "--backend", "go", "--quiet"); code != 0 {
		t.Errorf("train --backend go --model mlp: exit %d, %s", code, errOut)
	}
}
