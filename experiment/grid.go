// Package experiment runs many training runs: grids (the cartesian product
// of flag values, repeated over seeds), successive-halving searches over the
// SGT exponent alpha, and the demo comparison. Every trial is an ordinary
// "sgt train" run directory (config.json, metrics.csv, summary.json) inside
// the experiment directory, which also holds a manifest (grid.json), one
// status file per trial and the merged results (results.csv, results.json).
//
// The package does not know how a trial is trained: callers pass a TrialFunc
// (the CLI adapts its train command), so tests can use fakes.
package experiment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// TrialFunc trains one trial: args are the "sgt train" flags of the trial
// (without --out), dir is the run directory to write into (it exists), and
// log receives the trial's output. It must return promptly with an error once
// ctx is cancelled.
type TrialFunc func(ctx context.Context, args []string, dir string, log io.Writer) error

// Names of the train flags that experiments set themselves.
const (
	// SeedFlag is the train flag that sets the random seed.
	SeedFlag = "seed"
	// AlphaFlag is the train flag that sets the SGT exponent alpha.
	AlphaFlag = "alpha"
	// EpochsFlag is the train flag that sets the number of epochs.
	EpochsFlag = "epochs"
	// LabelSmoothingFlag is the train flag that sets the label smoothing.
	LabelSmoothingFlag = "label-smoothing"
	// OutFlag is the train flag that names the run directory.
	OutFlag = "out"
	// ResumeFlag is the train flag that resumes an interrupted run.
	ResumeFlag = "resume"
)

// Axis is one varied setting of a grid: a train flag and its values.
type Axis struct {
	// Name is the flag name without dashes.
	Name string `json:"name"`
	// Values are the alternatives in command-line order.
	Values []string `json:"values"`
}

// Setting is one name=value pair that distinguishes a trial.
type Setting struct {
	// Name is the flag name without dashes ("seed" for the seed).
	Name string `json:"name"`
	// Value is the flag value as passed to train.
	Value string `json:"value"`
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
	// Args are the train flags of the trial, without --out.
	Args []string `json:"args"`
	// Settings are the varied settings in axis order, the seed last.
	Settings []Setting `json:"settings"`
	// Seed is the trial's random seed.
	Seed int `json:"seed"`
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

// Grid is the specification of a grid: fixed flags, varied flags, seeds.
type Grid struct {
	// Flags are all train flags in command-line order; those named by an
	// axis get the axis values.
	Flags []Flag `json:"flags"`
	// Axes are the varied flags in command-line order.
	Axes []Axis `json:"axes"`
	// Seeds are the seeds every setting is repeated over.
	Seeds []int `json:"seeds"`
}

// NewGrid builds a grid from train flags in which any value may be a
// comma-separated list (see SplitValues), and the seeds to repeat every
// setting over. seeds may be nil; then the train flag --seed, possibly a
// list, gives them, and without it the only seed is 0. Giving both --seed
// and seeds is an error, as is a flag given twice or --out.
func NewGrid(trainArgs []string, seeds []int, kinds FlagKinds) (*Grid, error) {
	flags, err := ParseFlags(trainArgs, kinds)
	if err != nil {
		return nil, err
	}
	g := &Grid{}
	seen := map[string]bool{}
	for _, f := range flags {
		if seen[f.Name] {
			return nil, fmt.Errorf("flag --%s given twice", f.Name)
		}
		seen[f.Name] = true
		switch f.Name {
		case OutFlag:
			return nil, fmt.Errorf("flag --%s is set by the grid for every trial; use the grid's --out", OutFlag)
		case ResumeFlag:
			return nil, fmt.Errorf("flag --%s is managed by the grid: rerun the same grid command to resume it", ResumeFlag)
		}
		if f.Bare {
			g.Flags = append(g.Flags, f)
			continue
		}
		values, err := SplitValues(f.Value, kinds.isList(f.Name))
		if err != nil {
			return nil, fmt.Errorf("flag --%s: %w", f.Name, err)
		}
		if f.Name == SeedFlag {
			if seeds != nil {
				return nil, fmt.Errorf("give the seeds either with --seeds or with --%s, not both", SeedFlag)
			}
			if seeds, err = parseSeedList(values); err != nil {
				return nil, fmt.Errorf("flag --%s: %w", SeedFlag, err)
			}
			continue
		}
		if err := checkDistinct(values); err != nil {
			return nil, fmt.Errorf("flag --%s: %w", f.Name, err)
		}
		if len(values) > 1 {
			g.Axes = append(g.Axes, Axis{Name: f.Name, Values: values})
		}
		g.Flags = append(g.Flags, Flag{Name: f.Name, Value: values[0]})
	}
	if seeds == nil {
		seeds = []int{0}
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no seeds")
	}
	if err := checkDistinct(seeds); err != nil {
		return nil, fmt.Errorf("seeds: %w", err)
	}
	g.Seeds = seeds
	return g, nil
}

func checkDistinct[T comparable](values []T) error {
	seen := map[T]bool{}
	for _, v := range values {
		if seen[v] {
			return fmt.Errorf("value %v listed twice", v)
		}
		seen[v] = true
	}
	return nil
}

// ParseSeeds parses the --seeds flag of grids and searches: a count N
// ("3": seeds 0, 1, 2), a comma-separated list ("1,2,7"), or an inclusive
// range "lo:hi" ("5:7": seeds 5, 6, 7). A single explicit seed is written as
// the range "7:7".
func ParseSeeds(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if lo, hi, ok := strings.Cut(s, ":"); ok {
		a, errA := strconv.Atoi(strings.TrimSpace(lo))
		b, errB := strconv.Atoi(strings.TrimSpace(hi))
		if errA != nil || errB != nil || a < 0 || b < a {
			return nil, fmt.Errorf("seeds %q: a range must be lo:hi with 0 <= lo <= hi", s)
		}
		if b-a >= 10000 {
			return nil, fmt.Errorf("seeds %q: more than 10000 seeds", s)
		}
		var out []int
		for v := a; v <= b; v++ {
			out = append(out, v)
		}
		return out, nil
	}
	if !strings.Contains(s, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return nil, fmt.Errorf("seeds %q: want a count from 1 to 10000, a list such as 1,2,3 or a range such as 5:7", s)
		}
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	values, err := SplitValues(s, false)
	if err != nil {
		return nil, fmt.Errorf("seeds: %w", err)
	}
	out, err := parseSeedList(values)
	if err != nil {
		return nil, err
	}
	if err := checkDistinct(out); err != nil {
		return nil, fmt.Errorf("seeds %q: %w", s, err)
	}
	return out, nil
}

func parseSeedList(values []string) ([]int, error) {
	out := make([]int, len(values))
	for i, v := range values {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("seed %q: want a non-negative integer", v)
		}
		out[i] = n
	}
	return out, nil
}

// Trials expands the grid into its trials: the seed varies slowest (every
// setting with the first seed comes first), then the axes in command-line
// order, the last axis fastest. Each trial's args are the grid's flags with
// the trial's values, then --seed.
func (g *Grid) Trials() []Trial {
	n := len(g.Seeds)
	for _, a := range g.Axes {
		n *= len(a.Values)
	}
	trials := make([]Trial, 0, n)
	choice := make([]int, len(g.Axes))
	for _, seed := range g.Seeds {
		for i := range choice {
			choice[i] = 0
		}
		for {
			trials = append(trials, g.trial(len(trials), choice, seed))
			// Advance the odometer, last axis fastest.
			k := len(choice) - 1
			for ; k >= 0; k-- {
				choice[k]++
				if choice[k] < len(g.Axes[k].Values) {
					break
				}
				choice[k] = 0
			}
			if k < 0 {
				break
			}
		}
	}
	uniquifyNames(trials)
	return trials
}

func (g *Grid) trial(index int, choice []int, seed int) Trial {
	value := map[string]string{}
	var settings []Setting
	for i, a := range g.Axes {
		v := a.Values[choice[i]]
		value[a.Name] = v
		settings = append(settings, Setting{Name: a.Name, Value: v})
	}
	settings = append(settings, Setting{Name: SeedFlag, Value: strconv.Itoa(seed)})
	args := make([]string, 0, len(g.Flags)+1)
	for _, f := range g.Flags {
		if v, ok := value[f.Name]; ok {
			f.Value = v
		}
		args = append(args, f.Arg())
	}
	args = append(args, Flag{Name: SeedFlag, Value: strconv.Itoa(seed)}.Arg())
	name := TrialName(settings)
	return Trial{Index: index, Name: name, Dir: name, Args: args, Settings: settings, Seed: seed}
}

// TrialName returns the directory-safe name of a trial with the given
// settings: "name=value" pairs joined by "_", with characters other than
// letters, digits and ".+-=," replaced by "-". Names longer than 120 bytes
// are cut and completed with a hash of the full name, so they stay unique.
func TrialName(settings []Setting) string {
	parts := make([]string, len(settings))
	for i, s := range settings {
		parts[i] = sanitize(s.Name) + "=" + sanitize(s.Value)
	}
	name := strings.Join(parts, "_")
	if len(name) > 120 {
		sum := sha256.Sum256([]byte(name))
		name = name[:100] + "-" + hex.EncodeToString(sum[:])[:12]
	}
	return name
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(".+-,", r):
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := b.String()
	if out == "" || strings.Trim(out, ".") == "" {
		out = "-" + out
	}
	return out
}

// uniquifyNames appends "~index" to names that collide after sanitising.
func uniquifyNames(trials []Trial) {
	count := map[string]int{}
	for _, t := range trials {
		count[t.Name]++
	}
	for i := range trials {
		if count[trials[i].Name] > 1 {
			trials[i].Name += fmt.Sprintf("~%d", trials[i].Index)
			trials[i].Dir = trials[i].Name
		}
	}
}

// InShard reports whether the trial with the given index belongs to shard
// i of n (index mod n == i). With n <= 1 every trial belongs to the shard.
func InShard(index, i, n int) bool {
	return n <= 1 || index%n == i
}

// ParseShard parses a shard specification "I/N" (0 <= I < N).
func ParseShard(s string) (i, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		i, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			n, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("shard %q: want I/N with 0 <= I < N, e.g. 0/4", s)
	}
	return i, n, nil
}
