package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/data"
	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train"
	"github.com/sgt-dev/sgt/train/optim"
)

// runTrainCmd runs "sgt train args..." and returns the exit status and outputs.
func runTrainCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	var out, errb bytes.Buffer
	code = run(append([]string{"train"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestTrainFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		flag string // must appear in the error message
	}{
		{[]string{"--alpha", "-1"}, "--alpha"},
		{[]string{"--alpha", "NaN"}, "--alpha"},
		{[]string{"--label-smoothing", "1"}, "--label-smoothing"},
		{[]string{"--epochs", "0"}, "--epochs"},
		{[]string{"--batch-size", "0"}, "--batch-size"},
		{[]string{"--lr", "0"}, "--lr"},
		{[]string{"--lr", "abc"}, "-lr"},
		{[]string{"--momentum", "1.5"}, "--momentum"},
		{[]string{"--weight-decay", "-1"}, "--weight-decay"},
		{[]string{"--schedule", "linear"}, "--schedule"},
		{[]string{"--milestones", "2"}, "--milestones"},
		{[]string{"--schedule", "step", "--epochs", "3", "--milestones", "5"}, "--milestones"},
		{[]string{"--milestones", "a,b"}, "-milestones"},
		{[]string{"--warmup-epochs", "1"}, "--warmup-epochs"},
		{[]string{"--model", "no-such-model"}, "--model"},
		{[]string{"--data", "no-such-data"}, "--data"},
		{[]string{"--data-dir", "/nonexistent/sgt-test"}, "--data-dir"},
		{[]string{"--train-size", "-5"}, "--train-size"},
		{[]string{"--train-size", "100"}, "--train-size"},
		{[]string{"--test-size", "99999"}, "--test-size"},
		{[]string{"--clip-norm", "-1"}, "--clip-norm"},
		{[]string{"--agc", "0.1", "--clip-norm", "1"}, "--agc"},
		{[]string{"--keep-checkpoints", "0"}, "--keep-checkpoints"},
		{[]string{"--augment", "mixup"}, "--augment"},
		{[]string{"--resume", "x", "--alpha", "0.5"}, "--alpha"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"stray"}, "stray"},
		{[]string{"--backend", "no-such-backend", "--train-size", "128", "--test-size", "10"}, "--backend"},
		{[]string{"--image-size", "64"}, "--image-size"},
		{[]string{"--data", "imagefolder"}, "--data-dir"},
		{[]string{"--data", "imagefolder", "--data-dir", "/nonexistent/sgt-test"}, "--data-dir"},
		{[]string{"--augment", "random-resized-crop"}, "--augment"},
		{[]string{"--train-eval-size", "-1"}, "--train-eval-size"},
		{[]string{"--zero-threshold", "-1"}, "--zero-threshold"},
		{[]string{"--filter-norms-every", "-5"}, "--filter-norms-every"},
		{[]string{"--recipe", "no-such-recipe"}, "--recipe"},
		{[]string{"--recipe", "no-such-recipe"}, "fashion-mnist-resnet20"}, // the known recipes are listed
		{[]string{"--recipe", "fashion-mnist-resnet20", "--resume", "x"}, "--recipe"},
		{[]string{"--resume", "x", "--force"}, "--force"},
		{[]string{"--recipe", "cifar10-resnet20", "--milestones", "200"}, "--milestones"},
		{[]string{"--recipe", "cifar10-resnet20", "--schedule", "step", "--milestones", ""}, "--milestones"},
		{[]string{"--recipe", "imagenet-resnet50-step", "--model", "resnet7"}, "--model"},
		// --clip-norm replaces the recipe's adaptive clipping: what is left
		// to complain about is the missing image folder.
		{[]string{"--recipe", "imagenet-resnet18-nobn-b256-agc", "--clip-norm", "1"}, "--data-dir"},
		{[]string{"--recipe", "imagenet-resnet18-nobn-b256-agc", "--clip-norm", "1", "--agc", "0.1"}, "--agc"},
	}
	for _, tc := range cases {
		code, _, stderr := runTrainCmd(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.flag) {
			t.Errorf("sgt train %s: exit %d, stderr %q; want exit 2 naming %s", strings.Join(tc.args, " "), code, stderr, tc.flag)
		}
	}
}

func TestTrainCommandRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	args := []string{"--train-size", "640", "--test-size", "300", "--batch-size", "64", "--alpha", "0.5", "--out", dir, "--quiet"}
	code, stdout, stderr := runTrainCmd(t, args...)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	if !strings.Contains(stdout, "test accuracy") || stderr != "" {
		t.Errorf("stdout %q, stderr %q", stdout, stderr)
	}
	rows, err := rundir.ReadMetrics(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].TestAcc < 0.5 {
		t.Errorf("metrics %+v: want one epoch above 50%% test accuracy", rows)
	}
	for _, name := range []string{rundir.ConfigFile, rundir.SummaryFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	// The finished run is protected; --force overwrites it.
	code, _, stderr = runTrainCmd(t, args...)
	if code != 2 || !strings.Contains(stderr, "--force") {
		t.Errorf("rerun: exit %d, stderr %q; want exit 2 suggesting --force", code, stderr)
	}
	code, _, stderr = runTrainCmd(t, "--resume", dir)
	if code != 2 || !strings.Contains(stderr, "--resume") {
		t.Errorf("resume of a finished run: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runTrainCmd(t, append(args, "--force", "--epochs", "2")...)
	if code != 0 {
		t.Fatalf("--force: exit %d, stderr %s", code, stderr)
	}
	if rows, err := rundir.ReadMetrics(dir); err != nil || len(rows) != 2 {
		t.Errorf("after --force: rows %+v, err %v", rows, err)
	}
}

// TestTrainRecipeOverrides starts from a recipe whose settings differ from
// the defaults and overrides some of them: config.json must hold the
// recipe's name, its settings, and every explicitly given flag (even one
// given with the default value).
func TestTrainRecipeOverrides(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, stdout, stderr := runTrainCmd(t, "--recipe", "cifar10-resnet20",
		"--data", "mnist", "--model", "mlp", "--backend", "go:ops_sequential", "--epochs", "1", "--schedule", "cosine",
		"--train-size", "512", "--test-size", "200", "--batch-size", "64", "--weight-decay", "5e-4",
		"--augment", "none", "--out", dir, "--quiet")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	if !strings.Contains(stdout, "generalisation gap") {
		t.Errorf("stdout %q lacks the gap", stdout)
	}
	var rec rundir.Record
	raw, err := os.ReadFile(filepath.Join(dir, rundir.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	recipe, err := train.LookupRecipe("cifar10-resnet20")
	if err != nil {
		t.Fatal(err)
	}
	want := recipe.Config
	want.Data, want.Model, want.Backend, want.Epochs, want.Schedule = "mnist", "mlp", "go:ops_sequential", 1, optim.ScheduleCosine
	want.Milestones = nil                                        // dropped with the step schedule
	want.TrainSize, want.TestSize, want.BatchSize = 512, 200, 64 // eval_batch_size stays 0: the batch size
	want.WeightDecay = 5e-4                                      // the default value, given explicitly: it overrides the recipe's 1e-4
	want.Augment = train.AugmentNone
	got := rec.Config
	if got.Recipe != "cifar10-resnet20" || got.Alpha != 0.5 || !got.ExemptVectors || got.LRUpdate != "epoch" || got.WeightDecay != 5e-4 {
		t.Errorf("recipe settings lost: %+v", got)
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	if string(a) != string(b) {
		t.Errorf("config.json settings\n%s\nwant\n%s", a, b)
	}
	if !strings.Contains(string(raw), `"recipe": "cifar10-resnet20"`) {
		t.Errorf("config.json does not record the recipe:\n%s", raw)
	}
}

// TestTrainRecordsMeasurements checks the columns that sgt train writes for
// the report (metrics.csv) on a small convolutional run, and
// filter_norms.csv's format.
func TestTrainRecordsMeasurements(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, stdout, stderr := runTrainCmd(t, "--model", "resnet20", "--backend", "cpu", "--train-size", "128", "--test-size", "100",
		"--batch-size", "64", "--train-eval-size", "64", "--out", dir, "--quiet")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	if !strings.Contains(stdout, "zeroed-out filters") {
		t.Errorf("stdout %q", stdout)
	}
	raw, err := os.ReadFile(filepath.Join(dir, rundir.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	header := strings.Split(strings.SplitN(string(raw), "\n", 2)[0], ",")
	for _, col := range []string{"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "train_eval_acc", "gap", "logit_norm", "zeroed_filters", "seconds"} {
		if !slices.Contains(header, col) {
			t.Errorf("metrics.csv header %v lacks %s", header, col)
		}
	}
	norms, err := os.ReadFile(filepath.Join(dir, rundir.FilterNormsFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(norms)), "\n")
	const filters = 688 // resnet20's conv filters, recorded at steps 0 and 2
	if lines[0] != "step,layer,filter,norm" || len(lines) != 1+2*filters || !strings.HasPrefix(lines[1], "0,resnet/stem/conv,0,") ||
		!strings.HasPrefix(lines[len(lines)-1], "2,resnet/stage3/block3/conv2,63,") {
		t.Errorf("filter_norms.csv: %d lines, first %q, last %q", len(lines), lines[:2], lines[len(lines)-1])
	}
}

// TestTrainBadImagesExitTwo: a corrupt image in an image folder is bad
// input (exit status 2, naming the file), found while training.
func TestTrainBadImagesExitTwo(t *testing.T) {
	root := t.TempDir()
	for _, split := range []string{"train", "val"} {
		for c, class := range []string{"a", "b"} {
			dir := filepath.Join(root, split, class)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				img := image.NewGray(image.Rect(0, 0, 8, 8))
				for p := range img.Pix {
					img.Pix[p] = uint8(40*c + 10*i + p)
				}
				var b bytes.Buffer
				if err := png.Encode(&b, img); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.png", i)), b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	bad := filepath.Join(root, "train", "b", "2.png")
	if err := os.WriteFile(bad, []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "train", "--data", "imagefolder", "--data-dir", root, "--image-size", "8", "--model", "mlp",
		"--batch-size", "4", "--train-eval-size", "0", "--quiet")
	if code != 2 || !strings.Contains(errOut, bad) {
		t.Errorf("corrupt image: exit %d, stderr %q; want 2 naming %s", code, errOut, bad)
	}
}

// TestBadInputExitsTwo: bad input that an adversarial run found exiting 1
// exits 2 with one line naming the flag, file or value.
func TestBadInputExitsTwo(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// MNIST-style files whose train and test images differ in size.
	mixed := t.TempDir()
	for split, size := range map[string]int{"train": 28, "t10k": 20} {
		n := 64
		pix := make([]byte, n*size*size)
		labels := make([]byte, n)
		for i := range labels {
			labels[i] = byte(i % 10)
		}
		if err := data.WriteIDXFile(filepath.Join(mixed, split+"-images-idx3-ubyte"), []int{n, size, size}, pix, false); err != nil {
			t.Fatal(err)
		}
		if err := data.WriteIDXFile(filepath.Join(mixed, split+"-labels-idx1-ubyte"), []int{n}, labels, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--out", file, "--epochs", "1", "--train-size", "256", "--test-size", "64"}, "--out"},
		{[]string{"train", "--data-dir", mixed, "--batch-size", "32"}, "differ in shape"},
		{[]string{"train", "--no-such-flag"}, "no-such-flag"},
		{[]string{"search", "--metric", "accuracy"}, "--metric"},
		{[]string{"demo", "--model", "nosuchmodel"}, "--model"},
		{[]string{"grid", "--data", "nosuchdata"}, "--data"},
	} {
		code, _, errOut := runCLI(t, c.args...)
		lines := strings.Count(strings.TrimSpace(errOut), "\n") + 1
		if code != 2 || !strings.Contains(errOut, c.want) || lines > 2 {
			t.Errorf("sgt %q: exit %d, stderr %q; want exit 2 and a short message naming %s", c.args, code, errOut, c.want)
		}
	}
}
