package train

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/train/optim"
)

// paperTrial is one trial of an experiment as pgt-reference.md states it,
// with the paper's train and test accuracy (0 where it states none).
type paperTrial struct {
	alpha, ls   float64
	schedule    string
	train, test float64
}

// paperRecipe is what pgt-reference.md says about one experiment; the
// values are written here from that file, not copied from the recipes.
type paperRecipe struct {
	model          string
	data           string
	batch          int
	lr             float64
	alpha          float64 // the recipe's own trial
	schedule       string
	epochs         int
	warmupStart    float64
	warmupEpochs   float64
	labelSmoothing float64
	clipNorm, agc  bool
	// trials by name; for alpha grids the names are "alpha=A".
	trials map[string]paperTrial
}

// The ImageNet protocol of the BN runs, section 1.1: batch 1024, peak 0.4,
// 5 warm-up epochs from 4e-4, 100 epochs.
func bnRecipe(model, sched string, alpha float64, base, pgt [2]float64) paperRecipe {
	return paperRecipe{model: model, data: DataImageFolder, batch: 1024, lr: 0.4, alpha: alpha, schedule: sched, epochs: 100,
		warmupStart: 4e-4, warmupEpochs: 5,
		trials: map[string]paperTrial{
			"baseline": {alpha: 1, schedule: sched, train: base[0], test: base[1]},
			"pgt":      {alpha: alpha, schedule: sched, train: pgt[0], test: pgt[1]},
		}}
}

// nobnRecipe is a row pair of the non-BN table (section 2.3): cosine, 100
// epochs; the learning rate is not stated (the recipes scale 0.4 at 1024).
func nobnRecipe(batch int, alpha float64, names [2]string, base, pgt [2]float64) paperRecipe {
	return paperRecipe{model: "resnet18-nobn", data: DataImageFolder, batch: batch, lr: 0.4 * float64(batch) / 1024, alpha: alpha,
		schedule: optim.ScheduleCosine, epochs: 100, warmupStart: 4e-4 * float64(batch) / 1024, warmupEpochs: 5,
		trials: map[string]paperTrial{
			names[0]: {alpha: 1, schedule: optim.ScheduleCosine, train: base[0], test: base[1]},
			names[1]: {alpha: alpha, schedule: optim.ScheduleCosine, train: pgt[0], test: pgt[1]},
		}}
}

// gridRecipe is an alpha grid with test (and train) accuracies read off a
// figure (section 2.5).
func gridRecipe(r paperRecipe, alphas, test, train []float64) paperRecipe {
	r.trials = map[string]paperTrial{}
	for i, a := range alphas {
		tr := paperTrial{alpha: a, schedule: r.schedule, test: test[i]}
		if train != nil {
			tr.train = train[i]
		}
		r.trials["alpha="+strconv.FormatFloat(a, 'g', -1, 64)] = tr
	}
	return r
}

func withClip(r paperRecipe, gc, agc bool) paperRecipe {
	r.clipNorm, r.agc = gc, agc
	return r
}

// paperRecipes is every experiment of the paper that has a recipe.
func paperRecipes() map[string]paperRecipe {
	cos, step := optim.ScheduleCosine, optim.ScheduleStep
	ablation := paperRecipe{model: "resnet50", data: DataImageFolder, batch: 1024, lr: 0.4, alpha: 0.05, schedule: cos, epochs: 100,
		warmupStart: 4e-4, warmupEpochs: 5, labelSmoothing: 0.1,
		trials: map[string]paperTrial{ // section 2.2, rows 1-8
			"step":              {alpha: 1, schedule: step, train: 78.99, test: 75.97},
			"step-pgt0.3":       {alpha: 0.3, schedule: step, train: 79.56, test: 76.494},
			"cosine":            {alpha: 1, schedule: cos, train: 79.18, test: 76.56},
			"cosine-ls":         {alpha: 1, ls: 0.1, schedule: cos, train: 78.81, test: 76.698},
			"cosine-pgt0.3":     {alpha: 0.3, schedule: cos, train: 79.43, test: 76.886},
			"cosine-ls-pgt0.3":  {alpha: 0.3, ls: 0.1, schedule: cos, train: 78.47, test: 76.968},
			"cosine-pgt0.05":    {alpha: 0.05, schedule: cos, train: 79.68, test: 77.216},
			"cosine-ls-pgt0.05": {alpha: 0.05, ls: 0.1, schedule: cos, train: 77.69, test: 76.39},
		}}
	grid50 := func(model string, alpha float64) paperRecipe {
		return paperRecipe{model: model, data: DataImageFolder, batch: 1024, lr: 0.4, alpha: alpha, schedule: cos, epochs: 50,
			warmupStart: 4e-4, warmupEpochs: 5}
	}
	cifarAlphas := make([]float64, 20)
	for i := range cifarAlphas {
		cifarAlphas[i] = float64(i+1) / 20
	}
	return map[string]paperRecipe{
		// Section 2.1.
		"imagenet-resnet18-step":     bnRecipe("resnet18", step, 0.25, [2]float64{69.95, 69.704}, [2]float64{70.3, 69.844}),
		"imagenet-resnet18-cosine":   bnRecipe("resnet18", cos, 0.25, [2]float64{70.38, 70.208}, [2]float64{70.53, 70.298}),
		"imagenet-resnet50-step":     bnRecipe("resnet50", step, 0.3, [2]float64{78.99, 75.97}, [2]float64{79.56, 76.494}),
		"imagenet-resnet50-cosine":   bnRecipe("resnet50", cos, 0.05, [2]float64{79.18, 76.56}, [2]float64{79.68, 77.216}),
		"imagenet-resnet101-cosine":  bnRecipe("resnet101", cos, 0.3, [2]float64{82.29, 77.896}, [2]float64{83.1, 78.258}),
		"imagenet-seresnet18-cosine": bnRecipe("seresnet18", cos, 0.25, [2]float64{71.42, 71.09}, [2]float64{71.6, 71.436}),
		"imagenet-seresnet50-cosine": bnRecipe("seresnet50", cos, 0.3, [2]float64{81.5, 77.218}, [2]float64{82.47, 77.952}),
		// Section 2.2.
		"imagenet-resnet50-ls-ablation": ablation,
		// Section 2.3.
		"imagenet-resnet18-nobn-b1024": nobnRecipe(1024, 0.92, [2]string{"baseline", "pgt"}, [2]float64{66.27, 64.816}, [2]float64{66.62, 65.498}),
		"imagenet-resnet18-nobn-b512":  nobnRecipe(512, 0.25, [2]string{"baseline", "pgt"}, [2]float64{68.02, 66.552}, [2]float64{69.5, 67.236}),
		"imagenet-resnet18-nobn-b256":  nobnRecipe(256, 0.25, [2]string{"baseline", "pgt"}, [2]float64{68.86, 66.796}, [2]float64{69.97, 67.814}),
		"imagenet-resnet18-nobn-b256-gc": withClip(nobnRecipe(256, 0.25, [2]string{"gc", "gc+pgt"},
			[2]float64{69.04, 67.064}, [2]float64{68.67, 67.088}), true, false),
		"imagenet-resnet18-nobn-b256-agc": withClip(nobnRecipe(256, 0.25, [2]string{"agc", "agc+pgt"},
			[2]float64{69.06, 67.298}, [2]float64{70.92, 68.856}), false, true),
		// Sections 1.5 and 2.5.
		"imagenet-resnet18-alpha-grid-50ep": gridRecipe(grid50("resnet18", 0.25),
			[]float64{0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1},
			[]float64{68.91, 68.88, 68.71, 68.85, 68.76, 68.67, 68.54, 68.57, 68.53, 68.74, 68.63, 68.56},
			[]float64{67.85, 67.98, 67.98, 67.86, 67.83, 67.71, 67.56, 67.62, 67.60, 67.61, 67.40, 67.71}),
		"imagenet-resnet50-alpha-grid-50ep": gridRecipe(grid50("resnet50", 0.3),
			[]float64{0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.75, 0.9, 1},
			[]float64{75.72, 75.19, 75.61, 75.39, 74.73, 75.49, 75.20, 75.03, 75.31, 75.37},
			[]float64{76.46, 75.41, 75.66, 75.44, 74.79, 75.41, 75.33, 76.16, 76.12, 76.14}),
		// Sections 1.4 and 2.5: 360 epochs, 20 alphas; the rest is chosen.
		"cifar10-resnet20": gridRecipe(paperRecipe{model: "resnet20", data: "cifar10", batch: 128, lr: 0.1, alpha: 0.5, schedule: cos, epochs: 360},
			cifarAlphas,
			[]float64{91.66, 91.60, 91.59, 91.87, 91.52, 91.58, 91.75, 91.64, 92.02, 91.73, 92.00, 91.98, 92.00, 91.79, 91.83, 91.69, 91.85, 91.71, 91.60, 92.00},
			nil),
	}
}

// TestShippedRecipes checks every shipped recipe against the experiments of
// the paper as pgt-reference.md states them: the model, batch, learning
// rate, alpha, schedule, epochs, warm-up, label smoothing, weight-decay
// exemption, the trials and the reference numbers. Recipes for experiments
// the paper never ran must be marked as extensions.
func TestShippedRecipes(t *testing.T) {
	recipes, err := Recipes()
	if err != nil {
		t.Fatal(err)
	}
	if names := RecipeNames(); len(names) != len(recipes) || !slices.IsSorted(names) {
		t.Errorf("RecipeNames() = %v", names)
	}
	want := paperRecipes()
	seen := map[string]bool{}
	for _, r := range recipes {
		seen[r.Name] = true
		if r.Config.Recipe != r.Name {
			t.Errorf("%s: Config.Recipe %q", r.Name, r.Config.Recipe)
		}
		// sgt train --recipe NAME starts from a valid configuration.
		if cfg, err := ConfigFor(r.Name, nil); err != nil || cfg.Validate() != nil {
			t.Errorf("%s: ConfigFor: %v", r.Name, err)
		}
		p, ok := want[r.Name]
		if !ok {
			if !r.Extension {
				t.Errorf("%s: no experiment of the paper and not marked as an extension", r.Name)
			}
			continue
		}
		if r.Extension {
			t.Errorf("%s: an experiment of the paper marked as an extension", r.Name)
		}
		checkPaperRecipe(t, r, p)
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no recipe %s for an experiment of the paper", name)
		}
	}
	if r, err := LookupRecipe("fashion-mnist-resnet20"); err != nil || !r.Extension || r.Config.Data != "fashion-mnist" {
		t.Errorf("Fashion-MNIST extension: %+v, %v", r, err)
	}
}

// checkPaperRecipe compares one recipe with the paper's experiment.
func checkPaperRecipe(t *testing.T, r Recipe, p paperRecipe) {
	t.Helper()
	c := r.Config
	if c.Model != p.model || c.Data != p.data || c.BatchSize != p.batch || !closeTo(c.LR, p.lr) || c.Alpha != p.alpha ||
		c.Schedule != p.schedule || c.Epochs != p.epochs || !closeTo(c.WarmupStartLR, p.warmupStart) || c.WarmupEpochs != p.warmupEpochs ||
		c.LabelSmoothing != p.labelSmoothing || (c.ClipNorm > 0) != p.clipNorm || (c.AGC > 0) != p.agc {
		t.Errorf("%s: config %+v\nwant %+v", r.Name, c, p)
	}
	// Weight decay is off for 1-D parameters in the authors' code.
	if !c.ExemptVectors || !c.Nesterov || c.Momentum != 0.9 {
		t.Errorf("%s: wd_exempt_vectors %v, nesterov %v, momentum %g", r.Name, c.ExemptVectors, c.Nesterov, c.Momentum)
	}
	if c.Data == DataImageFolder {
		// The ImageNet protocol: weight decay 5e-4, per-epoch updates as
		// timm's, and for the cosine the 10 cooling epochs.
		if c.WeightDecay != 5e-4 || c.LRUpdate != optim.LRUpdateEpoch || c.ImageSize != 224 {
			t.Errorf("%s: weight decay %g, lr_update %q, image size %d", r.Name, c.WeightDecay, c.LRUpdate, c.ImageSize)
		}
		switch c.Schedule {
		case optim.ScheduleCosine:
			if c.CooldownEpochs != 10 || !closeTo(c.MinLR, p.warmupStart) || !c.WarmupReplaces {
				t.Errorf("%s: cool-down %d at %g, warm-up replaces %v", r.Name, c.CooldownEpochs, c.MinLR, c.WarmupReplaces)
			}
		case optim.ScheduleStep:
			if !slices.Equal(c.Milestones, []int{30, 60, 90}) || c.CooldownEpochs != 0 || c.MinLR != 0 {
				t.Errorf("%s: milestones %v, cool-down %d at %g", r.Name, c.Milestones, c.CooldownEpochs, c.MinLR)
			}
		}
	}
	// The trials and their reference numbers.
	trials := r.NamedTrials()
	var names []string
	for _, tr := range trials {
		names = append(names, tr.Name)
	}
	if !slices.Equal(slices.Sorted(slices.Values(names)), slices.Sorted(maps.Keys(p.trials))) {
		t.Errorf("%s: trials %v, want %v", r.Name, names, slices.Sorted(maps.Keys(p.trials)))
		return
	}
	if got := r.Trials(); len(got) != len(trials) {
		t.Errorf("%s: Trials() has %d entries, NamedTrials() %d", r.Name, len(got), len(trials))
	}
	for _, tr := range trials {
		w := p.trials[tr.Name]
		cfg, err := r.TrialConfig(tr)
		if err != nil {
			t.Errorf("%s: %v", r.Name, err)
			continue
		}
		if cfg.Alpha != w.alpha || cfg.LabelSmoothing != w.ls || cfg.Schedule != w.schedule {
			t.Errorf("%s trial %s: alpha %g, ls %g, schedule %s; want %+v", r.Name, tr.Name, cfg.Alpha, cfg.LabelSmoothing, cfg.Schedule, w)
		}
		if w.schedule == optim.ScheduleStep && (!slices.Equal(cfg.Milestones, []int{30, 60, 90}) || cfg.CooldownEpochs != 0) {
			t.Errorf("%s trial %s: milestones %v, cool-down %d", r.Name, tr.Name, cfg.Milestones, cfg.CooldownEpochs)
		}
		ref, ok := r.ReferenceFor(cfg)
		if !ok || ref.Row != tr.Name {
			t.Errorf("%s trial %s: ReferenceFor gives %+v, %v", r.Name, tr.Name, ref, ok)
			continue
		}
		if !sameNumber(ref.TestAcc, w.test) || !sameNumber(ref.TrainAcc, w.train) {
			t.Errorf("%s trial %s: reference train %v test %v, want %g %g", r.Name, tr.Name, num(ref.TrainAcc), num(ref.TestAcc), w.train, w.test)
		}
		if approx := strings.Contains(r.Name, "grid") || r.Name == "cifar10-resnet20"; ref.Approximate != approx {
			t.Errorf("%s trial %s: approximate %v, want %v (figure read-offs are)", r.Name, tr.Name, ref.Approximate, approx)
		}
	}
}

// closeTo reports whether two settings agree to 1e-12 relative.
func closeTo(a, b float64) bool { return a == b || (a-b)*(a-b) <= 1e-24*b*b }

// sameNumber compares an optional reference number with want (0: absent).
func sameNumber(x *float64, want float64) bool {
	if want == 0 {
		return x == nil
	}
	return x != nil && *x == want
}

func num(x *float64) any {
	if x == nil {
		return nil
	}
	return *x
}

// TestRecipeGaps checks the ablation's gaps and the paper's differences of a
// few rows (sections 2.1-2.3) and the ResNet-50 cosine losses (section 2.4).
func TestRecipeGaps(t *testing.T) {
	check := func(recipe, row string, field func(PaperResult) *float64, want float64) {
		t.Helper()
		r, err := LookupRecipe(recipe)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(r.Reference, func(p PaperResult) bool { return p.Row == row })
		if i < 0 || !sameNumber(field(r.Reference[i]), want) {
			t.Errorf("%s row %s: %+v, want %g", recipe, row, r.Reference, want)
		}
	}
	gap := func(p PaperResult) *float64 { return p.Gap }
	testDiff := func(p PaperResult) *float64 { return p.TestDiff }
	trainDiff := func(p PaperResult) *float64 { return p.TrainDiff }
	loss := func(p PaperResult) *float64 { return p.Loss }
	norm := func(p PaperResult) *float64 { return p.LogitNorm }
	check("imagenet-resnet50-ls-ablation", "step", gap, 3.02)
	check("imagenet-resnet50-ls-ablation", "cosine-ls-pgt0.3", gap, 1.502)
	check("imagenet-resnet50-ls-ablation", "cosine-ls-pgt0.05", gap, 1.3)
	check("imagenet-seresnet50-cosine", "pgt", testDiff, 0.734)
	check("imagenet-resnet50-cosine", "pgt", testDiff, 0.656)
	check("imagenet-resnet50-cosine", "baseline", loss, 0.852)
	check("imagenet-resnet50-cosine", "pgt", loss, 2.360)
	check("imagenet-resnet18-nobn-b256-gc", "gc+pgt", trainDiff, -0.19)
	check("imagenet-resnet18-nobn-b256-agc", "agc+pgt", testDiff, 2.06)
	check("imagenet-resnet18-nobn-b1024", "pgt", testDiff, 0.682)
	check("imagenet-resnet18-alpha-grid-50ep", "alpha=0.25", norm, 217.7)
	check("imagenet-resnet18-alpha-grid-50ep", "alpha=0.1", loss, 3.49)
	check("imagenet-resnet18-alpha-grid-50ep", "alpha=1", loss, 1.38)
}

// TestRecipeSources checks the labels of the shipped recipes: every setting
// has one; the values the paper states say "paper"; those the brief lists as
// unstated say "chosen"; and each paper-or-code disagreement names the flag
// that gives the other side.
func TestRecipeSources(t *testing.T) {
	recipes, err := Recipes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recipes {
		for _, k := range ConfigKeys() {
			if err := checkSourceLabel(r.Sources[k]); err != nil {
				t.Errorf("%s: %s: %v", r.Name, k, err)
			}
		}
		label := func(key string) string { s, _, _ := strings.Cut(r.Sources[key], ":"); return s }
		switch {
		case r.Extension:
			for _, k := range ConfigKeys() {
				if label(k) != "chosen" {
					t.Errorf("%s (extension): %s labelled %q", r.Name, k, r.Sources[k])
				}
			}
		case r.Config.Model == "resnet18-nobn":
			for _, k := range []string{"lr", "warmup_start_lr", "weight_decay", "min_lr"} {
				if label(k) != "chosen" {
					t.Errorf("%s: %s is not stated for the non-BN runs, labelled %q", r.Name, k, r.Sources[k])
				}
			}
			if r.Config.ClipNorm > 0 && label("clip_norm") != "chosen" || r.Config.AGC > 0 && label("agc") != "chosen" {
				t.Errorf("%s: the GC threshold and AGC factor are not stated: %q, %q", r.Name, r.Sources["clip_norm"], r.Sources["agc"])
			}
		case r.Config.Data == DataImageFolder:
			for _, k := range []string{"batch_size", "lr", "momentum", "weight_decay", "warmup_epochs", "warmup_start_lr", "epochs", "model"} {
				if label(k) != "paper" {
					t.Errorf("%s: %s labelled %q, want the paper", r.Name, k, r.Sources[k])
				}
			}
			// The other side of each disagreement is one flag away.
			for k, flag := range map[string]string{"lr": "--lr 0.1", "warmup_start_lr": "--warmup-start-lr 0.01"} {
				if !strings.Contains(r.Sources[k], flag) {
					t.Errorf("%s: %s source %q does not give the authors' code's %s", r.Name, k, r.Sources[k], flag)
				}
			}
			if r.Config.Schedule == optim.ScheduleCosine && !strings.Contains(r.Sources["min_lr"], "--min-lr 1e-4") {
				t.Errorf("%s: min_lr source %q does not give the authors' code's --min-lr 1e-4", r.Name, r.Sources["min_lr"])
			}
		case r.Config.Data == "cifar10":
			for _, k := range []string{"batch_size", "lr", "weight_decay", "schedule", "warmup_epochs", "seed"} {
				if label(k) != "chosen" {
					t.Errorf("%s: %s is not stated for CIFAR-10, labelled %q", r.Name, k, r.Sources[k])
				}
			}
			if label("epochs") != "paper" || label("alpha_grid") != "paper" {
				t.Errorf("%s: epochs and the grid are the paper's: %q, %q", r.Name, r.Sources["epochs"], r.Sources["alpha_grid"])
			}
		}
		if label("seed") != "chosen" {
			t.Errorf("%s: the sources state no seed, labelled %q", r.Name, r.Sources["seed"])
		}
	}
	// The SE-ResNets' bicubic evaluation resize is a known difference.
	for _, name := range []string{"imagenet-seresnet18-cosine", "imagenet-seresnet50-cosine"} {
		r, err := LookupRecipe(name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, "bicubic") }) {
			t.Errorf("%s: notes do not mention the bicubic evaluation resize", name)
		}
	}
	// The ResNet-50 step alpha: the recipe takes one side and says so.
	if r, err := LookupRecipe("imagenet-resnet50-step"); err != nil || !strings.Contains(r.Sources["alpha"], "--alpha 0.05") {
		t.Errorf("imagenet-resnet50-step: alpha source %q should give the other reading (--alpha 0.05); %v", r.Sources["alpha"], err)
	}
}

// TestTrialsAndReferenceFor checks Trials on rows, alpha grids and plain
// recipes, and that ReferenceFor matches on the trial's settings and the
// experiment, whatever the seed, data location or learning-rate reading.
func TestTrialsAndReferenceFor(t *testing.T) {
	r, err := LookupRecipe("imagenet-resnet50-ls-ablation")
	if err != nil {
		t.Fatal(err)
	}
	trials := r.Trials()
	if len(trials) != 8 || !slices.Equal(trials[1], []Setting{{"schedule", "step"}, {"milestones", "30,60,90"}, {"label-smoothing", "0"}, {"alpha", "0.3"}}) {
		t.Fatalf("ablation trials %v", trials)
	}
	cfg, err := Apply(r.Config, trials[1])
	if err != nil {
		t.Fatal(err)
	}
	// The authors' code's values, a seed and a data folder do not change
	// which row a run is.
	cfg, err = Apply(cfg, []Setting{{"lr", "0.1"}, {"warmup-start-lr", "0.01"}, {"seed", "5"}, {"data-dir", "/data/imagenet"}})
	if err != nil {
		t.Fatal(err)
	}
	if ref, ok := r.ReferenceFor(cfg); !ok || ref.Row != "step-pgt0.3" || *ref.TestAcc != 76.494 {
		t.Errorf("ReferenceFor(step, alpha 0.3) = %+v, %v", ref, ok)
	}
	for _, change := range [][]Setting{{{"epochs", "90"}}, {{"alpha", "0.5"}}, {{"model", "resnet18"}}, {{"batch-size", "256"}},
		{{"label-smoothing", "0.1"}}, {{"schedule", "cosine"}, {"alpha", "0.3"}, {"label-smoothing", "0.2"}}} {
		other, err := Apply(cfg, change)
		if err != nil {
			t.Fatal(err)
		}
		if ref, ok := r.ReferenceFor(other); ok {
			t.Errorf("ReferenceFor after %v matched %s", change, ref.Row)
		}
	}
	// An alpha grid: one trial per alpha.
	g, err := LookupRecipe("cifar10-resnet20")
	if err != nil {
		t.Fatal(err)
	}
	gt := g.Trials()
	if len(gt) != 20 || !slices.Equal(gt[0], []Setting{{"alpha", "0.05"}}) || !slices.Equal(gt[19], []Setting{{"alpha", "1"}}) {
		t.Errorf("grid trials %v", gt)
	}
	c := g.Config
	c.Alpha = 0.45
	if ref, ok := g.ReferenceFor(c); !ok || *ref.TestAcc != 92.02 || !ref.Approximate {
		t.Errorf("CIFAR-10 alpha 0.45: %+v, %v", ref, ok)
	}
	// A recipe with neither: one empty trial.
	plain := Recipe{Config: DefaultConfig()}
	if tr := plain.Trials(); len(tr) != 1 || len(tr[0]) != 0 {
		t.Errorf("plain recipe trials %v", tr)
	}
	if _, ok := plain.ReferenceFor(DefaultConfig()); ok {
		t.Error("a recipe without reference matched")
	}
}

// recipeJSON returns a valid recipe file for name, changed by edit.
func recipeJSON(t *testing.T, name string, edit func(top, cfg map[string]any, sources map[string]any)) []byte {
	t.Helper()
	cfg := DefaultConfig()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	c["milestones"] = []int{}
	sources := map[string]any{"alpha_grid": "paper: a figure"}
	for _, k := range ConfigKeys() {
		sources[k] = "chosen: for the test"
	}
	top := map[string]any{"name": name, "description": "d", "paper": "p", "alpha_grid": []float64{1, 0.5}, "config": c, "sources": sources,
		"reference": []map[string]any{{"row": "alpha=0.5", "test_acc_pct": 90.5, "source": "fig. 1"}}}
	if edit != nil {
		edit(top, c, sources)
	}
	out, err := json.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseRecipeErrors(t *testing.T) {
	r, err := ParseRecipe("ok", recipeJSON(t, "ok", nil))
	if err != nil || r.Config.Recipe != "ok" || r.Config.Model != "mlp" || r.Sources["lr"] != "chosen: for the test" {
		t.Fatalf("valid recipe: %+v, %v", r, err)
	}
	rows := []map[string]any{
		{"name": "base", "settings": []map[string]string{{"name": "alpha", "value": "1"}}},
		{"name": "pgt", "settings": []map[string]string{{"name": "alpha", "value": "0.3"}, {"name": "label-smoothing", "value": "0.1"}}},
	}
	withRows := func(top, c, s map[string]any) {
		delete(top, "alpha_grid")
		delete(s, "alpha_grid")
		top["rows"], s["rows"] = rows, "paper: table 1"
		top["reference"] = []map[string]any{{"row": "pgt", "test_acc_pct": 70.1, "source": "table 1"}}
	}
	if r, err := ParseRecipe("rows", recipeJSON(t, "rows", withRows)); err != nil || len(r.Trials()) != 2 {
		t.Fatalf("valid recipe with rows: %+v, %v", r, err)
	}
	cases := []struct {
		name string
		edit func(top, cfg, sources map[string]any)
		want string
	}{
		{"missing setting", func(_, c, _ map[string]any) { delete(c, "weight_decay") }, "weight_decay"},
		{"unknown setting", func(_, c, _ map[string]any) { c["learning_rate"] = 0.1 }, "learning_rate"},
		{"unknown top key", func(top, _, _ map[string]any) { top["remarks"] = "x" }, "remarks"},
		{"recipe key", func(_, c, _ map[string]any) { c["recipe"] = "x" }, "recipe"},
		{"bad value", func(_, c, _ map[string]any) { c["alpha"] = -1 }, "--alpha"},
		{"contradiction", func(_, c, _ map[string]any) { c["milestones"] = []int{1} }, "--milestones"},
		{"bad cool-down", func(_, c, _ map[string]any) { c["cooldown_epochs"] = -1 }, "--cooldown-epochs"},
		{"bad lr update", func(_, c, _ map[string]any) { c["lr_update"] = "batch" }, "--lr-update"},
		{"wrong type", func(_, c, _ map[string]any) { c["epochs"] = "ten" }, "epochs"},
		{"name mismatch", func(top, _, _ map[string]any) { top["name"] = "other" }, "other"},
		{"no description", func(top, _, _ map[string]any) { top["description"] = " " }, "description"},
		{"two-line description", func(top, _, _ map[string]any) { top["description"] = "a\nb" }, "one line"},
		{"alpha not in grid", func(top, _, _ map[string]any) { top["alpha_grid"] = []float64{0.5, 0.3} }, "alpha_grid"},
		{"missing source", func(_, _, s map[string]any) { delete(s, "momentum") }, "momentum"},
		{"missing grid source", func(_, _, s map[string]any) { delete(s, "alpha_grid") }, "alpha_grid"},
		{"unlabelled source", func(_, _, s map[string]any) { s["lr"] = "He et al." }, "lr"},
		{"empty source", func(_, _, s map[string]any) { s["lr"] = "paper: " }, "lr"},
		{"source of nothing", func(_, _, s map[string]any) { s["learning_rate"] = "paper: x" }, "learning_rate"},
		{"source of absent rows", func(_, _, s map[string]any) { s["rows"] = "paper: x" }, "rows"},
		{"rows and grid", func(top, _, s map[string]any) { top["rows"], s["rows"] = rows, "paper: t" }, "not both"},
		{"unknown row flag", func(top, c, s map[string]any) {
			withRows(top, c, s)
			top["rows"] = append(slices.Clone(rows), map[string]any{"name": "x", "settings": []map[string]string{{"name": "learning-rate", "value": "1"}}})
		}, "learning-rate"},
		{"bad row value", func(top, c, s map[string]any) {
			withRows(top, c, s)
			top["rows"] = append(slices.Clone(rows), map[string]any{"name": "x", "settings": []map[string]string{{"name": "alpha", "value": "-2"}}})
		}, "--alpha"},
		{"duplicate row name", func(top, c, s map[string]any) {
			withRows(top, c, s)
			top["rows"] = append(slices.Clone(rows), map[string]any{"name": "base", "settings": []map[string]string{{"name": "alpha", "value": "0.7"}}})
		}, "base"},
		{"same trial twice", func(top, c, s map[string]any) {
			withRows(top, c, s)
			top["rows"] = append(slices.Clone(rows), map[string]any{"name": "again", "settings": []map[string]string{{"name": "alpha", "value": "1"}}})
		}, "same settings"},
		{"config no row", func(top, c, s map[string]any) { withRows(top, c, s); c["alpha"] = 0.5 }, "none of its rows"},
		{"reference of no trial", func(top, _, _ map[string]any) {
			top["reference"] = []map[string]any{{"row": "alpha=0.7", "test_acc_pct": 1, "source": "x"}}
		}, "alpha=0.7"},
		{"reference twice", func(top, _, _ map[string]any) {
			ref := map[string]any{"row": "alpha=1", "test_acc_pct": 1, "source": "x"}
			top["reference"] = []map[string]any{ref, ref}
		}, "twice"},
		{"reference without source", func(top, _, _ map[string]any) {
			top["reference"] = []map[string]any{{"row": "alpha=1", "test_acc_pct": 1}}
		}, "source"},
		{"reference without numbers", func(top, _, _ map[string]any) {
			top["reference"] = []map[string]any{{"row": "alpha=1", "source": "x"}}
		}, "no number"},
	}
	for _, tc := range cases {
		_, err := ParseRecipe("r", recipeJSON(t, "r", tc.edit))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "recipe r") {
			t.Errorf("%s: err %v, want an error about recipe r mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, err := ParseRecipe("r", []byte(`{"name":"r"} {}`)); err == nil {
		t.Error("trailing data accepted")
	}
	_, err = LookupRecipe("no-such-recipe")
	if err == nil || !strings.Contains(err.Error(), "no-such-recipe") || !strings.Contains(err.Error(), "fashion-mnist-resnet20") {
		t.Errorf("unknown recipe: err %v, want the name and the known recipes", err)
	}
}
