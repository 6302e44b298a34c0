// Package experiment runs many training runs: grids (every combination of
// listed setting values, repeated over seeds), successive-halving searches
// over the SGT exponent alpha, and the demo comparison. Every trial is an
// ordinary run directory (see package rundir) inside the experiment
// directory, which also holds a manifest (grid.json), one status file per
// trial and the merged results (results.csv, results.json).
//
// Trials carry their full training configuration (train.Config), built once
// from the same flag definitions as "sgt train" (train.Apply): there is no
// second flag grammar. The default TrialFunc, TrainTrial, calls train.Run
// in this process; tests pass fakes.
package experiment

import (
	"context"
	"io"

	"github.com/sgt-dev/sgt/train"
)

// TrialFunc trains one trial in its run directory dir (which exists): a
// new run, or, with resume, the continuation of the interrupted run in dir.
// log receives the trial's output and onStep (may be nil) its progress. It
// must return promptly once ctx is cancelled, leaving dir resumable.
type TrialFunc func(ctx context.Context, t Trial, dir string, resume bool, log io.Writer, onStep func(train.StepProgress)) error

// TrainTrial is the TrialFunc that trains a trial with train.Run.
func TrainTrial(ctx context.Context, t Trial, dir string, resume bool, log io.Writer, onStep func(train.StepProgress)) error {
	_, err := train.Run(ctx, t.Config, train.Options{Out: dir, Resume: resume, Progress: log, OnStep: onStep})
	return err
}

// Names of the training settings that experiments set themselves.
const (
	// SeedFlag is the setting of the random seed.
	SeedFlag = "seed"
	// AlphaFlag is the setting of the SGT exponent alpha.
	AlphaFlag = "alpha"
	// EpochsFlag is the setting of the number of epochs.
	EpochsFlag = "epochs"
	// LabelSmoothingFlag is the setting of the label smoothing.
	LabelSmoothingFlag = "label-smoothing"
)

// Axis is one varied setting of a grid: a flag name and its values.
type Axis struct {
	// Name is the flag name without dashes.
	Name string `json:"name"`
	// Values are the alternatives in command-line order.
	Values []string `json:"values"`
}

// Trial is one training run of an experiment.
type Trial struct {
	// Index is the trial's position in the experiment (shards use it).
	Index int `json:"index"`
	// Name is the trial's readable, stable name, e.g.
	// "alpha=0.3_label-smoothing=0.1_seed=1".
	Name string `json:"name"`
	// Dir is the trial's run directory relative to the experiment directory.
	Dir string `json:"dir"`
	// Settings are the varied settings in axis order, the seed last.
	Settings []train.Setting `json:"settings"`
	// Seed is the trial's random seed.
	Seed int `json:"seed"`
	// Config is the trial's whole training configuration.
	Config train.Config `json:"config"`
	// Args are the "sgt train" flags of trials recorded by versions of sgt
	// before Config existed; read only, to convert such manifests.
	Args []string `json:"args,omitempty"`
}

// Setting returns the value of the named setting of the trial.
func (t Trial) Setting(name string) (string, bool) {
	for _, s := range t.Settings {
		if s.Name == name {
			return s.Value, true
		}
	}
	return "", false
}

// CommandLine returns the "sgt train" command that runs the trial alone
// into dir: its settings that differ from the defaults.
func (t Trial) CommandLine(dir string) string {
	s := "sgt train"
	for _, set := range train.Settings(train.DefaultConfig(), t.Config) {
		s += " --" + set.Name + "=" + set.Value
	}
	return s + " --out " + dir
}
