package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/rundir"
)

// resumeConfig returns a small MNIST MLP run for the resume tests.
func smallRun() Config {
	cfg := DefaultConfig()
	cfg.Alpha, cfg.LabelSmoothing = 0.5, 0.1
	cfg.TrainSize, cfg.TestSize, cfg.TrainEvalSize = 600, 300, 200
	cfg.Epochs, cfg.BatchSize = 2, 50
	cfg.FilterNormsEvery = 0
	cfg.Seed = 3
	return cfg
}

// TestInterruptWithinEpochResumesExactly cancels a run in the middle of an
// epoch, as a signal would: it must stop with ErrInterrupted, leave a
// checkpoint of that step, and resume to exactly the metrics of an
// uninterrupted run.
func TestInterruptWithinEpochResumesExactly(t *testing.T) {
	cfg := smallRun()
	want, err := Run(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, stopAt := range []StepProgress{{Epoch: 1, Step: 5}, {Epoch: 2, Step: 7}} {
		dir := filepath.Join(t.TempDir(), "run")
		ctx, cancel := context.WithCancel(context.Background())
		opts := Options{Out: dir, OnStep: func(p StepProgress) {
			if p.Epoch == stopAt.Epoch && p.Step == stopAt.Step {
				cancel()
			}
		}}
		_, err := Run(ctx, cfg, opts)
		cancel()
		if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) {
			t.Fatalf("stopped at %+v: err %v, want ErrInterrupted and context.Canceled", stopAt, err)
		}
		if !strings.Contains(err.Error(), "step 5") && !strings.Contains(err.Error(), "step 7") {
			t.Errorf("error %q does not say where the run stopped", err)
		}
		h, _, err := readCheckpoint(filepath.Join(dir, rundir.CheckpointDir, partialCheckpoint))
		if err != nil {
			t.Fatalf("no partial checkpoint: %v", err)
		}
		if h.Partial == nil || h.Partial.Steps != stopAt.Step || h.Epoch != stopAt.Epoch-1 {
			t.Fatalf("partial checkpoint at epoch %d, %+v; want %d steps into epoch %d", h.Epoch, h.Partial, stopAt.Step, stopAt.Epoch)
		}
		got, err := Run(context.Background(), Config{}, Options{Out: dir, Resume: true})
		if err != nil {
			t.Fatal(err)
		}
		sameMetrics(t, "resumed within an epoch", want.History, got.History)
		if got.Steps != want.Steps {
			t.Errorf("resumed run made %d steps, want %d", got.Steps, want.Steps)
		}
		if _, err := os.Stat(filepath.Join(dir, rundir.CheckpointDir, partialCheckpoint)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("partial checkpoint left after the run finished (err %v)", err)
		}
	}
}

// TestResumeRefusesChangedData: a run resumed on data files that changed
// since it started is refused, naming the file.
func TestResumeRefusesChangedData(t *testing.T) {
	cifar := t.TempDir()
	writeCIFAR(t, cifar, 10, 100, false)
	cfg := DefaultConfig()
	cfg.Data, cfg.DataDir, cfg.Augment = "cifar10", cifar, AugmentNone
	cfg.Epochs, cfg.BatchSize, cfg.TrainEvalSize, cfg.FilterNormsEvery = 2, 50, 0, 0
	dir := filepath.Join(t.TempDir(), "run")
	if err := runStopped(t, cfg, Options{Out: dir}, 1); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("stopped run: %v", err)
	}
	rec, err := rundir.ReadRecord(dir)
	if err != nil || len(rec.Data) == 0 {
		t.Fatalf("config.json records no data fingerprints: %+v, %v", rec, err)
	}
	// Change one pixel of the first training batch file, keeping its size.
	path := rec.Data[0].Path
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[2*3073+500] ^= 0xff
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Config{}, Options{Out: dir, Resume: true})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "resume" || !strings.Contains(err.Error(), path) {
		t.Fatalf("resume on changed data: err %v, want a --resume error naming %s", err, path)
	}
	raw[2*3073+500] ^= 0xff
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Config{}, Options{Out: dir, Resume: true}); err != nil {
		t.Fatalf("resume on the original data: %v", err)
	}
}

// TestResumeKeepsCheckpointSettingAndCleansUp: a resumed run keeps as many
// checkpoints as the run was started with, and temporary files of killed
// checkpoint writes are removed.
func TestResumeKeepsCheckpointSettingAndCleansUp(t *testing.T) {
	cfg := smallRun()
	cfg.Epochs = 4
	dir := filepath.Join(t.TempDir(), "run")
	if err := runStopped(t, cfg, Options{Out: dir, KeepCheckpoints: 10}, 1); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("stopped run: %v", err)
	}
	// What a kill during a checkpoint write leaves behind.
	stale := []string{
		filepath.Join(dir, rundir.CheckpointDir, ".epoch-0002.ckpt.tmp123"),
		filepath.Join(dir, ".metrics.csv.tmp9"),
	}
	for _, p := range stale {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := Run(context.Background(), Config{}, Options{Out: dir, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	epochs, err := listCheckpoints(filepath.Join(dir, rundir.CheckpointDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(epochs) != sum.Epochs {
		t.Errorf("resumed run kept checkpoints %v, want all %d (--keep-checkpoints 10)", epochs, sum.Epochs)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale %s not removed (err %v)", p, err)
		}
	}
}

// TestResumeBadConfigNamesFileAndField: a damaged config.json is blamed on
// the file and the field, not on flags the user never gave.
func TestResumeBadConfigNamesFileAndField(t *testing.T) {
	cfg := smallRun()
	cfg.Epochs = 2
	dir := filepath.Join(t.TempDir(), "run")
	if err := runStopped(t, cfg, Options{Out: dir}, 1); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("stopped run: %v", err)
	}
	path := filepath.Join(dir, rundir.ConfigFile)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(good, &rec); err != nil {
		t.Fatal(err)
	}
	rec["config"].(map[string]any)["data"] = ""
	emptyData, _ := json.Marshal(rec)
	for _, tc := range []struct {
		content []byte
		want    string
	}{
		{[]byte("null\n"), "not a run record"},
		{emptyData, `"config.data"`},
	} {
		if err := os.WriteFile(path, tc.content, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Run(context.Background(), Config{}, Options{Out: dir, Resume: true})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "--data:") {
			t.Errorf("config.json %.40q: err %v, want one naming %s and %s", tc.content, err, path, tc.want)
		}
	}
}

// frame wraps a checkpoint header and payload into the file format.
func frame(header, payload []byte) []byte {
	var out bytes.Buffer
	out.WriteString(checkpointMagic)
	_ = binary.Write(&out, binary.LittleEndian, uint64(len(header)))
	out.Write(header)
	out.Write(payload)
	_ = binary.Write(&out, binary.LittleEndian, crc32.ChecksumIEEE(out.Bytes()))
	return out.Bytes()
}

// TestDecodeCheckpointRejectsBadSizes: checkpoints with a valid checksum
// but negative, huge or overflowing sizes are errors, not panics.
func TestDecodeCheckpointRejectsBadSizes(t *testing.T) {
	payload := make([]byte, 64)
	for _, vars := range []string{
		`[{"scope":"/a","name":"w","dtype":"float32","dims":[4,4],"offset":0,"bytes":64}]`, // good
		`[{"scope":"/a","name":"w","dtype":"float32","dims":[-4,-4],"offset":0,"bytes":64}]`,
		`[{"scope":"/a","name":"w","dtype":"float32","dims":[4611686018427387904,4],"offset":0,"bytes":64}]`,
		`[{"scope":"/a","name":"w","dtype":"float32","dims":[4,4],"offset":9223372036854775807,"bytes":9223372036854775807}]`,
		`[{"scope":"/a","name":"w","dtype":"float32","dims":[4,4],"offset":-8,"bytes":64}]`,
		`[{"scope":"/a","name":"w","dtype":"float32","dims":[4,5],"offset":0,"bytes":64}]`,
		`[{"scope":"/a","name":"w","dtype":"nope","dims":[4,4],"offset":0,"bytes":64}]`,
	} {
		header := []byte(`{"epoch":0,"step":0,"history":[],"variables":` + vars + `}`)
		_, _, err := decodeCheckpoint(frame(header, payload))
		good := strings.Contains(vars, `"dims":[4,4],"offset":0`) && !strings.Contains(vars, "nope")
		if good && err != nil {
			t.Errorf("good checkpoint refused: %v", err)
		}
		if !good && err == nil {
			t.Errorf("bad layout %s accepted", vars)
		}
	}
}

// FuzzDecodeCheckpoint: any bytes give a checkpoint or an error, never a
// panic; the checksum is recomputed so the fuzzer reaches the header.
func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add([]byte(`{"epoch":0,"step":0,"history":[],"variables":[{"scope":"/a","name":"w","dtype":"float32","dims":[2,2],"offset":0,"bytes":16}]}`), make([]byte, 16))
	f.Add([]byte(`{"epoch":1,"step":3,"history":[{"epoch":1}],"partial":{"steps":2}}`), []byte{})
	f.Fuzz(func(t *testing.T, header, payload []byte) {
		h, p, err := decodeCheckpoint(frame(header, payload))
		if err != nil {
			return
		}
		for _, v := range h.Variables {
			_ = p[v.Offset : v.Offset+v.Bytes] // in range, as checked
		}
	})
}

// TestRecipeSourcesRecorded: config.json keeps the source of every setting
// of a run started from a recipe, and marks the settings the run changed.
func TestRecipeSourcesRecorded(t *testing.T) {
	cfg, err := ConfigFor("fashion-mnist-resnet20", []Setting{{"data", "mnist"}, {"model", "mlp"}, {"epochs", "2"}, {"augment", "none"}, {"train-size", "256"}, {"test-size", "128"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.TrainEvalSize, cfg.FilterNormsEvery = 0, 0
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := Run(context.Background(), cfg, Options{Out: dir}); err != nil {
		t.Fatal(err)
	}
	rec, err := rundir.ReadRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := LookupRecipe("fashion-mnist-resnet20")
	if got := rec.Sources["lr"]; got == "" || got != r.Sources["lr"] {
		t.Errorf("source of lr %q, want the recipe's %q", got, r.Sources["lr"])
	}
	if got := rec.Sources["model"]; !strings.Contains(got, "set for this run") {
		t.Errorf("source of the changed model: %q", got)
	}
}
