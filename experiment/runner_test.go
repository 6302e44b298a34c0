package experiment

import (
	"context"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train"
)

func readCSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		row := map[string]string{}
		for i, h := range recs[0] {
			row[h] = r[i]
		}
		out = append(out, row)
	}
	return out
}

func TestRunGridAndResults(t *testing.T) {
	dir := t.TempDir()
	g := mustGrid(t, set("alpha", "0.3,1", "label-smoothing", "0,0.1", "epochs", "3"), []int{0, 1})
	fake := &fakeTrain{}
	r := &Runner{Train: fake.run}
	sum, results, err := RunGrid(context.Background(), dir, g, []string{"sgt", "grid"}, r)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK() || sum.Done != 8 || fake.numCalls() != 8 || len(results) != 8 {
		t.Fatalf("summary %+v, %d calls, %d results", sum, fake.numCalls(), len(results))
	}
	// Every call got the trial's own directory.
	for _, c := range fake.calls {
		if filepath.Dir(c.dir) != dir || filepath.Base(c.dir) != c.trial.Dir || c.resume {
			t.Errorf("call %+v", c)
		}
	}
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != KindGrid || len(m.Trials) != 8 || len(m.Axes) != 2 {
		t.Fatalf("manifest %+v", m)
	}
	for _, tr := range m.Trials {
		if tr.State != StateDone || tr.Attempts != 1 {
			t.Errorf("trial %s: %+v", tr.Name, tr.Status)
		}
		if _, err := os.Stat(filepath.Join(dir, tr.Dir, LogFile)); err != nil {
			t.Errorf("trial %s has no log: %v", tr.Name, err)
		}
	}
	rows := readCSV(t, filepath.Join(dir, ResultsCSV))
	if len(rows) != 8 {
		t.Fatalf("%d result rows", len(rows))
	}
	for _, row := range rows {
		for _, col := range []string{"alpha", "label-smoothing", "seed", "status", "final_test_acc", "best_test_acc", "best_test_acc_epoch", "final_train_loss"} {
			if _, ok := row[col]; !ok {
				t.Fatalf("results.csv lacks column %q: %v", col, row)
			}
		}
		if row["status"] != StateDone || row["best_test_acc_epoch"] != "3" {
			t.Errorf("row %v", row)
		}
	}
	// The final accuracy is the fake's value at epoch 3.
	for _, res := range results {
		alpha, _ := res.Trial.Setting("alpha")
		want := fakeAcc(map[string]float64{"0.3": 0.3, "1": 1}[alpha], 3, res.Trial.Seed)
		if got, _ := res.Metric("test_acc"); !approx(got, want) {
			t.Errorf("%s: final test_acc %v, want %v", res.Trial.Name, got, want)
		}
		if got, _ := res.Metric("best_test_loss"); !approx(got, 1-want) {
			t.Errorf("%s: best test_loss %v, want %v", res.Trial.Name, got, 1-want)
		}
	}

	// Rerunning skips every finished trial.
	sum, _, err = RunGrid(context.Background(), dir, g, []string{"sgt", "grid"}, r)
	if err != nil || sum.Skipped != 8 || sum.Done != 0 || fake.numCalls() != 8 {
		t.Fatalf("rerun: %+v, %v, %d calls", sum, err, fake.numCalls())
	}
	// A grid that would change the existing trials is refused.
	other := mustGrid(t, set("alpha", "0.5,1"), nil)
	if _, _, err := RunGrid(context.Background(), dir, other, nil, r); err == nil || !strings.Contains(err.Error(), "would change") {
		t.Errorf("different grid: %v", err)
	}
}

func TestFailingTrialIsRecordedAndRetried(t *testing.T) {
	dir := t.TempDir()
	g := mustGrid(t, set("alpha", "0.1,0.5,1", "epochs", "1"), nil)
	fake := &fakeTrain{failAlpha: "0.5", panicAlpha: "0.1"}
	r := &Runner{Train: fake.run}
	sum, results, err := RunGrid(context.Background(), dir, g, nil, r)
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK() || sum.Done != 1 || len(sum.Failed) != 2 {
		t.Fatalf("summary %+v", sum)
	}
	byName := map[string]Result{}
	for _, res := range results {
		byName[res.Trial.Name] = res
	}
	if res := byName["alpha=0.5_seed=0"]; res.Status != StateFailed || !strings.Contains(res.Error, "fake failure") {
		t.Errorf("failed trial result %+v", res)
	}
	if res := byName["alpha=0.1_seed=0"]; res.Status != StateFailed || !strings.Contains(res.Error, "panic") {
		t.Errorf("panicking trial result %+v", res)
	}
	st, err := TrialState(filepath.Join(dir, "alpha=0.5_seed=0"))
	if err != nil || st.State != StateFailed || !strings.Contains(st.Error, "fake failure") {
		t.Errorf("status file: %+v %v", st, err)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "alpha=0.5_seed=0", LogFile))
	if !strings.Contains(string(log), "failed") || !strings.Contains(string(log), "fake failure") {
		t.Errorf("log lacks the error:\n%s", log)
	}
	m, _ := ReadManifest(dir)
	if m.Trials[1].State != StateFailed || m.Trials[1].Error == "" {
		t.Errorf("manifest trial %+v", m.Trials[1])
	}
	// A rerun retries only the failed trials; now they succeed.
	fake.failAlpha, fake.panicAlpha = "", ""
	sum, _, err = RunGrid(context.Background(), dir, g, nil, r)
	if err != nil || !sum.OK() || sum.Done != 2 || sum.Skipped != 1 {
		t.Fatalf("retry: %+v %v", sum, err)
	}
	m, _ = ReadManifest(dir)
	if m.Trials[1].Attempts != 2 || m.Trials[1].Error != "" {
		t.Errorf("after retry: %+v", m.Trials[1].Status)
	}
}

func TestCancelAndResume(t *testing.T) {
	dir := t.TempDir()
	g := mustGrid(t, set("alpha", "0.3,1", "epochs", "2"), nil)
	fake := &fakeTrain{block: true, started: make(chan string, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var sum RunSummary
	go func() {
		var err error
		sum, _, err = RunGrid(ctx, dir, g, nil, &Runner{Train: fake.run})
		done <- err
	}()
	select {
	case <-fake.started:
	case <-time.After(10 * time.Second):
		t.Fatal("trial did not start")
	}
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("grid did not stop after cancellation")
	}
	if !errors.Is(err, context.Canceled) || sum.Interrupted != 1 || fake.numCalls() != 1 {
		t.Fatalf("err %v, summary %+v, %d calls", err, sum, fake.numCalls())
	}
	st, _ := TrialState(filepath.Join(dir, "alpha=0.3_seed=0"))
	if st.State != StateInterrupted {
		t.Errorf("interrupted trial state %+v", st)
	}
	st, _ = TrialState(filepath.Join(dir, "alpha=1_seed=0"))
	if st.State != StatePending {
		t.Errorf("unstarted trial state %+v", st)
	}

	// The rerun resumes the interrupted trial and starts the other.
	resumed := &fakeTrain{}
	sum, _, err = RunGrid(context.Background(), dir, g, nil, &Runner{Train: resumed.run})
	if err != nil || !sum.OK() || resumed.numCalls() != 2 {
		t.Fatalf("resume: %+v %v", sum, err)
	}
	for _, c := range resumed.calls {
		if c.resume != strings.HasSuffix(c.dir, "alpha=0.3_seed=0") {
			t.Errorf("call %+v: resume only for the interrupted trial", c)
		}
	}
}

// TestFailedTrialRestartsFromEmpty: a failed trial is not resumed but
// restarted, from a run directory without the failed run's files.
func TestFailedTrialRestartsFromEmpty(t *testing.T) {
	dir := t.TempDir()
	g := mustGrid(t, set("alpha", "1"), nil)
	fake := &fakeTrain{failAlpha: "1"}
	if _, _, err := RunGrid(context.Background(), dir, g, nil, &Runner{Train: fake.run}); err != nil {
		t.Fatal(err)
	}
	tdir := filepath.Join(dir, "seed=0")
	if err := os.MkdirAll(filepath.Join(tdir, rundir.CheckpointDir), 0o755); err != nil {
		t.Fatal(err)
	}
	var sawStale, resumed bool
	fake.failAlpha = ""
	r := &Runner{Train: func(ctx context.Context, tr Trial, d string, resume bool, log io.Writer, step func(train.StepProgress)) error {
		if _, err := os.Stat(filepath.Join(d, rundir.CheckpointDir)); err == nil {
			sawStale = true
		}
		resumed = resume
		return fake.run(ctx, tr, d, resume, log, step)
	}}
	sum, _, err := RunGrid(context.Background(), dir, g, nil, r)
	if err != nil || !sum.OK() {
		t.Fatalf("%+v %v", sum, err)
	}
	if sawStale || resumed {
		t.Errorf("a restarted failed trial must start afresh (stale files %v, resumed %v)", sawStale, resumed)
	}
}

// TestGarbageSummaryIsNotDone: a trial whose summary.json is damaged is
// not counted as done, and a rerun redoes it.
func TestGarbageSummaryIsNotDone(t *testing.T) {
	dir := t.TempDir()
	g := mustGrid(t, set("alpha", "1,0.3"), nil)
	fake := &fakeTrain{}
	if _, _, err := RunGrid(context.Background(), dir, g, nil, &Runner{Train: fake.run}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alpha=1_seed=0", rundir.SummaryFile), []byte(`{"epochs": 0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _, err := Collect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Trials[0].State; st == StateDone {
		t.Fatalf("trial with a garbage summary counted as %s", st)
	}
	sum, _, err := RunGrid(context.Background(), dir, g, nil, &Runner{Train: fake.run})
	if err != nil || sum.Done != 1 || sum.Skipped != 1 || fake.numCalls() != 3 {
		t.Fatalf("rerun: %+v %v, %d calls", sum, err, fake.numCalls())
	}
}

// TestSecondProcessLeavesRunningTrialsAlone: a trial locked by another
// process is neither run nor cleared, and is reported as busy.
func TestSecondProcessLeavesRunningTrialsAlone(t *testing.T) {
	dir := t.TempDir()
	g := mustGrid(t, set("alpha", "1,0.3"), nil)
	block := &fakeTrain{block: true, started: make(chan string, 2)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := RunGrid(ctx, dir, g, nil, &Runner{Train: block.run})
		done <- err
	}()
	select {
	case <-block.started:
	case <-time.After(10 * time.Second):
		t.Fatal("trial did not start")
	}
	// The same grid again: the running trial is busy, the other one runs.
	other := &fakeTrain{}
	sum, _, err := RunGrid(context.Background(), dir, g, nil, &Runner{Train: other.run})
	if err != nil || len(sum.Busy) != 1 || sum.Busy[0].Trial != "alpha=1_seed=0" || sum.Done != 1 || sum.OK() {
		t.Fatalf("second process: %+v %v", sum, err)
	}
	if !strings.Contains(sum.Busy[0].Error, "pid") {
		t.Errorf("busy message %q does not name the process", sum.Busy[0].Error)
	}
	cancel()
	<-done
	if _, err := rundir.ReadMetrics(filepath.Join(dir, "alpha=1_seed=0")); err != nil {
		t.Errorf("the running trial's files were disturbed: %v", err)
	}
}

func TestParallelAndShards(t *testing.T) {
	dir := t.TempDir()
	g := mustGrid(t, set("alpha", "0.1,0.2,0.3,0.4,0.5,0.6", "epochs", "1"), nil)
	// Parallel: three trials must be running at the same time to pass the gate.
	gate := make(chan struct{})
	fake := &fakeTrain{gate: gate}
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			fake.mu.Lock()
			n := fake.running
			fake.mu.Unlock()
			if n >= 3 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		close(gate)
	}()
	sum, _, err := RunGrid(context.Background(), dir, g, nil, &Runner{Train: fake.run, Parallel: 3})
	if err != nil || !sum.OK() || sum.Done != 6 {
		t.Fatalf("%+v %v", sum, err)
	}
	if fake.maxRunning != 3 {
		t.Errorf("max concurrent trials %d, want 3", fake.maxRunning)
	}

	// Shards running concurrently on one directory run every trial once.
	dir = t.TempDir()
	shardFake := &fakeTrain{}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	sums := make([]RunSummary, 3)
	for s := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[s], _, errs[s] = RunGrid(context.Background(), dir, g, nil, &Runner{Train: shardFake.run, Shard: s, Shards: 3})
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for _, c := range shardFake.calls {
		seen[filepath.Base(c.dir)]++
	}
	for s := range 3 {
		if errs[s] != nil || sums[s].Selected != 2 || sums[s].Done != 2 {
			t.Errorf("shard %d: %+v %v", s, sums[s], errs[s])
		}
	}
	if len(seen) != 6 {
		t.Errorf("trials run: %v", seen)
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("trial %s ran %d times", name, n)
		}
	}
	// After all shards, collect sees every trial done.
	m, results, err := Collect(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, tr := range m.Trials {
		if tr.State != StateDone || results[i].Status != StateDone {
			t.Errorf("trial %s: %s", tr.Name, tr.State)
		}
	}
}

func TestMeanSD(t *testing.T) {
	// Hand computation: mean of 1,2,3,6 is 3; squared deviations 4,1,0,9
	// sum to 14; the sample variance is 14/3.
	m, sd := MeanSD([]float64{1, 2, 3, 6})
	if !approx(m, 3) || !approx(sd*sd, 14.0/3) {
		t.Errorf("MeanSD = %v, %v", m, sd)
	}
	if m, sd := MeanSD([]float64{2.5}); m != 2.5 || sd != 0 {
		t.Errorf("single value: %v %v", m, sd)
	}
}
