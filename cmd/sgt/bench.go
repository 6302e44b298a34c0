package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"

	"github.com/sgt-dev/sgt"
	"github.com/sgt-dev/sgt/atomicfile"
	"github.com/sgt-dev/sgt/backend"
	"github.com/sgt-dev/sgt/backend/kernels"
	// Our CPU backend, so that "--backend cpu" is available to the benchmark.
	_ "github.com/sgt-dev/sgt/backend/cpu"
	"github.com/sgt-dev/sgt/models"
	"github.com/sgt-dev/sgt/train"
	"github.com/sgt-dev/sgt/train/optim"
)

func init() {
	register("bench", "time training steps on random data (images/s), like the PyTorch peer bench.py", runBench)
}

// benchPreset is the default workload of a model in the peer benchmark.
type benchPreset struct {
	input   []int // [H, W, C]
	classes int
	batch   int
}

// benchPresets are the peer's workloads (bench.py's build()); other models
// use their usual input shape, 10 classes and batch 32.
var benchPresets = map[string]benchPreset{
	"mlp":      {[]int{28, 28, 1}, 10, 128},
	"resnet20": {[]int{32, 32, 3}, 10, 128},
	"resnet18": {[]int{64, 64, 3}, 100, 64},
}

// benchWindow is one timing window.
type benchWindow struct {
	Steps        int     `json:"steps"`
	Seconds      float64 `json:"seconds"`
	ImagesPerS   float64 `json:"images_per_s"`
	MedianStepMS float64 `json:"median_step_ms"`
	MinStepMS    float64 `json:"min_step_ms"`
	Loss         float64 `json:"loss"`
}

// benchResult is what "sgt bench --json" prints.
type benchResult struct {
	Model             string        `json:"model"`
	Params            int           `json:"params"`
	Batch             int           `json:"batch"`
	Input             []int         `json:"input"`
	Classes           int           `json:"classes"`
	Backend           string        `json:"backend"`
	Alpha             float64       `json:"alpha"`
	Precision         string        `json:"precision"`
	Threads           int           `json:"threads"`
	ISA               string        `json:"isa"`
	Warmup            int           `json:"warmup"`
	WarmupSeconds     float64       `json:"warmup_seconds"`
	ImagesPerS        float64       `json:"images_per_s"`
	ImagesPerSBest    float64       `json:"images_per_s_best"`
	ImagesPerSWindows []float64     `json:"images_per_s_windows"`
	Windows           []benchWindow `json:"windows"`
	PeakRSSBytes      int64         `json:"peak_rss_bytes"`
	GoVersion         string        `json:"go_version"`
	// Scaling is the scaling analysis of the timed windows (--scaling).
	Scaling *kernels.Scaling `json:"scaling,omitempty"`
}

// maxBenchSeconds bounds --time (a day): longer windows would overflow the
// duration arithmetic and are never meant.
const maxBenchSeconds = 86400

// benchConfig holds the flags of "sgt bench".
type benchConfig struct {
	model, backend, isa    string
	batch, warmup, steps   int
	repeats, pool, threads int
	alpha, minTime, lr     float64
	seed                   uint64
	cpuProfile             string
	scaling                int
	asJSON                 bool
	precision              string
	classes                int
}

// runBench implements "sgt bench": it times training steps (forward, mean
// cross-entropy with the SGT backward, backward, SGD with Nesterov momentum
// 0.9 and weight decay 5e-4) on a pool of random batches, as the peer
// /work/shared/peers/torch/bench.py does, and reports images/s.
func runBench(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var cfg benchConfig
	fs := newFlagSet("bench", stderr)
	fs.StringVar(&cfg.model, "model", "resnet20", "model to time (presets as in the peer: mlp, resnet20, resnet18; any of: "+strings.Join(models.Names(), ", ")+")")
	fs.IntVar(&cfg.batch, "batch", 0, "batch size (default: 128 for mlp and resnet20, 64 for resnet18, 32 otherwise)")
	fs.Float64Var(&cfg.alpha, "alpha", 1, "SGT exponent of the backward pass (1: plain training)")
	fs.StringVar(&cfg.backend, "backend", "", "GoMLX backend (default: automatic, see package backend; e.g. cpu, go, xla)")
	fs.BoolVar(&cfg.asJSON, "json", false, "print one JSON object instead of text")
	fs.IntVar(&cfg.warmup, "warmup", 5, "untimed warm-up steps (the first one compiles)")
	fs.IntVar(&cfg.steps, "steps", 10, "minimum timed steps per window")
	fs.Float64Var(&cfg.minTime, "time", 10, "minimum seconds per window")
	fs.IntVar(&cfg.repeats, "repeats", 1, "number of timing windows (the median is reported)")
	fs.IntVar(&cfg.pool, "pool", 4, "distinct random batches cycled through")
	fs.IntVar(&cfg.threads, "threads", 0, "GOMAXPROCS for the run (0: leave as is)")
	fs.StringVar(&cfg.isa, "isa", "", "kernel family of the cpu backend: "+strings.Join(kernels.AvailableISAs(), ", ")+" (default: the fastest this CPU has)")
	fs.Float64Var(&cfg.lr, "lr", 0.1, "learning rate")
	cfg.precision = train.PrecisionFloat32
	fs.Var(train.PrecisionValue{P: &cfg.precision}, "precision", "compute precision: "+strings.Join(train.PrecisionNames, ", ")+" or bf16 (bfloat16 needs a backend with bfloat16 arithmetic, such as XLA on a GPU)")
	fs.IntVar(&cfg.classes, "classes", 0, "number of classes (default: the model's preset, 10 for most)")
	fs.Uint64Var(&cfg.seed, "seed", 0, "seed of the random data and initialisation")
	fs.IntVar(&cfg.scaling, "scaling", 0, "N: time the step on one thread with the cpu backend's kernels split for N workers, and predict its speedup at 2, 4, ... N threads (an upper bound: no memory contention, no wake-up costs); the images/s are then one thread's")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed windows (not the warm-up) to this file, for go tool pprof")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	spec, err := models.Get(cfg.model)
	if err != nil {
		return usagef("--model: %v", err)
	}
	preset, ok := benchPresets[cfg.model]
	if !ok {
		preset = benchPreset{spec.InputShape, 10, 32}
	}
	if cfg.batch == 0 {
		cfg.batch = preset.batch
	}
	if cfg.classes > 0 {
		preset.classes = cfg.classes
	}
	switch {
	case cfg.batch < 1:
		return usagef("--batch must be >= 1, got %d", cfg.batch)
	case sgt.ValidateAlpha(cfg.alpha) != nil:
		return usagef("--alpha: %v", sgt.ValidateAlpha(cfg.alpha))
	case cfg.warmup < 0:
		return usagef("--warmup must be >= 0, got %d", cfg.warmup)
	case cfg.steps < 1:
		return usagef("--steps must be >= 1, got %d", cfg.steps)
	case !(cfg.minTime >= 0 && cfg.minTime <= maxBenchSeconds):
		return usagef("--time must be a number of seconds from 0 to %d, got %v", maxBenchSeconds, cfg.minTime)
	case cfg.repeats < 1:
		return usagef("--repeats must be >= 1, got %d", cfg.repeats)
	case cfg.pool < 1:
		return usagef("--pool must be >= 1, got %d", cfg.pool)
	case cfg.scaling < 0 || cfg.scaling == 1:
		return usagef("--scaling must be at least 2 (the worker count to predict for), got %d", cfg.scaling)
	case cfg.scaling > 0 && cfg.threads > 1:
		return usagef("--scaling runs on one thread; leave out --threads %d", cfg.threads)
	case cfg.threads < 0:
		return usagef("--threads must be >= 0, got %d", cfg.threads)
	case !(cfg.lr > 0) || math.IsInf(cfg.lr, 0):
		return usagef("--lr must be a positive number, got %v", cfg.lr)
	case cfg.classes < 0 || cfg.classes == 1:
		return usagef("--classes must be at least 2, got %d", cfg.classes)
	}
	if cfg.cpuProfile != "" {
		if fi, err := os.Stat(filepath.Dir(cfg.cpuProfile)); err != nil || !fi.IsDir() {
			return usagef("--cpuprofile %s: its folder %s does not exist", cfg.cpuProfile, filepath.Dir(cfg.cpuProfile))
		}
	}
	backendName, _, _ := strings.Cut(backend.Resolve(cfg.backend), ":")
	if !slices.Contains(backend.Names(), backendName) {
		return usagef("--backend: unknown backend %q (available: %s)", backendName, strings.Join(backend.Names(), ", "))
	}
	if cfg.scaling > 0 && backendName != "cpu" {
		return usagef("--scaling analyses sgt's cpu backend, not %s", backendName)
	}
	if cfg.threads > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cfg.threads))
	}
	if cfg.isa != "" {
		previous := kernels.CurrentISA()
		if err := kernels.SetISA(cfg.isa); err != nil {
			return usagef("--isa: %v", err)
		}
		defer func() { _ = kernels.SetISA(previous) }()
	}
	res, err := bench(cfg, spec, preset, stdout)
	if err != nil {
		return err
	}
	if cfg.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return nil
}

// bench runs the benchmark; without --json it prints its progress lines to w
// as it goes.
func bench(cfg benchConfig, spec models.Spec, preset benchPreset, w io.Writer) (res *benchResult, err error) {
	b, config, err := backend.New(cfg.backend)
	if err != nil {
		return nil, fmt.Errorf("creating the backend: %w", err)
	}
	defer b.Finalize()
	res = &benchResult{
		Model: spec.Name, Batch: cfg.batch, Input: preset.input, Classes: preset.classes,
		Backend: config, Alpha: cfg.alpha, Precision: cfg.precision, Threads: runtime.GOMAXPROCS(0), ISA: kernels.CurrentISA(), Warmup: cfg.warmup,
		GoVersion: runtime.Version(),
	}
	if res.Params, err = models.CountParameters(b, spec.Name, preset.input, preset.classes, nil); err != nil {
		return nil, err
	}
	if err := checkBenchMemory(b, config, spec, preset, cfg); err != nil {
		return nil, err
	}
	say := func(format string, args ...any) {
		if !cfg.asJSON {
			fmt.Fprintf(w, format, args...)
		}
	}
	say("# %s backend=%s threads=%d (GOMAXPROCS) NumCPU=%d\n", res.GoVersion, config, res.Threads, runtime.NumCPU())
	say("# model=%s params=%d batch=%d input=%v classes=%d alpha=%g\n",
		spec.Name, res.Params, cfg.batch, preset.input, preset.classes, cfg.alpha)

	var params map[string]any
	if cfg.precision == train.PrecisionBF16 {
		params = map[string]any{models.ParamComputeDType: "bfloat16"}
	}
	timer, err := newStepTimer(b, spec.Name+" on "+config, benchStep(spec, preset.classes, cfg.alpha), params, preset.input, cfg.batch, cfg.pool, cfg.lr, cfg.seed)
	if err != nil {
		return nil, err
	}
	defer timer.Close()
	step := timer.Train

	var an *kernels.Analysis // the scaling analysis (--scaling)
	if cfg.scaling > 0 {
		// The warm-up compiles with the kernels split as in the analysis.
		if an, err = kernels.StartAnalysis(cfg.scaling); err != nil {
			return nil, err
		}
		defer func() {
			if an != nil {
				an.Stop()
			}
		}()
	}
	loss := math.NaN()
	t0 := time.Now()
	for i := range cfg.warmup {
		if loss, err = step(); err != nil {
			if cfg.precision == train.PrecisionBF16 && i == 0 {
				return nil, usagef("--precision bfloat16: backend %s cannot run %s in bfloat16 (%v); use --precision float32 or an XLA backend", config, spec.Name, err)
			}
			return nil, err
		}
	}
	res.WarmupSeconds = time.Since(t0).Seconds()
	if an != nil { // analyse the timed windows only
		an.Stop()
		if an, err = kernels.StartAnalysis(cfg.scaling); err != nil {
			return nil, err
		}
	}
	say("# warmup %s %.2fs loss=%.4f\n", plural(cfg.warmup, "step"), res.WarmupSeconds, loss)

	if cfg.cpuProfile != "" {
		var prof bytes.Buffer
		if err := pprof.StartCPUProfile(&prof); err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if werr := atomicfile.WriteFile(cfg.cpuProfile, prof.Bytes()); werr != nil && err == nil {
				res, err = nil, fmt.Errorf("--cpuprofile: %w", werr)
			}
		}()
	}
	minTime := time.Duration(cfg.minTime * float64(time.Second))
	for r := range cfg.repeats {
		start := time.Now()
		times, err := timeCalls(cfg.steps, minTime, func() (err error) {
			loss, err = step()
			return err
		})
		if err != nil {
			return nil, err
		}
		elapsed := time.Since(start).Seconds()
		med := medianDuration(times)
		win := benchWindow{
			Steps: len(times), Seconds: elapsed, ImagesPerS: float64(len(times)*cfg.batch) / elapsed,
			MedianStepMS: med.Seconds() * 1e3, MinStepMS: slices.Min(times).Seconds() * 1e3, Loss: loss,
		}
		res.Windows = append(res.Windows, win)
		res.ImagesPerSWindows = append(res.ImagesPerSWindows, win.ImagesPerS)
		say("window %d: steps=%d time=%.2fs images/s=%.1f median_step=%.2fms (=> %.1f img/s) min_step=%.2fms loss=%.4f\n",
			r, win.Steps, win.Seconds, win.ImagesPerS, win.MedianStepMS, float64(cfg.batch)/med.Seconds(), win.MinStepMS, loss)
	}
	if an != nil {
		sc := an.Stop()
		an = nil
		res.Scaling, res.Threads = &sc, 1
		say("# scaling analysis (one thread, kernels split for %d workers): %.1f%% of the time serial\n", sc.Workers, 100*sc.SerialFraction)
		for _, pt := range sc.Predicted {
			say("#   %2d threads: predicted speedup %.2f (efficiency %.0f%%)\n", pt.Threads, pt.Speedup, 100*pt.Efficiency)
		}
	}
	res.ImagesPerS = median(res.ImagesPerSWindows)
	res.ImagesPerSBest = slices.Max(res.ImagesPerSWindows)
	res.PeakRSSBytes = peakRSSBytes()
	if math.IsNaN(loss) {
		say("WARNING: loss is NaN\n")
	}
	say("RESULT model=%s alpha=%g backend=%s threads=%d batch=%d images_per_s_median=%.1f images_per_s_best=%.1f windows=%d peak_rss_bytes=%d\n",
		spec.Name, cfg.alpha, config, res.Threads, cfg.batch, res.ImagesPerS, res.ImagesPerSBest, len(res.Windows), res.PeakRSSBytes)
	return res, nil
}

// checkBenchMemory refuses a --batch whose training step and pool of random
// batches cannot fit in the memory available, before allocating them. On a
// backend whose model lives in device memory (a GPU's) only the pool counts.
func checkBenchMemory(b backends.Backend, config string, spec models.Spec, preset benchPreset, cfg benchConfig) error {
	avail := train.AvailableMemory()
	if avail <= 0 {
		return nil
	}
	var step int64
	if backend.OnHost(config) { // else the model's memory is the device's
		var err error
		if step, err = train.StepMemory(b, spec, preset.input, preset.classes, cfg.batch); err != nil {
			return err
		}
	}
	pool := int64(cfg.pool) * int64(cfg.batch) * int64(preset.input[0]*preset.input[1]*preset.input[2]+1) * 4
	if need := step + pool; need > avail {
		return usagef("--batch %d: a training step and %d batches need about %.1f GiB of memory, and %.1f GiB is available; use a smaller --batch",
			cfg.batch, cfg.pool, float64(need)/(1<<30), float64(avail)/(1<<30))
	}
	return nil
}

// benchStep returns the training step the benchmark times, built as "sgt
// train" builds its own (train.Step): forward in training mode, the
// batch-mean SGT cross-entropy, backward, and PyTorch's SGD with Nesterov
// momentum 0.9 and weight decay 5e-4 on every parameter, as the peer does.
func benchStep(spec models.Spec, numClasses int, alpha float64) train.Step {
	return train.Step{
		Model:      spec,
		NumClasses: numClasses,
		Alpha:      alpha,
		Optimizer: optim.Chain{
			optim.WeightDecay{Rate: 5e-4},
			optim.Momentum{Mu: 0.9, Nesterov: true},
			optim.LearningRateStep{},
		},
	}
}

// median returns the median of xs (the mean of the two middle values for an
// even count); xs must not be empty.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// medianDuration is median for durations.
func medianDuration(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs))
}
