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
)

// Runner runs the trials of an experiment directory, skipping finished ones,
// resuming or restarting interrupted ones and retrying failed ones. A failing
// trial is recorded (in its status file, its log and the manifest) and does
// not stop the others.
type Runner struct {
	// Train trains one trial.
	Train TrialFunc
	// Parallel is how many trials run at once (values below 1 mean 1).
	Parallel int
	// Shard and Shards select the trials whose index mod Shards is Shard;
	// Shards <= 1 runs every trial.
	Shard, Shards int
	// ResumeArgs, when set, gives the train arguments that continue the
	// interrupted run in dir (whose config.json exists) instead of starting
	// it over, e.g. {"--resume=" + dir}; args are the trial's own arguments.
	// When nil, interrupted trials restart from an empty run directory.
	ResumeArgs func(args []string, dir string) []string
	// Progress receives one line per started and finished trial (may be nil).
	Progress io.Writer
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
}

// OK reports whether every selected trial is done.
func (s RunSummary) OK() bool {
	return len(s.Failed) == 0 && s.Interrupted == 0 && s.Skipped+s.Done == s.Selected
}

// Run runs trials (nil: every trial of m), those of them in the runner's
// shard, in the experiment directory dir and keeps dir's manifest m up to
// date. It returns an error only when it cannot do its bookkeeping or when
// ctx is cancelled; failed trials are reported in the summary.
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

// StateSkipped is reported (never stored) for trials found done.
const StateSkipped = "skipped"

// runTrial runs one trial. It returns the trial's final state and error
// (nil when done or skipped), and err for bookkeeping failures.
func (r *Runner) runTrial(ctx context.Context, dir string, t Trial, mu *sync.Mutex) (state string, trialErr, err error) {
	tdir := filepath.Join(dir, t.Dir)
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		return "", nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	prev, err := TrialState(tdir)
	if err != nil {
		return "", nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	if prev.State == StateDone {
		r.progress(mu, "%s: already done, skipped", t.Name)
		return StateSkipped, nil, nil
	}
	if ctx.Err() != nil {
		return StatePending, nil, nil // cancelled before it started
	}
	resume := r.ResumeArgs != nil && (prev.State == StateInterrupted || prev.State == StateRunning) && exists(filepath.Join(tdir, ConfigFile))
	if !resume {
		if err := clearRunDir(tdir); err != nil {
			return "", nil, fmt.Errorf("trial %s: %w", t.Name, err)
		}
	}
	args := append([]string(nil), t.Args...)
	if resume {
		args = r.ResumeArgs(args, tdir)
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
	fmt.Fprintf(logf, "=== %s attempt %d at %s: train %s\n", verb, st.Attempts, start.Format(time.RFC3339), strings.Join(args, " "))
	r.progress(mu, "%s: %s (attempt %d)", t.Name, verb, st.Attempts)

	trialErr = callTrain(ctx, r.Train, args, tdir, logf)
	if trialErr == nil && !exists(filepath.Join(tdir, SummaryFile)) {
		trialErr = fmt.Errorf("train returned without writing %s", SummaryFile)
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
	return st.State, trialErr, nil
}

// callTrain calls train, turning a panic into an error so that one broken
// trial cannot stop the others.
func callTrain(ctx context.Context, train TrialFunc, args []string, dir string, log io.Writer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("train panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return train(ctx, args, dir, log)
}

// clearRunDir removes everything in a trial directory except its log and
// status file, so a restarted trial starts from an empty run directory.
func clearRunDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == LogFile || e.Name() == StatusFile {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clearing %s for a restart: %w", dir, err)
		}
	}
	return nil
}

func (r *Runner) progress(mu *sync.Mutex, format string, args ...any) {
	if r.Progress == nil {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(r.Progress, format+"\n", args...)
}
