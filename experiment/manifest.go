package experiment

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sgt-dev/sgt/atomicfile"
	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train"
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
	// LogFile is the per-trial log (the run's output) in each trial directory.
	LogFile = "train.log"
	// LockFile is held (locked) by the process running the trial.
	LockFile = "trial.lock"
)

// isTrialFile reports whether name, an entry of a trial directory, is one
// that sgt writes there: the run's files and the experiment's own.
func isTrialFile(name string) bool {
	return rundir.IsRunFile(name) || name == StatusFile || name == LogFile || name == LockFile
}

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

// legacyGrid is the grid specification of manifests written before grids
// carried typed settings: train flags as words.
type legacyGrid struct {
	Flags []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
		Bare  bool   `json:"bare"`
	} `json:"flags"`
}

// ReadManifest reads dir/grid.json. Manifests of earlier versions, whose
// trials carry "sgt train" arguments instead of configurations, are
// converted.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Kind != KindGrid && m.Kind != KindSearch {
		return nil, fmt.Errorf("%s: unknown kind %q (want %q or %q)", path, m.Kind, KindGrid, KindSearch)
	}
	for i := range m.Trials {
		t := &m.Trials[i]
		if t.Dir == "" || filepath.IsAbs(t.Dir) || !filepath.IsLocal(t.Dir) {
			return nil, fmt.Errorf("%s: trial %d has a bad directory %q", path, i, t.Dir)
		}
		if t.Config.Model == "" && len(t.Args) > 0 {
			if t.Config, err = legacyConfig(t.Args); err != nil {
				return nil, fmt.Errorf("%s: trial %s: %w", path, t.Name, err)
			}
		}
		if t.Config.Model == "" {
			return nil, fmt.Errorf("%s: trial %s has no configuration", path, t.Name)
		}
	}
	if m.Kind == KindGrid && m.Grid != nil && m.Grid.Fixed == nil {
		var old struct {
			Grid *legacyGrid `json:"grid"`
		}
		if json.Unmarshal(raw, &old) == nil && old.Grid != nil {
			for _, f := range old.Grid.Flags {
				switch f.Name {
				case "recipe":
					m.Grid.Recipe = f.Value
					continue
				case "quiet", "force", "keep-checkpoints":
					continue
				}
				v := f.Value
				if f.Bare {
					v = "true"
				}
				m.Grid.Fixed = append(m.Grid.Fixed, train.Setting{Name: f.Name, Value: v})
			}
			m.Grid.Fixed = withoutAxes(m.Grid.Fixed, m.Grid.Axes)
		}
	}
	return &m, nil
}

// withoutAxes drops the settings that are varied by an axis.
func withoutAxes(settings []train.Setting, axes []Axis) []train.Setting {
	var out []train.Setting
	for _, s := range settings {
		varied := false
		for _, a := range axes {
			varied = varied || a.Name == s.Name
		}
		if !varied {
			out = append(out, s)
		}
	}
	return out
}

// legacyConfig builds the configuration of a trial recorded as "sgt train"
// words "--name=value" (or a bare "--name" for a true boolean).
func legacyConfig(args []string) (train.Config, error) {
	recipe := ""
	var settings []train.Setting
	for _, a := range args {
		body, ok := strings.CutPrefix(a, "--")
		if !ok {
			return train.Config{}, fmt.Errorf("argument %q is not a flag", a)
		}
		name, value, hasValue := strings.Cut(body, "=")
		if !hasValue {
			value = "true"
		}
		switch name {
		case "recipe":
			recipe = value
			continue
		case "quiet", "force", "keep-checkpoints":
			continue // options of sgt train that are no run settings
		}
		settings = append(settings, train.Setting{Name: name, Value: value})
	}
	return train.ConfigFor(recipe, settings)
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
	return atomicfile.WriteJSON(filepath.Join(dir, ManifestFile), m)
}

// TrialState returns the state of the trial whose run directory is dir:
// done when it holds a valid summary.json, failed when the summary is
// unreadable (so the trial is redone), else what its status file says (a
// trial whose status says running may also have been interrupted), else
// interrupted when the run has started writing files, else pending.
func TrialState(dir string) (Status, error) {
	var st Status
	err := readJSON(filepath.Join(dir, StatusFile), &st)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st = Status{State: StatePending}
	case err != nil:
		return Status{}, err
	}
	if exists(filepath.Join(dir, rundir.SummaryFile)) {
		if _, err := rundir.ReadSummary(dir); err != nil {
			st.State = StateFailed
			st.Error = err.Error()
			return st, nil
		}
		st.State = StateDone
		st.Error = ""
		return st, nil
	}
	switch st.State {
	case StateDone:
		// The summary was removed; the run must be redone.
		st.State = StateInterrupted
	case StatePending:
		if exists(filepath.Join(dir, rundir.MetricsFile)) || exists(filepath.Join(dir, rundir.ConfigFile)) {
			st.State = StateInterrupted
		}
	case StateRunning, StateFailed, StateInterrupted:
	default:
		return Status{}, fmt.Errorf("%s: unknown state %q", filepath.Join(dir, StatusFile), st.State)
	}
	return st, nil
}

func writeStatus(dir string, st Status) error {
	return atomicfile.WriteJSON(filepath.Join(dir, StatusFile), st)
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
