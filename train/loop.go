package train

import (
	"errors"
	"fmt"
	"io"
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
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt"
	"github.com/sgt-dev/sgt/backend"
	"github.com/sgt-dev/sgt/data"
	"github.com/sgt-dev/sgt/models"
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
	optimizer  optim.Chain

	train, test *split
	// trainEval is the fixed training subset evaluated after every epoch
	// (nil when Config.TrainEvalSize is 0).
	trainEval  *split
	numClasses int
	// top5 tells whether the top-5 test accuracy is measured.
	top5      bool
	transform data.Transform

	ctx                 *context.Context
	trainExec, evalExec *context.Exec
	schedule            optim.Schedule
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
// every epoch, filter_norms.csv, summary.json at the end, and checkpoints);
// a directory that holds a finished run is refused unless opts.Force is
// set. With opts.Resume it continues the unfinished run in opts.Out
// instead, ignoring cfg.
//
// The same configuration on the same machine and backend gives the same
// numbers: the weights, the model's random numbers and the data order all
// derive from cfg.Seed. A NaN or infinite loss stops the run with an error
// wrapping ErrDiverged; the checkpoint of the last completed epoch stays.
func Run(cfg Config, opts Options) (*Summary, error) {
	start := time.Now()
	t, err := setup(cfg, opts)
	if err != nil {
		return nil, err
	}
	defer t.close()
	return t.loop(start)
}

// setup prepares a run: it validates the settings (read from config.json
// when resuming), loads the data, builds the model, prepares the run
// directory and restores the last checkpoint or initialises the weights.
func setup(cfg Config, opts Options) (_ *trainer, err error) {
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
	defer func() {
		if err != nil {
			t.close()
		}
	}()
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
	if t.step == 0 {
		if err := t.initialize(); err != nil {
			return nil, err
		}
	}
	return t, nil
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
	t := &trainer{cfg: cfg, opts: opts, optimizer: cfg.Optimizer()}
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
		return nil, fmt.Errorf("dataset %s: train and test images differ in shape (%v vs %v; files %s and %s)",
			cfg.Data, t.train.dims(1)[1:], t.test.dims(1)[1:], strings.Join(t.train.sources, ", "), strings.Join(t.test.sources, ", "))
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
	if t.backend, t.backendCfg, err = backend.New(cfg.Backend); err != nil {
		return nil, &FieldError{Field: "backend", Err: err}
	}

	t.ctx = context.New()
	t.ctx.SetParams(cfg.modelParams())
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
	params, err := probeModel(t.backend, t.spec, t.train.dims(cfg.BatchSize), t.numClasses, cfg.modelParams())
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
	if t.trainEval != nil {
		t.record.TrainEvalExamples = t.trainEval.n
	}
	return t, nil
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
		return err
	}
	return t.recordFilterNorms(nil)
}

// filterNormsPath returns the path of filter_norms.csv, or "" when the run
// does not record filter norms.
func (t *trainer) filterNormsPath() string {
	if t.opts.Out == "" || t.cfg.FilterNormsEvery == 0 {
		return ""
	}
	return filepath.Join(t.opts.Out, FilterNormsFile)
}

// recordFilterNorms appends the current filter norms (computed now when
// layers is nil) to filter_norms.csv, if the run records them.
func (t *trainer) recordFilterNorms(layers []layerNorms) error {
	path := t.filterNormsPath()
	if path == "" {
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
	return appendFilterNorms(path, t.step, layers)
}

// probeModel builds the model's logits for a batch of the given shape on a
// fresh context, without compiling or running anything, and returns the
// number of trainable parameters.
func probeModel(b backends.Backend, spec models.Spec, dims []int, numClasses int, hyper map[string]any) (params int, err error) {
	err = graphResult("building the model", func() error {
		g := graph.NewGraph(b, "probe")
		defer g.Finalize()
		ctx := context.New()
		ctx.SetParams(hyper)
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
	var params []optim.Param
	var values []*graph.Node
	for v := range ctx.IterVariables() {
		if !v.Trainable || !v.InUseByGraph(g) {
			continue
		}
		value := v.ValueGraph(g)
		params = append(params, optim.Param{Variable: v, Value: value, Final: final != "" && v.Scope() == final})
		values = append(values, value)
	}
	if len(params) == 0 {
		panic(fmt.Errorf("model %s has no trainable variables", t.cfg.Model))
	}
	grads := graph.Gradient(loss, values...)
	step := &optim.Step{Ctx: ctx.In("optimizer").Checked(false), Params: params, LearningRate: lr}
	optim.ApplyUpdates(params, t.optimizer.Update(step, grads))
	return loss, countCorrect(logits, labels)
}

// Outputs of the eval step, in order; evalFeatureAbs is there only for
// models that expose their features.
const (
	evalLossSum = iota
	evalCorrect
	evalTop5
	evalLogitNorm
	evalFeatureAbs
)

// evalStepGraph builds the evaluation of one batch in inference mode. It
// returns (see the eval* constants) the summed loss, the number of correct
// predictions, the number of labels among the 5 highest logits, the summed
// L2 norms of the logit vectors and, when the model exposes its features,
// their summed absolute values per feature.
func (t *trainer) evalStepGraph(ctx *context.Context, images, labels *graph.Node) []*graph.Node {
	g := images.Graph()
	ctx.SetTraining(g, false)
	var features, logits *graph.Node
	if t.spec.Features != nil {
		features, logits = t.spec.Features(ctx, images, t.numClasses)
	} else {
		logits = t.spec.Build(ctx, images, t.numClasses)
	}
	loss := sgt.CrossEntropyLoss(logits, labels, t.cfg.Alpha, t.cfg.LabelSmoothing)
	n := images.Shape().Dimensions[0]
	z := graph.ConvertDType(logits, dtypes.Float32)
	outs := []*graph.Node{
		evalLossSum:   graph.ConvertDType(graph.MulScalar(loss, float64(n)), dtypes.Float32),
		evalCorrect:   countCorrect(logits, labels),
		evalTop5:      countTopK(z, labels, 5),
		evalLogitNorm: graph.ReduceAllSum(graph.Sqrt(graph.ReduceSum(graph.Square(z), -1))),
	}
	if features != nil {
		f := graph.ConvertDType(features, dtypes.Float32)
		outs = append(outs, graph.ReduceSum(graph.Abs(f), 0))
	}
	return outs
}

// countCorrect returns the number of rows of logits whose arg-max is the
// label, as a float32 scalar.
func countCorrect(logits, labels *graph.Node) *graph.Node {
	pred := graph.ArgMax(logits, -1, labels.DType())
	hits := graph.ConvertDType(graph.Equal(pred, labels), dtypes.Float32)
	return graph.ReduceAllSum(hits)
}

// countTopK returns the number of rows of logits [N, C] in which fewer
// than k logits exceed the label's, i.e. the label is among the k highest
// (ties counted in its favour), as a float32 scalar.
func countTopK(logits, labels *graph.Node, k int) *graph.Node {
	dims := logits.Shape().Dimensions
	onehot := graph.OneHot(labels, dims[1], logits.DType())
	target := graph.ReduceSum(graph.Mul(logits, onehot), -1)
	target = graph.BroadcastToDims(graph.ExpandAxes(target, -1), dims...)
	above := graph.ReduceSum(graph.ConvertDType(graph.GreaterThan(logits, target), dtypes.Float32), -1)
	hits := graph.LessThan(above, graph.Scalar(logits.Graph(), dtypes.Float32, k))
	return graph.ReduceAllSum(graph.ConvertDType(hits, dtypes.Float32))
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

// diverged returns the error that stops a run whose loss (what, at where)
// became value, saying what stays of the run.
func (t *trainer) diverged(where, what string, value float64) error {
	var kept string
	switch {
	case t.opts.Out == "":
		kept = "nothing is recorded (no run directory)"
	case t.opts.KeepCheckpoints < 0:
		kept = "no checkpoint is kept (checkpoints are disabled)"
	case t.epoch == 0:
		kept = "there is no checkpoint yet (no epoch finished)"
	default:
		kept = fmt.Sprintf("the last good checkpoint, of epoch %d, stays in %s", t.epoch,
			filepath.Join(t.opts.Out, checkpointDir, checkpointName(t.epoch)))
	}
	return fmt.Errorf("%s: %s is %v: %w; the run stops and %s (try a smaller --lr, a longer --warmup-epochs or --clip-norm)",
		where, what, value, ErrDiverged, kept)
}

// loop runs the remaining epochs and writes the records.
func (t *trainer) loop(start time.Time) (*Summary, error) {
	bs := t.cfg.BatchSize
	prog := newProgress(t.opts.Progress, t.opts.Interactive, t.cfg.Epochs, t.stepsPerEpoch, bs)
	defer prog.abort()
	if w := t.opts.Progress; w != nil {
		r := &t.record
		if t.cfg.Recipe != "" {
			fmt.Fprintf(w, "recipe %s\n", t.cfg.Recipe)
		}
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
	every := t.cfg.FilterNormsEvery
	for t.epoch < t.cfg.Epochs {
		if t.opts.StopAfterEpochs > 0 && t.epoch >= t.opts.StopAfterEpochs {
			return nil, fmt.Errorf("after epoch %d: %w", t.epoch, ErrStopped)
		}
		epochStart := time.Now()
		waitStart := loader.Stats().Wait
		epoch := t.epoch + 1
		var lossSum, correctSum, lrSum float64
		prog.startEpoch(epoch)
		steps := 0
		for {
			images, labels, err := t.train.nextBatch(loader, "training batches")
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
			where := fmt.Sprintf("epoch %d step %d", epoch, steps+1)
			loss, correct, err := runStep(t.trainExec, where, images, labels, float32(lr))
			_, _ = images.FinalizeAll(), labels.FinalizeAll()
			if err != nil {
				return nil, err
			}
			if !finite(loss) {
				return nil, t.diverged(where, "the training loss", loss)
			}
			if err := t.checkRestored(); err != nil {
				return nil, err
			}
			t.step++
			steps++
			lossSum += loss
			correctSum += correct
			prog.step(steps, lossSum/float64(steps), correctSum/float64(steps*bs))
			if every > 0 && t.step%every == 0 {
				if err := t.recordFilterNorms(nil); err != nil {
					return nil, err
				}
			}
		}
		if steps != t.stepsPerEpoch {
			return nil, fmt.Errorf("epoch %d: the data loader gave %d batches, want %d", epoch, steps, t.stepsPerEpoch)
		}
		trainSecs := prog.trainSeconds()
		waited := (loader.Stats().Wait - waitStart).Seconds()
		m, err := t.measure(epoch)
		if err != nil {
			return nil, err
		}
		m.LR = lrSum / float64(steps)
		m.TrainLoss = lossSum / float64(steps)
		m.TrainAcc = correctSum / float64(steps*bs)
		m.DataWaitShare = min(waited/trainSecs, 1)
		m.Seconds = time.Since(epochStart).Seconds()
		m.ImagesPerSecond = float64(steps*bs) / trainSecs
		t.epoch = epoch
		t.history = append(t.history, m)
		if epoch == 1 || m.TestAcc > t.bestAcc {
			t.bestAcc, t.bestEpoch = m.TestAcc, epoch
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

// measure makes the end-of-epoch measurements: the test set, the training
// subset, the filter norms (recorded in filter_norms.csv at the end of
// every epoch when so configured) and the zeroed-out filters and features.
// A non-finite evaluation loss stops the run before anything of the epoch
// is recorded.
func (t *trainer) measure(epoch int) (EpochMetrics, error) {
	m := unmeasured()
	m.Epoch = epoch
	test, err := t.evaluate(t.test, "test")
	if err != nil {
		return m, err
	}
	where := fmt.Sprintf("epoch %d evaluation", epoch)
	if !finite(test.loss) {
		return m, t.diverged(where, "the test loss", test.loss)
	}
	m.TestLoss, m.TestAcc, m.LogitNorm = test.loss, test.acc, test.logitNorm
	if t.top5 {
		m.TestTop5 = test.top5
	}
	if test.featureAbs != nil {
		m.Features = len(test.featureAbs)
		for _, s := range test.featureAbs {
			if s/float64(test.n) < t.cfg.ZeroThreshold {
				m.ZeroedFeatures++
			}
		}
	}
	if t.trainEval != nil {
		tr, err := t.evaluate(t.trainEval, "training-set")
		if err != nil {
			return m, err
		}
		if !finite(tr.loss) {
			return m, t.diverged(where, "the training-set evaluation loss", tr.loss)
		}
		m.TrainEvalLoss, m.TrainEvalAcc = tr.loss, tr.acc
		m.Gap = tr.acc - test.acc
	}
	layers, err := convFilterNorms(t.ctx)
	if err != nil {
		return m, err
	}
	m.ZeroedFilters, m.Filters = countBelow(layers, t.cfg.ZeroThreshold)
	if t.cfg.FilterNormsEvery == FilterNormsEpoch {
		if err := t.recordFilterNorms(layers); err != nil {
			return m, err
		}
	}
	return m, nil
}

// evalResult is what an evaluation pass measured.
type evalResult struct {
	// n is the number of examples.
	n int
	// loss is the mean loss, acc the top-1 and top5 the top-5 accuracy,
	// logitNorm the mean L2 norm of the logit vectors.
	loss, acc, top5, logitNorm float64
	// featureAbs holds the summed absolute activation of each feature (nil
	// when the model does not expose its features).
	featureAbs []float64
}

// evaluate runs the split in inference mode, without augmentation; what
// names it in errors.
func (t *trainer) evaluate(s *split, what string) (*evalResult, error) {
	l, err := s.evalLoader(t.cfg.EvalBatchSize)
	if err != nil {
		return nil, err
	}
	defer func() { _ = l.Close() }()
	r := &evalResult{}
	var sums [evalFeatureAbs]float64
	for {
		images, labels, err := s.nextBatch(l, what+" evaluation")
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		n := images.Shape().Dimensions[0]
		err = graphResult(fmt.Sprintf("evaluating %s examples %d-%d", what, r.n, r.n+n-1), func() error {
			defer func() { _, _ = images.FinalizeAll(), labels.FinalizeAll() }()
			out, err := t.evalExec.Exec(images, labels)
			if err != nil {
				return err
			}
			for i := range sums {
				v, err := scalar(out[i])
				if err != nil {
					return err
				}
				sums[i] += v
			}
			if len(out) > evalFeatureAbs {
				r.featureAbs, err = accumulate(r.featureAbs, out[evalFeatureAbs])
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		r.n += n
	}
	if r.n != s.n {
		return nil, fmt.Errorf("%s evaluation saw %d of its %d examples", what, r.n, s.n)
	}
	nf := float64(r.n)
	r.loss, r.acc, r.top5, r.logitNorm = sums[evalLossSum]/nf, sums[evalCorrect]/nf, sums[evalTop5]/nf, sums[evalLogitNorm]/nf
	return r, nil
}
