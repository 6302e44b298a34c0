package train

import (
	"errors"
	"reflect"
	"testing"

	"github.com/sgt-dev/sgt/train/optim"
)

func TestApplySettings(t *testing.T) {
	base := DefaultConfig()
	cfg, err := Apply(base, []Setting{{"alpha", "0.3"}, {"label-smoothing", "0.1"}, {"schedule", "step"}, {"epochs", "4"}, {"milestones", "2,3"}, {"nesterov", "false"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Alpha != 0.3 || cfg.LabelSmoothing != 0.1 || cfg.Schedule != optim.ScheduleStep || cfg.Epochs != 4 ||
		!reflect.DeepEqual(cfg.Milestones, []int{2, 3}) || cfg.Nesterov {
		t.Fatalf("Apply gave %+v", cfg)
	}
	if base.Alpha != 1 || base.Milestones != nil {
		t.Fatalf("Apply changed its base: %+v", base)
	}
	// Settings is Apply's inverse.
	back, err := Apply(base, Settings(base, cfg))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Fatalf("Apply(base, Settings(base, cfg)) = %+v, want %+v", back, cfg)
	}
	if s := Settings(cfg, cfg); len(s) != 0 {
		t.Fatalf("Settings of equal configs = %v, want none", s)
	}
}

func TestApplyExclusiveSettings(t *testing.T) {
	base := DefaultConfig()
	base.Schedule, base.Epochs, base.Milestones, base.AGC = optim.ScheduleStep, 90, []int{30, 60}, 0.01
	cfg, err := Apply(base, []Setting{{"schedule", "cosine"}, {"clip-norm", "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Milestones != nil || cfg.AGC != 0 || cfg.ClipNorm != 1 {
		t.Fatalf("exclusive settings not cleared: %+v", cfg)
	}
	// The cosine's floor and cool-down go with it.
	base = DefaultConfig()
	base.Epochs, base.MinLR, base.CooldownEpochs = 100, 1e-4, 10
	cfg, err = Apply(base, []Setting{{"schedule", "step"}, {"milestones", "30,60,90"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinLR != 0 || cfg.CooldownEpochs != 0 || cfg.Validate() != nil {
		t.Fatalf("cosine settings kept with --schedule step: %+v (%v)", cfg, cfg.Validate())
	}
	if cfg, err = Apply(base, []Setting{{"schedule", "cosine"}}); err != nil || cfg.MinLR != 1e-4 || cfg.CooldownEpochs != 10 {
		t.Fatalf("--schedule cosine dropped the cosine's settings: %+v, %v", cfg, err)
	}
}

func TestApplyErrorsNameTheFlag(t *testing.T) {
	for _, s := range []Setting{{"alpha", "x"}, {"no-such-flag", "1"}, {"milestones", "3,a"}} {
		_, err := Apply(DefaultConfig(), []Setting{s})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != s.Name {
			t.Errorf("Apply(%v): error %v, want a FieldError naming --%s", s, err, s.Name)
		}
	}
}
