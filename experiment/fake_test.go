package experiment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"testing"

	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train"
)

// fakeTrain is a TrialFunc that writes a run directory through package
// rundir, as train.Run does, with metrics that depend on the trial's
// configuration in a known way.
type fakeTrain struct {
	mu    sync.Mutex
	calls []fakeCall
	// failAlpha makes trials with this alpha fail.
	failAlpha string
	// panicAlpha makes trials with this alpha panic.
	panicAlpha string
	// block makes every trial wait until ctx is cancelled (after writing
	// config.json and one metrics row); started gets a value when it waits.
	block   bool
	started chan string
	// running and maxRunning track concurrency; gate, when set, is waited on
	// (or ctx) before finishing.
	running, maxRunning int
	gate                chan struct{}
}

type fakeCall struct {
	trial  Trial
	dir    string
	resume bool
}

func (f *fakeTrain) numCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// fakeAcc is the fake's test accuracy after epoch epochs: best at alpha
// 0.3, better with more epochs, slightly different per seed.
func fakeAcc(alpha float64, epochs, seed int) float64 {
	return 0.9 - (alpha-0.3)*(alpha-0.3) - 0.1/float64(epochs) + 0.001*float64(seed)
}

// fakeRows returns the metrics of a fake run of cfg up to epoch n.
func fakeRows(cfg train.Config, n int) []rundir.EpochMetrics {
	var rows []rundir.EpochMetrics
	for e := 1; e <= n; e++ {
		acc := fakeAcc(cfg.Alpha, e, int(cfg.Seed))
		m := rundir.Unmeasured()
		m.Epoch, m.LR, m.TrainLoss, m.TrainAcc, m.TestLoss, m.TestAcc, m.Seconds = e, 0.1, 1-acc+0.05, acc+0.05, 1-acc, acc, 1.5
		rows = append(rows, m)
	}
	return rows
}

func (f *fakeTrain) run(ctx context.Context, t Trial, dir string, resume bool, log io.Writer, _ func(train.StepProgress)) error {
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{trial: t, dir: dir, resume: resume})
	f.running++
	f.maxRunning = max(f.maxRunning, f.running)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	}()
	cfg := t.Config
	alpha := FormatAlpha(cfg.Alpha)
	fmt.Fprintf(log, "fake train %s\n", t.Name)
	if f.panicAlpha != "" && alpha == f.panicAlpha {
		panic("fake panic")
	}
	if f.failAlpha != "" && alpha == f.failAlpha {
		return errors.New("fake failure for alpha " + alpha)
	}
	if err := rundir.WriteRecord(dir, &rundir.Record{ID: rundir.NewID(), Config: rundir.Config(cfg)}); err != nil {
		return err
	}
	rows := fakeRows(cfg, cfg.Epochs)
	for e := 1; e <= cfg.Epochs; e++ {
		if err := rundir.WriteMetrics(dir, rows[:e]); err != nil {
			return err
		}
		if f.block {
			if f.started != nil {
				f.started <- dir
			}
			<-ctx.Done()
			return ctx.Err()
		}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	best := 0
	for i := range rows {
		if rows[i].TestAcc > rows[best].TestAcc {
			best = i
		}
	}
	return rundir.WriteSummary(dir, &rundir.Summary{Epochs: cfg.Epochs, Final: rows[len(rows)-1], BestTestAcc: rows[best].TestAcc, BestEpoch: best + 1, Steps: 10 * cfg.Epochs})
}

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// set returns settings from name, value pairs.
func set(kv ...string) []train.Setting {
	var out []train.Setting
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, train.Setting{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func mustGrid(t *testing.T, settings []train.Setting, seeds []int) *Grid {
	t.Helper()
	g, err := NewGrid("", settings, seeds)
	if err != nil {
		t.Fatalf("NewGrid(%v): %v", settings, err)
	}
	return g
}

func mustTrials(t *testing.T, g *Grid) []Trial {
	t.Helper()
	trials, err := g.Trials()
	if err != nil {
		t.Fatal(err)
	}
	return trials
}
