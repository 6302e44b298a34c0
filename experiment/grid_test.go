package experiment

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train"
)

func TestSplitValues(t *testing.T) {
	cases := []struct {
		in   string
		list bool
		want []string
	}{
		{"0.1", false, []string{"0.1"}},
		{"0.05,0.3,1", false, []string{"0.05", "0.3", "1"}},
		{`a\,b,c`, false, []string{"a,b", "c"}},
		{`a\\b`, false, []string{`a\b`}},
		{"100,150;50,75", true, []string{"100,150", "50,75"}},
	}
	for _, c := range cases {
		got, err := SplitValues(c.in, c.list)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitValues(%q, %v) = %q, %v; want %q", c.in, c.list, got, err, c.want)
		}
	}
	if _, err := SplitValues("1,,2", false); err == nil {
		t.Error("empty entry: want an error")
	}
}

func TestParseSeeds(t *testing.T) {
	cases := map[string][]int{"3": {0, 1, 2}, "1,2,7": {1, 2, 7}, "5:7": {5, 6, 7}, "4:4": {4}}
	for in, want := range cases {
		got, err := ParseSeeds(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseSeeds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"0", "-1", "x", "1,1", "3:2", "1,x", ""} {
		if _, err := ParseSeeds(bad); err == nil {
			t.Errorf("ParseSeeds(%q): want an error", bad)
		}
	}
}

func TestGridTrials(t *testing.T) {
	settings := set("model", "mlp", "alpha", "0.05,0.3,1", "label-smoothing", "0,0.1", "epochs", "2")
	g := mustGrid(t, settings, []int{0, 1})
	if len(g.Axes) != 2 || g.Axes[0].Name != "alpha" || g.Axes[1].Name != "label-smoothing" {
		t.Fatalf("axes: %+v", g.Axes)
	}
	trials := mustTrials(t, g)
	if len(trials) != 3*2*2 {
		t.Fatalf("%d trials, want 12", len(trials))
	}
	first := trials[0]
	if first.Name != "alpha=0.05_label-smoothing=0_seed=0" || first.Dir != first.Name {
		t.Errorf("first trial name %q", first.Name)
	}
	// The trial's configuration is sgt train's defaults with its settings.
	want := train.DefaultConfig()
	want.Model, want.Alpha, want.LabelSmoothing, want.Epochs, want.Seed = "mlp", 0.05, 0, 2, 0
	if !reflect.DeepEqual(first.Config, want) {
		t.Errorf("first trial config %+v, want %+v", first.Config, want)
	}
	if trials[1].Name != "alpha=0.05_label-smoothing=0.1_seed=0" || trials[1].Config.LabelSmoothing != 0.1 {
		t.Errorf("last axis must vary fastest, got %q", trials[1].Name)
	}
	if trials[6].Name != "alpha=0.05_label-smoothing=0_seed=1" || trials[6].Seed != 1 || trials[6].Config.Seed != 1 {
		t.Errorf("seed must vary slowest, got %q", trials[6].Name)
	}
	names := map[string]bool{}
	for i, tr := range trials {
		if tr.Index != i {
			t.Errorf("trial %d has index %d", i, tr.Index)
		}
		if names[tr.Name] {
			t.Errorf("duplicate trial name %q", tr.Name)
		}
		names[tr.Name] = true
		if v, _ := tr.Setting("alpha"); FormatAlpha(tr.Config.Alpha) != v {
			t.Errorf("trial %s: config alpha %v", tr.Name, tr.Config.Alpha)
		}
	}
	if !reflect.DeepEqual(trials, mustTrials(t, mustGrid(t, settings, []int{0, 1}))) {
		t.Error("trials are not stable")
	}
}

func TestGridSeedsAndErrors(t *testing.T) {
	g := mustGrid(t, set("seed", "3,4"), nil)
	trials := mustTrials(t, g)
	if !reflect.DeepEqual(g.Seeds, []int{3, 4}) || len(trials) != 2 || trials[1].Name != "seed=4" {
		t.Errorf("--seed list: seeds %v trials %+v", g.Seeds, trials)
	}
	if g := mustGrid(t, nil, nil); !reflect.DeepEqual(g.Seeds, []int{0}) {
		t.Errorf("default seeds %v", g.Seeds)
	}
	// A list-valued flag varies over ";" only.
	g = mustGrid(t, set("schedule", "step", "epochs", "200", "milestones", "100,150;50,75"), nil)
	if len(g.Axes) != 1 || g.Axes[0].Values[0] != "100,150" || mustTrials(t, g)[1].Config.Milestones[1] != 75 {
		t.Fatalf("list-valued flag: %+v", g)
	}
	for _, tc := range []struct {
		settings []train.Setting
		field    string
	}{
		{set("alpha", "1", "alpha", "0.3"), "alpha"},
		{set("out", "x"), "out"},
		{set("resume", "x"), "resume"},
		{set("alpha", "0.3,0.3"), "alpha"},
		{set("alpha", "0.3,x"), "alpha"},
		{set("model", "nosuchmodel,mlp"), "model"},
		{set("data", "nosuchdata"), "data"},
		{set("seed", "1", "lr", "0.1"), "seed"}, // with explicit seeds below
	} {
		_, err := NewGrid("", tc.settings, []int{0})
		var fe *train.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("NewGrid(%v): err %v, want a FieldError naming --%s", tc.settings, err, tc.field)
		}
	}
}

func TestTrialNameSanitized(t *testing.T) {
	name := TrialName(set("data-dir", "/a b/c", "seed", "0"))
	if name != "data-dir=-a-b-c_seed=0" {
		t.Errorf("got %q", name)
	}
	long := TrialName(set("x", strings.Repeat("a", 300)))
	long2 := TrialName(set("x", strings.Repeat("a", 299)+"b"))
	if len(long) > 120 || long == long2 {
		t.Errorf("long names must be cut and stay distinct: %q %q", long, long2)
	}
	// Values that collide after sanitising get distinct names.
	tr := mustTrials(t, mustGrid(t, set("data-dir", "a/b,a b"), nil))
	if tr[0].Name == tr[1].Name {
		t.Errorf("colliding names: %q", tr[0].Name)
	}
}

func TestShard(t *testing.T) {
	i, n, err := ParseShard("1/4")
	if err != nil || i != 1 || n != 4 {
		t.Fatalf("ParseShard: %d %d %v", i, n, err)
	}
	for _, bad := range []string{"4/4", "-1/2", "1", "a/b", "0/0"} {
		if _, _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q): want an error", bad)
		}
	}
	for idx := range 20 {
		count := 0
		for s := range 3 {
			if InShard(idx, s, 3) {
				count++
			}
		}
		if count != 1 {
			t.Errorf("index %d is in %d shards", idx, count)
		}
	}
}

// TestGridGrows: adding seeds or values runs only the new trials and keeps
// the old ones; a change that would alter existing trials is refused with
// the difference named.
func TestGridGrows(t *testing.T) {
	dir := t.TempDir()
	fake := &fakeTrain{}
	r := &Runner{Train: fake.run}
	base := set("alpha", "0.3,1", "epochs", "2")
	if sum, _, err := RunGrid(context.Background(), dir, mustGrid(t, base, []int{0, 1}), nil, r); err != nil || sum.Done != 4 {
		t.Fatalf("first grid: %+v %v", sum, err)
	}
	sum, results, err := RunGrid(context.Background(), dir, mustGrid(t, base, []int{0, 1, 2}), nil, r)
	if err != nil || sum.Done != 2 || sum.Skipped != 4 || fake.numCalls() != 6 || len(results) != 6 {
		t.Fatalf("adding a seed: %+v %v, %d calls, %d results", sum, err, fake.numCalls(), len(results))
	}
	sum, _, err = RunGrid(context.Background(), dir, mustGrid(t, set("alpha", "0.3,1,0.05", "epochs", "2"), []int{0}), nil, r)
	if err != nil || sum.Done != 1 || sum.Skipped != 2 || fake.numCalls() != 7 {
		t.Fatalf("adding a value: %+v %v", sum, err)
	}
	m, err := ReadManifest(dir)
	if err != nil || len(m.Trials) != 7 || !reflect.DeepEqual(m.Seeds, []int{0, 1, 2}) || len(m.Axes[0].Values) != 3 {
		t.Fatalf("grown manifest: %v %+v", err, m)
	}
	for i, tr := range m.Trials {
		if tr.Index != i {
			t.Errorf("trial %s has index %d at position %d", tr.Name, tr.Index, i)
		}
	}
	for _, tc := range []struct {
		settings []train.Setting
		want     string
	}{
		{set("alpha", "0.3,1", "epochs", "3"), "--epochs 2 vs 3"},
		{set("alpha", "0.3,1"), "--epochs 2 is no longer given"},
		{set("alpha", "0.3,1", "epochs", "2", "lr", "0.05"), "--lr 0.05 is new"},
		{set("alpha", "0.3,1", "epochs", "2,3"), "varied settings"},
	} {
		_, _, err := RunGrid(context.Background(), dir, mustGrid(t, tc.settings, nil), nil, r)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want one naming %q", tc.settings, err, tc.want)
		}
	}
	if fake.numCalls() != 7 {
		t.Errorf("refused grids ran %d trials", fake.numCalls()-7)
	}
}

// TestGridRefusesForeignTrialDirs: a finished run with other settings in a
// folder named like a trial is not adopted, and a folder of files sgt did
// not write is neither used nor emptied.
func TestGridRefusesForeignTrialDirs(t *testing.T) {
	fake := &fakeTrain{}
	r := &Runner{Train: fake.run}
	settings := set("alpha", "1,0.3", "epochs", "2")
	g := mustGrid(t, settings, nil)

	// A finished run of alpha 0.05 sits where trial alpha=1 goes.
	dir := t.TempDir()
	other, err := train.ConfigFor("", set("alpha", "0.05", "epochs", "2", "lr", "0.01"))
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.run(context.Background(), Trial{Name: "x", Config: other}, mkdir(t, filepath.Join(dir, "alpha=1_seed=0")), false, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	fake.calls = nil
	_, _, err = RunGrid(context.Background(), dir, g, nil, r)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "alpha=1_seed=0")) || !strings.Contains(err.Error(), "alpha: 0.05 vs 1") {
		t.Fatalf("mismatched run: err %v, want a refusal naming the folder and the difference", err)
	}
	if fake.numCalls() != 0 {
		t.Errorf("%d trials ran despite the refusal", fake.numCalls())
	}

	// A matching finished run is adopted as done.
	dir = t.TempDir()
	trials := mustTrials(t, g)
	if err := fake.run(context.Background(), trials[0], mkdir(t, filepath.Join(dir, trials[0].Dir)), false, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	fake.calls = nil
	sum, _, err := RunGrid(context.Background(), dir, g, nil, r)
	if err != nil || sum.Skipped != 1 || sum.Done != 1 || fake.numCalls() != 1 {
		t.Fatalf("matching run: %+v %v", sum, err)
	}

	// A folder of user files is refused and left untouched.
	dir = t.TempDir()
	precious := filepath.Join(mkdir(t, filepath.Join(dir, "alpha=0.3_seed=0")), "precious.txt")
	if err := os.WriteFile(precious, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = RunGrid(context.Background(), dir, g, nil, r)
	if err == nil || !strings.Contains(err.Error(), "precious.txt") {
		t.Fatalf("foreign folder: err %v, want a refusal naming precious.txt", err)
	}
	if got, err := os.ReadFile(precious); err != nil || string(got) != "mine" {
		t.Fatalf("precious.txt after the refusal: %q, %v", got, err)
	}
}

// TestRestartKeepsUserFiles: restarting a failed trial clears only the
// files a run writes.
func TestRestartKeepsUserFiles(t *testing.T) {
	dir := t.TempDir()
	fake := &fakeTrain{failAlpha: "1"}
	r := &Runner{Train: fake.run}
	g := mustGrid(t, set("alpha", "1"), nil)
	if sum, _, err := RunGrid(context.Background(), dir, g, nil, r); err != nil || len(sum.Failed) != 1 {
		t.Fatalf("%+v %v", sum, err)
	}
	tdir := filepath.Join(dir, "seed=0")
	if err := os.WriteFile(filepath.Join(tdir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	fake.failAlpha = ""
	if sum, _, err := RunGrid(context.Background(), dir, g, nil, r); err != nil || sum.Done != 1 {
		t.Fatalf("retry: %+v %v", sum, err)
	}
	if _, err := os.Stat(filepath.Join(tdir, "notes.txt")); err != nil {
		t.Errorf("restart removed a user file: %v", err)
	}
	if _, err := rundir.ReadSummary(tdir); err != nil {
		t.Errorf("retried trial has no summary: %v", err)
	}
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestGridOfRecipe: a grid over a recipe that varies nothing runs the
// recipe's experiment, here the ResNet-50 label-smoothing ablation's eight
// rows, each configured as the recipe says.
func TestGridOfRecipe(t *testing.T) {
	const name = "imagenet-resnet50-ls-ablation"
	r, err := train.LookupRecipe(name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGrid(name, set("data-dir", t.TempDir()), []int{1})
	if err != nil {
		t.Fatal(err)
	}
	trials := mustTrials(t, g)
	rows := r.NamedTrials()
	if len(trials) != 8 || len(rows) != 8 {
		t.Fatalf("%d trials, %d rows; want the ablation's 8", len(trials), len(rows))
	}
	for i, tr := range trials {
		want, err := r.TrialConfig(rows[i])
		if err != nil {
			t.Fatal(err)
		}
		want.DataDir, want.Seed = tr.Config.DataDir, 1
		if d := rundir.Diff(rundir.Config(want), rundir.Config(tr.Config)); d != nil || !strings.HasPrefix(tr.Name, "row=") {
			t.Errorf("trial %s differs from row %s: %v", tr.Name, rows[i].Name, d)
		}
	}
	// Varying a setting makes it the user's grid: no rows.
	g, err = NewGrid(name, set("alpha", "1,0.3"), nil)
	if err != nil || len(g.Rows) != 0 || len(mustTrials(t, g)) != 2 {
		t.Fatalf("grid over a recipe with --alpha: %+v %v", g, err)
	}
}

// TestLegacyGridKeepsWorking: a grid directory written before trials
// carried configurations (trials as "sgt train" words, the grid as flags)
// resumes: finished trials are kept, the others run with the settings
// their words give.
func TestLegacyGridKeepsWorking(t *testing.T) {
	dir := t.TempDir()
	legacy := `{"kind": "grid", "command": ["sgt", "grid"],
	  "grid": {"flags": [{"name": "model", "value": "mlp"}, {"name": "alpha", "value": "1"}, {"name": "epochs", "value": "2"}, {"name": "quiet", "bare": true}],
	           "axes": [{"name": "alpha", "values": ["1", "0.3"]}], "seeds": [0]},
	  "axes": [{"name": "alpha", "values": ["1", "0.3"]}], "seeds": [0],
	  "trials": [
	    {"index": 0, "name": "alpha=1_seed=0", "dir": "alpha=1_seed=0", "args": ["--model=mlp", "--alpha=1", "--epochs=2", "--quiet", "--seed=0"], "settings": [{"name": "alpha", "value": "1"}, {"name": "seed", "value": "0"}], "seed": 0},
	    {"index": 1, "name": "alpha=0.3_seed=0", "dir": "alpha=0.3_seed=0", "args": ["--model=mlp", "--alpha=0.3", "--epochs=2", "--quiet", "--seed=0"], "settings": [{"name": "alpha", "value": "0.3"}, {"name": "seed", "value": "0"}], "seed": 0}]}`
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), []byte(legacy), 0o644); err != nil {
		t.Fatal(err)
	}
	// The first trial finished under the old version, which recorded the
	// evaluation batch size it filled in.
	old, err := train.ConfigFor("", set("model", "mlp", "alpha", "1", "epochs", "2", "seed", "0"))
	if err != nil {
		t.Fatal(err)
	}
	old.EvalBatchSize = old.BatchSize
	fake := &fakeTrain{}
	if err := fake.run(context.Background(), Trial{Config: old}, mkdir(t, filepath.Join(dir, "alpha=1_seed=0")), false, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	fake.calls = nil
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Grid.Recipe != "" || len(m.Grid.Fixed) != 2 || m.Trials[1].Config.Alpha != 0.3 || m.Trials[1].Config.Epochs != 2 {
		t.Fatalf("legacy manifest read as grid %+v, trial %+v", m.Grid, m.Trials[1].Config)
	}
	g := mustGrid(t, set("model", "mlp", "alpha", "1,0.3", "epochs", "2"), []int{0})
	sum, _, err := RunGrid(context.Background(), dir, g, nil, &Runner{Train: fake.run})
	if err != nil || sum.Skipped != 1 || sum.Done != 1 || fake.numCalls() != 1 || fake.calls[0].trial.Config.Alpha != 0.3 {
		t.Fatalf("legacy grid rerun: %+v %v, calls %+v", sum, err, fake.calls)
	}
}
