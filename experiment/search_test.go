package experiment

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/train"
)

func TestParseAlphas(t *testing.T) {
	got, err := ParseAlphaRange("0:1:5")
	if err != nil || !reflect.DeepEqual(got, []float64{0, 0.25, 0.5, 0.75, 1}) {
		t.Errorf("ParseAlphaRange = %v, %v", got, err)
	}
	if got, err := ParseAlphaRange("0.3:0.3:1"); err != nil || !reflect.DeepEqual(got, []float64{0.3}) {
		t.Errorf("single value: %v %v", got, err)
	}
	for _, bad := range []string{"1:0:3", "0:1", "0:1:0", "a:1:2", "-1:1:3", "0.1:0.1000001:3"} {
		if _, err := ParseAlphaRange(bad); err == nil {
			t.Errorf("ParseAlphaRange(%q): want an error", bad)
		}
	}
	if got, err := ParseAlphaList("0.05,0.3,1"); err != nil || !reflect.DeepEqual(got, []float64{0.05, 0.3, 1}) {
		t.Errorf("ParseAlphaList = %v %v", got, err)
	}
	if _, err := ParseAlphaList("0.3,-1"); err == nil {
		t.Error("negative alpha: want an error")
	}
	if FormatAlpha(0.1+0.2) != "0.3" {
		t.Errorf("FormatAlpha(0.1+0.2) = %q", FormatAlpha(0.1+0.2))
	}
}

func TestSearchSpecErrors(t *testing.T) {
	ok := func(args []train.Setting, eta, keep float64, metric string) error {
		_, err := NewSearchSpec("", args, []float64{0.1, 1}, []int{0}, 1, eta, keep, 0, metric)
		return err
	}
	if err := ok(set("lr", "0.1"), 2, 0, "test_acc"); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"alpha flag":  ok(set("alpha", "0.3"), 2, 0, "test_acc"),
		"epochs flag": ok(set("epochs", "3"), 2, 0, "test_acc"),
		"bad value":   ok(set("lr", "0.1,0.2"), 2, 0, "test_acc"),
		"unknown":     ok(set("no-such-flag", "1"), 2, 0, "test_acc"),
		"eta":         ok(nil, 1, 0.5, "test_acc"),
		"keep":        ok(nil, 2, 1, "test_acc"),
		"metric":      ok(nil, 2, 0.5, ""),
		"bad metric":  ok(nil, 2, 0.5, "accuracy"),
	} {
		if err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	s, _ := NewSearchSpec("", nil, []float64{1}, []int{0}, 1, 3, 0, 0, "best_test_loss")
	if s.Keep != 1.0/3 || s.Maximize {
		t.Errorf("defaults: keep %v maximize %v", s.Keep, s.Maximize)
	}
}

func TestSuccessiveHalving(t *testing.T) {
	dir := t.TempDir()
	alphas := []float64{0.1, 0.3, 0.5, 0.8, 1}
	spec, err := NewSearchSpec("", set("model", "mlp"), alphas, []int{0, 1}, 1, 2, 0.5, 0, "test_acc")
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeTrain{}
	out, err := RunSearch(context.Background(), dir, spec, []string{"sgt", "search"}, &Runner{Train: fake.run})
	if err != nil {
		t.Fatal(err)
	}
	// 5 alphas -> keep 3 -> keep 2 -> keep 1, each over 2 seeds, epochs 1, 2, 4.
	if out.Rounds != 3 || fake.numCalls() != (5+3+2)*2 {
		t.Fatalf("%d rounds, %d calls", out.Rounds, fake.numCalls())
	}
	wantEpochs := map[int]int{0: 1, 1: 2, 2: 4}
	for _, c := range fake.calls {
		round, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(filepath.Base(c.dir), "round="), "_", 2)[0])
		if e := c.trial.Config.Epochs; e != wantEpochs[round] {
			t.Errorf("%s: epochs %d, want %d", c.dir, e, wantEpochs[round])
		}
		if m := c.trial.Config.Model; m != "mlp" {
			t.Errorf("%s: shared setting lost: model %q", c.dir, m)
		}
	}
	// The fake's accuracy peaks at alpha 0.3; 0.1 and 0.5 are equally far
	// (0.1 wins the tie by rounding), then 0.8, then 1. Both of the last two
	// survivors ran in round 2.
	r := out.Ranking
	if len(r) != 5 || r[0].Alpha != "0.3" || r[0].Round != 2 || r[0].Epochs != 4 || r[0].N != 2 {
		t.Fatalf("ranking %+v", r)
	}
	if r[1].Round != 2 || r[2].Round != 1 || r[3].Alpha != "0.8" || r[4].Alpha != "1" || r[4].Round != 0 {
		t.Errorf("ranking %+v", r)
	}
	// The winner's score is the mean over seeds 0 and 1 of the fake at 4 epochs.
	want := (fakeAcc(0.3, 4, 0) + fakeAcc(0.3, 4, 1)) / 2
	if !approx(r[0].Mean, want) || !approx(r[0].SD, 0.001/1.4142135623730951) {
		t.Errorf("winner mean %v sd %v, want %v and %v", r[0].Mean, r[0].SD, want, 0.001/1.4142135623730951)
	}
	for _, f := range []string{ManifestFile, ResultsCSV, ResultsJSON, RankingCSV, RankingText} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	txt, _ := os.ReadFile(filepath.Join(dir, RankingText))
	if lines := strings.Split(strings.TrimSpace(string(txt)), "\n"); len(lines) != 6 || !strings.Contains(lines[1], "0.3") {
		t.Errorf("ranking table:\n%s", txt)
	}
	m, err := ReadManifest(dir)
	if err != nil || m.Kind != KindSearch || len(m.Trials) != 20 || len(out.Results) != 20 {
		t.Fatalf("manifest: %v, %d trials", err, len(m.Trials))
	}
	// Rerunning the same search trains nothing and ranks the same.
	again, err := RunSearch(context.Background(), dir, spec, nil, &Runner{Train: fake.run})
	if err != nil || fake.numCalls() != 20 || !reflect.DeepEqual(again.Ranking, out.Ranking) {
		t.Fatalf("rerun: %v, %d calls", err, fake.numCalls())
	}
	// Another search in the same directory is refused.
	other := *spec
	other.Eta = 3
	if _, err := RunSearch(context.Background(), dir, &other, nil, &Runner{Train: fake.run}); err == nil {
		t.Error("different search: want an error")
	}
}

func TestSearchMinimizeAndFailures(t *testing.T) {
	dir := t.TempDir()
	spec, err := NewSearchSpec("", nil, []float64{0.3, 0.6, 1}, []int{0}, 2, 2, 0.5, 1, "best_test_loss")
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeTrain{failAlpha: "0.3"}
	out, err := RunSearch(context.Background(), dir, spec, nil, &Runner{Train: fake.run})
	if err != nil {
		t.Fatal(err)
	}
	// One round only (MaxRounds 1); 0.3 failed so 0.6 has the lowest loss.
	if out.Rounds != 1 || len(out.Failed) != 1 || out.Ranking[0].Alpha != "0.6" || out.Ranking[2].Alpha != "0.3" || out.Ranking[2].Failed != 1 {
		t.Fatalf("outcome %+v", out)
	}
	if !approx(out.Ranking[0].Mean, 1-fakeAcc(0.6, 2, 0)) {
		t.Errorf("best loss %v", out.Ranking[0].Mean)
	}
	// A metric that no run recorded is an error naming it.
	dir = t.TempDir()
	spec.Metric = "test_top5"
	if _, err := RunSearch(context.Background(), dir, spec, nil, &Runner{Train: (&fakeTrain{}).run}); err == nil || !strings.Contains(err.Error(), "test_top5") {
		t.Errorf("unrecorded metric: %v", err)
	}
}
