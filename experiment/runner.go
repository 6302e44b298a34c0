package experiment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train"
)

// Runner runs the trials of an experiment directory, skipping finished ones,
// resuming interrupted ones and retrying failed ones. A failing trial is
// recorded (in its status file, its log and the manifest) and does not stop
// the others. Each trial is locked while it runs, so that two processes
// working on one directory never run the same trial.
type Runner struct {
	// Train trains one trial (TrainTrial in the CLI).
	Train TrialFunc
	// Parallel is how many trials run at once (values below 1 mean 1).
	Parallel int
	// Shard and Shards select the trials whose index mod Shards is Shard;
	// Shards <= 1 runs every trial.
	Shard, Shards int
	// Progress receives one line per started and finished trial (may be nil).
	Progress io.Writer
	// OnTrial, when set, is called when a trial starts (state running),
	// when it ends (its final state), and for a trial left alone (state
	// skipped or busy), from the trial's goroutine.
	OnTrial func(TrialEvent)
	// OnStep, when set, receives the progress of running trials, from
	// their goroutines.
	OnStep func(t Trial, p train.StepProgress)
}

// TrialEvent is what Runner.OnTrial receives.
type TrialEvent struct {
	// Trial is the trial.
	Trial Trial
	// State is StateRunning when the trial starts; StateDone, StateFailed
	// or StateInterrupted when it ends; StateSkipped for a trial found
	// done and StateBusy for one another process runs.
	State string
	// Attempt (from 1) is the trial's attempt, and Resumed tells whether
	// it continues an interrupted run (both set from the start on).
	Attempt int
	Resumed bool
	// Elapsed is how long this attempt ran (when it ended).
	Elapsed time.Duration
	// Err says why the trial failed, was interrupted or left alone.
	Err error
}

// Failure names a trial that failed and why.
type Failure struct {
	Trial string `json:"trial"`
	Error string `json:"error"`
}

// RunSummary counts what a Runner did.
type RunSummary struct {
	// Selected is the number of trials in the runner's shard.
	Selected int
	// Skipped counts trials that were already done.
	Skipped int
	// Done counts trials that ran and finished.
	Done int
	// Failed lists trials that ran and failed.
	Failed []Failure
	// Interrupted counts trials stopped by cancellation.
	Interrupted int
	// Busy lists trials left alone because another process runs them.
	Busy []Failure
}

// OK reports whether every selected trial is done.
func (s RunSummary) OK() bool {
	return len(s.Failed) == 0 && s.Interrupted == 0 && len(s.Busy) == 0 && s.Skipped+s.Done == s.Selected
}

// StateSkipped and StateBusy are reported (never stored) for trials found
// done, and for trials another process is running.
const (
	StateSkipped = "skipped"
	StateBusy    = "busy"
)

// Run runs trials (nil: every trial of m), those of them in the runner's
// shard, in the experiment directory dir and keeps dir's manifest m up to
// date. Before running anything it checks every selected trial's
// directory: one that holds files sgt did not write, or a run recorded
// with other settings than the trial's, is refused with an error naming
// it. Run returns an error only for such refusals, when it cannot do its
// bookkeeping, or when ctx is cancelled; failed trials are reported in the
// summary.
func (r *Runner) Run(ctx context.Context, dir string, m *Manifest, trials []Trial) (RunSummary, error) {
	if r.Train == nil {
		return RunSummary{}, errors.New("runner has no train function")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return RunSummary{}, fmt.Errorf("creating experiment directory: %w", err)
	}
	if trials == nil {
		for _, t := range m.Trials {
			trials = append(trials, t.Trial)
		}
	}
	var selected []Trial
	for _, t := range trials {
		if InShard(t.Index, r.Shard, r.Shards) {
			selected = append(selected, t)
		}
	}
	sum := RunSummary{Selected: len(selected)}
	for _, t := range selected {
		if err := checkTrialDir(filepath.Join(dir, t.Dir), t); err != nil {
			return sum, err
		}
	}
	var mu sync.Mutex // guards sum, the manifest and Progress
	if err := WriteManifest(dir, m); err != nil {
		return sum, err
	}
	parallel := max(r.Parallel, 1)
	work := make(chan Trial)
	var (
		wg       sync.WaitGroup
		firstErr error
	)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				state, terr, err := r.runTrial(ctx, dir, t, &mu)
				mu.Lock()
				switch {
				case err != nil:
					if firstErr == nil {
						firstErr = err
					}
				case state == StateDone && terr == nil:
					sum.Done++
				case state == StateSkipped:
					sum.Skipped++
				case state == StateBusy:
					sum.Busy = append(sum.Busy, Failure{Trial: t.Name, Error: terr.Error()})
				case state == StateInterrupted:
					sum.Interrupted++
				case state == StatePending:
				default:
					sum.Failed = append(sum.Failed, Failure{Trial: t.Name, Error: terr.Error()})
				}
				if err := WriteManifest(dir, m); err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, t := range selected {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		select {
		case work <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return sum, firstErr
	}
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("experiment stopped: %w", err)
	}
	return sum, nil
}

// checkTrialDir refuses a trial directory that sgt cannot use for trial t:
// one holding files other than a run's and the experiment's, unless it is
// a trial directory sgt made (it has a status file: such files were added
// later and are left alone), and one holding a run recorded with other
// settings than t's.
func checkTrialDir(tdir string, t Trial) error {
	entries, err := os.ReadDir(tdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("trial %s: %w", t.Name, err)
	}
	var foreign []string
	ours := false
	for _, e := range entries {
		switch {
		case e.Name() == StatusFile:
			ours = true
		case !isTrialFile(e.Name()):
			foreign = append(foreign, e.Name())
		}
	}
	if len(foreign) > 0 && !ours {
		return fmt.Errorf("%s holds files sgt did not write (%s): it is not a trial directory of this grid; move them away or choose another --out",
			tdir, strings.Join(foreign, ", "))
	}
	rec, err := rundir.ReadRecord(tdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("trial %s: %w", t.Name, err)
	}
	if d := rundir.Diff(rec.Config, rundir.Config(t.Config)); d != nil {
		return fmt.Errorf("%s holds a run with other settings than trial %s (%s); move it away or choose another --out",
			tdir, t.Name, strings.Join(d, "; "))
	}
	return nil
}

// runTrial runs one trial. It returns the trial's final state and error
// (nil when done or skipped), and err for bookkeeping failures.
func (r *Runner) runTrial(ctx context.Context, dir string, t Trial, mu *sync.Mutex) (state string, trialErr, err error) {
	tdir := filepath.Join(dir, t.Dir)
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		return "", nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	lock, err := lockTrial(filepath.Join(tdir, LockFile))
	if errors.Is(err, errLocked) {
		r.progress(mu, "%s: running in another process (%v), left alone", t.Name, err)
		busy := fmt.Errorf("running in another process: %w", err)
		r.event(TrialEvent{Trial: t, State: StateBusy, Err: busy})
		return StateBusy, busy, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	defer lock.unlock()
	prev, err := TrialState(tdir)
	if err != nil {
		return "", nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	if prev.State == StateDone {
		if !exists(filepath.Join(tdir, StatusFile)) {
			// A finished run with the trial's settings, adopted.
			now := time.Now().UTC().Truncate(time.Millisecond)
			if err := writeStatus(tdir, Status{State: StateDone, Attempts: 1, Finished: &now}); err != nil {
				return "", nil, fmt.Errorf("trial %s: %w", t.Name, err)
			}
		}
		r.progress(mu, "%s: already done, skipped", t.Name)
		r.event(TrialEvent{Trial: t, State: StateSkipped})
		return StateSkipped, nil, nil
	}
	if ctx.Err() != nil {
		return StatePending, nil, nil // cancelled before it started
	}
	state0, err := rundir.Inspect(tdir)
	if err != nil {
		return "", nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	resume := prev.State != StateFailed && state0 == rundir.Unfinished && exists(filepath.Join(tdir, rundir.ConfigFile))
	if !resume {
		if err := rundir.Clear(tdir); err != nil {
			return "", nil, fmt.Errorf("trial %s: %w", t.Name, err)
		}
	}
	host, _ := os.Hostname()
	start := time.Now().UTC().Truncate(time.Millisecond)
	st := Status{State: StateRunning, Attempts: prev.Attempts + 1, Resumed: resume, Started: &start, Host: host, PID: os.Getpid()}
	if err := writeStatus(tdir, st); err != nil {
		return "", nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	logf, err := os.OpenFile(filepath.Join(tdir, LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	defer logf.Close()
	verb := "starting"
	if resume {
		verb = "resuming"
	}
	fmt.Fprintf(logf, "=== %s attempt %d at %s: %s\n", verb, st.Attempts, start.Format(time.RFC3339), t.CommandLine(tdir))
	r.progress(mu, "%s: %s (attempt %d)", t.Name, verb, st.Attempts)
	ev := TrialEvent{Trial: t, State: StateRunning, Attempt: st.Attempts, Resumed: resume}
	r.event(ev)
	var onStep func(train.StepProgress)
	if r.OnStep != nil {
		onStep = func(p train.StepProgress) { r.OnStep(t, p) }
	}
	trialErr = callTrain(ctx, r.Train, t, tdir, resume, logf, onStep)
	if trialErr == nil {
		if _, err := rundir.ReadSummary(tdir); err != nil {
			trialErr = fmt.Errorf("the run ended without a valid %s: %w", rundir.SummaryFile, err)
		}
	}
	end := time.Now().UTC().Truncate(time.Millisecond)
	st.Finished = &end
	elapsed := end.Sub(start).Round(time.Millisecond)
	switch {
	case trialErr == nil:
		st.State = StateDone
		fmt.Fprintf(logf, "=== done in %s\n", elapsed)
		r.progress(mu, "%s: done in %s", t.Name, elapsed)
	case ctx.Err() != nil:
		st.State = StateInterrupted
		st.Error = trialErr.Error()
		fmt.Fprintf(logf, "=== interrupted after %s: %v\n", elapsed, trialErr)
		r.progress(mu, "%s: interrupted", t.Name)
	default:
		st.State = StateFailed
		st.Error = trialErr.Error()
		fmt.Fprintf(logf, "=== failed after %s: %v\n", elapsed, trialErr)
		r.progress(mu, "%s: FAILED: %v", t.Name, trialErr)
	}
	if err := writeStatus(tdir, st); err != nil {
		return "", nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	ev.State, ev.Elapsed, ev.Err = st.State, elapsed, trialErr
	r.event(ev)
	return st.State, trialErr, nil
}

// callTrain calls train, turning a panic into an error so that one broken
// trial cannot stop the others.
func callTrain(ctx context.Context, fn TrialFunc, t Trial, dir string, resume bool, log io.Writer, onStep func(train.StepProgress)) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("train panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(ctx, t, dir, resume, log, onStep)
}

// event passes ev to OnTrial, if set.
func (r *Runner) event(ev TrialEvent) {
	if r.OnTrial != nil {
		r.OnTrial(ev)
	}
}

func (r *Runner) progress(mu *sync.Mutex, format string, args ...any) {
	if r.Progress == nil {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(r.Progress, format+"\n", args...)
}
