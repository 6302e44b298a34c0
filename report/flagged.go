package report

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// The rules that flag a run. A flagged run is listed, drawn in the figures
// with its own mark, and left out of its setting's means and tests (unless
// every run of the setting is flagged; then the setting's numbers use them
// all and say so).
const (
	// collapseShare and collapsePoints: a run collapsed when its test
	// accuracy at some epoch fell below collapseShare of its best value
	// at an earlier epoch, and by at least collapsePoints.
	collapseShare  = 0.5
	collapsePoints = 0.10
	// outlierPoints, outlierMADs and outlierMinRuns: a run ended far
	// below its setting when its final test accuracy is below the median
	// of its setting's runs by more than outlierPoints and by more than
	// outlierMADs median absolute deviations, in a setting of at least
	// outlierMinRuns runs.
	outlierPoints  = 0.10
	outlierMADs    = 3
	outlierMinRuns = 3
	// chancePoints: a run did not learn when its final test accuracy is
	// within chancePoints of chance (1 / number of classes).
	chancePoints = 0.02
)

// FlagRules states the rules that flag a run, for the report's text.
func FlagRules() string {
	return fmt.Sprintf("A run is flagged when it failed (for example its loss became NaN or infinite, which stops training), "+
		"when its test accuracy fell at some epoch below %.0f%% of its best earlier value and by at least %.0f points (it collapsed), "+
		"when its final test accuracy is below the median of its setting's runs by more than %.0f points and by more than %d median absolute deviations (settings of %d or more runs), "+
		"or when its final test accuracy is within %.0f points of chance (1 / number of classes: it did not learn).",
		collapseShare*100, collapsePoints*100, outlierPoints*100, outlierMADs, outlierMinRuns, chancePoints*100)
}

// flagRuns sets the Flags of the runs of one setting by the rules above;
// values holds each run's final values.
func flagRuns(runs []*RunInfo, values map[*RunInfo]map[string]float64) {
	var finals []float64
	for _, r := range runs {
		finals = append(finals, values[r][qTest.key])
	}
	med := median(finals)
	var devs []float64
	for _, f := range finals {
		devs = append(devs, math.Abs(f-med))
	}
	below := math.Max(outlierPoints, outlierMADs*median(devs))
	for _, r := range runs {
		r.Flags = nil
		if r.Failure != "" {
			r.Flags = append(r.Flags, fmt.Sprintf("failed after %s: %s", plural(len(r.Run.Metrics), "epoch", "epochs"), oneLine(r.Failure)))
		}
		if why, ok := collapsed(r); ok {
			r.Flags = append(r.Flags, why)
		}
		final := values[r][qTest.key]
		if len(runs) >= outlierMinRuns && final < med-below {
			r.Flags = append(r.Flags, fmt.Sprintf("ended far below its setting: final test accuracy %.2f%%, the setting's median %.2f%% (limit %.2f points below it)", final*100, med*100, below*100))
		}
		if c := r.Run.Record.Classes; c > 0 {
			chance := 1 / float64(c)
			if final < chance+chancePoints {
				r.Flags = append(r.Flags, fmt.Sprintf("did not learn: final test accuracy %.2f%%, chance is %.2f%% (%d classes)", final*100, chance*100, c))
			}
		}
	}
}

// collapsed applies the collapse rule to a run's test accuracy curve.
func collapsed(r *RunInfo) (string, bool) {
	acc, ok := r.Run.Column(qTest.key)
	if !ok {
		return "", false
	}
	best, bestEpoch := -1.0, 0
	for i, v := range acc {
		if !isFinite(v) {
			continue
		}
		if best >= 0 && v < collapseShare*best && best-v >= collapsePoints {
			why := fmt.Sprintf("collapsed: test accuracy fell from %.2f%% (epoch %d) to %.2f%% (epoch %d)", best*100, bestEpoch, v*100, r.Run.Metrics[i].Epoch)
			if last := acc[len(acc)-1]; i < len(acc)-1 {
				why += fmt.Sprintf(", %.2f%% at the last epoch", last*100)
			}
			return why, true
		}
		if v > best {
			best, bestEpoch = v, r.Run.Metrics[i].Epoch
		}
	}
	return "", false
}

// flaggedList lists the flagged runs.
func (d *data) flaggedList() []FlaggedRun {
	var out []FlaggedRun
	multi := len(d.contexts()) > 1
	for _, g := range d.groups {
		for _, r := range g.runs {
			if len(r.Flags) > 0 {
				out = append(out, FlaggedRun{Run: runLabel(r), Setting: groupLabel(g, multi), Seed: r.Seed, Why: r.Flags})
			}
		}
	}
	return out
}

// flaggedCount counts the flagged runs.
func (d *data) flaggedCount() int {
	n := 0
	for _, r := range d.runs {
		if len(r.Flags) > 0 {
			n++
		}
	}
	return n
}

// median returns the median of xs (NaN for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// oneLine shortens a multi-line message to its first line.
func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
