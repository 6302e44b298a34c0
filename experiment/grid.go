package experiment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train"
)

// Grid is the specification of a grid: a starting recipe, settings every
// trial shares, varied settings and seeds.
type Grid struct {
	// Recipe is the recipe every trial starts from ("" for the defaults of
	// "sgt train").
	Recipe string `json:"recipe,omitempty"`
	// Fixed are the settings every trial has, in command-line order.
	Fixed []train.Setting `json:"fixed"`
	// Axes are the varied settings in command-line order.
	Axes []Axis `json:"axes"`
	// Rows, when set, are alternative sets of settings (a recipe's trials,
	// e.g. the label-smoothing ablation's rows or an alpha grid): every row
	// is combined with every choice of the axes. A row is applied after
	// Fixed.
	Rows []train.Row `json:"rows,omitempty"`
	// Seeds are the seeds every setting is repeated over.
	Seeds []int `json:"seeds"`
}

// NewGrid builds a grid from settings in which any value may list
// alternatives (see SplitValues), over the given recipe, and the seeds to
// repeat every setting over. A grid over a recipe that varies no setting
// runs the recipe's experiment: its rows, or its alpha grid (see
// train.Recipe.NamedTrials). seeds may be nil; then the setting "seed",
// possibly a list, gives them, and without it the only seed is 0. Giving
// both is an error, as is a setting given twice or an unknown one. Every
// trial's configuration is built and validated, so a bad value is
// reported before anything runs, as a *train.FieldError naming the flag.
func NewGrid(recipe string, settings []train.Setting, seeds []int) (*Grid, error) {
	flags := train.FlagSet(new(train.Config))
	g := &Grid{Recipe: recipe}
	seen := map[string]bool{}
	for _, s := range settings {
		f := flags.Lookup(s.Name)
		if f == nil {
			return nil, &train.FieldError{Field: s.Name, Err: train.ErrUnknownSetting}
		}
		if seen[s.Name] {
			return nil, &train.FieldError{Field: s.Name, Err: errors.New("given twice")}
		}
		seen[s.Name] = true
		values, err := SplitValues(s.Value, train.IsListFlag(f))
		if err != nil {
			return nil, &train.FieldError{Field: s.Name, Err: err}
		}
		if s.Name == SeedFlag {
			if seeds != nil {
				return nil, &train.FieldError{Field: SeedFlag, Err: errors.New("give the seeds either with --seeds or with --seed, not both")}
			}
			if seeds, err = parseSeedList(values); err != nil {
				return nil, &train.FieldError{Field: SeedFlag, Err: err}
			}
			continue
		}
		if err := checkDistinct(values); err != nil {
			return nil, &train.FieldError{Field: s.Name, Err: err}
		}
		if len(values) > 1 {
			g.Axes = append(g.Axes, Axis{Name: s.Name, Values: values})
			continue
		}
		g.Fixed = append(g.Fixed, train.Setting{Name: s.Name, Value: values[0]})
	}
	if seeds == nil {
		seeds = []int{0}
	}
	if len(seeds) == 0 {
		return nil, &train.FieldError{Field: SeedFlag, Err: errors.New("no seeds")}
	}
	if err := checkDistinct(seeds); err != nil {
		return nil, &train.FieldError{Field: SeedFlag, Err: err}
	}
	g.Seeds = seeds
	if recipe != "" && len(g.Axes) == 0 {
		r, err := train.LookupRecipe(recipe)
		if err != nil {
			return nil, &train.FieldError{Field: "recipe", Err: err}
		}
		if rows := r.NamedTrials(); len(rows) > 1 {
			g.Rows = rows
		}
	}
	if _, err := g.Trials(); err != nil {
		return nil, err
	}
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

// SplitValues splits a grid value into its alternatives: on "," (or on ";"
// for list-valued flags such as --milestones). A backslash escapes the
// separator ("\," keeps a literal comma) and itself ("\\"). Empty
// alternatives are an error.
func SplitValues(value string, listValued bool) ([]string, error) {
	sep := byte(',')
	if listValued {
		sep = ';'
	}
	var (
		out []string
		cur strings.Builder
	)
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c == '\\' && i+1 < len(value) && (value[i+1] == sep || value[i+1] == '\\'):
			cur.WriteByte(value[i+1])
			i++
		case c == sep:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	out = append(out, cur.String())
	for _, v := range out {
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("value list %q has an empty entry", value)
		}
	}
	return out, nil
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
// setting with the first seed comes first), then the rows, then the axes in
// command-line order, the last axis fastest. Each trial's configuration is
// the recipe's (or the defaults) with the fixed settings, the row's and the
// trial's axis values and seed applied, and validated.
func (g *Grid) Trials() ([]Trial, error) {
	rows := g.Rows
	if len(rows) == 0 {
		rows = []train.Row{{}}
	}
	var trials []Trial
	choice := make([]int, len(g.Axes))
	for _, seed := range g.Seeds {
		for _, row := range rows {
			clear(choice)
			for {
				t, err := g.trial(len(trials), row, choice, seed)
				if err != nil {
					return nil, err
				}
				trials = append(trials, t)
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
	}
	uniquifyNames(trials)
	return trials, nil
}

func (g *Grid) trial(index int, row train.Row, choice []int, seed int) (Trial, error) {
	var varied []train.Setting
	if row.Name != "" {
		// A row named "name=value" (an alpha grid's) names the trial as
		// that setting would; other rows as "row=<name>".
		name, value, ok := strings.Cut(row.Name, "=")
		if !ok {
			name, value = "row", row.Name
		}
		varied = append(varied, train.Setting{Name: name, Value: value})
	}
	settings := slices.Clone(g.Fixed)
	settings = append(settings, row.Settings...)
	for i, a := range g.Axes {
		s := train.Setting{Name: a.Name, Value: a.Values[choice[i]]}
		varied = append(varied, s)
		settings = append(settings, s)
	}
	seedSetting := train.Setting{Name: SeedFlag, Value: strconv.Itoa(seed)}
	varied = append(varied, seedSetting)
	settings = append(settings, seedSetting)
	cfg, err := train.ConfigFor(g.Recipe, settings)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return Trial{}, err
	}
	name := TrialName(varied)
	return Trial{Index: index, Name: name, Dir: name, Settings: varied, Seed: seed, Config: cfg}, nil
}

// TrialName returns the directory-safe name of a trial with the given
// settings: "name=value" pairs joined by "_", with characters other than
// letters, digits and ".+-=," replaced by "-". Names longer than 120 bytes
// are cut and completed with a hash of the full name, so they stay unique.
func TrialName(settings []train.Setting) string {
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

// PrepareGrid returns the manifest of grid g in the experiment directory
// dir, and the trials this grid runs (with their indices in the manifest).
// A new directory gets a new manifest. A directory that holds a grid keeps
// it: rerunning the same grid resumes it, and a grid that adds values or
// seeds to it (with the same recipe, fixed settings and varied settings)
// grows it by the new trials, after the old ones. A change that would
// alter existing trials is refused with an error naming the difference,
// as is a directory holding another kind of experiment.
func PrepareGrid(dir string, g *Grid, command []string) (*Manifest, []Trial, error) {
	trials, err := g.Trials()
	if err != nil {
		return nil, nil, err
	}
	old, err := ReadManifest(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		m := &Manifest{Kind: KindGrid, Command: command, Grid: g, Axes: g.Axes, Seeds: g.Seeds}
		for _, t := range trials {
			m.Trials = append(m.Trials, TrialRecord{Trial: t})
		}
		return m, trials, nil
	case err != nil:
		return nil, nil, err
	}
	if old.Kind != KindGrid || old.Grid == nil {
		return nil, nil, fmt.Errorf("%s holds a %s, not a grid; choose another --out", dir, old.Kind)
	}
	if err := compatible(old.Grid, g); err != nil {
		return nil, nil, fmt.Errorf("%s holds a grid that this command would change (%w; made by %q); rerun that command to resume it, add only values or seeds, or choose another --out",
			dir, err, strings.Join(old.Command, " "))
	}
	byName := map[string]int{}
	for i, t := range old.Trials {
		byName[t.Name] = i
	}
	m := old
	m.Command = command
	grown := *g
	grown.Axes = mergeAxes(old.Grid.Axes, g.Axes)
	grown.Seeds = mergeSeeds(old.Grid.Seeds, g.Seeds)
	m.Grid, m.Axes, m.Seeds = &grown, grown.Axes, grown.Seeds
	for i, t := range trials {
		if j, ok := byName[t.Name]; ok {
			if d := rundir.Diff(rundir.Config(old.Trials[j].Config), rundir.Config(t.Config)); d != nil {
				return nil, nil, fmt.Errorf("%s: trial %s was made with other settings (%s); choose another --out",
					dir, t.Name, strings.Join(d, "; "))
			}
			trials[i].Index = old.Trials[j].Index
			continue
		}
		trials[i].Index = len(m.Trials)
		m.Trials = append(m.Trials, TrialRecord{Trial: trials[i]})
	}
	return m, trials, nil
}

// compatible reports how grid b differs from grid a other than by added
// values and seeds (nil when it does not).
func compatible(a, b *Grid) error {
	if a.Recipe != b.Recipe {
		return fmt.Errorf("recipe %q vs %q", a.Recipe, b.Recipe)
	}
	if !slices.EqualFunc(a.Axes, b.Axes, func(x, y Axis) bool { return x.Name == y.Name }) {
		return fmt.Errorf("varied settings %s vs %s", axisNames(a.Axes), axisNames(b.Axes))
	}
	fa, fb := settingMap(a.Fixed), settingMap(b.Fixed)
	for name, v := range fa {
		if w, ok := fb[name]; !ok {
			return fmt.Errorf("--%s %s is no longer given", name, v)
		} else if w != v {
			return fmt.Errorf("--%s %s vs %s", name, v, w)
		}
	}
	for name, v := range fb {
		if _, ok := fa[name]; !ok {
			return fmt.Errorf("--%s %s is new", name, v)
		}
	}
	if !slices.EqualFunc(a.Rows, b.Rows, func(x, y train.Row) bool { return x.Name == y.Name && slices.Equal(x.Settings, y.Settings) }) {
		return errors.New("the recipe's rows differ")
	}
	return nil
}

func settingMap(s []train.Setting) map[string]string {
	m := map[string]string{}
	for _, x := range s {
		m[x.Name] = x.Value
	}
	return m
}

func axisNames(axes []Axis) string {
	if len(axes) == 0 {
		return "(none)"
	}
	names := make([]string, len(axes))
	for i, a := range axes {
		names[i] = a.Name
	}
	return strings.Join(names, ",")
}

// mergeAxes returns a's axes with b's new values appended.
func mergeAxes(a, b []Axis) []Axis {
	out := make([]Axis, len(a))
	for i := range a {
		out[i] = Axis{Name: a[i].Name, Values: slices.Clone(a[i].Values)}
		for _, v := range b[i].Values {
			if !slices.Contains(out[i].Values, v) {
				out[i].Values = append(out[i].Values, v)
			}
		}
	}
	return out
}

// mergeSeeds returns a's seeds with b's new ones appended.
func mergeSeeds(a, b []int) []int {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// RunGrid runs grid g in the experiment directory dir with runner r: it
// writes or grows the manifest, runs the grid's trials of r's shard
// (skipping finished ones) and writes results.csv and results.json.
// command is recorded in the manifest. The summary says which trials
// failed; the error is for bookkeeping failures, refused directories and
// cancellation.
func RunGrid(ctx context.Context, dir string, g *Grid, command []string, r *Runner) (RunSummary, []Result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return RunSummary{}, nil, fmt.Errorf("creating grid directory: %w", err)
	}
	m, trials, err := PrepareGrid(dir, g, command)
	if err != nil {
		return RunSummary{}, nil, err
	}
	sum, runErr := r.Run(ctx, dir, m, trials)
	_, results, err := Collect(dir)
	if runErr != nil {
		return sum, results, runErr
	}
	return sum, results, err
}
