package report

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train"
)

func lookupRecipe(t *testing.T, name string) train.Recipe {
	t.Helper()
	r, err := train.LookupRecipe(name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func trialConfig(t *testing.T, r train.Recipe, trial string) train.Config {
	t.Helper()
	for _, tr := range r.NamedTrials() {
		if tr.Name == trial {
			cfg, err := r.TrialConfig(tr)
			if err != nil {
				t.Fatal(err)
			}
			return cfg
		}
	}
	t.Fatalf("recipe %s has no trial %s", r.Name, trial)
	return train.Config{}
}

func TestMatchTrial(t *testing.T) {
	grid := lookupRecipe(t, "cifar10-resnet20")
	// The full protocol: only the seed, the data location and the backend
	// differ.
	cfg := trialConfig(t, grid, "alpha=0.45")
	cfg.Seed, cfg.DataDir, cfg.Backend, cfg.TrainEvalSize = 7, "/data/cifar", "cpu", 500
	m, ok := MatchTrial(grid, cfg)
	if !ok || m.Trial.Name != "alpha=0.45" || !m.Full() || m.Protocol() != "full" || !m.HasReference || *m.Reference.TestAcc != 92.02 {
		t.Errorf("full protocol: %+v, %v", m, ok)
	}
	// A reduced run: fewer epochs, a subset, another dataset. ReferenceFor
	// refuses it; MatchTrial finds the row and lists what differs.
	cfg.Epochs, cfg.TrainSize, cfg.Data = 3, 1000, "mnist"
	if _, ok := grid.ReferenceFor(cfg); ok {
		t.Error("ReferenceFor matched a reduced run; the test no longer shows the looser matcher's point")
	}
	m, ok = MatchTrial(grid, cfg)
	if !ok || m.Trial.Name != "alpha=0.45" || m.Protocol() != "reduced" {
		t.Fatalf("reduced run: %+v, %v", m, ok)
	}
	var got []string
	for _, d := range m.Deviations {
		got = append(got, d.String())
	}
	if want := "data mnist (recipe: cifar10), epochs 3 (recipe: 360), train-size 1000 (recipe: all)"; strings.Join(got, ", ") != want {
		t.Errorf("deviations %q, want %q", strings.Join(got, ", "), want)
	}
	// Another learning rate is a change, not a reduction.
	cfg.LR = 0.05
	if m, _ := MatchTrial(grid, cfg); m.Protocol() != "reduced, changed" {
		t.Errorf("protocol %q", m.Protocol())
	}
	// An alpha outside the grid matches no trial.
	cfg.Alpha = 0.33
	if _, ok := MatchTrial(grid, cfg); ok {
		t.Error("alpha 0.33 matched a trial of a grid without it")
	}
	// Rows recipes match by every setting of the row.
	abl := lookupRecipe(t, "imagenet-resnet50-ls-ablation")
	cfg = trialConfig(t, abl, "cosine-ls-pgt0.3")
	cfg.Epochs = 2
	m, ok = MatchTrial(abl, cfg)
	if !ok || m.Trial.Name != "cosine-ls-pgt0.3" || *m.Reference.Gap != 1.502 {
		t.Errorf("ablation row: %+v, %v", m, ok)
	}
	cfg.Schedule, cfg.Milestones = "step", []int{30, 60, 90}
	if m, ok := MatchTrial(abl, cfg); ok {
		t.Errorf("label smoothing with the step schedule is no row of the ablation, matched %s", m.Trial.Name)
	}
}

// recipeConfig returns the configuration of the trial of alpha of recipe
// cifar10-resnet20, reduced to 3 epochs of 1000 MNIST images.
func recipeConfig(t *testing.T, alpha float64, seed int) rundir.Config {
	t.Helper()
	cfg := rundir.Config(trialConfig(t, lookupRecipe(t, "cifar10-resnet20"), fmt.Sprintf("alpha=%g", alpha)))
	cfg.Data, cfg.Epochs, cfg.TrainSize, cfg.Seed = "mnist", 3, 1000, int64(seed)
	return cfg
}

// recipeRuns writes runs of recipe cifar10-resnet20 at alpha 1 and 0.5,
// reduced to 3 epochs of 1000 MNIST images, whose running and clean train
// accuracies differ.
func recipeRuns(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, a := range []float64{1, 0.5} {
		for seed := range 2 {
			cfg := recipeConfig(t, a, seed)
			writeRun(t, filepath.Join(root, fmt.Sprintf("a%g_s%d", a, seed)), fakeRun{
				alpha: a, seed: seed, trainAcc: 0.80 + 0.02*float64(seed), trainEval: 0.95, testAcc: 0.90 + 0.01*float64(seed) - (1-a)*0.02,
				trainLoss: 0.3, logitNorm: 10 / a, filterNorms: true, config: func(c *rundir.Config) { *c = cfg },
			})
		}
	}
	return root
}

func TestPaperComparison(t *testing.T) {
	rep := build(t, recipeRuns(t))
	tb := findTable(t, rep, "Against the paper: recipe cifar10-resnet20")
	// The paper gives test accuracy only (read off a figure).
	for _, c := range tb.Columns {
		if c.Group != "" && c.Group != "Test %" {
			t.Errorf("column %s/%s for numbers the paper does not give", c.Group, c.Name)
		}
	}
	if c := cellOf(t, tb, "alpha=1", "Test %", "paper"); c.Text != "≈92.00" {
		t.Errorf("paper cell %+v", c)
	}
	if got := cell(t, tb, "alpha=1", "Test %", "ours"); got != "90.50 ± 0.71" {
		t.Errorf("ours %q", got)
	}
	if got := cell(t, tb, "alpha=1", "Test %", "Δ"); got != "-1.50" {
		t.Errorf("Δ %q, want ours minus the paper's", got)
	}
	if got := cell(t, tb, "alpha=0.5", "Test %", "Δ"); got != fmt.Sprintf("%+.2f", 89.5-91.73) {
		t.Errorf("alpha 0.5 Δ %q", got)
	}
	if c := cellOf(t, tb, "alpha=1", "", "Protocol"); c.Text != "reduced" || !strings.Contains(c.Title, "epochs 3 (recipe: 360)") {
		t.Errorf("protocol cell %+v", c)
	}
	for _, want := range []string{"data mnist (recipe: cifar10)", "epochs 3 (recipe: 360)", "train-size 1000 (recipe: all)", "images/cifar10_grid_search.jpg", "approximate"} {
		if !strings.Contains(tb.Caption, want) {
			t.Errorf("caption lacks %q: %s", want, tb.Caption)
		}
	}
	if s, ok := findStatement(rep, "Against the paper", "cifar10-resnet20", "do not follow the full protocol"); !ok || s.Verdict != "reduced protocol" {
		t.Errorf("paper finding %+v", s)
	}
	var fig *Figure
	for i := range rep.Figures {
		if rep.Figures[i].Name == "paper_vs_alpha_cifar10-resnet20" {
			fig = &rep.Figures[i]
		}
	}
	if fig == nil || !strings.Contains(fig.Caption, "approximate") || !strings.Contains(string(fig.SVG), "paper: test accuracy") {
		t.Errorf("no paper figure, or not marked approximate: %+v", fig)
	}
}

// TestPaperTrainAccuracyIsRunning compares runs of the ResNet-50
// ablation recipe with the paper's rows: its train % against our running
// train accuracy (train_acc), never the clean one.
func TestPaperTrainAccuracyIsRunning(t *testing.T) {
	root := t.TempDir()
	abl := lookupRecipe(t, "imagenet-resnet50-ls-ablation")
	cfg := rundir.Config(trialConfig(t, abl, "cosine-ls-pgt0.3"))
	cfg.Epochs = 2
	writeRun(t, filepath.Join(root, "run"), fakeRun{alpha: 0.3, ls: 0.1, trainAcc: 0.70, trainEval: 0.99, testAcc: 0.60, trainLoss: 2, logitNorm: 5,
		config: func(c *rundir.Config) { *c = cfg }})
	rep := build(t, root)
	tb := findTable(t, rep, "Against the paper")
	if got := cell(t, tb, "cosine-ls-pgt0.3", "Train % (running)", "paper"); got != "78.47" {
		t.Errorf("paper train %q", got)
	}
	if got := cell(t, tb, "cosine-ls-pgt0.3", "Train % (running)", "ours"); got != "70.00" {
		t.Errorf("ours %q, want the running 70.00 (not the clean 99.00)", got)
	}
	if got := cell(t, tb, "cosine-ls-pgt0.3", "Gap % (running)", "ours"); got != "10.00" {
		t.Errorf("gap %q, want running train minus test", got)
	}
	if got := cell(t, tb, "cosine-ls-pgt0.3", "Gap % (running)", "paper"); got != "1.50" {
		t.Errorf("paper gap %q", got)
	}
	if !strings.Contains(tb.Caption, "ours is train_acc (not the clean train_eval_acc)") {
		t.Errorf("caption does not say which train accuracy: %s", tb.Caption)
	}
	// The main table, which uses the clean pass here, says so.
	main := findTable(t, rep, "label smoothing 0.1")
	found := false
	for _, c := range main.Columns {
		found = found || c.Group == "Train % (clean)"
	}
	if !found || !strings.Contains(main.Caption, "train_eval_acc") {
		t.Errorf("main table does not name its train accuracy: %+v", main.Columns)
	}
}

func TestUnknownRecipeIsNoted(t *testing.T) {
	root := t.TempDir()
	writeRun(t, root, fakeRun{alpha: 1, trainAcc: 0.9, testAcc: 0.8, trainLoss: 0.1, logitNorm: 3, config: func(c *rundir.Config) { c.Recipe = "no-such-recipe" }})
	rep := build(t, root)
	if !strings.Contains(strings.Join(rep.Notes, "\n"), `"no-such-recipe"`) {
		t.Errorf("notes %q", rep.Notes)
	}
}
