package experiment

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Files of an experiment directory and of its trial directories.
const (
	// ManifestFile is the experiment manifest in the experiment directory.
	ManifestFile = "grid.json"
	// ResultsCSV and ResultsJSON hold one row per trial.
	ResultsCSV  = "results.csv"
	ResultsJSON = "results.json"
	// StatusFile is the per-trial status file in each trial directory.
	StatusFile = "status.json"
	// LogFile is the per-trial log (the train command's output) in each trial directory.
	LogFile = "train.log"
	// ConfigFile, MetricsFile, SummaryFile and FilterNormsFile are the files
	// of a train run directory.
	ConfigFile      = "config.json"
	MetricsFile     = "metrics.csv"
	SummaryFile     = "summary.json"
	FilterNormsFile = "filter_norms.csv"
)

// Trial states recorded in status files and the manifest.
const (
	StatePending     = "pending"
	StateRunning     = "running"
	StateDone        = "done"
	StateFailed      = "failed"
	StateInterrupted = "interrupted"
)

// Manifest kinds.
const (
	KindGrid   = "grid"
	KindSearch = "search"
)

// Status is the state of one trial, kept in the trial's status file.
type Status struct {
	// State is one of the State constants.
	State string `json:"state"`
	// Error is the failure message of a failed trial.
	Error string `json:"error,omitempty"`
	// Attempts counts how often the trial was started.
	Attempts int `json:"attempts,omitempty"`
	// Resumed is true when the last attempt resumed an interrupted run.
	Resumed bool `json:"resumed,omitempty"`
	// Started and Finished time the last attempt.
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// Host and PID identify the process of the last attempt.
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
}

// TrialRecord is a trial and its status, as listed in the manifest.
type TrialRecord struct {
	Trial
	Status
}

// Manifest describes an experiment directory (grid.json).
type Manifest struct {
	// Kind is KindGrid or KindSearch.
	Kind string `json:"kind"`
	// Command is the command line that made the experiment, for people.
	Command []string `json:"command"`
	// Grid is the grid specification (grids only).
	Grid *Grid `json:"grid,omitempty"`
	// Search is the search specification (searches only).
	Search *SearchSpec `json:"search,omitempty"`
	// Axes are the varied settings (the seed excluded).
	Axes []Axis `json:"axes"`
	// Seeds are the seeds of every setting.
	Seeds []int `json:"seeds"`
	// Trials lists every trial with its status.
	Trials []TrialRecord `json:"trials"`
	// Updated is when the manifest was last written.
	Updated time.Time `json:"updated"`
}

// ReadManifest reads dir/grid.json.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	var m Manifest
	if err := readJSON(path, &m); err != nil {
		return nil, err
	}
	if m.Kind != KindGrid && m.Kind != KindSearch {
		return nil, fmt.Errorf("%s: unknown kind %q (want %q or %q)", path, m.Kind, KindGrid, KindSearch)
	}
	for i, t := range m.Trials {
		if t.Dir == "" || filepath.IsAbs(t.Dir) || !filepath.IsLocal(t.Dir) {
			return nil, fmt.Errorf("%s: trial %d has a bad directory %q", path, i, t.Dir)
		}
	}
	return &m, nil
}

// WriteManifest refreshes every trial's status from its status file and
// writes dir/grid.json atomically, so that shards sharing the directory can
// write it concurrently.
func WriteManifest(dir string, m *Manifest) error {
	for i := range m.Trials {
		st, err := TrialState(filepath.Join(dir, m.Trials[i].Dir))
		if err != nil {
			return err
		}
		m.Trials[i].Status = st
	}
	m.Updated = time.Now().UTC().Truncate(time.Second)
	return writeJSONAtomic(filepath.Join(dir, ManifestFile), m)
}

// TrialState returns the state of the trial whose run directory is dir: done
// when summary.json exists, else what its status file says (a trial whose
// status says running may also have been interrupted), else interrupted when
// the run has started writing files, else pending.
func TrialState(dir string) (Status, error) {
	var st Status
	err := readJSON(filepath.Join(dir, StatusFile), &st)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st = Status{State: StatePending}
	case err != nil:
		return Status{}, err
	}
	if exists(filepath.Join(dir, SummaryFile)) {
		st.State = StateDone
		st.Error = ""
		return st, nil
	}
	switch st.State {
	case StateDone:
		// The summary was removed; the run must be redone.
		st.State = StateInterrupted
	case StatePending:
		if exists(filepath.Join(dir, MetricsFile)) || exists(filepath.Join(dir, ConfigFile)) {
			st.State = StateInterrupted
		}
	case StateRunning, StateFailed, StateInterrupted:
	default:
		return Status{}, fmt.Errorf("%s: unknown state %q", filepath.Join(dir, StatusFile), st.State)
	}
	return st, nil
}

func writeStatus(dir string, st Status) error {
	return writeJSONAtomic(filepath.Join(dir, StatusFile), st)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// readJSON decodes the JSON file at path into v, naming the file in errors.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeJSONAtomic writes v as indented JSON to path through a temporary file
// in the same directory and a rename, so readers never see a partial file.
func writeJSONAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// writeFileAtomic writes data to path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, 0o644)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, werr)
	}
	return nil
}
