package train

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt/models"
	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train/optim"
)

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	cases := []struct {
		field  string
		mutate func(c *Config)
	}{
		{"data", func(c *Config) { c.Data = "" }},
		{"model", func(c *Config) { c.Model = "no-such-model" }},
		{"alpha", func(c *Config) { c.Alpha = -0.5 }},
		{"alpha", func(c *Config) { c.Alpha = math.NaN() }},
		{"label-smoothing", func(c *Config) { c.LabelSmoothing = 1 }},
		{"epochs", func(c *Config) { c.Epochs = 0 }},
		{"batch-size", func(c *Config) { c.BatchSize = 0 }},
		{"eval-batch-size", func(c *Config) { c.EvalBatchSize = -1 }},
		{"lr", func(c *Config) { c.LR = 0 }},
		{"lr", func(c *Config) { c.LR = math.Inf(1) }},
		{"momentum", func(c *Config) { c.Momentum = 1 }},
		{"weight-decay", func(c *Config) { c.WeightDecay = -1e-4 }},
		{"clip-norm", func(c *Config) { c.ClipNorm = -1 }},
		{"agc", func(c *Config) { c.AGC = -0.01 }},
		{"agc", func(c *Config) { c.AGC, c.ClipNorm = 0.01, 1 }},
		{"warmup-epochs", func(c *Config) { c.WarmupEpochs = 1 }},
		{"warmup-start-lr", func(c *Config) { c.WarmupStartLR = -1 }},
		{"schedule", func(c *Config) { c.Schedule = "exponential" }},
		{"milestones", func(c *Config) { c.Milestones = []int{1} }},
		{"milestones", func(c *Config) { c.Schedule, c.Epochs, c.Milestones = optim.ScheduleStep, 3, []int{4} }},
		{"milestones", func(c *Config) { c.Schedule, c.Epochs = optim.ScheduleStep, 3 }},
		{"train-size", func(c *Config) { c.TrainSize = -1 }},
		{"train-size", func(c *Config) { c.TrainSize = 100 }},
		{"test-size", func(c *Config) { c.TestSize = -1 }},
		{"augment", func(c *Config) { c.Augment = "mixup" }},
		{"data", func(c *Config) { c.Data = "imagenet21k" }},
		{"image-size", func(c *Config) { c.ImageSize = 64 }}, // MNIST images have a fixed size
		{"image-size", func(c *Config) { c.Data, c.ImageSize = DataImageFolder, -1 }},
		{"augment", func(c *Config) { c.Augment = AugmentRandomResizedCrop }},
		{"augment", func(c *Config) { c.Data, c.Augment = DataImageFolder, AugmentPadCropFlip }},
		{"train-eval-size", func(c *Config) { c.TrainEvalSize = -1 }},
		{"zero-threshold", func(c *Config) { c.ZeroThreshold = math.NaN() }},
		{"zero-threshold", func(c *Config) { c.ZeroThreshold = -1 }},
		{"filter-norms-every", func(c *Config) { c.FilterNormsEvery = -2 }},
	}
	for _, tc := range cases {
		c := base
		tc.mutate(&c)
		err := c.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: error %v, want a FieldError for %q", c, err, tc.field)
		}
	}
	for _, ok := range []func(c *Config){
		func(c *Config) { c.Data, c.ImageSize, c.Augment = DataImageFolder, 96, AugmentRandomResizedCrop },
		func(c *Config) { c.Data = DataImageFolder }, // --data-dir is checked when the data loads
		func(c *Config) { c.Data, c.Augment = "cifar100", AugmentNone },
		func(c *Config) { c.TrainEvalSize, c.FilterNormsEvery, c.ZeroThreshold = 0, 0, 0 },
		func(c *Config) { c.FilterNormsEvery = 100 },
	} {
		c := base
		ok(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%+v rejected: %v", c, err)
		}
	}
	c := base
	c.Alpha = 2
	if err := c.Validate(); err != nil {
		t.Fatalf("alpha 2 should be accepted (with a warning): %v", err)
	}
	if len(c.Warnings()) != 1 || len(base.Warnings()) != 0 {
		t.Fatalf("warnings: alpha 2 -> %v, alpha 1 -> %v", c.Warnings(), base.Warnings())
	}
}

func TestFinalLayerScope(t *testing.T) {
	spec, err := models.Get("mlp")
	if err != nil {
		t.Fatal(err)
	}
	g := graph.NewGraph(testBackend(t), "final")
	defer g.Finalize()
	ctx := mlctx.New()
	images := graph.Parameter(g, "images", shapes.Make(dtypes.Float32, 2, 28, 28, 1))
	spec.Build(ctx, images, 10)
	if got := finalLayerScope(ctx, g, 10); got != "/mlp/output/dense" && got != "/mlp/output" {
		t.Fatalf("final layer scope %q, want the MLP's output layer", got)
	}
	if got := finalLayerScope(ctx, g, 7); got != "" {
		t.Fatalf("final layer scope for 7 classes %q, want none", got)
	}
}

// readJSON decodes a JSON file into v.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestRunLearnsMNIST trains the MLP for one epoch on 5000 MNIST examples,
// plainly and with SGT, and checks that it learns and records the run.
func TestRunLearnsMNIST(t *testing.T) {
	for _, alpha := range []float64{1, 0.3} {
		if alpha != 1 && testing.Short() {
			continue // the plain run is the short-mode check
		}
		cfg := DefaultConfig()
		cfg.Alpha = alpha
		cfg.TrainSize = 5000
		cfg.TestSize = 2000
		cfg.BatchSize = 64
		cfg.EvalBatchSize = 1000
		out := filepath.Join(t.TempDir(), "run")
		var epochs []rundir.EpochMetrics
		sum, err := Run(context.Background(), cfg, Options{Out: out, OnEpoch: func(m rundir.EpochMetrics) { epochs = append(epochs, m) }})
		if err != nil {
			t.Fatalf("alpha %g: %v", alpha, err)
		}
		t.Logf("alpha %g: %+v", alpha, sum.Final)
		if sum.Final.TestAcc < 0.85 {
			t.Errorf("alpha %g: test accuracy %.4f after one epoch, want > 0.85", alpha, sum.Final.TestAcc)
		}
		if sum.Final.TrainLoss > 1.2 || sum.Final.TestLoss > 1 { // chance: ln 10 = 2.3
			t.Errorf("alpha %g: losses train %.3f test %.3f too high", alpha, sum.Final.TrainLoss, sum.Final.TestLoss)
		}
		if len(epochs) != 1 || !equalMetrics(epochs[0], sum.Final) || sum.Steps != 5000/64 {
			t.Errorf("alpha %g: OnEpoch saw %+v, steps %d", alpha, epochs, sum.Steps)
		}
		// The lr column is the mean scheduled rate of the epoch's steps.
		sched, err := optim.NewSchedule(cfg.scheduleConfig(78))
		if err != nil {
			t.Fatal(err)
		}
		meanLR := 0.0
		for s := range 78 {
			meanLR += sched.LR(s) / 78
		}
		if math.Abs(sum.Final.LR-meanLR) > 1e-12 {
			t.Errorf("alpha %g: epoch lr %v, want the mean %v", alpha, sum.Final.LR, meanLR)
		}

		var rec rundir.Record
		readJSON(t, filepath.Join(out, rundir.ConfigFile), &rec)
		if rec.Config.Alpha != alpha || rec.Config.TrainSize != 5000 || rec.TrainExamples != 5000 ||
			rec.TestExamples != 2000 || rec.StepsPerEpoch != 78 || rec.Parameters != 784*256+256+256*10+10 ||
			rec.CodeVersion == "" || rec.Backend == "" || len(rec.TrainSources) == 0 || len(rec.TestSources) == 0 {
			t.Errorf("config.json: %+v", rec)
		}
		rows, err := rundir.ReadMetrics(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || !equalMetrics(rows[0], sum.Final) {
			t.Errorf("metrics.csv rows %+v, want the final metrics %+v", rows, sum.Final)
		}
		var got rundir.Summary
		readJSON(t, filepath.Join(out, rundir.SummaryFile), &got)
		if !equalMetrics(got.Final, sum.Final) || got.BestTestAcc != sum.Final.TestAcc || got.BestEpoch != 1 || !(got.TotalSeconds > 0) {
			t.Errorf("summary.json %+v, want final %+v", got, sum.Final)
		}
		if _, err := os.Stat(filepath.Join(out, rundir.CheckpointDir, checkpointName(1))); err != nil {
			t.Errorf("checkpoint: %v", err)
		}
		// A finished run is never overwritten without Force.
		if _, err := Run(context.Background(), cfg, Options{Out: out}); !errors.Is(err, ErrFinishedRun) {
			t.Errorf("rerun into a finished run: err %v, want ErrFinishedRun", err)
		}
	}
}

// equalMetrics reports whether a and b hold the same values, NaN (not
// measured) matching NaN.
func equalMetrics(a, b rundir.EpochMetrics) bool {
	if a.Epoch != b.Epoch {
		return false
	}
	for _, c := range rundir.Metrics {
		x, y := c.Of(a), c.Of(b)
		if x != y && !(math.IsNaN(x) && math.IsNaN(y)) {
			return false
		}
	}
	return true
}

// runStopped runs cfg, cancelling its context once epoch stop has ended,
// and returns Run's error.
func runStopped(t *testing.T, cfg Config, opts Options, stop int) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts.OnEpoch = func(m rundir.EpochMetrics) {
		if m.Epoch == stop {
			cancel()
		}
	}
	_, err := Run(ctx, cfg, opts)
	return err
}

// sameMetrics compares two histories, except their timings.
func sameMetrics(t *testing.T, what string, a, b []rundir.EpochMetrics) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d vs %d epochs", what, len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		x.Seconds, y.Seconds, x.ImagesPerSecond, y.ImagesPerSecond = 0, 0, 0, 0
		x.DataWaitShare, y.DataWaitShare = 0, 0
		if !equalMetrics(x, y) {
			t.Errorf("%s: epoch %d differs:\n%+v\n%+v", what, i+1, x, y)
		}
	}
}

// TestRunDeterministicAndResumable runs a small SGT configuration three
// times with the same seed: uninterrupted twice (the numbers must be
// identical), and once stopped after its first epoch and resumed from the
// checkpoint (it must end exactly like the uninterrupted runs).
func TestRunDeterministicAndResumable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Alpha = 0.5
	cfg.LabelSmoothing = 0.1
	cfg.TrainSize = 600
	cfg.TestSize = 300
	cfg.Epochs = 2
	cfg.BatchSize = 50
	cfg.EvalBatchSize = 200 // 300 = 200 + a partial batch of 100
	cfg.WarmupEpochs = 0.5
	cfg.WarmupStartLR = 0.01
	cfg.AGC = 0.1
	cfg.Seed = 7

	dirA := filepath.Join(t.TempDir(), "a")
	a, err := Run(context.Background(), cfg, Options{Out: dirA})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameMetrics(t, "same seed", a.History, b.History)
	if a.Final.TestAcc < 0.6 {
		t.Errorf("small run did not learn: %+v", a.History)
	}
	// A different seed gives different numbers (the seed is really used).
	other := cfg
	other.Seed = 8
	x, err := Run(context.Background(), other, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if x.History[0].TrainLoss == a.History[0].TrainLoss {
		t.Errorf("seeds 7 and 8 gave the same train loss %v", x.History[0].TrainLoss)
	}

	// Stop after one epoch, as if killed, then resume.
	dirC := filepath.Join(t.TempDir(), "c")
	if err := runStopped(t, cfg, Options{Out: dirC}, 1); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("stopped run: err %v, want ErrInterrupted", err)
	}
	if state, _ := rundir.Inspect(dirC); state != rundir.Unfinished {
		t.Fatalf("stopped run dir state %v, want unfinished", state)
	}
	if _, err := Run(context.Background(), cfg, Options{Out: dirC}); !errors.Is(err, ErrUnfinishedRun) {
		t.Fatalf("new run into an unfinished one: err %v, want ErrUnfinishedRun", err)
	}
	ignored := DefaultConfig() // Resume takes the settings from config.json.
	c, err := Run(context.Background(), ignored, Options{Out: dirC, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	sameMetrics(t, "resumed", a.History, c.History)
	rows, err := rundir.ReadMetrics(dirC)
	if err != nil {
		t.Fatal(err)
	}
	sameMetrics(t, "resumed metrics.csv", a.History, rows)

	// Checkpoints: the newest plus the best are kept.
	epochs, err := listCheckpoints(filepath.Join(dirA, rundir.CheckpointDir))
	if err != nil {
		t.Fatal(err)
	}
	want := []int{a.BestEpoch}
	if a.BestEpoch != 2 {
		want = append(want, 2)
	}
	if len(epochs) != len(want) || epochs[len(epochs)-1] != 2 || epochs[0] != want[0] {
		t.Errorf("checkpoints kept %v, want %v (best epoch %d)", epochs, want, a.BestEpoch)
	}
	if _, err := Run(context.Background(), cfg, Options{Out: dirA, Resume: true}); err == nil {
		t.Error("resuming a finished run succeeded")
	}
}

func TestRunStopsOnDivergence(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TrainSize = 256
	cfg.TestSize = 100
	cfg.BatchSize = 64
	cfg.LR = 1e30
	cfg.Schedule = optim.ScheduleConstant
	_, err := Run(context.Background(), cfg, Options{})
	if !errors.Is(err, ErrDiverged) {
		t.Fatalf("err %v, want ErrDiverged", err)
	}
}
