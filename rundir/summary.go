package rundir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sgt-dev/sgt/atomicfile"
)

// Summary is the content of summary.json, written when a run finishes.
type Summary struct {
	// Epochs is the number of epochs trained.
	Epochs int `json:"epochs"`
	// Final holds the metrics of the last epoch.
	Final EpochMetrics `json:"final"`
	// BestTestAcc is the highest test accuracy over the epochs, reached at
	// BestEpoch.
	BestTestAcc float64 `json:"best_test_acc"`
	BestEpoch   int     `json:"best_epoch"`
	// TotalSeconds is the wall-clock time of the whole run, setup included
	// (summed over the sessions of a resumed run).
	TotalSeconds float64 `json:"total_seconds"`
	// Steps is the total number of optimizer steps.
	Steps int `json:"steps"`
	// History holds every epoch's metrics (not written to summary.json,
	// which keeps only the final ones; see metrics.csv).
	History []EpochMetrics `json:"-"`
}

// Validate checks that s describes a finished run.
func (s *Summary) Validate() error {
	switch {
	case s.Epochs < 1:
		return fmt.Errorf("epochs %d: a finished run has at least one", s.Epochs)
	case s.Final.Epoch != s.Epochs:
		return fmt.Errorf("final metrics are of epoch %d, not of the last epoch %d", s.Final.Epoch, s.Epochs)
	case s.BestEpoch < 1 || s.BestEpoch > s.Epochs:
		return fmt.Errorf("best epoch %d is outside 1..%d", s.BestEpoch, s.Epochs)
	case !(s.BestTestAcc >= 0 && s.BestTestAcc <= 1):
		return fmt.Errorf("best test accuracy %v is not a fraction in [0, 1]", s.BestTestAcc)
	case s.Steps < s.Epochs:
		return fmt.Errorf("%d steps for %d epochs", s.Steps, s.Epochs)
	}
	return nil
}

// WriteSummary writes s to dir's summary.json.
func WriteSummary(dir string, s *Summary) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	return atomicfile.WriteJSON(filepath.Join(dir, SummaryFile), s)
}

// ReadSummary reads and checks dir's summary.json.
func ReadSummary(dir string) (*Summary, error) {
	path := filepath.Join(dir, SummaryFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Summary
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, describeJSONError(err))
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

// State says what a directory holds.
type State int

// The states of a run directory.
const (
	// None: the directory is missing, empty or holds no run files.
	None State = iota
	// Unfinished: a run started there (config.json, metrics.csv or
	// checkpoints exist) but wrote no summary.
	Unfinished
	// Finished: summary.json exists.
	Finished
)

// Inspect reports what dir holds. It does not check the files' content.
func Inspect(dir string) (State, error) {
	info, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return None, nil
	}
	if err != nil {
		return None, fmt.Errorf("run directory %s: %w", dir, err)
	}
	if !info.IsDir() {
		return None, fmt.Errorf("run directory %s: not a directory", dir)
	}
	exists := func(name string) (bool, error) {
		_, err := os.Stat(filepath.Join(dir, name))
		if err == nil {
			return true, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("run directory %s: %w", dir, err)
	}
	if ok, err := exists(SummaryFile); err != nil || ok {
		return Finished, err
	}
	for _, name := range []string{ConfigFile, MetricsFile, CheckpointDir} {
		if ok, err := exists(name); err != nil || ok {
			return Unfinished, err
		}
	}
	return None, nil
}

// IsRunFile reports whether name, an entry of a run directory, is one that
// a run writes (its files, checkpoints, and temporary files of interrupted
// writes). Tools that clear a run directory remove only these.
func IsRunFile(name string) bool {
	switch name {
	case ConfigFile, MetricsFile, SummaryFile, FilterNormsFile, CheckpointDir:
		return true
	}
	return atomicfile.IsTemp(name)
}

// Clear removes the files a run wrote in dir (see IsRunFile) and leaves
// everything else.
func Clear(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clearing %s: %w", dir, err)
	}
	for _, e := range entries {
		if IsRunFile(e.Name()) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("clearing %s: %w", dir, err)
			}
		}
	}
	return nil
}
