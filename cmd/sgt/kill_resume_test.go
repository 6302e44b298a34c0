package main

import (
	"bytes"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as the sgt command (see TestMain), so
// that a test can run sgt as a separate process and kill it.
const helperEnv = "SGT_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// sgtCommand returns a command that runs sgt with args in a child process.
func sgtCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"=1", "GOMLX_NO_AUTO_INSTALL=1")
	return cmd
}

// TestKilledRunResumesIdentically kills a training process with SIGKILL in
// the middle of its second epoch, resumes it with --resume, and checks that it
// ends with exactly the metrics of a run that was never interrupted.
func TestKilledRunResumesIdentically(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three short runs in child processes")
	}
	dir := t.TempDir()
	args := []string{"train", "--data", "mnist", "--model", "mlp", "--epochs", "3",
		"--train-size", "6000", "--test-size", "1000", "--batch-size", "32",
		"--alpha", "0.3", "--label-smoothing", "0.1", "--seed", "5", "--quiet", "--backend", "cpu"}

	whole := filepath.Join(dir, "whole")
	if out, err := sgtCommand(append(args, "--out", whole)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}

	killed := filepath.Join(dir, "killed")
	cmd := sgtCommand(append(args, "--out", killed)...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the first epoch's checkpoint, then kill the process part-way
	// through the second epoch.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if matches, _ := filepath.Glob(filepath.Join(killed, "checkpoints", "epoch-0001.ckpt")); len(matches) > 0 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no checkpoint after epoch 1 within 2 minutes; output:\n%s", output.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, err := os.Stat(filepath.Join(killed, "summary.json")); err == nil {
		t.Fatalf("the run finished before it could be killed, so resuming was not tested; output:\n%s", output.String())
	}

	if rows := readMetrics(t, killed); len(rows) > 3 {
		t.Fatalf("the killed run had already recorded %d epochs", len(rows)-1)
	}
	if out, err := sgtCommand("train", "--resume", killed, "--quiet").CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	sameRecordedMetrics(t, "killed and resumed", whole, killed)
}

// readMetrics reads a run directory's metrics.csv.
func readMetrics(t *testing.T, dir string) [][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "metrics.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(string(data))).ReadAll()
	if err != nil {
		t.Fatalf("metrics.csv of %s: %v", dir, err)
	}
	return rows
}
