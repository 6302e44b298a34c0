package experiment

import (
	"strings"
	"testing"
	"time"

	"github.com/sgt-dev/sgt/train"
)

var mnistSizes = DatasetSizes{Train: 60000, Test: 10000}

// zen5 and slowAVX2 are the speeds of ResNet-20 on 28x28 images measured
// on the development machine (about 1000 training images/s) and one about
// three times slower, as a 2-core AVX2 laptop is.
var (
	zen5     = DemoSpeed{Startup: 2 * time.Second, EvalCompile: time.Second, TrainRate: 1000, EvalRate: 3000}
	slowAVX2 = DemoSpeed{Startup: 4 * time.Second, EvalCompile: 2 * time.Second, TrainRate: 330, EvalRate: 1000}
)

func none(string) bool { return false }

// TestDemoTrialTime checks the estimate against its parts: start-up,
// evaluation compile, and per epoch the training images (whole batches),
// the evaluated images and the fixed overhead.
func TestDemoTrialTime(t *testing.T) {
	d := DefaultDemo()
	d.TrainSize, d.Epochs = 8000, 3
	// 8000/128 = 62 steps = 7936 images at 1000/s; 2000+2000 evaluated at 3000/s.
	perEpoch := 7.936 + 4000.0/3000 + demoEpochOverhead.Seconds()
	want := 2 + 1 + 3*perEpoch
	if got := d.TrialTime(zen5, mnistSizes).Seconds(); got < want-1e-6 || got > want+1e-6 {
		t.Errorf("trial time %.3f s, want %.3f s", got, want)
	}
	if got, want := d.Estimate(zen5, mnistSizes), 8*d.TrialTime(zen5, mnistSizes)+demoReportTime; got != want {
		t.Errorf("estimate %v, want 8 runs and the report, %v", got, want)
	}
	// The train-eval subset is at most the training set; 0 means all.
	d.TrainSize, d.TrainEvalSize, d.TestSize = 1000, 5000, 0
	evalN := 10000 + 1000
	want = 2 + 1 + 3*(float64(7*128)/1000+float64(evalN)/3000+demoEpochOverhead.Seconds())
	if got := d.TrialTime(zen5, mnistSizes).Seconds(); got < want-1e-6 || got > want+1e-6 {
		t.Errorf("small training set: trial time %.3f s, want %.3f s", got, want)
	}
}

// TestDemoFit checks the sizes chosen for a budget: the estimate fills at
// most 90% of it and a step more of training images would not fit; 3
// epochs where possible; fewer epochs, then the smallest demo, on slower
// machines; more epochs once all the images fit; explicit sizes kept.
func TestDemoFit(t *testing.T) {
	budget := DemoBudget
	for _, c := range []struct {
		name   string
		speed  DemoSpeed
		budget time.Duration
		epochs int
	}{
		{"zen5", zen5, budget, 3},
		{"slow avx2", slowAVX2, budget, 3},
		{"slow avx2, 5 minutes", slowAVX2, 5 * time.Minute, 2},
	} {
		d, est := DefaultDemo().Fit(c.speed, c.budget, mnistSizes, none)
		if d.Epochs != c.epochs {
			t.Errorf("%s: %d epochs, want %d", c.name, d.Epochs, c.epochs)
		}
		if est > c.budget*9/10 || est != d.Estimate(c.speed, mnistSizes) {
			t.Errorf("%s: estimate %v for a budget of %v (want at most 90%%, and the demo's estimate)", c.name, est, c.budget)
		}
		if d.TrainSize%500 != 0 || d.TrainSize < 2000 {
			t.Errorf("%s: %d training images, want a multiple of 500, at least 2000", c.name, d.TrainSize)
		}
		more := d
		more.TrainSize += 500
		if more.Estimate(c.speed, mnistSizes) <= c.budget*9/10 {
			t.Errorf("%s: %d training images chosen, but %d fit too", c.name, d.TrainSize, more.TrainSize)
		}
		if d.Seeds != 2 || d.Runs() != 8 || d.TestSize != 2000 {
			t.Errorf("%s: %d seeds, %d runs, test size %d; the fit changed what it must keep", c.name, d.Seeds, d.Runs(), d.TestSize)
		}
		t.Logf("%s: %s, estimate %v", c.name, d.Describe("fashion-mnist", mnistSizes), est)
	}

	// A machine ten times slower than the development machine: fewer
	// epochs, then the smallest demo with an estimate beyond the budget.
	crawl := DemoSpeed{Startup: 10 * time.Second, EvalCompile: 5 * time.Second, TrainRate: 100, EvalRate: 300}
	d, est := DefaultDemo().Fit(crawl, budget, mnistSizes, none)
	if d.Epochs >= 3 || d.TrainSize < 2000 || est > budget*9/10 {
		t.Errorf("crawl, 10 minutes: %d epochs on %d images in %v; want fewer than 3 epochs on at least 2000 images within the budget", d.Epochs, d.TrainSize, est)
	}
	d, est = DefaultDemo().Fit(crawl, 2*time.Minute, mnistSizes, none)
	if d.Epochs != 1 || d.TrainSize != 2000 || est <= 2*time.Minute*9/10 {
		t.Errorf("crawl, 2 minutes: %d epochs on %d images in %v; want the smallest demo (1 epoch, 2000 images), over budget", d.Epochs, d.TrainSize, est)
	}

	// A fast machine (a GPU): all the images, and more epochs, at most 15.
	fast := DemoSpeed{Startup: 5 * time.Second, EvalCompile: 2 * time.Second, TrainRate: 20000, EvalRate: 60000}
	d, est = DefaultDemo().Fit(fast, budget, mnistSizes, none)
	if d.TrainSize != 0 || d.Epochs <= 3 || d.Epochs > 15 || est > budget*9/10 {
		t.Errorf("fast: %d epochs on train size %d in %v; want all images (0), more than 3 epochs", d.Epochs, d.TrainSize, est)
	}
	if d.Epochs < 15 {
		next := d
		next.Epochs++
		if next.Estimate(fast, mnistSizes) <= budget*9/10 {
			t.Errorf("fast: %d epochs chosen, but %d fit", d.Epochs, next.Epochs)
		}
	}

	// Explicit sizes are kept: epochs given, the training set fitted to them;
	// training set given, the epochs fitted (most that fit).
	given := DefaultDemo()
	given.Epochs = 5
	d, _ = given.Fit(zen5, budget, mnistSizes, func(n string) bool { return n == EpochsFlag })
	if d.Epochs != 5 || d.TrainSize >= 16000 {
		t.Errorf("--epochs 5: %d epochs on %d images; want 5 epochs on fewer images than at 3", d.Epochs, d.TrainSize)
	}
	given = DefaultDemo()
	given.TrainSize = 4000
	d, _ = given.Fit(zen5, budget, mnistSizes, func(n string) bool { return n == "train-size" })
	if d.TrainSize != 4000 || d.Epochs < 4 {
		t.Errorf("--train-size 4000: %d epochs on %d images; want 4000 images, more epochs", d.Epochs, d.TrainSize)
	}
}

// TestDemoAdopt checks that a demo continues the grid its directory holds:
// sizes come from there unless given, new seeds grow it, and a directory
// holding another grid is refused.
func TestDemoAdopt(t *testing.T) {
	made := DefaultDemo()
	made.TrainSize, made.Epochs, made.Backend = 5000, 2, "cpu"
	old, err := made.Grid("mnist")
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultDemo()
	d.Seeds = 3
	if err := d.Adopt(old, func(n string) bool { return n == "seeds" }); err != nil {
		t.Fatal(err)
	}
	if d.TrainSize != 5000 || d.Epochs != 2 || d.Backend != "cpu" || d.Data != "mnist" || d.Seeds != 3 {
		t.Errorf("adopted %+v; want train size 5000, 2 epochs, backend cpu, data mnist, 3 seeds", d)
	}
	g, err := d.Grid(d.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := compatible(old, g); err != nil {
		t.Errorf("the adopted demo's grid is not a growth of the old one: %v", err)
	}
	if trials, _ := g.Trials(); len(trials) != 12 {
		t.Errorf("%d trials with 3 seeds, want 12", len(trials))
	}
	// Without --seeds, the old seeds.
	d = DefaultDemo()
	if err := d.Adopt(old, none); err != nil || d.Seeds != 2 {
		t.Errorf("seeds %d (%v), want the old 2", d.Seeds, err)
	}

	// A demo of an earlier version, without train-eval-size.
	legacy := &Grid{Fixed: slicesDelete(old.Fixed, "train-eval-size"), Axes: old.Axes, Seeds: old.Seeds}
	d = DefaultDemo()
	if err := d.Adopt(legacy, none); err != nil {
		t.Fatal(err)
	}
	g, err = d.Grid(d.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := compatible(legacy, g); err != nil {
		t.Errorf("continuing an earlier version's demo: %v", err)
	}

	other, err := NewGrid("", []train.Setting{{Name: "data", Value: "mnist"}, {Name: "alpha", Value: "1,0.5"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d = DefaultDemo()
	if err := d.Adopt(other, none); err == nil || !strings.Contains(err.Error(), "not a demo") {
		t.Errorf("adopting a grid over alpha alone: %v, want an error saying it is not a demo's", err)
	}
}

func slicesDelete(s []train.Setting, name string) []train.Setting {
	var out []train.Setting
	for _, x := range s {
		if x.Name != name {
			out = append(out, x)
		}
	}
	return out
}

func TestDemoDescribe(t *testing.T) {
	d := DefaultDemo()
	if got, want := d.Describe("fashion-mnist", mnistSizes), "8 runs of resnet20 on 8000 fashion-mnist images for 3 epochs"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	d.Seeds, d.LabelSmoothings, d.Alphas, d.Epochs, d.TrainSize = 1, "0", "1", 1, 0
	if got, want := d.Describe("mnist", mnistSizes), "1 run of resnet20 on all 60000 mnist images for 1 epoch"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
}
