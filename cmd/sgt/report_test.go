package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/rundir"
)

// writeFakeRun writes a finished one-epoch run directory.
func writeFakeRun(t *testing.T, dir string, alpha float64, seed int, testAcc float64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := &rundir.Record{ID: rundir.NewID(), Config: rundir.Config{Data: "mnist", Model: "mlp", Alpha: alpha, Seed: int64(seed), Epochs: 1}}
	if err := rundir.WriteRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	m := rundir.Unmeasured()
	m.Epoch, m.TrainAcc, m.TestAcc, m.TrainLoss, m.LogitNorm = 1, 0.95, testAcc, 0.2, 10
	if err := rundir.WriteMetrics(dir, []rundir.EpochMetrics{m}); err != nil {
		t.Fatal(err)
	}
	if err := rundir.WriteSummary(dir, &rundir.Summary{Epochs: 1, Final: m, BestTestAcc: testAcc, BestEpoch: 1, Steps: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestReportCommand(t *testing.T) {
	root := t.TempDir()
	for seed := range 2 {
		writeFakeRun(t, filepath.Join(root, fmt.Sprintf("base%d", seed)), 1, seed, 0.90+0.01*float64(seed))
		writeFakeRun(t, filepath.Join(root, fmt.Sprintf("sgt%d", seed)), 0.3, seed, 0.92+0.01*float64(seed))
	}
	// Without --out the tables and findings are printed, nothing written.
	code, out, errOut := runCLI(t, "report", root)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Baseline and SGT, label smoothing 0", "90.50±0.71", "Findings", "In short", "± is the sample standard deviation"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "report written") {
		t.Error("a report was written without --out")
	}
	for _, line := range strings.Split(out, "\n") {
		if len([]rune(line)) > 100 {
			t.Errorf("line wider than 100 columns: %q", line)
		}
	}
	// With --out the file is written and the counts are English.
	html := filepath.Join(t.TempDir(), "r.html")
	code, out, errOut = runCLI(t, "report", root, "--out", html, "--quiet")
	if code != 0 || !strings.Contains(out, "report written to "+html+" (2 tables, 4 figures)") {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	if strings.Contains(out, "Baseline") {
		t.Error("--quiet printed the tables")
	}
	// One run: singular words.
	one := filepath.Join(root, "base0")
	code, out, _ = runCLI(t, "report", one, "--out", filepath.Join(t.TempDir(), "one.md"))
	if code != 0 || !strings.Contains(out, "1 run in 1 setting") {
		t.Errorf("one run: exit %d\n%s", code, out)
	}
}
