package experiment

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/atomicfile"
	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train"
)

// Files a search writes into its experiment directory besides the grid files.
const (
	// RankingCSV is the final ranking of a search as CSV.
	RankingCSV = "ranking.csv"
	// RankingText is the final ranking of a search as the printed table.
	RankingText = "ranking.txt"
)

// SearchSpec describes a successive-halving search over alpha: every alpha
// is trained for MinEpochs epochs (over every seed), the best fraction Keep
// by Metric survive, the budget grows by the factor Eta, and so on until one
// alpha is left or MaxRounds rounds have run.
type SearchSpec struct {
	// Recipe is the recipe every trial starts from ("" for the defaults).
	Recipe string `json:"recipe,omitempty"`
	// Fixed are the settings shared by every trial (no alpha, epochs or
	// seed).
	Fixed []train.Setting `json:"fixed"`
	// Alphas are the candidate values, formatted as passed to train.
	Alphas []string `json:"alphas"`
	// Seeds are the seeds every candidate is trained with; a candidate's
	// score is the mean over its seeds.
	Seeds []int `json:"seeds"`
	// MinEpochs is the epoch budget of the first round.
	MinEpochs int `json:"min_epochs"`
	// Eta multiplies the epoch budget from one round to the next (> 1).
	Eta float64 `json:"eta"`
	// Keep is the fraction of candidates kept after each round, in (0, 1);
	// at least one is kept.
	Keep float64 `json:"keep"`
	// MaxRounds limits the number of rounds (0: until one alpha is left).
	MaxRounds int `json:"max_rounds"`
	// Metric ranks candidates: a metric of metrics.csv (its final value) or
	// "best_<metric>" (its best value over the epochs).
	Metric string `json:"metric"`
	// Maximize is true when larger values of Metric are better.
	Maximize bool `json:"maximize"`
}

// NewSearchSpec checks the settings of a search. keep <= 0 means 1/eta;
// Maximize follows the metric's direction. Every trial of the first round
// is built and validated, so a bad setting is reported before anything
// runs, as a *train.FieldError naming the flag.
func NewSearchSpec(recipe string, fixed []train.Setting, alphas []float64, seeds []int, minEpochs int, eta, keep float64, maxRounds int, metric string) (*SearchSpec, error) {
	seen := map[string]bool{}
	for _, f := range fixed {
		switch f.Name {
		case AlphaFlag, EpochsFlag, SeedFlag:
			return nil, &train.FieldError{Field: f.Name, Err: errors.New("is set by the search itself; use the search's own flags")}
		}
		if seen[f.Name] {
			return nil, &train.FieldError{Field: f.Name, Err: errors.New("given twice")}
		}
		seen[f.Name] = true
	}
	if err := CheckMetric(metric); err != nil {
		return nil, &train.FieldError{Field: "metric", Err: err}
	}
	if keep <= 0 && eta > 1 {
		keep = 1 / eta
	}
	s := &SearchSpec{Recipe: recipe, Fixed: fixed, Seeds: seeds, MinEpochs: minEpochs, Eta: eta, Keep: keep, MaxRounds: maxRounds, Metric: metric}
	m, _ := rundir.LookupMetric(strings.TrimPrefix(metric, "best_"))
	s.Maximize = m.Better != rundir.LowerIsBetter
	for _, a := range alphas {
		if math.IsNaN(a) || math.IsInf(a, 0) || a < 0 {
			return nil, &train.FieldError{Field: AlphaFlag, Err: fmt.Errorf("%v: must be a finite number >= 0", a)}
		}
		s.Alphas = append(s.Alphas, FormatAlpha(a))
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if _, err := s.roundTrials(0, s.MinEpochs, s.Alphas, 0); err != nil {
		return nil, err
	}
	return s, nil
}

// Validate checks the search settings.
func (s *SearchSpec) Validate() error {
	switch {
	case len(s.Alphas) == 0:
		return errors.New("no alpha values to search")
	case len(s.Seeds) == 0:
		return errors.New("no seeds")
	case s.MinEpochs < 1:
		return fmt.Errorf("epochs %d: the first round needs at least 1 epoch", s.MinEpochs)
	case !(s.Eta > 1) || math.IsInf(s.Eta, 0):
		return fmt.Errorf("eta %v: must be a number > 1", s.Eta)
	case !(s.Keep > 0 && s.Keep < 1):
		return fmt.Errorf("keep %v: must be in (0, 1)", s.Keep)
	case s.MaxRounds < 0:
		return fmt.Errorf("rounds %d: must be >= 0 (0: until one alpha is left)", s.MaxRounds)
	case strings.TrimSpace(s.Metric) == "":
		return errors.New("no metric to rank by")
	}
	if err := checkDistinct(s.Alphas); err != nil {
		return fmt.Errorf("alphas: %w", err)
	}
	if err := checkDistinct(s.Seeds); err != nil {
		return fmt.Errorf("seeds: %w", err)
	}
	return nil
}

// FormatAlpha formats an alpha value with at most 6 significant digits, so
// that computed values such as 0.30000000000000004 print as 0.3.
func FormatAlpha(a float64) string {
	return strconv.FormatFloat(a, 'g', 6, 64)
}

// ParseAlphaList parses a comma-separated list of alpha values.
func ParseAlphaList(s string) ([]float64, error) {
	words, err := SplitValues(s, false)
	if err != nil {
		return nil, fmt.Errorf("alpha: %w", err)
	}
	out := make([]float64, len(words))
	for i, w := range words {
		v, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return nil, fmt.Errorf("alpha %q: want a finite number >= 0", w)
		}
		out[i] = v
	}
	return out, nil
}

// ParseAlphaRange parses "lo:hi:n", n values evenly spaced from lo to hi
// inclusive.
func ParseAlphaRange(s string) ([]float64, error) {
	parts := strings.Split(s, ":")
	bad := fmt.Errorf("alpha range %q: want lo:hi:n with 0 <= lo <= hi and n >= 1, e.g. 0.05:1:8", s)
	if len(parts) != 3 {
		return nil, bad
	}
	lo, err1 := strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
	hi, err2 := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
	n, err3 := strconv.Atoi(strings.TrimSpace(parts[2]))
	if err1 != nil || err2 != nil || err3 != nil || !(lo >= 0) || !(hi >= lo) || math.IsInf(hi, 0) || n < 1 || n > 1000 {
		return nil, bad
	}
	if n == 1 {
		return []float64{lo}, nil
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = lo + (hi-lo)*float64(i)/float64(n-1)
	}
	if FormatAlpha(out[0]) == FormatAlpha(out[1]) {
		return nil, fmt.Errorf("alpha range %q: values too close to tell apart", s)
	}
	return out, nil
}

// Standing is one alpha's place in a search.
type Standing struct {
	// Rank is the final place, from 1.
	Rank int `json:"rank"`
	// Alpha is the candidate.
	Alpha string `json:"alpha"`
	// Round is the last round the candidate ran in (from 0) and Epochs its
	// budget there.
	Round  int `json:"round"`
	Epochs int `json:"epochs"`
	// Mean and SD are the metric's mean and sample standard deviation over
	// the seeds that finished in that round; N counts them.
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
	N    int     `json:"n"`
	// Failed counts the seeds that failed in that round.
	Failed int `json:"failed"`
}

// SearchOutcome is what a search did.
type SearchOutcome struct {
	// Ranking lists every candidate, best first.
	Ranking []Standing
	// Rounds is the number of rounds run.
	Rounds int
	// Failed lists failed trials.
	Failed []Failure
	// Results has one row per trial (as in results.csv).
	Results []Result
}

// RunSearch runs the successive-halving search s in the experiment directory
// dir with runner r (its shard settings are ignored: rounds depend on each
// other). Rerunning the same search skips finished trials; rounds are
// recomputed from the results on disk. It writes the manifest, results.csv,
// results.json, ranking.csv and ranking.txt.
func RunSearch(ctx context.Context, dir string, s *SearchSpec, command []string, r *Runner) (*SearchOutcome, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating search directory: %w", err)
	}
	if err := checkSameSearch(dir, s); err != nil {
		return nil, err
	}
	runner := *r
	runner.Shard, runner.Shards = 0, 1
	m := &Manifest{Kind: KindSearch, Command: command, Search: s, Seeds: s.Seeds}
	out := &SearchOutcome{}
	standings := map[string]*Standing{}
	cands := s.Alphas
	epochs := s.MinEpochs
	var roundValues, epochValues []string
	for round := 0; ; round++ {
		roundValues = append(roundValues, strconv.Itoa(round))
		epochValues = append(epochValues, strconv.Itoa(epochs))
		m.Axes = []Axis{{Name: "round", Values: roundValues}, {Name: EpochsFlag, Values: epochValues}, {Name: AlphaFlag, Values: s.Alphas}}
		trials, err := s.roundTrials(round, epochs, cands, len(m.Trials))
		if err != nil {
			return out, err
		}
		for _, t := range trials {
			m.Trials = append(m.Trials, TrialRecord{Trial: t})
		}
		sum, err := runner.Run(ctx, dir, m, trials)
		out.Rounds = round + 1
		out.Failed = append(out.Failed, sum.Failed...)
		if err != nil {
			if _, res, cerr := Collect(dir); cerr == nil {
				out.Results = res
			}
			return out, err
		}
		scores, err := s.score(dir, round, epochs, trials, standings)
		if err != nil {
			return out, err
		}
		kept := s.survivors(cands, scores)
		if len(kept) == 0 {
			return out, fmt.Errorf("round %d: no alpha produced the metric %q (see the trials' %s)", round, s.Metric, LogFile)
		}
		if len(kept) == 1 || (s.MaxRounds > 0 && round+1 >= s.MaxRounds) {
			break
		}
		cands = kept
		next := int(math.Round(float64(epochs) * s.Eta))
		epochs = max(next, epochs+1)
	}
	_, res, err := Collect(dir)
	if err != nil {
		return out, err
	}
	out.Results = res
	out.Ranking = s.rank(standings)
	if err := s.writeRanking(dir, out.Ranking); err != nil {
		return out, err
	}
	return out, nil
}

// checkSameSearch refuses a directory that holds another experiment.
func checkSameSearch(dir string, s *SearchSpec) error {
	old, err := ReadManifest(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if old.Kind != KindSearch || old.Search == nil || !reflect.DeepEqual(normalizeSpec(*old.Search), normalizeSpec(*s)) {
		return fmt.Errorf("%s holds a different experiment (made by %q); rerun that command to resume it, or choose another --out",
			dir, strings.Join(old.Command, " "))
	}
	return nil
}

func normalizeSpec(s SearchSpec) SearchSpec {
	if len(s.Fixed) == 0 {
		s.Fixed = nil
	}
	return s
}

// roundTrials returns the trials of one round, numbered from first.
func (s *SearchSpec) roundTrials(round, epochs int, cands []string, first int) ([]Trial, error) {
	var trials []Trial
	for _, seed := range s.Seeds {
		for _, a := range cands {
			varied := []train.Setting{
				{Name: "round", Value: strconv.Itoa(round)},
				{Name: EpochsFlag, Value: strconv.Itoa(epochs)},
				{Name: AlphaFlag, Value: a},
				{Name: SeedFlag, Value: strconv.Itoa(seed)},
			}
			settings := append(slices.Clone(s.Fixed), varied[1:]...)
			cfg, err := train.ConfigFor(s.Recipe, settings)
			if err == nil {
				err = cfg.Validate()
			}
			if err != nil {
				return nil, err
			}
			name := TrialName(varied)
			trials = append(trials, Trial{Index: first + len(trials), Name: name, Dir: name, Settings: varied, Seed: seed, Config: cfg})
		}
	}
	return trials, nil
}

// score reads a round's results and returns each candidate's mean metric
// (NaN when no seed produced it), updating standings.
func (s *SearchSpec) score(dir string, round, epochs int, trials []Trial, standings map[string]*Standing) (map[string]float64, error) {
	values := map[string][]float64{}
	failed := map[string]int{}
	for _, t := range trials {
		alpha, _ := t.Setting(AlphaFlag)
		st, err := TrialState(filepath.Join(dir, t.Dir))
		if err != nil {
			return nil, err
		}
		res := ResultOf(dir, t, st)
		v, ok := res.Metric(s.Metric)
		if st.State != StateDone || !ok {
			failed[alpha]++
			if st.State == StateDone && !ok {
				return nil, fmt.Errorf("trial %s: metric %q not found in its %s", t.Name, s.Metric, rundir.MetricsFile)
			}
			continue
		}
		values[alpha] = append(values[alpha], v)
	}
	scores := map[string]float64{}
	for _, t := range trials {
		alpha, _ := t.Setting(AlphaFlag)
		if _, done := scores[alpha]; done {
			continue
		}
		mean, sd := MeanSD(values[alpha])
		scores[alpha] = mean
		standings[alpha] = &Standing{Alpha: alpha, Round: round, Epochs: epochs, Mean: mean, SD: sd, N: len(values[alpha]), Failed: failed[alpha]}
	}
	return scores, nil
}

// better reports whether score a beats score b (NaN loses to everything).
func (s *SearchSpec) better(a, b float64) bool {
	switch {
	case math.IsNaN(a):
		return false
	case math.IsNaN(b):
		return true
	case s.Maximize:
		return a > b
	default:
		return a < b
	}
}

// survivors returns the best ceil(Keep*len(cands)) candidates with a score,
// always dropping at least one of several candidates so the search ends.
func (s *SearchSpec) survivors(cands []string, scores map[string]float64) []string {
	order := append([]string(nil), cands...)
	sort.SliceStable(order, func(i, j int) bool { return s.better(scores[order[i]], scores[order[j]]) })
	keep := max(1, min(len(cands)-1, int(math.Ceil(s.Keep*float64(len(cands))-1e-9))))
	var out []string
	for _, a := range order[:min(keep, len(order))] {
		if !math.IsNaN(scores[a]) {
			out = append(out, a)
		}
	}
	return out
}

// rank orders every candidate: later rounds first, then by score.
func (s *SearchSpec) rank(standings map[string]*Standing) []Standing {
	var out []Standing
	for _, a := range s.Alphas {
		if st, ok := standings[a]; ok {
			out = append(out, *st)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Round != out[j].Round {
			return out[i].Round > out[j].Round
		}
		return s.better(out[i].Mean, out[j].Mean)
	})
	for i := range out {
		out[i].Rank = i + 1
	}
	return out
}

// WriteRankingTable prints the ranking as an aligned text table.
func WriteRankingTable(w io.Writer, metric string, ranking []Standing) error {
	_, err := fmt.Fprintf(w, "%-4s  %-8s  %-5s  %-6s  %-22s  %s\n", "rank", "alpha", "round", "epochs", metric+" (mean ± sd)", "seeds")
	if err != nil {
		return err
	}
	for _, st := range ranking {
		score := "no result"
		if !math.IsNaN(st.Mean) {
			score = fmt.Sprintf("%.4f ± %.4f", st.Mean, st.SD)
		}
		seeds := strconv.Itoa(st.N)
		if st.Failed > 0 {
			seeds += fmt.Sprintf(" (%d failed)", st.Failed)
		}
		if _, err := fmt.Fprintf(w, "%-4d  %-8s  %-5d  %-6d  %-22s  %s\n", st.Rank, st.Alpha, st.Round, st.Epochs, score, seeds); err != nil {
			return err
		}
	}
	return nil
}

func (s *SearchSpec) writeRanking(dir string, ranking []Standing) error {
	var txt bytes.Buffer
	if err := WriteRankingTable(&txt, s.Metric, ranking); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, RankingText), txt.Bytes()); err != nil {
		return err
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"rank", "alpha", "round", "epochs", s.Metric + "_mean", s.Metric + "_sd", "seeds", "failed"})
	for _, st := range ranking {
		_ = w.Write([]string{strconv.Itoa(st.Rank), st.Alpha, strconv.Itoa(st.Round), strconv.Itoa(st.Epochs),
			formatFloat(st.Mean), formatFloat(st.SD), strconv.Itoa(st.N), strconv.Itoa(st.Failed)})
	}
	w.Flush()
	return atomicfile.WriteFile(filepath.Join(dir, RankingCSV), buf.Bytes())
}

func formatFloat(x float64) string {
	if math.IsNaN(x) {
		return ""
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// MeanSD returns the mean and the sample standard deviation (n-1 in the
// denominator; 0 for a single value) of xs, and NaN, NaN for no values.
func MeanSD(xs []float64) (mean, sd float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) == 1 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)-1))
}
