package train

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/sgt-dev/sgt/rundir"
)

// TestPrecisionBF16: mixed precision trains on a backend with bfloat16
// arithmetic (GoMLX's go backend), keeps its checkpoints in float32, and
// is refused by name where the backend cannot compute in bfloat16 (our
// cpu backend).
func TestPrecisionBF16(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Precision = PrecisionBF16
	cfg.TrainSize, cfg.TestSize, cfg.TrainEvalSize, cfg.BatchSize = 2000, 500, 0, 100
	cfg.Backend = "go:ops_sequential"
	dir := filepath.Join(t.TempDir(), "run")
	sum, err := Run(context.Background(), cfg, Options{Out: dir})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Final.TestAcc < 0.8 {
		t.Errorf("bfloat16 MLP did not learn: test accuracy %.3f", sum.Final.TestAcc)
	}
	h, _, err := readCheckpoint(filepath.Join(dir, rundir.CheckpointDir, checkpointName(1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range h.Variables {
		if v.Trainable && v.DType != "Float32" {
			t.Errorf("checkpoint variable %s/%s is %s, want float32 master weights", v.Scope, v.Name, v.DType)
		}
	}

	cfg.Backend = "cpu"
	_, err = Run(context.Background(), cfg, Options{})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "precision" {
		t.Errorf("bfloat16 on the cpu backend: err %v, want a FieldError for --precision", err)
	}
}
