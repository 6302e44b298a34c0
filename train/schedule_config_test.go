package train

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/sgt-dev/sgt/train/optim"
)

// TestScheduleSettingsValidate checks the validation of the cosine's floor,
// its cool-down and the learning-rate update cadence: each bad value is a
// FieldError naming its flag.
func TestScheduleSettingsValidate(t *testing.T) {
	base := DefaultConfig()
	base.Epochs = 20
	base.WarmupEpochs = 5
	cases := []struct {
		field  string
		mutate func(c *Config)
	}{
		{"min-lr", func(c *Config) { c.MinLR = -1e-4 }},
		{"min-lr", func(c *Config) { c.MinLR = math.NaN() }},
		{"min-lr", func(c *Config) { c.MinLR = 2 * c.LR }},
		{"min-lr", func(c *Config) { c.Schedule, c.MinLR = optim.ScheduleConstant, 1e-4 }},
		{"cooldown-epochs", func(c *Config) { c.CooldownEpochs = -1 }},
		{"cooldown-epochs", func(c *Config) { c.CooldownEpochs = 15 }}, // 5 warm-up + 15 cool-down of 20
		{"cooldown-epochs", func(c *Config) {
			c.Schedule, c.Milestones, c.CooldownEpochs = optim.ScheduleStep, []int{10}, 2
		}},
		{"lr-update", func(c *Config) { c.LRUpdate = "batch" }},
	}
	for _, tc := range cases {
		c := base
		tc.mutate(&c)
		err := c.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: error %v, want one naming --%s", c, err, tc.field)
		}
	}
	good := base
	good.MinLR, good.CooldownEpochs, good.LRUpdate, good.WarmupReplaces = 1e-4, 10, optim.LRUpdateEpoch, true
	if err := good.Validate(); err != nil {
		t.Errorf("valid schedule settings rejected: %v", err)
	}
	// A config.json written before lr_update existed reads it as "".
	old := base
	old.LRUpdate = ""
	if err := old.Validate(); err != nil || old.scheduleConfig(10).PerEpoch {
		t.Errorf("lr_update \"\": %v, per epoch %v; want the per-step default", err, old.scheduleConfig(10).PerEpoch)
	}
}

// TestRunUpdatesLRPerEpoch trains a small model with per-epoch updates and
// checks the learning rate every epoch recorded (the mean over its steps)
// against timm's cosine with warm-up, floor and cool-down: warm-up epoch 0
// at the warm-up start, cosine epochs 1 and 2 evaluated at the epoch index
// over t_initial = 3, cool-down epoch 3 at the floor.
func TestRunUpdatesLRPerEpoch(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TrainSize, cfg.TestSize, cfg.TrainEvalSize, cfg.BatchSize = 256, 100, 0, 64
	cfg.Epochs, cfg.WarmupEpochs, cfg.WarmupStartLR = 4, 1, 0.01
	cfg.MinLR, cfg.CooldownEpochs, cfg.WarmupReplaces, cfg.LRUpdate = 1e-3, 1, true, optim.LRUpdateEpoch
	cfg.FilterNormsEvery = 0
	s, err := Run(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cosine := func(e float64) float64 { return 1e-3 + 0.5*(0.1-1e-3)*(1+math.Cos(math.Pi*e/3)) }
	want := []float64{0.01, cosine(1), cosine(2), 1e-3}
	for i, m := range s.History {
		if math.Abs(m.LR-want[i]) > 1e-12 {
			t.Errorf("epoch %d: lr %v, want %v", i+1, m.LR, want[i])
		}
	}
}
