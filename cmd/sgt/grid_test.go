package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/experiment"
)

func readResultsCSV(t *testing.T, dir string) map[string]map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, experiment.ResultsCSV))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, r := range recs[1:] {
		row := map[string]string{}
		for i, h := range recs[0] {
			row[h] = r[i]
		}
		out[row["trial"]] = row
	}
	return out
}

func TestGridDryRunAndErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "g")
	code, out, errOut := runCLI(t, "grid", "--dry-run", "--out", dir, "--alpha", "0.05,0.3,1", "--label-smoothing=0,0.1", "--seeds", "2", "--nesterov=false", "--wd-exempt-vectors",
		"--schedule", "step", "--epochs", "5", "--milestones", "1,2;3,4", "--shard", "1/2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// 3 alphas x 2 label smoothings x 2 milestone lists x 2 seeds = 24 trials, 12 in shard 1/2.
	if len(lines) != 12 {
		t.Fatalf("%d trials listed, want 12:\n%s", len(lines), out)
	}
	// Shard 1/2 holds the odd indices; the last axis (--milestones) varies fastest.
	if !strings.HasPrefix(lines[0], "alpha=0.05_label-smoothing=0_milestones=3,4_seed=0\t") {
		t.Errorf("first trial of shard 1/2: %q", lines[0])
	}
	if !strings.Contains(lines[0], "--nesterov=false") || !strings.Contains(lines[0], "--wd-exempt-vectors=true") || !strings.Contains(lines[0], "--milestones=3,4") || !strings.Contains(lines[0], "--out "+dir+"/") {
		t.Errorf("trial command %q", lines[0])
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("--dry-run wrote the grid directory")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag", "1"}, "no-such-flag"},
		{[]string{"--alpha", "0.3,-1"}, "--alpha"},
		{[]string{"--model", "mlp,nosuchmodel"}, "--model"},
		{[]string{"--data", "nosuchdata"}, "--data"},
		{[]string{"--shard", "2/2"}, "--shard"},
		{[]string{"--seeds", "0"}, "--seeds"},
		{[]string{"--parallel", "0"}, "--parallel"},
		{[]string{"--resume", "x"}, "resume"},
		{[]string{"--alpha", "1", "--alpha", "2"}, "--alpha"},
		{[]string{"--alpha", "1,,2"}, "--alpha"},
		{[]string{"stray"}, "stray"},
	} {
		code, _, errOut := runCLI(t, append([]string{"grid", "--dry-run", "--out", dir}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("grid %q: exit %d, stderr %q; want exit 2 naming %s", c.args, code, errOut, c.want)
		}
	}
	if code, _, errOut := runCLI(t, "grid", "-h"); code != 0 || !strings.Contains(errOut, "--shard") && !strings.Contains(errOut, "-shard") {
		t.Errorf("grid -h: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "grid", "collect", filepath.Join(t.TempDir(), "none")); code != 2 || !strings.Contains(errOut, "grid.json") {
		t.Errorf("collect of a missing grid: exit %d, %q", code, errOut)
	}
}

// TestGridEndToEnd trains a real grid with train.Run: two MLPs on 1200
// MNIST images for one epoch, and two trials that ask for more training
// images than MNIST has, which fail when they load their data.
func TestGridEndToEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "grid")
	args := []string{"grid", "--out", dir, "--alpha", "0.5,1", "--train-size", "1200,70000", "--test-size", "300", "--batch-size", "100", "--epochs", "1"}
	code, out, errOut := runCLI(t, args...)
	if code != 1 || !strings.Contains(errOut, "2 of 4 trials failed") {
		t.Fatalf("exit %d (want 1 for the failed trials), stderr %q\n%s", code, errOut, out)
	}
	rows := readResultsCSV(t, dir)
	for _, name := range []string{"alpha=0.5_train-size=1200_seed=0", "alpha=1_train-size=1200_seed=0"} {
		row := rows[name]
		acc, err := strconv.ParseFloat(row["final_test_acc"], 64)
		if row["status"] != "done" || err != nil || acc < 0.6 {
			t.Errorf("trial %s did not learn: %v", name, row)
		}
		for _, f := range []string{"config.json", "metrics.csv", "summary.json", experiment.LogFile} {
			if _, err := os.Stat(filepath.Join(dir, name, f)); err != nil {
				t.Errorf("trial %s: %v", name, err)
			}
		}
	}
	if bad := rows["alpha=1_train-size=70000_seed=0"]; bad["status"] != "failed" || !strings.Contains(bad["error"], "--train-size") {
		t.Errorf("failed trial row %v", bad)
	}
	m, err := experiment.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Trials) != 4 || m.Trials[3].State != experiment.StateFailed || !strings.Contains(m.Trials[3].Error, "train-size") {
		t.Errorf("manifest %+v", m.Trials)
	}
	// Rerunning skips the finished trials (and retries the failed one).
	code, out, _ = runCLI(t, args...)
	if code != 1 || strings.Count(out, "already done, skipped") != 2 {
		t.Errorf("rerun: exit %d\n%s", code, out)
	}
	// An interrupted trial (summary removed) is resumed.
	done := filepath.Join(dir, "alpha=1_train-size=1200_seed=0")
	if err := os.Remove(filepath.Join(done, "summary.json")); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, args...)
	log, _ := os.ReadFile(filepath.Join(done, experiment.LogFile))
	if code != 1 || !strings.Contains(out, "alpha=1_train-size=1200_seed=0: resuming") || !strings.Contains(string(log), "=== resuming") {
		t.Errorf("resume: exit %d\n%s\nlog:\n%s", code, out, log)
	}
	if _, err := os.Stat(filepath.Join(done, "summary.json")); err != nil {
		t.Errorf("resumed trial did not finish: %v", err)
	}
	// collect merges; it fails while a trial failed.
	code, out, _ = runCLI(t, "grid", "collect", dir)
	if code != 1 || !strings.Contains(out, "4 trials: 2 done, 2 failed") {
		t.Errorf("collect: exit %d\n%s", code, out)
	}
	// The report works on the grid.
	html := filepath.Join(t.TempDir(), "r.html")
	code, out, errOut = runCLI(t, "report", dir, "--out", html)
	if code != 0 || !strings.Contains(out, "Baseline") {
		t.Fatalf("report: exit %d, %s\n%s", code, errOut, out)
	}
	page, _ := os.ReadFile(html)
	if !strings.Contains(string(page), `<td class="l">SGT</td><td>0.5</td>`) || !strings.Contains(string(page), "<svg") {
		t.Error("report lacks the SGT row or figures")
	}
}

func TestSearchCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "search")
	code, out, errOut := runCLI(t, "search", "--out", dir, "--alpha", "0.3,1", "--epochs", "1", "--rounds", "1",
		"--train-size", "512", "--test-size", "200", "--batch-size", "64")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	if !strings.Contains(out, "ranking after 1 round (") || !strings.Contains(out, "2 alphas x 1 seed, 1 epoch in the first round") {
		t.Errorf("output:\n%s", out)
	}
	for _, f := range []string{experiment.RankingCSV, experiment.RankingText, experiment.ResultsCSV, experiment.ManifestFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if rows := readResultsCSV(t, dir); len(rows) != 2 {
		t.Errorf("%d results", len(rows))
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--alpha", "0.3", "--alpha-range", "0:1:3"}, "--alpha-range"},
		{[]string{"--alpha-range", "1:0:3"}, "--alpha-range"},
		{[]string{"--eta", "1"}, "eta"},
		{[]string{"--lr", "0.1,0.2"}, "--lr"},
		{[]string{"--seed", "3"}, "seed"},
		{[]string{"--metric", "accuracy"}, "--metric"},
	} {
		code, _, errOut := runCLI(t, append([]string{"search", "--out", dir + "x"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("search %q: exit %d, stderr %q; want exit 2 naming %s", c.args, code, errOut, c.want)
		}
	}
}

func TestDemoWiring(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	code, out, errOut := runCLI(t, "demo", "--out", dir, "--model", "mlp", "--alpha", "1,0.3", "--label-smoothing", "0,0.1",
		"--seeds", "1", "--epochs", "1", "--train-size", "256", "--test-size", "128", "--batch-size", "64")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	for _, want := range []string{"Baseline", "Ablation", "report written to"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	m, err := experiment.ReadManifest(dir)
	if err != nil || len(m.Trials) != 4 {
		t.Fatalf("manifest: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.html")); err != nil {
		t.Error(err)
	}
	if code, _, errOut := runCLI(t, "demo", "--seeds", "0"); code != 2 || !strings.Contains(errOut, "seeds") {
		t.Errorf("bad seeds: exit %d %q", code, errOut)
	}
}

func TestReportCommandErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "--out", "x.html"}, "no run directories"},
		{[]string{"report", t.TempDir()}, "no finished runs"},
		{[]string{"report", t.TempDir(), "--out", "x.pdf"}, ".html or .md"},
		{[]string{"report", t.TempDir(), "--out", filepath.Join(t.TempDir(), "x.md")}, "no finished runs"},
	} {
		code, _, errOut := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 mentioning %q", c.args, code, errOut, c.want)
		}
	}
}
