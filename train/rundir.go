package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
)

// Names of the files of a run directory.
const (
	ConfigFile  = "config.json"
	MetricsFile = "metrics.csv"
	SummaryFile = "summary.json"
	// FilterNormsFile holds the per-filter weight norms of the convolution
	// layers over the run (see Config.FilterNormsEvery).
	FilterNormsFile = "filter_norms.csv"
)

// ErrFinishedRun is returned (wrapped) when the output directory already
// holds a finished run and overwriting was not allowed.
var ErrFinishedRun = errors.New("directory holds a finished run")

// ErrUnfinishedRun is returned (wrapped) when the output directory holds a
// run that did not finish and neither resuming nor overwriting was asked.
var ErrUnfinishedRun = errors.New("directory holds an unfinished run")

// WriteFileAtomic writes data to path so that readers see either the old
// file or the complete new one, never a part: it writes a temporary file in
// the same directory, syncs it to disk, renames it over path and syncs the
// directory.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", path, err)
	}
	if err := os.Chmod(tmpName, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	ok = true
	// Make the rename itself durable; not every file system supports syncing
	// a directory, so a failure here is not an error.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// writeJSONAtomic writes v as indented JSON to path, atomically.
func writeJSONAtomic(path string, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return WriteFileAtomic(path, b.Bytes())
}

// RunState says what an output directory holds.
type RunState int

// The states of an output directory.
const (
	// RunNone means the directory is missing, empty or holds no run files.
	RunNone RunState = iota
	// RunUnfinished means a run started there (config.json, metrics.csv or
	// checkpoints exist) but wrote no summary.
	RunUnfinished
	// RunFinished means summary.json exists.
	RunFinished
)

// InspectRunDir reports what the directory dir holds.
func InspectRunDir(dir string) (RunState, error) {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return RunNone, nil
	}
	if err != nil {
		return RunNone, fmt.Errorf("output directory %s: %w", dir, err)
	}
	if !info.IsDir() {
		return RunNone, fmt.Errorf("output directory %s: not a directory", dir)
	}
	exists := func(name string) (bool, error) {
		_, err := os.Stat(filepath.Join(dir, name))
		if err == nil {
			return true, nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("output directory %s: %w", dir, err)
	}
	if ok, err := exists(SummaryFile); err != nil || ok {
		return RunFinished, err
	}
	for _, name := range []string{ConfigFile, MetricsFile, checkpointDir} {
		if ok, err := exists(name); err != nil || ok {
			return RunUnfinished, err
		}
	}
	return RunNone, nil
}

// checkRunDir refuses a directory that holds a finished or unfinished run,
// unless force is set. It changes nothing.
func checkRunDir(dir string, force bool) error {
	state, err := InspectRunDir(dir)
	if err != nil {
		return err
	}
	switch {
	case state == RunFinished && !force:
		return fmt.Errorf("output directory %s: %w (use --force to overwrite it, or choose another --out)", dir, ErrFinishedRun)
	case state == RunUnfinished && !force:
		return fmt.Errorf("output directory %s: %w (use --resume to continue it, --force to overwrite it, or choose another --out)", dir, ErrUnfinishedRun)
	}
	return nil
}

// prepareRunDir creates dir for a new run. A directory holding a finished or
// unfinished run is refused unless force is set, in which case the old run's
// files (and only those) are removed.
func prepareRunDir(dir string, force bool) error {
	if err := checkRunDir(dir, force); err != nil {
		return err
	}
	state, err := InspectRunDir(dir)
	if err != nil {
		return err
	}
	if state != RunNone {
		for _, name := range []string{SummaryFile, MetricsFile, ConfigFile, FilterNormsFile} {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("clearing output directory: %w", err)
			}
		}
		if err := os.RemoveAll(filepath.Join(dir, checkpointDir)); err != nil {
			return fmt.Errorf("clearing output directory: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	return nil
}

// CodeVersion returns the version control revision the running binary was
// built from ("<revision>", with "+dirty" when the tree had local changes),
// or "unknown" when the build carries no VCS information (go test, go run
// without a repository).
func CodeVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		if v := info.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		return "unknown"
	}
	if modified {
		rev += "+dirty"
	}
	return rev
}

// RunRecord is the content of config.json: every setting of the run and
// where it ran.
type RunRecord struct {
	// Config holds every training setting.
	Config Config `json:"config"`
	// CodeVersion is the VCS revision of the binary (see CodeVersion).
	CodeVersion string `json:"code_version"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Backend is the GoMLX backend's name and BackendConfig the
	// configuration it was created with.
	Backend       string `json:"backend"`
	BackendConfig string `json:"backend_config"`
	// TrainSources and TestSources name the files the data came from.
	TrainSources []string `json:"train_sources"`
	TestSources  []string `json:"test_sources"`
	// TrainExamples and TestExamples count the examples used.
	TrainExamples int `json:"train_examples"`
	TestExamples  int `json:"test_examples"`
	// TrainEvalExamples counts the training examples evaluated cleanly
	// after every epoch (0: none; see Config.TrainEvalSize).
	TrainEvalExamples int `json:"train_eval_examples"`
	// StepsPerEpoch is the number of optimizer steps in one epoch.
	StepsPerEpoch int `json:"steps_per_epoch"`
	// Parameters counts the model's trainable parameters.
	Parameters int `json:"parameters"`
	// Optimizer describes the chain of gradient transforms.
	Optimizer string `json:"optimizer"`
	// Started is the wall-clock start time (RFC 3339).
	Started string `json:"started"`
	// Warnings lists settings outside the paper's range and similar notes.
	Warnings []string `json:"warnings,omitempty"`
}

// Summary is the content of summary.json, and what Run returns.
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
