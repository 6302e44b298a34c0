package experiment

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sgt-dev/sgt/train"
)

// Demo is the quick-start comparison of plain training against SGT: a grid
// over alpha and label smoothing, repeated over seeds, on a small real
// dataset with a convolutional model.
type Demo struct {
	// Data is the dataset; "" picks Fashion-MNIST when present, else MNIST
	// (see DemoDataset).
	Data string
	// Recipe is the recipe every run starts from ("" for the defaults of
	// "sgt train"); the full demo uses one.
	Recipe string
	// Model is the registered model to train.
	Model string
	// Alphas and LabelSmoothings are the values compared (comma lists).
	Alphas, LabelSmoothings string
	// Seeds is the number of seeds of every setting.
	Seeds int
	// Epochs, TrainSize, TestSize, TrainEvalSize and BatchSize size each
	// run (sizes of 0 mean the whole split; see train.Config).
	Epochs, TrainSize, TestSize, TrainEvalSize, BatchSize int
	// LR is the peak learning rate.
	LR float64
	// Backend is the GoMLX backend ("" for the automatic choice).
	Backend string

	// noTrainEval leaves train-eval-size out of the grid (demos made
	// before it was a demo setting; they ran with the default).
	noTrainEval bool
}

// DemoBudget is the time the demo aims at when no other is asked for: the
// README promises about ten minutes.
const DemoBudget = 10 * time.Minute

// DefaultDemo returns the demo's settings before it is sized for a
// machine (see Demo.Fit): alpha 1 and 0.3, label smoothing 0 and 0.1, 2
// seeds (8 runs), a CIFAR ResNet-20 for 3 epochs on 8000 training images,
// measured after every epoch on 2000 test and 2000 training images, at
// batch 128 and peak learning rate 0.1 (cosine schedule).
func DefaultDemo() Demo {
	return Demo{
		Model:           "resnet20",
		Alphas:          "1,0.3",
		LabelSmoothings: "0,0.1",
		Seeds:           2,
		Epochs:          3,
		TrainSize:       8000,
		TestSize:        2000,
		TrainEvalSize:   2000,
		BatchSize:       128,
		LR:              0.1,
	}
}

// FullDemoRecipe is the recipe of the full demo.
const FullDemoRecipe = "fashion-mnist-resnet20"

// FullDemo returns the demo at full size: the fashion-mnist-resnet20
// recipe (ResNet-20, 15 epochs with a warm-up epoch and pad-crop-flip
// augmentation, all 60000 training and 10000 test images, the clean
// training accuracy on 10000 of them) with the demo's alpha and label
// smoothing grid, over 5 seeds: 20 runs.
func FullDemo() Demo {
	return Demo{
		Recipe:          FullDemoRecipe,
		Model:           "resnet20",
		Alphas:          "1,0.3",
		LabelSmoothings: "0,0.1",
		Seeds:           5,
		Epochs:          15,
		TrainSize:       0,
		TestSize:        0,
		TrainEvalSize:   train.DefaultTrainEvalSize,
		BatchSize:       128,
		LR:              0.1,
	}
}

// DemoDataset returns the dataset the demo trains on: d.Data when set, else
// Fashion-MNIST when available says its files are present, else MNIST
// (which ships with the Go module cache).
func (d Demo) DemoDataset(available func(name string) bool) string {
	if d.Data != "" {
		return d.Data
	}
	if available != nil && available("fashion-mnist") {
		return "fashion-mnist"
	}
	return "mnist"
}

// Validate checks the demo's settings.
func (d Demo) Validate() error {
	switch {
	case strings.TrimSpace(d.Model) == "":
		return fmt.Errorf("model: a model name is required")
	case d.Seeds < 1:
		return fmt.Errorf("seeds %d: need at least 1", d.Seeds)
	case d.Epochs < 1:
		return fmt.Errorf("epochs %d: need at least 1", d.Epochs)
	case d.TrainSize < 0 || d.TestSize < 0 || d.TrainEvalSize < 0:
		return fmt.Errorf("train size %d, test size %d, train-eval size %d: must be >= 0", d.TrainSize, d.TestSize, d.TrainEvalSize)
	case d.BatchSize < 1:
		return fmt.Errorf("batch size %d: need at least 1", d.BatchSize)
	case !(d.LR > 0):
		return fmt.Errorf("learning rate %v: must be positive", d.LR)
	}
	if _, err := ParseAlphaList(d.Alphas); err != nil {
		return err
	}
	if _, err := SplitValues(d.LabelSmoothings, false); err != nil {
		return fmt.Errorf("label smoothing: %w", err)
	}
	return nil
}

// Settings returns the number of settings compared (alphas times label
// smoothings); Runs the number of runs (times the seeds).
func (d Demo) Settings() int {
	a, _ := SplitValues(d.Alphas, false)
	l, _ := SplitValues(d.LabelSmoothings, false)
	return len(a) * len(l)
}

// Runs returns the number of runs of the demo.
func (d Demo) Runs() int { return d.Settings() * d.Seeds }

// Grid returns the demo's grid for the dataset data: alpha and label
// smoothing varied, the sizes fixed, over seeds 0..Seeds-1.
func (d Demo) Grid(data string) (*Grid, error) {
	settings := []train.Setting{
		{Name: "data", Value: data},
		{Name: "model", Value: d.Model},
		{Name: AlphaFlag, Value: d.Alphas},
		{Name: LabelSmoothingFlag, Value: d.LabelSmoothings},
		{Name: EpochsFlag, Value: strconv.Itoa(d.Epochs)},
		{Name: "train-size", Value: strconv.Itoa(d.TrainSize)},
		{Name: "test-size", Value: strconv.Itoa(d.TestSize)},
		{Name: "batch-size", Value: strconv.Itoa(d.BatchSize)},
		{Name: "lr", Value: strconv.FormatFloat(d.LR, 'g', -1, 64)},
	}
	if !d.noTrainEval {
		settings = append(settings, train.Setting{Name: "train-eval-size", Value: strconv.Itoa(d.TrainEvalSize)})
	}
	if d.Backend != "" {
		settings = append(settings, train.Setting{Name: "backend", Value: d.Backend})
	}
	seeds := make([]int, d.Seeds)
	for i := range seeds {
		seeds[i] = i
	}
	return NewGrid(d.Recipe, settings, seeds)
}

// demoFields maps the demo's grid settings to its fields.
func (d *Demo) demoFields() map[string]any {
	return map[string]any{
		"data": &d.Data, "model": &d.Model, AlphaFlag: &d.Alphas, LabelSmoothingFlag: &d.LabelSmoothings,
		EpochsFlag: &d.Epochs, "train-size": &d.TrainSize, "test-size": &d.TestSize, "train-eval-size": &d.TrainEvalSize,
		"batch-size": &d.BatchSize, "lr": &d.LR, "backend": &d.Backend,
	}
}

// Adopt takes the settings of the demo grid old (one that an earlier "sgt
// demo" wrote into the directory it continues) for every setting that
// given does not name (given reports a flag set on the command line; the
// names are the flags of "sgt demo": data, model, alpha, label-smoothing,
// seeds, epochs, train-size, test-size, train-eval-size, batch-size, lr,
// backend), so that rerunning the demo resumes it, and adding seeds or
// values grows it, whatever this machine's speed. It returns an error
// when old is not a demo's grid.
func (d *Demo) Adopt(old *Grid, given func(flag string) bool) error {
	if !isDemoGrid(old) {
		return fmt.Errorf("not a demo's grid (it varies %s, not alpha and label-smoothing)", axisNames(old.Axes))
	}
	fields := d.demoFields()
	set := func(name, value string) error {
		if given(name) {
			return nil
		}
		switch p := fields[name].(type) {
		case *string:
			*p = value
		case *int:
			n, err := strconv.Atoi(value)
			if err != nil {
				return fmt.Errorf("--%s %q: not an integer", name, value)
			}
			*p = n
		case *float64:
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return fmt.Errorf("--%s %q: not a number", name, value)
			}
			*p = v
		default:
			return fmt.Errorf("it sets --%s, which sgt demo does not", name)
		}
		return nil
	}
	if !given("full") {
		d.Recipe = old.Recipe
	}
	if !given("backend") {
		d.Backend = ""
	}
	for _, s := range old.Fixed {
		if err := set(s.Name, s.Value); err != nil {
			return fmt.Errorf("not a demo's grid: %w", err)
		}
	}
	for _, a := range old.Axes {
		if err := set(a.Name, strings.Join(a.Values, ",")); err != nil {
			return fmt.Errorf("not a demo's grid: %w", err)
		}
	}
	if !given("train-eval-size") && !slices.ContainsFunc(old.Fixed, func(s train.Setting) bool { return s.Name == "train-eval-size" }) {
		// A demo of an earlier version: it ran with the default.
		d.TrainEvalSize, d.noTrainEval = train.DefaultTrainEvalSize, true
	}
	if !given("seeds") {
		d.Seeds = 0
		for _, s := range old.Seeds {
			d.Seeds = max(d.Seeds, s+1)
		}
	}
	return nil
}

// DemoSpeed is how fast this machine runs the demo's model, measured
// before the demo is sized.
type DemoSpeed struct {
	// Startup is the time from a run's start to its first step done:
	// loading the data, building the model, compiling the training step.
	Startup time.Duration
	// EvalCompile is the time of compiling the evaluation step (at the
	// end of a run's first epoch).
	EvalCompile time.Duration
	// TrainRate and EvalRate are training and evaluated images per second.
	TrainRate, EvalRate float64
}

// DatasetSizes are the sizes of a dataset's splits.
type DatasetSizes struct {
	Train, Test int
}

// demoEpochOverhead is the time an epoch spends beyond its steps and
// evaluation (filter norms, metrics.csv, the checkpoint), and
// demoReportTime that of the tables and report at the end; both measured
// on the development machine (well below a second) and rounded up.
const (
	demoEpochOverhead = 500 * time.Millisecond
	demoReportTime    = 3 * time.Second
)

// size returns n, or all when n is 0 or more than all.
func size(n, all int) int {
	if n <= 0 || n > all {
		return all
	}
	return n
}

// TrialTime estimates the time of one run of d on a machine of speed s,
// with a dataset of the given sizes.
func (d Demo) TrialTime(s DemoSpeed, sizes DatasetSizes) time.Duration {
	trainN := size(d.TrainSize, sizes.Train)
	evalN := size(d.TestSize, sizes.Test) + min(d.TrainEvalSize, trainN)
	steps := trainN / d.BatchSize
	perEpoch := seconds(float64(steps*d.BatchSize)/s.TrainRate) + seconds(float64(evalN)/s.EvalRate) + demoEpochOverhead
	return s.Startup + s.EvalCompile + time.Duration(d.Epochs)*perEpoch
}

// Estimate estimates the time of the whole demo: its runs one after the
// other (on the cores they share, parallel runs do not finish sooner) and
// the report.
func (d Demo) Estimate(s DemoSpeed, sizes DatasetSizes) time.Duration {
	return time.Duration(d.Runs())*d.TrialTime(s, sizes) + demoReportTime
}

func seconds(x float64) time.Duration {
	if math.IsNaN(x) || math.IsInf(x, 0) || x > 1e9 {
		return time.Duration(1e9 * float64(time.Second))
	}
	return time.Duration(x * float64(time.Second))
}

// Demo sizes that Fit chooses from.
const (
	// demoMinTrain is the smallest training set Fit chooses; below it the
	// demo takes longer than asked rather than learn nothing.
	demoMinTrain = 2000
	// demoTrainStep is the granularity of the training set.
	demoTrainStep = 500
	// demoMaxEpochs is the most epochs Fit chooses.
	demoMaxEpochs = 15
)

// demoEpochChoices are the numbers of epochs Fit tries, best first, before
// it makes the training set smaller than demoMinTrain.
var demoEpochChoices = []int{3, 2, 1}

// demoFitShare is the share of its budget that Fit fills, leaving room for
// the estimate's error.
const demoFitShare = 0.9

// Fit returns d sized to end in about budget on a machine of speed s, with
// a dataset of the given sizes, and its estimated time (at most 90% of
// budget, leaving room for the estimate's error). Fit chooses the
// training set size and the epochs, keeping those that fixed names
// ("train-size", "epochs"): 3 epochs on as many training images (a
// multiple of 500, at least 2000) as fit, else 2 or 1 epochs; when even
// all the images fit, more epochs (up to 15). When nothing fits, it
// returns the smallest demo (whose estimate exceeds budget). The seeds,
// settings, test and train-eval sizes are kept.
func (d Demo) Fit(s DemoSpeed, budget time.Duration, sizes DatasetSizes, fixed func(name string) bool) (Demo, time.Duration) {
	est := func(c Demo) time.Duration { return c.Estimate(s, sizes) }
	budget = time.Duration(float64(budget) * demoFitShare)
	fitsTrain := func(c Demo) (Demo, bool) {
		// The largest training set that fits at c.Epochs.
		if fixed("train-size") {
			return c, est(c) <= budget
		}
		c.TrainSize = sizes.Train
		if est(c) <= budget {
			return c, true
		}
		lo, hi := 0, sizes.Train/demoTrainStep // in steps of demoTrainStep
		for lo < hi {
			mid := (lo + hi + 1) / 2
			c.TrainSize = mid * demoTrainStep
			if est(c) <= budget {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		c.TrainSize = lo * demoTrainStep
		return c, c.TrainSize >= min(demoMinTrain, sizes.Train)
	}
	epochs := demoEpochChoices
	if fixed(EpochsFlag) {
		epochs = []int{d.Epochs}
	} else if fixed("train-size") {
		epochs = nil
		for e := demoMaxEpochs; e >= 1; e-- {
			epochs = append(epochs, e)
		}
	}
	for _, e := range epochs {
		c := d
		c.Epochs = e
		c, ok := fitsTrain(c)
		if !ok {
			continue
		}
		if !fixed(EpochsFlag) && !fixed("train-size") && size(c.TrainSize, sizes.Train) == sizes.Train {
			// All the images fit: more epochs, while they fit.
			for c.Epochs < demoMaxEpochs {
				next := c
				next.Epochs++
				if est(next) > budget {
					break
				}
				c = next
			}
		}
		if c.TrainSize == sizes.Train && !fixed("train-size") {
			c.TrainSize = 0 // all
		}
		return c, est(c)
	}
	// Nothing fits: the smallest demo.
	c := d
	if !fixed(EpochsFlag) {
		c.Epochs = 1
	}
	if !fixed("train-size") {
		c.TrainSize = min(demoMinTrain, sizes.Train)
	}
	return c, est(c)
}

// Describe says what the demo trains, e.g. "8 runs of resnet20 on 8000
// fashion-mnist images for 3 epochs".
func (d Demo) Describe(data string, sizes DatasetSizes) string {
	images := fmt.Sprintf("%d", size(d.TrainSize, sizes.Train))
	if size(d.TrainSize, sizes.Train) == sizes.Train {
		images = "all " + images
	}
	s := fmt.Sprintf("%s of %s on %s %s images for %s", Plural(d.Runs(), "run"), d.Model, images, data, Plural(d.Epochs, "epoch"))
	if d.Recipe != "" {
		s += " (recipe " + d.Recipe + ")"
	}
	return s
}

// isDemoGrid reports whether g looks like a demo's grid: its axes are
// alpha and label smoothing.
func isDemoGrid(g *Grid) bool {
	names := make([]string, len(g.Axes))
	for i, a := range g.Axes {
		names[i] = a.Name
	}
	return slices.Equal(names, []string{AlphaFlag, LabelSmoothingFlag})
}
