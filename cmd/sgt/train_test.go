package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/train"
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
	rows, err := train.ReadMetricsCSV(filepath.Join(dir, train.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].TestAcc < 0.5 {
		t.Errorf("metrics %+v: want one epoch above 50%% test accuracy", rows)
	}
	for _, name := range []string{train.ConfigFile, train.SummaryFile} {
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
	if rows, err := train.ReadMetricsCSV(filepath.Join(dir, train.MetricsFile)); err != nil || len(rows) != 2 {
		t.Errorf("after --force: rows %+v, err %v", rows, err)
	}
}
