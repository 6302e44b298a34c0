package train

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sgt-dev/sgt/data"

	"github.com/sgt-dev/sgt/rundir"
	"github.com/sgt-dev/sgt/train/optim"
)

// spikeSchedule is a schedule whose learning rate is 1e30 at one step,
// which blows the weights up.
type spikeSchedule struct {
	optim.Schedule
	at int
}

// LR implements Schedule.
func (s spikeSchedule) LR(step int) float64 {
	if step == s.at {
		return 1e30
	}
	return s.Schedule.LR(step)
}

// TestRunDivergenceKeepsLastCheckpoint blows the weights up in the middle
// of a run: the run stops with ErrDiverged, says which checkpoint stays,
// records nothing of the bad epoch, and can be resumed from the good
// checkpoint.
func TestRunDivergenceKeepsLastCheckpoint(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TrainSize, cfg.TestSize, cfg.BatchSize, cfg.Epochs = 512, 200, 64, 3
	cfg.TrainEvalSize = 200
	cfg.Schedule = optim.ScheduleConstant
	cfg.LR = 0.05
	for _, tc := range []struct {
		name string
		at   func(stepsPerEpoch int) int
		want []string // in the error message
		kept int      // the epoch whose checkpoint stays
	}{
		// The first step of epoch 2 explodes: the next loss is not finite.
		{"training loss", func(spe int) int { return spe }, []string{"epoch 2 step 2", "training loss", "epoch-0001.ckpt"}, 1},
		// The last step of epoch 2 explodes: its evaluation catches it.
		{"test loss", func(spe int) int { return 2*spe - 1 }, []string{"epoch 2 evaluation", "test loss", "epoch-0001.ckpt"}, 1},
		// The first epoch explodes: there is no checkpoint yet.
		{"no checkpoint", func(spe int) int { return 0 }, []string{"epoch 1 step 2", "no checkpoint yet"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			tr, err := setup(context.Background(), cfg, Options{Out: dir})
			if err != nil {
				t.Fatal(err)
			}
			tr.schedule = spikeSchedule{Schedule: tr.schedule, at: tc.at(tr.stepsPerEpoch)}
			_, err = tr.loop(context.Background(), time.Now())
			tr.close()
			if !errors.Is(err, ErrDiverged) {
				t.Fatalf("err %v, want ErrDiverged", err)
			}
			for _, w := range append(tc.want, "--lr") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if state, _ := rundir.Inspect(dir); state != rundir.Unfinished {
				t.Errorf("run dir state %v, want unfinished", state)
			}
			epochs, err := listCheckpoints(filepath.Join(dir, rundir.CheckpointDir))
			if err != nil {
				t.Fatal(err)
			}
			if tc.kept == 0 {
				if len(epochs) != 0 {
					t.Errorf("checkpoints %v after diverging in epoch 1", epochs)
				}
				return
			}
			if len(epochs) != 1 || epochs[0] != tc.kept {
				t.Fatalf("checkpoints %v, want only epoch %d", epochs, tc.kept)
			}
			h, _, err := readCheckpoint(filepath.Join(dir, rundir.CheckpointDir, checkpointName(tc.kept)))
			if err != nil || h.Epoch != tc.kept || !finite(h.History[0].TestLoss) {
				t.Fatalf("kept checkpoint: %+v, %v", h, err)
			}
			rows, err := rundir.ReadMetrics(dir)
			if err != nil || len(rows) != tc.kept {
				t.Fatalf("metrics.csv rows %+v (err %v), want %d", rows, err, tc.kept)
			}
			// Resuming (with the normal schedule) finishes the run from the
			// good checkpoint.
			sum, err := Run(context.Background(), Config{}, Options{Out: dir, Resume: true})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Epochs != 3 || !equalMetrics(sum.History[0], rows[0]) || sum.Final.TestAcc < 0.8 {
				t.Errorf("resumed run: %+v", sum.History)
			}
		})
	}
}

// writeIDXSplit writes an MNIST-style split of n images of the given size
// into dir.
func writeIDXSplit(t *testing.T, dir, split string, n, size int) {
	t.Helper()
	prefix := "train"
	if split == data.SplitTest {
		prefix = "t10k"
	}
	pix := make([]byte, n*size*size)
	labels := make([]byte, n)
	for i := range labels {
		labels[i] = byte(i % 10)
		pix[i*size*size+int(labels[i])] = 255
	}
	if err := data.WriteIDXFile(filepath.Join(dir, prefix+"-images-idx3-ubyte"), []int{n, size, size}, pix, false); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteIDXFile(filepath.Join(dir, prefix+"-labels-idx1-ubyte"), []int{n}, labels, false); err != nil {
		t.Fatal(err)
	}
}

// writeCIFAR writes the files of a CIFAR-10 (classes 10) or CIFAR-100
// (classes 100) binary dataset with records records per file, each class
// lighting up its own 3x3 block; truncate cuts the first training file
// short.
func writeCIFAR(t *testing.T, dir string, classes, records int, truncate bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	files := []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"}
	labelBytes := 1
	if classes == 100 {
		files, labelBytes = []string{"train.bin", "test.bin"}, 2
	}
	size := labelBytes + 3072
	for i, name := range files {
		buf := make([]byte, records*size)
		for r := range records {
			rec := buf[r*size : (r+1)*size]
			label := rng.IntN(classes)
			rec[labelBytes-1] = byte(label)
			if labelBytes == 2 {
				rec[0] = byte(label / 5) // coarse label
			}
			pix := rec[labelBytes:]
			for p := range pix {
				pix[p] = byte(100 + rng.IntN(60))
			}
			top, left := 3*(label/10), 3*(label%10)
			for c := range 3 {
				for y := top; y < top+3; y++ {
					for x := left; x < left+3; x++ {
						pix[c*1024+y*32+x] = 255
					}
				}
			}
		}
		if truncate && i == 0 {
			buf = buf[:len(buf)-100]
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeImageFolder writes PNG images of three colour classes and varying
// sizes under dir/train and dir/val; corrupt adds an unreadable file.
func writeImageFolder(t *testing.T, dir string, perClass map[string]int, corrupt bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	colors := map[string]color.RGBA{"red": {220, 30, 30, 255}, "green": {30, 200, 40, 255}, "blue": {20, 40, 230, 255}}
	for split, n := range perClass {
		for class, c := range colors {
			cdir := filepath.Join(dir, split, class)
			if err := os.MkdirAll(cdir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				w, h := 12+rng.IntN(20), 12+rng.IntN(20)
				img := image.NewRGBA(image.Rect(0, 0, w, h))
				for y := range h {
					for x := range w {
						jitter := func(v uint8) uint8 { return uint8(max(0, min(255, int(v)+rng.IntN(60)-30))) }
						img.Set(x, y, color.RGBA{jitter(c.R), jitter(c.G), jitter(c.B), 255})
					}
				}
				f, err := os.Create(filepath.Join(cdir, fmt.Sprintf("%03d.png", i)))
				if err != nil {
					t.Fatal(err)
				}
				if err := png.Encode(f, img); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
		}
	}
	if corrupt {
		if err := os.WriteFile(filepath.Join(dir, "train", "red", "bad.png"), []byte("\x89PNG not really"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunOtherDatasets trains the MLP on a small fake CIFAR-10 and on an
// image folder (random-resized-crop training, resize and centre crop
// evaluation); both must learn their easy classes.
func TestRunOtherDatasets(t *testing.T) {
	for _, classes := range []int{10, 100} {
		cifar := t.TempDir()
		cfg := DefaultConfig()
		cfg.Data, cfg.DataDir = "cifar10", cifar
		cfg.Augment = AugmentNone
		cfg.Epochs, cfg.BatchSize, cfg.LR = 3, 25, 0.01
		writeCIFAR(t, cifar, classes, 100, false)
		if classes == 100 {
			cfg.Data = "cifar100"
			writeCIFAR(t, cifar, classes, 1000, false)
		}
		sum, err := Run(context.Background(), cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		f := sum.Final
		t.Logf("%s: test accuracy %.3f, top-5 %.3f", cfg.Data, f.TestAcc, f.TestTop5)
		// Top-5 is measured with 100 classes only.
		if f.TestAcc < 0.5 || math.IsNaN(f.TestTop5) != (classes < 100) || f.TestTop5 < f.TestAcc {
			t.Errorf("%s: %+v", cfg.Data, f)
		}
	}

	folder := t.TempDir()
	writeImageFolder(t, folder, map[string]int{"train": 16, "val": 8}, false)
	cfg := DefaultConfig()
	cfg.Data, cfg.DataDir, cfg.ImageSize = DataImageFolder, folder, 12
	cfg.Epochs, cfg.BatchSize, cfg.LR = 3, 8, 0.05
	cfg.TrainEvalSize = 12 // 4 of each class, spread over the class-sorted files
	dir := filepath.Join(t.TempDir(), "run")
	sum, err := Run(context.Background(), cfg, Options{Out: dir})
	if err != nil {
		t.Fatal(err)
	}
	var rec rundir.Record
	readJSON(t, filepath.Join(dir, rundir.ConfigFile), &rec)
	if rec.TrainExamples != 48 || rec.TestExamples != 24 || rec.TrainEvalExamples != 12 ||
		len(rec.TrainSources) != 1 || rec.TrainSources[0] != filepath.Join(folder, "train") {
		t.Errorf("config.json: %+v", rec)
	}
	t.Logf("image folder: test accuracy %.3f, train-eval %.3f", sum.Final.TestAcc, sum.Final.TrainEvalAcc)
	if sum.Final.TestAcc < 0.9 || sum.Final.TrainEvalAcc < 0.9 {
		t.Errorf("image folder: %+v", sum.Final)
	}
}

// TestRunReportsBadData checks that missing, corrupt and inconsistent data
// give errors naming the flag or the file.
func TestRunReportsBadData(t *testing.T) {
	base := DefaultConfig()
	base.TrainEvalSize = 0
	fieldErr := func(name string, cfg Config, field string) {
		t.Helper()
		_, err := Run(context.Background(), cfg, Options{})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: err %v, want a FieldError for %s", name, err, field)
		}
	}
	fileErr := func(name string, cfg Config, file string) {
		t.Helper()
		_, err := Run(context.Background(), cfg, Options{})
		if err == nil || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: err %v, want an error naming %s", name, err, file)
		}
	}
	cfg := base
	cfg.DataDir = t.TempDir() // no MNIST files there
	fieldErr("missing files", cfg, "data-dir")
	cfg = base
	cfg.TestSize = 20000
	fieldErr("test-size", cfg, "test-size")
	cfg = base
	cfg.Data = DataImageFolder
	fieldErr("image folder without --data-dir", cfg, "data-dir")
	cfg.DataDir = t.TempDir()
	fieldErr("empty image folder", cfg, "data-dir")

	// Truncated idx file.
	dir := t.TempDir()
	writeIDXSplit(t, dir, data.SplitTrain, 200, 28)
	writeIDXSplit(t, dir, data.SplitTest, 50, 28)
	images := filepath.Join(dir, "train-images-idx3-ubyte")
	raw, _ := os.ReadFile(images)
	if err := os.WriteFile(images, raw[:len(raw)-500], 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = base
	cfg.DataDir = dir
	fileErr("truncated idx", cfg, images)

	// Train and test images of different sizes.
	dir = t.TempDir()
	writeIDXSplit(t, dir, data.SplitTrain, 200, 28)
	writeIDXSplit(t, dir, data.SplitTest, 50, 20)
	cfg.DataDir = dir
	fileErr("image sizes", cfg, filepath.Join(dir, "t10k-images-idx3-ubyte"))

	// Truncated CIFAR file.
	dir = t.TempDir()
	writeCIFAR(t, dir, 10, 20, true)
	cfg = base
	cfg.Data, cfg.DataDir = "cifar10", dir
	fileErr("truncated cifar", cfg, filepath.Join(dir, "data_batch_1.bin"))

	// Corrupt image in an image folder: found when its batch is made.
	dir = t.TempDir()
	writeImageFolder(t, dir, map[string]int{"train": 3, "val": 2}, true)
	cfg = base
	cfg.Data, cfg.DataDir, cfg.ImageSize, cfg.BatchSize = DataImageFolder, dir, 8, 5
	fileErr("corrupt image", cfg, filepath.Join(dir, "train", "red", "bad.png"))
}
