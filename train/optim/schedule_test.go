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
		"min lr with step":      func(c *ScheduleConfig) { c.MinLR = 0.001 },
		"cool-down with step":   func(c *ScheduleConfig) { c.CooldownEpochs = 1 },
		"cool-down constant": func(c *ScheduleConfig) {
			c.Kind, c.Milestones, c.CooldownEpochs = ScheduleConstant, nil, 1
		},
		"min lr above peak": func(c *ScheduleConfig) { c.Kind, c.Milestones, c.MinLR = ScheduleCosine, nil, 0.2 },
		"negative min lr":   func(c *ScheduleConfig) { c.Kind, c.Milestones, c.MinLR = ScheduleCosine, nil, -1e-4 },
		"nan min lr":        func(c *ScheduleConfig) { c.Kind, c.Milestones, c.MinLR = ScheduleCosine, nil, math.NaN() },
		"negative cool-down": func(c *ScheduleConfig) {
			c.Kind, c.Milestones, c.CooldownEpochs = ScheduleCosine, nil, -1
		},
		"cool-down eats the cosine": func(c *ScheduleConfig) {
			c.Kind, c.Milestones, c.WarmupEpochs, c.CooldownEpochs = ScheduleCosine, nil, 1, 3
		},
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

// timmCosine is timm's CosineLRScheduler._get_lr at position t with one
// cycle (cycle_limit 1, cycle_mul 1, k_decay 1) and warmup_prefix=False:
// the warm-up rises by (base-warmupInit)/warmupT per unit of t, then the
// cosine is evaluated at t itself over tInitial, and from tInitial on (the
// cool-down, which create_scheduler appends as cooldown_epochs) the rate is
// lrMin.
func timmCosine(t, base, lrMin, tInitial, warmupT, warmupInit float64) float64 {
	if t < warmupT {
		return warmupInit + t*((base-warmupInit)/warmupT)
	}
	cycle := math.Floor(t / tInitial)
	if cycle >= 1 {
		return lrMin
	}
	tCurr := t - tInitial*cycle
	return lrMin + 0.5*(base-lrMin)*(1+math.Cos(math.Pi*tCurr/tInitial))
}

// timmStep is timm's StepLRScheduler._get_lr: the warm-up, then
// base*decayRate^(t // decayT).
func timmStep(t, base, decayT, decayRate, warmupT, warmupInit float64) float64 {
	if t < warmupT {
		return warmupInit + t*((base-warmupInit)/warmupT)
	}
	return base * math.Pow(decayRate, math.Floor(t/decayT))
}

// near reports whether got and want agree to 1e-12 relative.
func near(got, want float64) bool {
	return math.Abs(got-want) <= 1e-12*math.Max(math.Abs(want), 1e-300)
}

// TestTimmCosinePerEpoch checks the cosine with a floor, a cool-down, a
// warm-up that replaces the cosine's first epochs and per-epoch updates
// against timm's formula at every step of a 100-epoch run: the authors'
// code (peak 0.1, warm-up from 0.01, --min-lr 1e-4, 90 + 10 cool-down
// epochs) and the paper's values (peak 0.4, warm-up from 4e-4, cooling lr
// 4e-4).
func TestTimmCosinePerEpoch(t *testing.T) {
	for _, c := range []struct {
		name                   string
		peak, start, floor     float64
		spotEpoch0, spotEpoch4 float64
	}{
		{"authors' code", 0.1, 0.01, 1e-4, 0.01, 0.01 + 4*0.09/5},
		{"paper", 0.4, 4e-4, 4e-4, 4e-4, 4e-4 + 4*(0.4-4e-4)/5},
	} {
		const spe = 7
		s := mustSchedule(t, ScheduleConfig{Kind: ScheduleCosine, Peak: c.peak, Epochs: 100, StepsPerEpoch: spe,
			WarmupEpochs: 5, WarmupStart: c.start, WarmupReplaces: true, MinLR: c.floor, CooldownEpochs: 10, PerEpoch: true})
		for step := range 100 * spe {
			epoch := step / spe
			want := timmCosine(float64(epoch), c.peak, c.floor, 90, 5, c.start)
			if got := s.LR(step); !near(got, want) {
				t.Fatalf("%s: LR(step %d, epoch %d) = %v, want timm's %v", c.name, step, epoch, got, want)
			}
		}
		// A few values written out: the warm-up's ends, the cosine at
		// epoch 5 (not restarted after the warm-up), its midpoint at epoch 45,
		// and the cool-down.
		checkLR(t, c.name, s, map[int]float64{
			0:              c.spotEpoch0,
			spe - 1:        c.spotEpoch0, // constant within the epoch
			4 * spe:        c.spotEpoch4,
			5 * spe:        c.floor + (c.peak-c.floor)*(1+math.Cos(math.Pi*5/90))/2,
			45 * spe:       (c.peak + c.floor) / 2,
			89*spe + 3:     c.floor + (c.peak-c.floor)*(1+math.Cos(math.Pi*89/90))/2,
			90 * spe:       c.floor,
			100*spe - 1:    c.floor,
			95*spe + spe/2: c.floor,
		})
	}
}

// TestTimmCosinePerStep checks per-step updates with timm's semantics
// (t_in_epochs=False: t, the warm-up and the cosine's length in steps).
func TestTimmCosinePerStep(t *testing.T) {
	const spe = 11
	s := mustSchedule(t, ScheduleConfig{Kind: ScheduleCosine, Peak: 0.4, Epochs: 100, StepsPerEpoch: spe,
		WarmupEpochs: 5, WarmupStart: 4e-4, WarmupReplaces: true, MinLR: 1e-4, CooldownEpochs: 10})
	for step := range 100 * spe {
		want := timmCosine(float64(step), 0.4, 1e-4, 90*spe, 5*spe, 4e-4)
		if got := s.LR(step); !near(got, want) {
			t.Fatalf("LR(%d) = %v, want timm's %v", step, got, want)
		}
	}
	if s.LR(1) == s.LR(2) || s.LR(100) == s.LR(101) {
		t.Error("per-step rate constant between steps")
	}
}

// TestTimmStepPerEpoch checks the step schedule (÷10 at epochs 30, 60 and
// 90 of 100) with a 5-epoch warm-up from 4e-4 to 0.4 and per-epoch updates
// against timm's StepLRScheduler (decay_t 30, decay_rate 0.1).
func TestTimmStepPerEpoch(t *testing.T) {
	const spe = 5
	for _, perEpoch := range []bool{true, false} {
		s := mustSchedule(t, ScheduleConfig{Kind: ScheduleStep, Peak: 0.4, Epochs: 100, StepsPerEpoch: spe,
			WarmupEpochs: 5, WarmupStart: 4e-4, Milestones: []int{30, 60, 90}, PerEpoch: perEpoch, WarmupReplaces: perEpoch})
		for step := range 100 * spe {
			epoch := float64(step / spe)
			want := timmStep(epoch, 0.4, 30, 0.1, 5, 4e-4)
			if !perEpoch {
				want = timmStep(float64(step), 0.4, 30*spe, 0.1, 5*spe, 4e-4)
			}
			if got := s.LR(step); !near(got, want) {
				t.Fatalf("per epoch %v: LR(step %d) = %v, want timm's %v", perEpoch, step, got, want)
			}
		}
	}
	s := mustSchedule(t, ScheduleConfig{Kind: ScheduleStep, Peak: 0.4, Epochs: 100, StepsPerEpoch: spe,
		WarmupEpochs: 5, WarmupStart: 4e-4, Milestones: []int{30, 60, 90}, PerEpoch: true})
	checkLR(t, "step", s, map[int]float64{0: 4e-4, 3*spe + 2: 4e-4 + 3*(0.4-4e-4)/5, 5 * spe: 0.4, 29*spe + 4: 0.4,
		30 * spe: 0.04, 60 * spe: 0.004, 90 * spe: 4e-4, 100*spe - 1: 4e-4})
}

// TestDefaultScheduleUnchanged checks that the default settings (per-step,
// no floor, no cool-down, the warm-up before the cosine) give exactly the
// schedule sgt has always had: a linear warm-up over W steps, then
// lr*(1+cos(pi*(step-W)/(T-W)))/2, bit for bit.
func TestDefaultScheduleUnchanged(t *testing.T) {
	const spe, epochs, w = 13, 6, 20    // 1.5 warm-up epochs of 13 steps round to 20 steps
	var peak, start float64 = 0.1, 0.01 // variables: float64 arithmetic, as at run time
	s := mustSchedule(t, ScheduleConfig{Kind: ScheduleCosine, Peak: peak, Epochs: epochs, StepsPerEpoch: spe,
		WarmupEpochs: 1.5, WarmupStart: start})
	for step := range epochs * spe {
		var want float64
		if step < w {
			want = start + (peak-start)*float64(step)/float64(w)
		} else {
			want = peak * 0.5 * (1 + math.Cos(math.Pi*float64(step-w)/float64(epochs*spe-w)))
		}
		if got := s.LR(step); got != want {
			t.Fatalf("LR(%d) = %v, want exactly %v", step, got, want)
		}
	}
}
