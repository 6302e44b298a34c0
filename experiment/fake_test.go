package experiment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeTrain is a TrialFunc that writes a run directory like "sgt train"
// does, with metrics that depend on the flags in a known way.
type fakeTrain struct {
	mu    sync.Mutex
	calls []fakeCall
	// failAlpha makes trials with this --alpha value fail.
	failAlpha string
	// panicAlpha makes trials with this --alpha value panic.
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
	args []string
	dir  string
}

func (f *fakeTrain) numCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// fakeAcc is the fake's final test accuracy: best at alpha 0.3, better with
// more epochs, slightly different per seed.
func fakeAcc(alpha float64, epochs, seed int) float64 {
	return 0.9 - (alpha-0.3)*(alpha-0.3) - 0.1/float64(epochs) + 0.001*float64(seed)
}

func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func (f *fakeTrain) run(ctx context.Context, args []string, dir string, log io.Writer) error {
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{args: append([]string(nil), args...), dir: dir})
	f.running++
	f.maxRunning = max(f.maxRunning, f.running)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	}()
	fmt.Fprintf(log, "fake train %s\n", strings.Join(args, " "))
	alphaStr, ok := flagValue(args, AlphaFlag)
	if !ok {
		alphaStr = "1"
	}
	if f.panicAlpha != "" && alphaStr == f.panicAlpha {
		panic("fake panic")
	}
	if f.failAlpha != "" && alphaStr == f.failAlpha {
		return errors.New("fake failure for alpha " + alphaStr)
	}
	alpha, err := strconv.ParseFloat(alphaStr, 64)
	if err != nil {
		return err
	}
	epochs, seed := 2, 0
	if v, ok := flagValue(args, EpochsFlag); ok {
		epochs, _ = strconv.Atoi(v)
	}
	if v, ok := flagValue(args, SeedFlag); ok {
		seed, _ = strconv.Atoi(v)
	}
	ls := 0.0
	if v, ok := flagValue(args, LabelSmoothingFlag); ok {
		ls, _ = strconv.ParseFloat(v, 64)
	}
	cfg := map[string]any{"config": map[string]any{"alpha": alpha, "label_smoothing": ls, "seed": seed, "epochs": epochs}}
	data, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), data, 0o644); err != nil {
		return err
	}
	var rows strings.Builder
	rows.WriteString("epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds\n")
	for e := 1; e <= epochs; e++ {
		acc := fakeAcc(alpha, e, seed)
		fmt.Fprintf(&rows, "%d,0.1,%g,%g,%g,%g,1.5\n", e, 1-acc+0.05, acc+0.05, 1-acc, acc)
		if err := os.WriteFile(filepath.Join(dir, MetricsFile), []byte(rows.String()), 0o644); err != nil {
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
	return os.WriteFile(filepath.Join(dir, SummaryFile), []byte(`{"epochs":`+strconv.Itoa(epochs)+`}`), 0o644)
}

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func mustGrid(t *testing.T, args []string, seeds []int) *Grid {
	t.Helper()
	g, err := NewGrid(args, seeds, FlagKinds{})
	if err != nil {
		t.Fatalf("NewGrid(%q): %v", args, err)
	}
	return g
}
