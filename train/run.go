package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt/backend"
	"github.com/sgt-dev/sgt/data"
	"github.com/sgt-dev/sgt/models"
	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train/optim"
)

// Options are the settings of a run that do not change its results: where
// its records go and how it reports progress.
type Options struct {
	// Out is the run directory ("" writes nothing to disk).
	Out string
	// Force allows overwriting a directory that holds a finished or
	// unfinished run (its run files and checkpoints are removed first).
	Force bool
	// Resume continues the unfinished run in Out from its last checkpoint.
	// The configuration is read from Out/config.json; Run's cfg is ignored.
	Resume bool
	// KeepCheckpoints is the number of most recent epoch checkpoints kept in
	// Out (the best one is kept as well); negative disables them. 0 means 1
	// for a new run, and for a resumed one the number it was started with
	// (recorded in config.json).
	KeepCheckpoints int
	// Progress receives progress reports (nil: none).
	Progress io.Writer
	// Interactive selects a progress line rewritten in place with "\r"
	// (for a terminal) instead of one line per epoch.
	Interactive bool
	// OnEpoch, when set, is called after every epoch with its metrics.
	OnEpoch func(rundir.EpochMetrics)
	// OnStep, when set, is called after every optimizer step.
	OnStep func(StepProgress)
}

// StepProgress is where a run stands after an optimizer step.
type StepProgress struct {
	// Epoch (from 1) of Epochs, and Step (from 1) of Steps in the epoch.
	Epoch, Epochs, Step, Steps int
	// Loss and Acc are the running means of the epoch so far.
	Loss, Acc float64
}

// ErrDiverged is returned (wrapped) when the training loss becomes NaN or infinite.
var ErrDiverged = errors.New("training diverged")

// ErrInterrupted is returned (wrapped, together with the context's error)
// when a run stops because its context was cancelled: a signal, a
// deadline, a cancelled grid. The run directory stays resumable.
var ErrInterrupted = errors.New("run interrupted")

// graphResult evaluates fn, turning a panic raised while building or running
// a graph (GoMLX's way of reporting errors) into an error.
func graphResult(what string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = fmt.Errorf("%s: %w", what, e)
			} else {
				err = fmt.Errorf("%s: %v", what, r)
			}
		}
	}()
	if err := fn(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// trainer holds the state of one run.
type trainer struct {
	cfg        Config
	opts       Options
	backend    backends.Backend
	backendCfg string
	spec       models.Spec
	step       Step

	train, test *split
	// trainEval is the fixed training subset evaluated after every epoch
	// (nil when Config.TrainEvalSize is 0).
	trainEval  *split
	numClasses int
	// top5 tells whether the top-5 test accuracy is measured.
	top5      bool
	transform data.Transform

	ctx                 *mlctx.Context
	trainExec, evalExec *mlctx.Exec
	schedule            optim.Schedule
	stepsPerEpoch       int

	// Run state, saved in checkpoints.
	epoch        int // epochs completed
	steps        int // optimizer steps completed
	history      []rundir.EpochMetrics
	bestAcc      float64
	bestEpoch    int
	priorSeconds float64 // time spent in earlier sessions of a resumed run
	// partial is the progress within the current epoch (restored from a
	// checkpoint written when a run was interrupted within an epoch).
	partial epochState

	// restored holds the variables read from a checkpoint until the first
	// step of a resumed session has checked them (see checkRestored).
	restored map[string]bool

	record rundir.Record
}

// Run trains a model as cfg says and returns the summary of the run. With
// opts.Out set it records the run there (config.json, metrics.csv after
// every epoch, filter_norms.csv, summary.json at the end, and checkpoints);
// a directory that holds a finished run is refused unless opts.Force is
// set. With opts.Resume it continues the unfinished run in opts.Out
// instead, ignoring cfg.
//
// Cancelling ctx stops the run after the step in progress: a checkpoint of
// the run so far is written (unless checkpoints are off) and the error
// wraps ErrInterrupted and ctx's error; resuming gives exactly the metrics
// of an uninterrupted run.
//
// The same configuration on the same machine and backend gives the same
// numbers: the weights, the model's random numbers and the data order all
// derive from cfg.Seed. A NaN or infinite loss stops the run with an error
// wrapping ErrDiverged; the checkpoint of the last completed epoch stays.
func Run(ctx context.Context, cfg Config, opts Options) (*rundir.Summary, error) {
	start := time.Now()
	t, err := setup(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	defer t.close()
	sum, err := t.loop(ctx, start)
	if err == nil && opts.Out != "" {
		err = removeStale(opts.Out)
	}
	return sum, err
}

// resumeConfig reads the configuration and record of the run to resume in
// dir. Errors name the file and the field.
func resumeConfig(dir string) (Config, *rundir.Record, error) {
	state, err := rundir.Inspect(dir)
	if err != nil {
		return Config{}, nil, &FieldError{Field: "resume", Err: err}
	}
	switch state {
	case rundir.None:
		return Config{}, nil, &FieldError{Field: "resume", Err: fmt.Errorf("%s holds no run to resume", dir)}
	case rundir.Finished:
		return Config{}, nil, &FieldError{Field: "resume", Err: fmt.Errorf("%s: %w; nothing to resume", dir, ErrFinishedRun)}
	}
	rec, err := rundir.ReadRecord(dir)
	if err != nil {
		return Config{}, nil, &FieldError{Field: "resume", Err: err}
	}
	cfg := Config(rec.Config)
	if err := cfg.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			err = fmt.Errorf("field \"config.%s\": %w", strings.ReplaceAll(fe.Field, "-", "_"), fe.Err)
		}
		return Config{}, nil, &FieldError{Field: "resume", Err: fmt.Errorf("%s: %w", filepath.Join(dir, rundir.ConfigFile), err)}
	}
	return cfg, rec, nil
}

// setup prepares a run: it validates the settings (read from config.json
// when resuming), loads the data, builds the model, prepares the run
// directory and restores the last checkpoint or initialises the weights.
func setup(ctx context.Context, cfg Config, opts Options) (_ *trainer, err error) {
	var old *rundir.Record
	if opts.Resume {
		if opts.Out == "" {
			return nil, &FieldError{Field: "resume", Err: errors.New("needs the run directory (--out)")}
		}
		if cfg, old, err = resumeConfig(opts.Out); err != nil {
			return nil, err
		}
		if opts.KeepCheckpoints == 0 && old.KeepCheckpoints != 0 {
			opts.KeepCheckpoints = old.KeepCheckpoints
		}
	} else if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.KeepCheckpoints == 0 {
		opts.KeepCheckpoints = 1
	}
	if opts.Out != "" && !opts.Resume {
		// Refuse early, before the data is loaded; clear only once the run
		// is known to start.
		if err := checkRunDir(opts.Out, opts.Force); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w before it started: %w", ErrInterrupted, err)
	}
	t, err := newTrainer(cfg, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if old != nil {
		if err := checkData(opts.Out, old.Data, t.record.Data); err != nil {
			return nil, err
		}
		t.record.ID, t.record.Started = old.ID, old.Started
	}
	if opts.Out != "" {
		if !opts.Resume {
			if err := prepareRunDir(opts.Out, opts.Force); err != nil {
				return nil, err
			}
		}
		if err := removeStale(opts.Out); err != nil {
			return nil, err
		}
		if err := rundir.WriteRecord(opts.Out, &t.record); err != nil {
			return nil, err
		}
	}
	if opts.Resume {
		if err := t.restoreLatest(); err != nil {
			return nil, err
		}
	}
	if t.steps == 0 {
		if err := t.initialize(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// checkData refuses to resume a run whose data files changed since it
// started (recorded is nil for runs recorded before fingerprints existed).
func checkData(dir string, recorded, now []rundir.FileFingerprint) error {
	if recorded == nil {
		return nil
	}
	fail := func(format string, args ...any) error {
		return &FieldError{Field: "resume", Err: fmt.Errorf("%s: %s; the run cannot continue on other data (start a new run, or restore the original files)",
			filepath.Join(dir, rundir.ConfigFile), fmt.Sprintf(format, args...))}
	}
	if len(recorded) != len(now) {
		return fail("the run read %d data files, now there are %d", len(recorded), len(now))
	}
	for i, r := range recorded {
		n := now[i]
		switch {
		case r.Path != n.Path:
			return fail("data file %s is now %s", r.Path, n.Path)
		case r.Size != n.Size:
			return fail("data file %s changed: %d bytes when the run started, %d now", r.Path, r.Size, n.Size)
		case r.SHA256 != n.SHA256 || r.Method != n.Method:
			return fail("data file %s changed: its content hash differs from the one recorded when the run started", r.Path)
		}
	}
	return nil
}

// close releases the compiled steps, the variables and the backend.
func (t *trainer) close() {
	if t.trainExec != nil {
		t.trainExec.Finalize()
	}
	if t.evalExec != nil {
		t.evalExec.Finalize()
	}
	if t.ctx != nil {
		t.ctx.Finalize()
	}
	if t.backend != nil {
		t.backend.Finalize()
	}
}

// newTrainer loads the data, creates the backend, the model's context and
// the compiled steps.
func newTrainer(cfg Config, opts Options) (_ *trainer, err error) {
	t := &trainer{cfg: cfg, opts: opts}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if t.spec, err = models.Get(cfg.Model); err != nil {
		return nil, &FieldError{Field: "model", Err: err}
	}
	if t.train, err = loadSplit(&cfg, data.SplitTrain, cfg.TrainSize); err != nil {
		return nil, err
	}
	if t.test, err = loadSplit(&cfg, data.SplitTest, cfg.TestSize); err != nil {
		return nil, err
	}
	if t.train.n < cfg.BatchSize {
		return nil, fieldErrorf("batch-size", "%d is larger than the %d training examples", cfg.BatchSize, t.train.n)
	}
	if !t.train.sameShape(t.test) {
		return nil, &FieldError{Field: "data", Err: fmt.Errorf("dataset %s: train and test images differ in shape (%v vs %v; files %s and %s)",
			cfg.Data, t.train.dims(1)[1:], t.test.dims(1)[1:], strings.Join(t.train.sources, ", "), strings.Join(t.test.sources, ", "))}
	}
	if cfg.TrainEvalSize > 0 {
		t.trainEval = t.train.subset(cfg.TrainEvalSize)
	}
	t.numClasses = max(t.train.numClasses, t.test.numClasses)
	t.top5 = t.numClasses >= 100
	t.stepsPerEpoch = t.train.n / cfg.BatchSize
	if t.transform, err = augmentTransform(cfg.Augment, cfg.Data, cfg.ImageSize); err != nil {
		return nil, &FieldError{Field: "augment", Err: err}
	}
	if t.schedule, err = optim.NewSchedule(cfg.scheduleConfig(t.stepsPerEpoch)); err != nil {
		return nil, &FieldError{Field: "schedule", Err: err}
	}
	fingerprints, err := fingerprintSources(append(slices.Clone(t.train.sources), t.test.sources...))
	if err != nil {
		return nil, err
	}
	if t.backend, t.backendCfg, err = backend.New(cfg.Backend); err != nil {
		return nil, &FieldError{Field: "backend", Err: err}
	}
	// Build the model once on a throwaway context, so that a broken model
	// or a backend that cannot train it fails before the run directory is
	// touched, to count its parameters, and to refuse settings that cannot
	// fit in memory before anything large is allocated.
	need, err := probeModel(t.backend, t.spec, t.train.dims(1), t.numClasses, cfg.modelParams())
	if err != nil && cfg.Precision == PrecisionBF16 {
		return nil, fieldErrorf("precision", "backend %s cannot compute model %s in bfloat16 (%v); use --precision float32, or an XLA backend", t.backendCfg, cfg.Model, err)
	}
	if err != nil {
		return nil, unsupportedOp(fmt.Errorf("model %s: %w", cfg.Model, err), t.backendCfg, cfg.Model)
	}
	if err := backendOpsError(t.backendCfg, cfg.Model, missingConvOps(t.backend), need.conv); err != nil {
		return nil, err
	}
	hostNeed := need.memoryNeed
	if !backend.OnHost(t.backendCfg) {
		hostNeed = memoryNeed{} // the model's memory is the device's; the host holds the batches
	}
	if err := checkMemory(&cfg, hostNeed, 4*t.train.exampleSize(), t.evalBatchSize(), t.train.prefetch(), availableMemory()); err != nil {
		return nil, err
	}
	params := int(need.params / 4)
	t.step = NewStep(cfg, t.spec, t.numClasses)
	if err := t.compile(); err != nil {
		return nil, err
	}
	t.record = rundir.Record{
		ID:              rundir.NewID(),
		Config:          rundir.Config(cfg),
		KeepCheckpoints: opts.KeepCheckpoints,
		CodeVersion:     CodeVersion(),
		GoVersion:       runtime.Version(),
		Backend:         t.backend.Name(),
		BackendConfig:   t.backendCfg,
		TrainSources:    t.train.sources,
		TestSources:     t.test.sources,
		Data:            fingerprints,
		TrainExamples:   t.train.n,
		TestExamples:    t.test.n,
		Classes:         t.numClasses,
		StepsPerEpoch:   t.stepsPerEpoch,
		Parameters:      params,
		Optimizer:       t.step.Optimizer.Name(),
		Started:         time.Now().UTC().Format(time.RFC3339),
		Warnings:        cfg.Warnings(),
	}
	if t.trainEval != nil {
		t.record.TrainEvalExamples = t.trainEval.n
	}
	if t.record.Sources, err = recipeSources(cfg); err != nil {
		return nil, err
	}
	return t, nil
}

// recipeSources returns where each setting of a run that started from a
// recipe comes from: the recipe's sources, and for each setting the run
// changed, that it was set for this run (nil without a recipe).
func recipeSources(cfg Config) (map[string]string, error) {
	if cfg.Recipe == "" {
		return nil, nil
	}
	r, err := LookupRecipe(cfg.Recipe)
	if err != nil {
		return nil, &FieldError{Field: "recipe", Err: err}
	}
	sources := maps.Clone(r.Sources)
	base := rundir.Config(r.Config).Fields()
	for i, f := range rundir.Config(cfg).Fields() {
		if f.Value != base[i].Value && f.Key != "recipe" {
			sources[f.Key] = fmt.Sprintf("set for this run (the recipe has %q)", base[i].Value)
		}
	}
	return sources, nil
}

// fingerprintSources fingerprints the data files (or folders) of a run,
// each once.
func fingerprintSources(sources []string) ([]rundir.FileFingerprint, error) {
	var out []rundir.FileFingerprint
	seen := map[string]bool{}
	for _, s := range sources {
		if seen[s] {
			continue
		}
		seen[s] = true
		fp, err := rundir.Fingerprint(s)
		if err != nil {
			return nil, fmt.Errorf("fingerprinting the data: %w", err)
		}
		out = append(out, fp)
	}
	return out, nil
}

// evalBatchSize returns the batch size of evaluation: the configured one,
// but no larger than the largest split evaluated.
func (t *trainer) evalBatchSize() int {
	n := t.test.n
	if t.trainEval != nil {
		n = max(n, t.trainEval.n)
	}
	return min(t.cfg.evalBatchSize(), n)
}

// compile creates the model's context and the compiled train and eval
// steps, as t.step describes them.
func (t *trainer) compile() error {
	t.ctx = mlctx.New()
	t.ctx.SetParams(t.cfg.modelParams())
	if err := t.ctx.SetRNGStateFromSeed(t.cfg.Seed); err != nil {
		return fmt.Errorf("seeding the random number generator: %w", err)
	}
	var err error
	if t.trainExec, err = mlctx.NewExec(t.backend, t.ctx.Checked(false), t.step.Train); err != nil {
		return fmt.Errorf("creating the train step: %w", err)
	}
	if t.evalExec, err = mlctx.NewExec(t.backend, t.ctx.Reuse(), t.step.Eval); err != nil {
		return fmt.Errorf("creating the eval step: %w", err)
	}
	return nil
}

// initialize prepares a run at step 0: it compiles the train step and
// initialises the weights (as the first step would), so that the initial
// filter norms can be recorded.
func (t *trainer) initialize() error {
	bs := t.cfg.BatchSize
	err := graphResult("initialising the model", func() error {
		images := tensors.FromShape(shapes.Make(dtypes.Float32, t.train.dims(bs)...))
		labels := tensors.FromShape(shapes.Make(dtypes.Int32, bs))
		defer func() { _, _ = images.FinalizeAll(), labels.FinalizeAll() }()
		if err := t.trainExec.PreCompile(images, labels, float32(0)); err != nil {
			return err
		}
		return t.ctx.InitializeVariables(t.backend, nil)
	})
	if err != nil {
		return unsupportedOp(err, t.backendCfg, t.cfg.Model)
	}
	return t.recordFilterNorms(nil)
}

// recordFilterNorms appends the current filter norms (computed now when
// layers is nil) to filter_norms.csv, if the run records them.
func (t *trainer) recordFilterNorms(layers []rundir.LayerNorms) error {
	if t.opts.Out == "" || t.cfg.FilterNormsEvery == 0 {
		return nil
	}
	if layers == nil {
		var err error
		if layers, err = convFilterNorms(t.ctx); err != nil {
			return err
		}
	}
	if len(layers) == 0 {
		return nil // no convolution layers
	}
	return rundir.AppendFilterNorms(t.opts.Out, t.steps, layers)
}

// modelProbe is what building a model's graph, without running it, tells.
type modelProbe struct {
	// memoryNeed is what the model's steps need in memory.
	memoryNeed
	// conv reports whether the model has convolution kernels (rank-4
	// trainable variables).
	conv bool
}

// probeModel builds the model's logits on a fresh context for batches of
// one and of two examples of shape dims[1:] (dims[0] is ignored), without
// compiling or running anything, and returns what its steps need in memory
// and whether it convolves. The bytes per example are the difference of the
// two graphs' values, so that what does not grow with the batch (the
// variables' initialisation, for one) is not counted per example.
func probeModel(b backends.Backend, spec models.Spec, dims []int, numClasses int, hyper map[string]any) (need modelProbe, err error) {
	one, err := buildProbe(b, spec, append([]int{1}, dims[1:]...), numClasses, hyper)
	if err != nil {
		return need, err
	}
	two, err := buildProbe(b, spec, append([]int{2}, dims[1:]...), numClasses, hyper)
	if err != nil {
		return need, err
	}
	need = modelProbe{memoryNeed: memoryNeed{perExample: max(two.total-one.total, 0), params: one.params}, conv: one.conv}
	return need, nil
}

// graphSize is what one build of a model's graph holds.
type graphSize struct {
	total  int64 // bytes of every value of the graph
	params int64 // bytes of the trainable variables
	conv   bool  // rank-4 trainable variables (convolution kernels)
}

// buildProbe builds the model's logits for a batch of shape dims on a fresh
// context and measures the graph.
func buildProbe(b backends.Backend, spec models.Spec, dims []int, numClasses int, hyper map[string]any) (size graphSize, err error) {
	err = graphResult("building the model", func() error {
		g := graph.NewGraph(b, "probe")
		defer g.Finalize()
		ctx := mlctx.New()
		ctx.SetParams(hyper)
		ctx.SetTraining(g, true)
		images := graph.Parameter(g, "images", shapes.Make(dtypes.Float32, dims...))
		logits := spec.Build(ctx, images, numClasses)
		if want := []int{dims[0], numClasses}; !slices.Equal(logits.Shape().Dimensions, want) {
			return fmt.Errorf("logits have shape %s, want %v", logits.Shape(), want)
		}
		for _, n := range g.Nodes() {
			if sh := n.Shape(); sh.DType != dtypes.InvalidDType {
				size.total += int64(sh.Memory())
			}
		}
		for v := range ctx.IterVariables() {
			if v.Trainable {
				size.params += int64(v.Shape().Memory())
				size.conv = size.conv || v.Shape().Rank() == 4
			}
		}
		return nil
	})
	return size, err
}
