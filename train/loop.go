package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt/rundir"
)

// epochState is the progress of the epoch in training: what the running
// metrics sum over its steps so far, and the time spent on them. A
// checkpoint written within an epoch keeps it.
type epochState struct {
	// Steps counts the epoch's optimizer steps done.
	Steps int `json:"steps"`
	// LossSum, CorrectSum and LRSum add up the steps' mean losses, correct
	// predictions and learning rates.
	LossSum    float64 `json:"loss_sum"`
	CorrectSum float64 `json:"correct_sum"`
	LRSum      float64 `json:"lr_sum"`
	// TrainSeconds is the time from the epoch's start to its last step,
	// WaitSeconds the part of it spent waiting for data, and Seconds the
	// epoch's whole time so far (both in earlier sessions of a resumed run).
	TrainSeconds float64 `json:"train_seconds"`
	WaitSeconds  float64 `json:"wait_seconds"`
	Seconds      float64 `json:"seconds"`
}

// epochClock times an epoch's training: the steps, and the data loader's
// waits. It is separate from the progress display.
type epochClock struct {
	prior      epochState // time of earlier sessions of this epoch
	start      time.Time
	lastStep   time.Time
	waitAtZero time.Duration
}

// startClock starts timing an epoch that already took prior's times.
func startClock(prior epochState, waitSoFar time.Duration) *epochClock {
	now := time.Now()
	return &epochClock{prior: prior, start: now, lastStep: now, waitAtZero: waitSoFar}
}

// stepDone marks the end of a step.
func (c *epochClock) stepDone() { c.lastStep = time.Now() }

// times returns the epoch's training, data-wait and total seconds so far,
// given the loader's total wait now.
func (c *epochClock) times(waitNow time.Duration) (train, wait, total float64) {
	train = c.prior.TrainSeconds + c.lastStep.Sub(c.start).Seconds()
	wait = c.prior.WaitSeconds + (waitNow - c.waitAtZero).Seconds()
	total = c.prior.Seconds + time.Since(c.start).Seconds()
	return max(train, 1e-9), wait, total
}

// runStep executes one compiled step and returns its two scalar outputs.
func runStep(exec *mlctx.Exec, what string, args ...any) (a, b float64, err error) {
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
			filepath.Join(t.opts.Out, rundir.CheckpointDir, checkpointName(t.epoch)))
	}
	return fmt.Errorf("%s: %s is %v: %w; the run stops and %s (try a smaller --lr, a longer --warmup-epochs or --clip-norm)",
		where, what, value, ErrDiverged, kept)
}

// printHeader says what the run trains.
func (t *trainer) printHeader() {
	w := t.opts.Progress
	if w == nil {
		return
	}
	r := &t.record
	if t.cfg.Recipe != "" {
		fmt.Fprintf(w, "recipe %s\n", t.cfg.Recipe)
	}
	fmt.Fprintf(w, "training %s on %s (%d train, %d test examples; %d parameters), alpha %g, %s of %s, backend %s\n",
		t.cfg.Model, t.cfg.Data, r.TrainExamples, r.TestExamples, r.Parameters, t.cfg.Alpha,
		plural(t.cfg.Epochs, "epoch"), plural(t.stepsPerEpoch, "step"), t.backendCfg)
	if t.epoch > 0 || t.partial.Steps > 0 {
		fmt.Fprintf(w, "resuming after epoch %d, step %d\n", t.epoch, t.partial.Steps)
	}
	for _, warning := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
}

// plural returns "1 epoch" or "n epochs".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// loop runs the remaining epochs and writes the records.
func (t *trainer) loop(ctx context.Context, start time.Time) (*rundir.Summary, error) {
	bs := t.cfg.BatchSize
	prog := newProgress(t.opts.Progress, t.opts.Interactive, t.cfg.Epochs, t.stepsPerEpoch, bs)
	defer prog.abort()
	t.printHeader()
	loader, err := t.train.trainLoader(bs, t.cfg.Seed, t.transform, t.epoch, t.partial.Steps)
	if err != nil {
		return nil, err
	}
	defer func() { _ = loader.Close() }()
	every := t.cfg.FilterNormsEvery
	for t.epoch < t.cfg.Epochs {
		epoch := t.epoch + 1
		st := t.partial
		clock := startClock(st, loader.Stats().Wait)
		prog.startEpoch(epoch, st.Steps)
		for {
			if err := ctx.Err(); err != nil {
				t.partial = st
				train, wait, total := clock.times(loader.Stats().Wait)
				t.partial.TrainSeconds, t.partial.WaitSeconds, t.partial.Seconds = train, wait, total
				return nil, t.interrupt(start, err)
			}
			images, labels, err := t.train.nextBatch(loader, "training batches")
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("epoch %d: %w", epoch, err)
			}
			if st.Steps == t.stepsPerEpoch {
				return nil, fmt.Errorf("epoch %d: the data loader gave more than %d batches", epoch, t.stepsPerEpoch)
			}
			lr := t.schedule.LR(t.steps)
			where := fmt.Sprintf("epoch %d step %d", epoch, st.Steps+1)
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
			clock.stepDone()
			t.steps++
			st.Steps++
			st.LossSum += loss
			st.CorrectSum += correct
			st.LRSum += lr
			runLoss, runAcc := st.LossSum/float64(st.Steps), st.CorrectSum/float64(st.Steps*bs)
			prog.step(st.Steps, runLoss, runAcc)
			if t.opts.OnStep != nil {
				t.opts.OnStep(StepProgress{Epoch: epoch, Epochs: t.cfg.Epochs, Step: st.Steps, Steps: t.stepsPerEpoch, Loss: runLoss, Acc: runAcc})
			}
			if every > 0 && t.steps%every == 0 {
				if err := t.recordFilterNorms(nil); err != nil {
					return nil, err
				}
			}
		}
		if st.Steps != t.stepsPerEpoch {
			return nil, fmt.Errorf("epoch %d: the data loader gave %d batches, want %d", epoch, st.Steps, t.stepsPerEpoch)
		}
		trainSecs, waited, _ := clock.times(loader.Stats().Wait)
		m, err := t.measure(epoch)
		if err != nil {
			return nil, err
		}
		steps := float64(st.Steps)
		m.LR = st.LRSum / steps
		m.TrainLoss = st.LossSum / steps
		m.TrainAcc = st.CorrectSum / (steps * float64(bs))
		m.DataWaitShare = min(waited/trainSecs, 1)
		_, _, m.Seconds = clock.times(loader.Stats().Wait)
		m.ImagesPerSecond = steps * float64(bs) / trainSecs
		t.epoch = epoch
		t.partial = epochState{}
		t.history = append(t.history, m)
		if epoch == 1 || m.TestAcc > t.bestAcc {
			t.bestAcc, t.bestEpoch = m.TestAcc, epoch
		}
		prog.endEpoch(m)
		if t.opts.OnEpoch != nil {
			t.opts.OnEpoch(m)
		}
		if t.opts.Out != "" {
			if err := rundir.WriteMetrics(t.opts.Out, t.history); err != nil {
				return nil, err
			}
			if err := t.saveCheckpoint(t.priorSeconds + time.Since(start).Seconds()); err != nil {
				return nil, err
			}
		}
	}
	sum := &rundir.Summary{
		Epochs:       t.epoch,
		Final:        t.history[len(t.history)-1],
		BestTestAcc:  t.bestAcc,
		BestEpoch:    t.bestEpoch,
		TotalSeconds: t.priorSeconds + time.Since(start).Seconds(),
		Steps:        t.steps,
		History:      t.history,
	}
	if t.opts.Out != "" {
		if err := rundir.WriteSummary(t.opts.Out, sum); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

// interrupt ends a run whose context was cancelled (cause is the
// context's error): it writes a checkpoint of the run so far, when the
// run keeps checkpoints and made progress since the last one, and returns
// the error saying how to continue.
func (t *trainer) interrupt(start time.Time, cause error) error {
	where := fmt.Sprintf("after epoch %d, step %d", t.epoch, t.partial.Steps)
	switch {
	case t.opts.Out == "":
		return fmt.Errorf("%w %s (nothing recorded: no run directory): %w", ErrInterrupted, where, cause)
	case t.opts.KeepCheckpoints < 0:
		return fmt.Errorf("%w %s; checkpoints are off, so resuming starts from the beginning: %w", ErrInterrupted, where, cause)
	}
	if t.partial.Steps > 0 {
		if err := t.savePartialCheckpoint(t.priorSeconds + time.Since(start).Seconds()); err != nil {
			return fmt.Errorf("%w %s, and saving its checkpoint failed: %v: %w", ErrInterrupted, where, err, cause)
		}
	}
	return fmt.Errorf("%w %s; checkpoint saved in %s: %w", ErrInterrupted, where, filepath.Join(t.opts.Out, rundir.CheckpointDir), cause)
}
