package experiment

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	kinds := FlagKinds{IsBool: func(n string) bool { return n == "nesterov" || n == "force" }}
	// A known boolean never takes the next word: "false" is then a stray word.
	if got, err := ParseFlags([]string{"--nesterov", "false"}, kinds); err == nil {
		t.Fatalf("want an error for the stray word, got %+v", got)
	}
	got, err := ParseFlags([]string{"--alpha", "0.3,1", "-lr=0.1", "--nesterov", "--x", "-0.5", "--force", "--milestones", "1,2"}, kinds)
	if err != nil {
		t.Fatal(err)
	}
	want := []Flag{{Name: "alpha", Value: "0.3,1"}, {Name: "lr", Value: "0.1"}, {Name: "nesterov", Bare: true},
		{Name: "x", Value: "-0.5"}, {Name: "force", Bare: true}, {Name: "milestones", Value: "1,2"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if a := FlagArgs(got); a[2] != "--nesterov" || a[3] != "--x=-0.5" {
		t.Fatalf("FlagArgs: %q", a)
	}
	// Unknown kinds: a flag followed by a flag or nothing is bare.
	got, err = ParseFlags([]string{"--a", "--b", "1", "--c"}, FlagKinds{})
	if err != nil || !got[0].Bare || got[1].Value != "1" || !got[2].Bare {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range [][]string{{"positional"}, {"---x"}, {"--=1"}, {"--"}} {
		if _, err := ParseFlags(bad, FlagKinds{}); err == nil {
			t.Errorf("ParseFlags(%q): want an error", bad)
		}
	}
	if _, err := ParseFlags([]string{"--lr"}, FlagKinds{IsBool: func(string) bool { return false }}); err == nil || !strings.Contains(err.Error(), "--lr") {
		t.Errorf("missing value: got %v", err)
	}
}

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
	g := mustGrid(t, []string{"--model", "mlp", "--alpha", "0.05,0.3,1", "--label-smoothing", "0,0.1", "--epochs", "2"}, []int{0, 1})
	if len(g.Axes) != 2 || g.Axes[0].Name != "alpha" || g.Axes[1].Name != "label-smoothing" {
		t.Fatalf("axes: %+v", g.Axes)
	}
	trials := g.Trials()
	if len(trials) != 3*2*2 {
		t.Fatalf("%d trials, want 12", len(trials))
	}
	first := trials[0]
	if first.Name != "alpha=0.05_label-smoothing=0_seed=0" || first.Dir != first.Name {
		t.Errorf("first trial name %q", first.Name)
	}
	wantArgs := []string{"--model=mlp", "--alpha=0.05", "--label-smoothing=0", "--epochs=2", "--seed=0"}
	if !reflect.DeepEqual(first.Args, wantArgs) {
		t.Errorf("first trial args %q, want %q", first.Args, wantArgs)
	}
	if trials[1].Name != "alpha=0.05_label-smoothing=0.1_seed=0" {
		t.Errorf("last axis must vary fastest, got %q", trials[1].Name)
	}
	if trials[6].Name != "alpha=0.05_label-smoothing=0_seed=1" || trials[6].Seed != 1 {
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
		if v, _ := tr.Setting("alpha"); !strings.Contains(strings.Join(tr.Args, " "), "--alpha="+v) {
			t.Errorf("trial %s: args %q lack its alpha", tr.Name, tr.Args)
		}
	}
	// Stable: the same grid gives the same trials.
	if !reflect.DeepEqual(trials, mustGrid(t, []string{"--model", "mlp", "--alpha", "0.05,0.3,1", "--label-smoothing", "0,0.1", "--epochs", "2"}, []int{0, 1}).Trials()) {
		t.Error("trials are not stable")
	}
}

func TestGridSeedsAndErrors(t *testing.T) {
	g := mustGrid(t, []string{"--seed", "3,4"}, nil)
	if !reflect.DeepEqual(g.Seeds, []int{3, 4}) || len(g.Trials()) != 2 || g.Trials()[1].Name != "seed=4" {
		t.Errorf("--seed list: seeds %v trials %+v", g.Seeds, g.Trials())
	}
	if g := mustGrid(t, nil, nil); !reflect.DeepEqual(g.Seeds, []int{0}) {
		t.Errorf("default seeds %v", g.Seeds)
	}
	// A list-valued flag varies over ";" only.
	g, err := NewGrid([]string{"--milestones", "100,150;50,75"}, nil, FlagKinds{IsList: func(n string) bool { return n == "milestones" }})
	if err != nil || len(g.Axes) != 1 || g.Axes[0].Values[0] != "100,150" {
		t.Fatalf("list-valued flag: %+v, %v", g, err)
	}
	for _, bad := range [][]string{
		{"--alpha", "1", "--alpha", "0.3"},
		{"--out", "x"},
		{"--resume"},
		{"--alpha", "0.3,0.3"},
		{"--seed", "1", "--lr", "0.1"}, // with explicit seeds below
	} {
		if _, err := NewGrid(bad, []int{0}, FlagKinds{}); err == nil {
			t.Errorf("NewGrid(%q): want an error", bad)
		}
	}
}

func TestTrialNameSanitized(t *testing.T) {
	name := TrialName([]Setting{{Name: "data-dir", Value: "/a b/c"}, {Name: "seed", Value: "0"}})
	if name != "data-dir=-a-b-c_seed=0" {
		t.Errorf("got %q", name)
	}
	long := TrialName([]Setting{{Name: "x", Value: strings.Repeat("a", 300)}})
	long2 := TrialName([]Setting{{Name: "x", Value: strings.Repeat("a", 299) + "b"}})
	if len(long) > 120 || long == long2 {
		t.Errorf("long names must be cut and stay distinct: %q %q", long, long2)
	}
	// Values that collide after sanitising get distinct names.
	g := mustGrid(t, []string{"--data", "a/b,a b"}, nil)
	tr := g.Trials()
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
	// Every index belongs to exactly one shard.
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
