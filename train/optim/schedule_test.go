package optim

import (
	"math"
	"testing"
)

func mustSchedule(t *testing.T, cfg ScheduleConfig) Schedule {
	t.Helper()
	s, err := NewSchedule(cfg)
	if err != nil {
		t.Fatalf("NewSchedule(%+v): %v", cfg, err)
	}
	return s
}

func checkLR(t *testing.T, name string, s Schedule, want map[int]float64) {
	t.Helper()
	for step, w := range want {
		if got := s.LR(step); math.Abs(got-w) > 1e-12*math.Max(1, w) {
			t.Errorf("%s: LR(%d) = %v, want %v", name, step, got, w)
		}
	}
}

func TestConstantSchedule(t *testing.T) {
	s := mustSchedule(t, ScheduleConfig{Kind: ScheduleConstant, Peak: 0.1, Epochs: 3, StepsPerEpoch: 10})
	checkLR(t, "constant", s, map[int]float64{0: 0.1, 15: 0.1, 29: 0.1})
}

func TestCosineSchedule(t *testing.T) {
	// 4 epochs of 25 steps: T = 100, lr(t) = 0.1*(1+cos(pi*t/100))/2.
	s := mustSchedule(t, ScheduleConfig{Kind: ScheduleCosine, Peak: 0.1, Epochs: 4, StepsPerEpoch: 25})
	checkLR(t, "cosine", s, map[int]float64{
		0:  0.1,
		25: 0.1 * (1 + math.Sqrt2/2) / 2,
		50: 0.05,
		75: 0.1 * (1 - math.Sqrt2/2) / 2,
		99: 0.1 * (1 + math.Cos(math.Pi*0.99)) / 2,
	})
	// Strictly decreasing over the run.
	for i := 1; i < 100; i++ {
		if s.LR(i) >= s.LR(i-1) {
			t.Fatalf("cosine not decreasing at step %d: %v >= %v", i, s.LR(i), s.LR(i-1))
		}
	}
}

func TestWarmupCosineSchedule(t *testing.T) {
	// 1 warm-up epoch of 10 steps from 0.01 to 0.1, then cosine over the
	// remaining 30 steps.
	s := mustSchedule(t, ScheduleConfig{Kind: ScheduleCosine, Peak: 0.1, Epochs: 4, StepsPerEpoch: 10,
		WarmupEpochs: 1, WarmupStart: 0.01})
	checkLR(t, "warm-up cosine", s, map[int]float64{
		0:  0.01,
		5:  0.055,
		9:  0.091,
		10: 0.1,
		25: 0.05,
		39: 0.1 * (1 + math.Cos(math.Pi*29/30)) / 2,
	})
}

func TestStepSchedule(t *testing.T) {
	// Milestones at epochs 2 and 3 with 10 steps per epoch; 5 warm-up steps
	// (half an epoch) from 0.
	s := mustSchedule(t, ScheduleConfig{Kind: ScheduleStep, Peak: 0.1, Epochs: 4, StepsPerEpoch: 10,
		WarmupEpochs: 0.5, Milestones: []int{2, 3}})
	checkLR(t, "step", s, map[int]float64{
		0:  0,
		1:  0.02,
		4:  0.08,
		5:  0.1,
		19: 0.1,
		20: 0.01,
		29: 0.01,
		30: 0.001,
		39: 0.001,
	})
}

func TestScheduleErrors(t *testing.T) {
	good := ScheduleConfig{Kind: ScheduleStep, Peak: 0.1, Epochs: 4, StepsPerEpoch: 10, Milestones: []int{2}}
	cases := map[string]func(c *ScheduleConfig){
		"unknown kind":          func(c *ScheduleConfig) { c.Kind = "linear" },
		"zero peak":             func(c *ScheduleConfig) { c.Peak = 0 },
		"nan peak":              func(c *ScheduleConfig) { c.Peak = math.NaN() },
		"no epochs":             func(c *ScheduleConfig) { c.Epochs = 0 },
		"no steps":              func(c *ScheduleConfig) { c.StepsPerEpoch = 0 },
		"warm-up too long":      func(c *ScheduleConfig) { c.WarmupEpochs = 4 },
		"negative warm-up":      func(c *ScheduleConfig) { c.WarmupEpochs = -1 },
		"no milestones":         func(c *ScheduleConfig) { c.Milestones = nil },
		"milestone after run":   func(c *ScheduleConfig) { c.Milestones = []int{5} },
		"milestone zero":        func(c *ScheduleConfig) { c.Milestones = []int{0} },
		"milestones decreasing": func(c *ScheduleConfig) { c.Milestones = []int{3, 2} },
	}
	if _, err := NewSchedule(good); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for name, mutate := range cases {
		c := good
		mutate(&c)
		if _, err := NewSchedule(c); err == nil {
			t.Errorf("%s: no error for %+v", name, c)
		}
	}
}
