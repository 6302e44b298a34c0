package rundir

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sampleRows() []EpochMetrics {
	a := Unmeasured()
	a.Epoch, a.LR, a.TrainLoss, a.TrainAcc, a.TestLoss, a.TestAcc, a.LogitNorm = 1, 0.1, 1.5, 0.4, 1.2, 0.55, 7.25
	a.ZeroedFilters, a.Filters, a.Seconds, a.ImagesPerSecond = 2, 48, 3.5, 1000
	b := a
	b.Epoch, b.TrainEvalLoss, b.TrainEvalAcc, b.Gap, b.TestAcc = 2, 0.9, 0.7, 0.7-0.61, 0.61
	return []EpochMetrics{a, b}
}

func TestMetricsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	rows := sampleRows()
	if err := WriteMetrics(dir, rows); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMetrics(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !math.IsNaN(got[0].Gap) || got[1].Gap != rows[1].Gap || got[1].TestAcc != 0.61 || got[0].Filters != 48 {
		t.Fatalf("round trip: got %+v, want %+v", got, rows)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, MetricsFile))
	header, _, _ := strings.Cut(string(raw), "\n")
	if !strings.Contains(header, "train_eval_acc") || strings.Contains(header, "test_top5") {
		t.Fatalf("header %q: want the measured optional columns only", header)
	}
}

// A metrics.csv with a non-finite or out-of-range value is refused, naming
// the line and column, instead of being read into the report.
func TestMetricsRejectBadValues(t *testing.T) {
	good := string(EncodeMetrics(sampleRows()))
	lines := strings.Split(good, "\n")
	header := strings.Split(lines[0], ",")
	col := func(name string) int {
		for i, h := range header {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return -1
	}
	for _, tc := range []struct{ column, value, want string }{
		{"test_acc", "Inf", "test_acc"},
		{"test_acc", "+Inf", "test_acc"},
		{"test_acc", "NaN", "test_acc"},
		{"test_acc", "61", "fraction"},
		{"train_loss", "-Inf", "train_loss"},
		{"zeroed_filters", "1.5", "count"},
		{"epoch", "3", "epoch"},
	} {
		fields := strings.Split(lines[2], ",")
		fields[col(tc.column)] = tc.value
		bad := lines[0] + "\n" + lines[1] + "\n" + strings.Join(fields, ",") + "\n"
		_, err := DecodeMetrics(strings.NewReader(bad))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "line 3") {
			t.Errorf("%s=%s: error %v, want one naming line 3 and %q", tc.column, tc.value, err, tc.want)
		}
	}
}

// A garbage summary.json does not make a run finished.
func TestReadSummaryRejectsGarbage(t *testing.T) {
	for _, content := range []string{`{}`, `{"epochs": 0}`, `null`, `{"epochs":2,"final":{"epoch":1}}`, `[1]`, `{"epochs":"x"}`} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, SummaryFile), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSummary(dir); err == nil || !strings.Contains(err.Error(), SummaryFile) {
			t.Errorf("summary %s: error %v, want one naming %s", content, err, SummaryFile)
		}
	}
	dir := t.TempDir()
	rows := sampleRows()
	s := &Summary{Epochs: 2, Final: rows[1], BestTestAcc: 0.61, BestEpoch: 2, Steps: 10}
	if err := WriteSummary(dir, s); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSummary(dir)
	if err != nil || got.Final.TestAcc != 0.61 || got.Steps != 10 {
		t.Fatalf("ReadSummary = %+v, %v", got, err)
	}
}

// Errors of config.json name the file and the field.
func TestReadRecordErrorsNameFileAndField(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{"null", "not a run record"},
		{"{}", `no "config"`},
		{`{"config": null}`, `no "config"`},
		{`{"config": {"alpha": "high"}}`, `config.alpha`},
		{`{"config": {"milestones": 3}}`, `config.milestones`},
		{`{"config"`, "unexpected end"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadRecord(dir)
		if err == nil || !strings.Contains(err.Error(), ConfigFile) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s and %q", tc.content, err, ConfigFile, tc.want)
		}
	}
}

func TestRecordRoundTripAndDiff(t *testing.T) {
	dir := t.TempDir()
	rec := &Record{ID: NewID(), Config: Config{Data: "mnist", Model: "mlp", Alpha: 0.3, Milestones: []int{2, 3}, LRUpdate: "epoch", Precision: "bfloat16"}, KeepCheckpoints: 3}
	if err := WriteRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rec) {
		t.Fatalf("round trip %+v, want %+v", got, rec)
	}
	other := rec.Config
	other.Alpha, other.Milestones = 1, nil
	d := Diff(rec.Config, other)
	if len(d) != 2 || d[0] != "alpha: 0.3 vs 1" || d[1] != `milestones: 2,3 vs ""` {
		t.Fatalf("Diff = %q", d)
	}
	empty := rec.Config
	empty.Milestones = []int{}
	nilled := rec.Config
	nilled.Milestones = nil
	if d := Diff(empty, nilled); d != nil {
		t.Fatalf("empty and nil lists differ: %q", d)
	}
}

func TestClearKeepsForeignFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{ConfigFile, MetricsFile, "precious.txt", ".metrics.csv.tmp42"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, CheckpointDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Clear(dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "precious.txt" {
		t.Fatalf("after Clear: %v, want only precious.txt", entries)
	}
}

func TestTrimFilterNorms(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FilterNormsFile)
	if err := TrimFilterNorms(dir, 3); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	layers := []LayerNorms{{Layer: "a/conv", Norms: []float64{1, 0.5}}}
	for _, step := range []int{0, 2, 4} {
		if err := AppendFilterNorms(dir, step, layers); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("6,a/conv,0,0.9") // cut short by a kill
	f.Close()
	if err := TrimFilterNorms(dir, 2); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	want := "step,layer,filter,norm\n0,a/conv,0,1\n0,a/conv,1,0.5\n2,a/conv,0,1\n2,a/conv,1,0.5\n"
	if string(raw) != want {
		t.Errorf("trimmed file:\n%s\nwant:\n%s", raw, want)
	}
	if err := os.WriteFile(path, []byte("step,layer,filter,norm\nx,a,0,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := TrimFilterNorms(dir, 2); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("malformed row: err %v, want an error naming the file", err)
	}
}

// A config.json of an earlier version, without the settings added since,
// reads with the values that version used.
func TestReadRecordUpgradesOldRecords(t *testing.T) {
	dir := t.TempDir()
	old := `{"config": {"data": "mnist", "model": "mlp", "alpha": 0.3, "epochs": 2, "batch_size": 128, "lr": 0.1, "schedule": "cosine"}}`
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := ReadRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Config.LRUpdate != "step" || rec.Config.Precision != "float32" || rec.Config.MinLR != 0 || rec.Config.CooldownEpochs != 0 || rec.Config.WarmupReplaces {
		t.Errorf("old record read as %+v", rec.Config)
	}
}

func TestFingerprint(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.bin")
	if err := os.WriteFile(small, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	fp, err := Fingerprint(small)
	// SHA-256 of "abc", a published test vector.
	if err != nil || fp.Method != "full" || fp.Size != 3 || fp.SHA256 != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("small file: %+v, %v", fp, err)
	}
	big := make([]byte, fullHashLimit+3*edgeBytes)
	for i := range big {
		big[i] = byte(i * 7)
	}
	bigPath := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(bigPath, big, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := Fingerprint(bigPath)
	if err != nil || !strings.HasPrefix(a.Method, "head+tail") {
		t.Fatalf("big file: %+v, %v", a, err)
	}
	big[len(big)-1] ^= 1 // the tail changes the hash
	if err := os.WriteFile(bigPath, big, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := Fingerprint(bigPath); b.SHA256 == a.SHA256 {
		t.Error("a change in the last bytes did not change the fingerprint")
	}
	// A folder: the listing of names and sizes.
	before, err := Fingerprint(dir)
	if err != nil || before.Size != int64(3+len(big)) {
		t.Fatalf("folder: %+v, %v", before, err)
	}
	if err := os.WriteFile(small, []byte("abcd"), 0o644); err != nil {
		t.Fatal(err)
	}
	if after, _ := Fingerprint(dir); after.SHA256 == before.SHA256 {
		t.Error("a file of another size did not change the folder's fingerprint")
	}
}
