package train

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt"
	"github.com/sgt-dev/sgt/backend"
	"github.com/sgt-dev/sgt/data"
	"github.com/sgt-dev/sgt/models"
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
	// Out (the best one is kept as well); 0 means 1, negative disables them.
	KeepCheckpoints int
	// Progress receives progress reports (nil: none).
	Progress io.Writer
	// Interactive selects a progress line rewritten in place with "\r"
	// (for a terminal) instead of one line per epoch.
	Interactive bool
	// OnEpoch, when set, is called after every epoch with its metrics.
	OnEpoch func(EpochMetrics)
	// StopAfterEpochs, when positive, ends the session after that many
	// epochs counted from the start of the run (not of this session),
	// leaving the run unfinished, as if it had been killed; tests use it to
	// exercise resuming.
	StopAfterEpochs int
}

// ErrDiverged is returned (wrapped) when the training loss becomes NaN or infinite.
var ErrDiverged = errors.New("training diverged")

// ErrStopped is returned (wrapped) when a run ends early because of
// Options.StopAfterEpochs.
var ErrStopped = errors.New("run stopped before its last epoch")

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
	optimizer  Chain

	train, test *split
	numClasses  int
	transform   data.Transform
	evalBatches *data.Batcher

	ctx                 *context.Context
	trainExec, evalExec *context.Exec
	schedule            Schedule
	stepsPerEpoch       int

	// Run state, saved in checkpoints.
	epoch        int // epochs completed
	step         int // optimizer steps completed
	history      []EpochMetrics
	bestAcc      float64
	bestEpoch    int
	priorSeconds float64 // time spent in earlier sessions of a resumed run

	// restored holds the variables read from a checkpoint until the first
	// step of a resumed session has checked them (see checkRestored).
	restored map[string]bool

	record RunRecord
}

// Run trains a model as cfg says and returns the summary of the run. With
// opts.Out set it records the run there (config.json, metrics.csv after
// every epoch, summary.json at the end, and checkpoints); a directory that
// holds a finished run is refused unless opts.Force is set. With
// opts.Resume it continues the unfinished run in opts.Out instead, ignoring
// cfg.
//
// The same configuration on the same machine and backend gives the same
// numbers: the weights, the model's random numbers and the data order all
// derive from cfg.Seed.
func Run(cfg Config, opts Options) (*Summary, error) {
	start := time.Now()
	if opts.Resume {
		if opts.Out == "" {
			return nil, &FieldError{Field: "resume", Err: errors.New("needs the run directory (--out)")}
		}
		rec, err := readRunRecord(opts.Out)
		if err != nil {
			return nil, err
		}
		cfg = rec.Config
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.EvalBatchSize == 0 {
		cfg.EvalBatchSize = cfg.BatchSize
	}
	if opts.Out != "" && !opts.Resume {
		// Refuse early, before the data is loaded; clear only once the run
		// is known to start.
		if err := checkRunDir(opts.Out, opts.Force); err != nil {
			return nil, err
		}
	}
	t, err := newTrainer(cfg, opts)
	if err != nil {
		return nil, err
	}
	defer t.close()
	if opts.Out != "" && !opts.Resume {
		if err := prepareRunDir(opts.Out, opts.Force); err != nil {
			return nil, err
		}
	}
	if opts.Resume {
		if err := t.restoreLatest(); err != nil {
			return nil, err
		}
	} else if opts.Out != "" {
		if err := writeJSONAtomic(filepath.Join(opts.Out, ConfigFile), t.record); err != nil {
			return nil, err
		}
	}
	return t.loop(start)
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
func newTrainer(cfg Config, opts Options) (*trainer, error) {
	t := &trainer{cfg: cfg, opts: opts, optimizer: cfg.Optimizer()}
	var err error
	if t.spec, err = models.Get(cfg.Model); err != nil {
		return nil, &FieldError{Field: "model", Err: err}
	}
	if t.train, err = loadSplit(cfg.Data, cfg.DataDir, "train", cfg.TrainSize); err != nil {
		return nil, err
	}
	if t.test, err = loadSplit(cfg.Data, cfg.DataDir, "test", cfg.TestSize); err != nil {
		return nil, err
	}
	if t.train.n < cfg.BatchSize {
		return nil, fieldErrorf("batch-size", "%d is larger than the %d training examples", cfg.BatchSize, t.train.n)
	}
	if !t.train.sameShape(t.test) {
		return nil, fmt.Errorf("dataset %s: train and test images differ in shape (%v vs %v)", cfg.Data, t.train.dims(1), t.test.dims(1))
	}
	t.numClasses = max(t.train.numClasses, t.test.numClasses)
	t.stepsPerEpoch = t.train.n / cfg.BatchSize
	if t.transform, err = augmentTransform(cfg.Augment, cfg.Data); err != nil {
		return nil, &FieldError{Field: "augment", Err: err}
	}
	if t.evalBatches, err = t.test.evalBatcher(cfg.EvalBatchSize); err != nil {
		return nil, err
	}
	if t.schedule, err = NewSchedule(cfg.scheduleConfig(t.stepsPerEpoch)); err != nil {
		return nil, &FieldError{Field: "schedule", Err: err}
	}
	if t.backend, t.backendCfg, err = backend.New(cfg.Backend); err != nil {
		return nil, &FieldError{Field: "backend", Err: err}
	}

	t.ctx = context.New()
	if err := t.ctx.SetRNGStateFromSeed(cfg.Seed); err != nil {
		return nil, fmt.Errorf("seeding the random number generator: %w", err)
	}
	t.trainExec, err = context.NewExec(t.backend, t.ctx.Checked(false), t.trainStepGraph)
	if err != nil {
		return nil, fmt.Errorf("creating the train step: %w", err)
	}
	t.evalExec, err = context.NewExec(t.backend, t.ctx.Reuse(), t.evalStepGraph)
	if err != nil {
		return nil, fmt.Errorf("creating the eval step: %w", err)
	}
	// Build the model once on a throwaway context, so that a broken model
	// fails before the run directory is touched, and to count its parameters.
	params, err := probeModel(t.backend, t.spec, t.train.dims(cfg.BatchSize), t.numClasses)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", cfg.Model, err)
	}
	t.record = RunRecord{
		Config:        cfg,
		CodeVersion:   CodeVersion(),
		GoVersion:     runtime.Version(),
		Backend:       t.backend.Name(),
		BackendConfig: t.backendCfg,
		TrainSources:  t.train.sources,
		TestSources:   t.test.sources,
		TrainExamples: t.train.n,
		TestExamples:  t.test.n,
		StepsPerEpoch: t.stepsPerEpoch,
		Parameters:    params,
		Optimizer:     t.optimizer.Name(),
		Started:       time.Now().UTC().Format(time.RFC3339),
		Warnings:      cfg.Warnings(),
	}
	return t, nil
}

// probeModel builds the model's logits for a batch of the given shape on a
// fresh context, without compiling or running anything, and returns the
// number of trainable parameters.
func probeModel(b backends.Backend, spec models.Spec, dims []int, numClasses int) (params int, err error) {
	err = graphResult("building the model", func() error {
		g := graph.NewGraph(b, "probe")
		defer g.Finalize()
		ctx := context.New()
		ctx.SetTraining(g, true)
		images := graph.Parameter(g, "images", shapes.Make(dtypes.Float32, dims...))
		logits := spec.Build(ctx, images, numClasses)
		if want := []int{dims[0], numClasses}; !slices.Equal(logits.Shape().Dimensions, want) {
			return fmt.Errorf("logits have shape %s, want %v", logits.Shape(), want)
		}
		for v := range ctx.IterVariables() {
			if v.Trainable {
				params += v.Shape().Size()
			}
		}
		return nil
	})
	return params, err
}

// finalLayerScope returns the scope of the model's final (classifier) layer:
// that of the last-created trainable variable of rank >= 2 whose last axis
// has numClasses entries (the logits' weights). It returns "" when there is
// none.
func finalLayerScope(ctx *context.Context, g *graph.Graph, numClasses int) string {
	scope := ""
	for v := range ctx.IterVariables() {
		if !v.Trainable || !v.InUseByGraph(g) {
			continue
		}
		dims := v.Shape().Dimensions
		if len(dims) >= 2 && dims[len(dims)-1] == numClasses {
			scope = v.Scope()
		}
	}
	return scope
}

// trainStepGraph builds one optimizer step: logits, the SGT loss, the
// gradients, the optimizer chain and the variable updates. It returns the
// batch's mean loss and its number of correct predictions.
func (t *trainer) trainStepGraph(ctx *context.Context, images, labels, lr *graph.Node) (loss, correct *graph.Node) {
	g := images.Graph()
	ctx.SetTraining(g, true)
	logits := t.spec.Build(ctx, images, t.numClasses)
	loss = sgt.CrossEntropyLoss(logits, labels, t.cfg.Alpha, t.cfg.LabelSmoothing)

	final := finalLayerScope(ctx, g, t.numClasses)
	var params []Param
	var values []*graph.Node
	for v := range ctx.IterVariables() {
		if !v.Trainable || !v.InUseByGraph(g) {
			continue
		}
		value := v.ValueGraph(g)
		params = append(params, Param{Variable: v, Value: value, Final: final != "" && v.Scope() == final})
		values = append(values, value)
	}
	if len(params) == 0 {
		panic(fmt.Errorf("model %s has no trainable variables", t.cfg.Model))
	}
	grads := graph.Gradient(loss, values...)
	step := &Step{Ctx: ctx.In("optimizer").Checked(false), Params: params, LearningRate: lr}
	ApplyUpdates(params, t.optimizer.Update(step, grads))
	return loss, countCorrect(logits, labels)
}

// evalStepGraph builds the evaluation of one batch in inference mode: it
// returns the summed loss and the number of correct predictions.
func (t *trainer) evalStepGraph(ctx *context.Context, images, labels *graph.Node) (lossSum, correct *graph.Node) {
	g := images.Graph()
	ctx.SetTraining(g, false)
	logits := t.spec.Build(ctx, images, t.numClasses)
	loss := sgt.CrossEntropyLoss(logits, labels, t.cfg.Alpha, t.cfg.LabelSmoothing)
	n := images.Shape().Dimensions[0]
	return graph.MulScalar(loss, float64(n)), countCorrect(logits, labels)
}

// countCorrect returns the number of rows of logits whose arg-max is the
// label, as a float32 scalar.
func countCorrect(logits, labels *graph.Node) *graph.Node {
	pred := graph.ArgMax(logits, -1, labels.DType())
	hits := graph.ConvertDType(graph.Equal(pred, labels), dtypes.Float32)
	return graph.ReduceAllSum(hits)
}

// scalar returns the float64 value of a scalar tensor and frees it.
func scalar(t *tensors.Tensor) (float64, error) {
	defer func() { _ = t.FinalizeAll() }()
	switch v := t.Value().(type) {
	case float32:
		return float64(v), nil
	case float64:
		return v, nil
	default:
		return 0, fmt.Errorf("unexpected output %s", t.Shape())
	}
}

// runStep executes one compiled step and returns its two scalar outputs.
func runStep(exec *context.Exec, what string, args ...any) (a, b float64, err error) {
	err = graphResult(what, func() error {
		out, err := exec.Exec(args...)
		if err != nil {
			return err
		}
		if len(out) != 2 {
			return fmt.Errorf("expected 2 outputs, got %d", len(out))
		}
		if a, err = scalar(out[0]); err != nil {
			return err
		}
		b, err = scalar(out[1])
		return err
	})
	return a, b, err
}

// loop runs the remaining epochs and writes the records.
func (t *trainer) loop(start time.Time) (*Summary, error) {
	bs := t.cfg.BatchSize
	prog := newProgress(t.opts.Progress, t.opts.Interactive, t.cfg.Epochs, t.stepsPerEpoch, bs)
	defer prog.abort()
	if w := t.opts.Progress; w != nil {
		r := &t.record
		fmt.Fprintf(w, "training %s on %s (%d train, %d test examples; %d parameters), alpha %g, %d epochs of %d steps, backend %s\n",
			t.cfg.Model, t.cfg.Data, r.TrainExamples, r.TestExamples, r.Parameters, t.cfg.Alpha, t.cfg.Epochs, t.stepsPerEpoch, t.backendCfg)
		if t.epoch > 0 {
			fmt.Fprintf(w, "resuming after epoch %d\n", t.epoch)
		}
		for _, warning := range r.Warnings {
			fmt.Fprintf(w, "warning: %s\n", warning)
		}
	}
	// The loader's epochs count from 0: epoch e of the run is its e-1.
	loader, err := t.train.trainLoader(bs, t.cfg.Seed, t.transform, t.epoch)
	if err != nil {
		return nil, err
	}
	defer func() { _ = loader.Close() }()
	for t.epoch < t.cfg.Epochs {
		if t.opts.StopAfterEpochs > 0 && t.epoch >= t.opts.StopAfterEpochs {
			return nil, fmt.Errorf("after epoch %d: %w", t.epoch, ErrStopped)
		}
		epochStart := time.Now()
		epoch := t.epoch + 1
		var lossSum, correctSum, lrSum float64
		prog.startEpoch(epoch)
		steps := 0
		for {
			images, labels, err := t.train.nextTrainBatch(loader)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("epoch %d: %w", epoch, err)
			}
			if steps == t.stepsPerEpoch {
				return nil, fmt.Errorf("epoch %d: the data loader gave more than %d batches", epoch, t.stepsPerEpoch)
			}
			lr := t.schedule.LR(t.step)
			lrSum += lr
			loss, correct, err := runStep(t.trainExec, fmt.Sprintf("epoch %d step %d", epoch, steps+1), images, labels, float32(lr))
			if err != nil {
				return nil, err
			}
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return nil, fmt.Errorf("epoch %d step %d: loss is %v: %w (try a smaller --lr or enable --clip-norm)", epoch, steps+1, loss, ErrDiverged)
			}
			if err := t.checkRestored(); err != nil {
				return nil, err
			}
			t.step++
			steps++
			lossSum += loss
			correctSum += correct
			prog.step(steps, lossSum/float64(steps), correctSum/float64(steps*bs))
		}
		if steps != t.stepsPerEpoch {
			return nil, fmt.Errorf("epoch %d: the data loader gave %d batches, want %d", epoch, steps, t.stepsPerEpoch)
		}
		testLoss, testAcc, err := t.evaluate()
		if err != nil {
			return nil, err
		}
		secs := time.Since(epochStart).Seconds()
		m := EpochMetrics{
			Epoch:           epoch,
			LR:              lrSum / float64(steps),
			TrainLoss:       lossSum / float64(steps),
			TrainAcc:        correctSum / float64(steps*bs),
			TestLoss:        testLoss,
			TestAcc:         testAcc,
			Seconds:         secs,
			ImagesPerSecond: float64(steps*bs) / prog.trainSeconds(),
		}
		t.epoch = epoch
		t.history = append(t.history, m)
		if epoch == 1 || testAcc > t.bestAcc {
			t.bestAcc, t.bestEpoch = testAcc, epoch
		}
		prog.endEpoch(m)
		if t.opts.OnEpoch != nil {
			t.opts.OnEpoch(m)
		}
		if t.opts.Out != "" {
			if err := WriteFileAtomic(filepath.Join(t.opts.Out, MetricsFile), formatMetricsCSV(t.history)); err != nil {
				return nil, err
			}
			if err := t.saveCheckpoint(t.priorSeconds + time.Since(start).Seconds()); err != nil {
				return nil, err
			}
		}
	}
	sum := &Summary{
		Epochs:       t.epoch,
		Final:        t.history[len(t.history)-1],
		BestTestAcc:  t.bestAcc,
		BestEpoch:    t.bestEpoch,
		TotalSeconds: t.priorSeconds + time.Since(start).Seconds(),
		Steps:        t.step,
		History:      t.history,
	}
	if t.opts.Out != "" {
		if err := writeJSONAtomic(filepath.Join(t.opts.Out, SummaryFile), sum); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

// evaluate runs the test set in inference mode and returns the mean loss and
// the accuracy.
func (t *trainer) evaluate() (loss, acc float64, err error) {
	b := t.evalBatches
	b.SetEpoch(0)
	images := make([]float32, b.ImagesLen())
	labels := make([]int32, b.BatchSize())
	var lossSum, correctSum float64
	seen := 0
	for {
		n, err := b.Next(images, labels)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("evaluation: %w", err)
		}
		x, y := t.test.batchTensors(images, labels, n)
		l, c, err := runStep(t.evalExec, fmt.Sprintf("evaluating test examples %d-%d", seen, seen+n-1), x, y)
		if err != nil {
			return 0, 0, err
		}
		lossSum += l
		correctSum += c
		seen += n
	}
	if seen != t.test.n {
		return 0, 0, fmt.Errorf("evaluation saw %d of the %d test examples", seen, t.test.n)
	}
	return lossSum / float64(seen), correctSum / float64(seen), nil
}
