package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sgt-dev/sgt/experiment"
)

// signalArgs is a short MLP run whose epochs take long enough to be
// interrupted in the middle.
var signalArgs = []string{"--data", "mnist", "--model", "mlp", "--epochs", "3",
	"--train-size", "6000", "--test-size", "1000", "--batch-size", "32",
	"--alpha", "0.3", "--label-smoothing", "0.1", "--seed", "5", "--backend", "cpu"}

// waitFor polls until path exists, failing the test (and killing cmd)
// after two minutes.
func waitFor(t *testing.T, cmd *exec.Cmd, path string, output *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("%s did not appear within 2 minutes; output:\n%s", path, output.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exitCode returns the exit status of a finished command.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// sameRecordedMetrics compares two metrics.csv files, except wall-clock
// columns.
func sameRecordedMetrics(t *testing.T, what, dirA, dirB string) {
	t.Helper()
	a, b := readMetrics(t, dirA), readMetrics(t, dirB)
	if len(a) != len(b) {
		t.Fatalf("%s: %d metrics rows against %d", what, len(a), len(b))
	}
	for i := 1; i < len(a); i++ {
		for j, col := range a[0] {
			if col == "seconds" || col == "images_per_second" || col == "data_wait_share" {
				continue
			}
			if a[i][j] != b[i][j] {
				t.Errorf("%s: epoch row %d column %s: %s against %s", what, i, col, a[i][j], b[i][j])
			}
		}
	}
}

// TestSignalStopsTrainCleanly sends SIGTERM (as Kubernetes and Slurm do)
// to a training process in the middle of its second epoch: it must stop
// with exit status 143, save a checkpoint of the step it reached, say how
// to resume, and resume to exactly the metrics of an uninterrupted run. A
// second signal makes it exit at once.
func TestSignalStopsTrainCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("trains short runs in child processes")
	}
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole")
	if out, err := sgtCommand(append(append([]string{"train"}, signalArgs...), "--quiet", "--out", whole)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}

	stopped := filepath.Join(dir, "stopped")
	cmd := sgtCommand(append(append([]string{"train"}, signalArgs...), "--out", stopped)...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cmd, filepath.Join(stopped, "checkpoints", "epoch-0001.ckpt"), &output)
	time.Sleep(100 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := exitCode(cmd.Wait())
	if _, err := os.Stat(filepath.Join(stopped, "summary.json")); err == nil {
		t.Fatalf("the run finished before the signal, so stopping was not tested; output:\n%s", output.String())
	}
	if code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit status %d after SIGTERM, want %d; output:\n%s", code, 128+int(syscall.SIGTERM), output.String())
	}
	for _, want := range []string{"SIGTERM", "checkpoint saved", "sgt train --resume " + stopped} {
		if !strings.Contains(output.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, output.String())
		}
	}
	if _, err := os.Stat(filepath.Join(stopped, "checkpoints", "partial.ckpt")); err != nil {
		t.Errorf("no checkpoint of the interrupted epoch: %v", err)
	}
	if out, err := sgtCommand("train", "--resume", stopped, "--quiet").CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	sameRecordedMetrics(t, "stopped and resumed", whole, stopped)

	// Two signals: the second exits at once.
	twice := filepath.Join(dir, "twice")
	cmd = sgtCommand(append(append([]string{"train"}, signalArgs...), "--out", twice)...)
	output.Reset()
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cmd, filepath.Join(twice, "metrics.csv"), &output)
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Process.Signal(syscall.SIGINT)
	code = exitCode(cmd.Wait())
	if code != 128+int(syscall.SIGINT) {
		t.Errorf("exit status %d after two interrupts, want %d; output:\n%s", code, 128+int(syscall.SIGINT), output.String())
	}
}

// TestSignalStopsGridCleanly interrupts a grid with Ctrl-C's SIGINT while a
// trial trains: the grid exits with status 130, its trial is recorded as
// interrupted (not running), the output says how to resume, and rerunning
// the command finishes the grid with the metrics of an uninterrupted run.
func TestSignalStopsGridCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("trains short runs in child processes")
	}
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole")
	if out, err := sgtCommand(append(append([]string{"train"}, signalArgs...), "--quiet", "--out", whole)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	grid := filepath.Join(dir, "grid")
	args := append([]string{"grid", "--out", grid}, signalArgs...)
	for i := range args {
		if args[i] == "--label-smoothing" {
			args[i+1] = "0.1,0" // the first trial is the uninterrupted run's
		}
	}
	cmd := sgtCommand(args...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(grid, "label-smoothing=0.1_seed=5")
	waitFor(t, cmd, filepath.Join(first, "checkpoints", "epoch-0001.ckpt"), &output)
	time.Sleep(100 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := exitCode(cmd.Wait())
	if _, err := os.Stat(filepath.Join(first, "summary.json")); err == nil {
		t.Fatalf("the trial finished before the signal, so stopping was not tested; output:\n%s", output.String())
	}
	if code != 128+int(syscall.SIGINT) || !strings.Contains(output.String(), "run the same command again to resume") {
		t.Errorf("exit status %d (want 130); output:\n%s", code, output.String())
	}
	st, err := experiment.TrialState(first)
	if err != nil || st.State != experiment.StateInterrupted {
		t.Errorf("interrupted trial's state %+v (%v), want interrupted", st, err)
	}
	if out, err := sgtCommand(args...).CombinedOutput(); err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	sameRecordedMetrics(t, "grid trial stopped and resumed", whole, first)
}
