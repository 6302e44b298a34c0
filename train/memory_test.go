package train

import (
	"context"
	"errors"
	"testing"

	"github.com/sgt-dev/sgt/backend"
	"github.com/sgt-dev/sgt/models"
)

// TestRefusesSettingsThatCannotFit: settings whose steps cannot fit in
// memory are refused before anything large is allocated (and before a
// training epoch is spent), naming the flag.
func TestRefusesSettingsThatCannotFit(t *testing.T) {
	base := DefaultConfig()
	base.TrainSize, base.TestSize = 512, 256
	for _, tc := range []struct {
		field string
		set   func(*Config)
	}{
		{"batch-size", func(c *Config) { c.TrainSize, c.BatchSize = 0, 50000000 }},
		{"eval-batch-size", func(c *Config) { c.Model, c.Data, c.TestSize, c.EvalBatchSize = "resnet50", "cifar10", 0, 1000000000 }},
	} {
		cfg := base
		tc.set(&cfg)
		need := memoryNeed{perExample: 1 << 20, params: 1 << 20}
		evalBatch := cfg.evalBatchSize()
		err := checkMemory(&cfg, need, 4*28*28, evalBatch, 4, 8<<30)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: err %v, want a FieldError for --%s", tc.field, err, tc.field)
		}
	}
	// A huge image size: refused by a real run before loading images.
	folder := t.TempDir()
	writeImageFolder(t, folder, map[string]int{"train": 4, "val": 2}, false)
	cfg := DefaultConfig()
	cfg.Data, cfg.DataDir, cfg.ImageSize, cfg.Model, cfg.BatchSize = DataImageFolder, folder, 100000, "resnet18", 4
	_, err := Run(context.Background(), cfg, Options{})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "image-size" {
		t.Errorf("--image-size 100000: err %v, want a FieldError for --image-size", err)
	}
	// An evaluation batch larger than the test set is cut to it, not refused.
	cfg = base
	cfg.EvalBatchSize, cfg.TrainEvalSize = 1000000000, 0
	if _, err := Run(context.Background(), cfg, Options{}); err != nil {
		t.Errorf("--eval-batch-size 1e9 on 256 test examples: %v", err)
	}
}

// TestProbeCountsPerExampleOnlyWhatGrowsWithTheBatch: the per-example bytes
// of a model's graph hold what grows with the batch, not the variables'
// initialisation. For the MLP 784-256-10 they lie between one float32 per
// input, hidden unit and logit (the values an example must have) and ten
// of each; before, the 784x256 weights' initialisation (0.8 MiB) was
// counted per example, and the estimate of ResNet-50 at batch 64 (51.5 GiB)
// refused runs that need about 6 GiB.
func TestProbeCountsPerExampleOnlyWhatGrowsWithTheBatch(t *testing.T) {
	b, _, err := backend.New("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	spec, err := models.Get("mlp")
	if err != nil {
		t.Fatal(err)
	}
	need, err := probeModel(b, spec, []int{1, 28, 28, 1}, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	units := int64(784 + 256 + 10)
	if lo, hi := 4*units, 40*units; need.perExample < lo || need.perExample > hi {
		t.Errorf("MLP: %d bytes per example, want between %d and %d", need.perExample, lo, hi)
	}
	if want := int64(4 * (784*256 + 256 + 256*10 + 10)); need.params != want {
		t.Errorf("MLP: %d bytes of parameters, want %d", need.params, want)
	}
}

func TestAvailableMemoryReadable(t *testing.T) {
	if a := availableMemory(); a < 0 {
		t.Fatalf("available memory %d", a)
	}
}
