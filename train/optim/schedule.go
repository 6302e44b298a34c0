package optim

import (
	"fmt"
	"math"
	"slices"
)

// Schedule names accepted by NewSchedule (and the --schedule flag).
const (
	ScheduleConstant = "constant"
	ScheduleCosine   = "cosine"
	ScheduleStep     = "step"
)

// ScheduleNames lists the known schedules.
var ScheduleNames = []string{ScheduleConstant, ScheduleCosine, ScheduleStep}

// Learning-rate update cadences (the --lr-update flag).
const (
	// LRUpdateStep changes the learning rate at every optimizer step.
	LRUpdateStep = "step"
	// LRUpdateEpoch changes it once per epoch, from the epoch's index, as
	// timm's schedulers do with t_in_epochs=True.
	LRUpdateEpoch = "epoch"
)

// LRUpdateNames lists the known learning-rate update cadences.
var LRUpdateNames = []string{LRUpdateStep, LRUpdateEpoch}

// Schedule gives the learning rate of every optimizer step. It is computed on
// the host and fed to the train step graph as a scalar.
type Schedule interface {
	// LR returns the learning rate of step (0-based, counted over the whole run).
	LR(step int) float64
}

// ScheduleConfig describes a learning-rate schedule over a run.
type ScheduleConfig struct {
	// Kind is one of ScheduleNames.
	Kind string
	// Peak is the learning rate after warm-up (the base learning rate).
	Peak float64
	// Epochs and StepsPerEpoch give the length of the run.
	Epochs, StepsPerEpoch int
	// WarmupEpochs is the length of the linear warm-up (0: none). It may be
	// fractional.
	WarmupEpochs float64
	// WarmupStart is the learning rate at the first warm-up step.
	WarmupStart float64
	// WarmupReplaces makes the warm-up replace the first epochs of the
	// cosine instead of preceding it (timm's warmup_prefix=False): after the
	// warm-up the cosine is evaluated at the run's own position t over its
	// whole length, as if it had started at t = 0. By default the cosine
	// starts after the warm-up and spans what is left of its phase. The
	// constant and step schedules count from the start of the run either
	// way, so this only changes the cosine.
	WarmupReplaces bool
	// MinLR is the cosine's floor and the cool-down's learning rate (timm's
	// lr_min). Only the cosine schedule uses it.
	MinLR float64
	// CooldownEpochs is the number of final epochs run at MinLR after the
	// cosine (timm's cooldown_epochs): the cosine spans the first
	// Epochs-CooldownEpochs epochs. Only the cosine schedule has one.
	CooldownEpochs int
	// PerEpoch sets the learning rate once per epoch, from the epoch's index
	// (timm's t_in_epochs=True): every quantity is then counted in whole
	// epochs and the rate is constant within an epoch. Otherwise it changes
	// at every step, counted in steps.
	PerEpoch bool
	// Milestones are the epochs at which the step schedule divides the
	// learning rate by 10, strictly increasing.
	Milestones []int
}

// NewSchedule validates cfg and returns its schedule.
//
// The schedule is a function of a position t: the step index, or with
// PerEpoch the epoch index (step/StepsPerEpoch, rounded down). Lengths are
// counted in the same unit: with per-step updates the warm-up lasts
// W = round(WarmupEpochs*StepsPerEpoch) steps (at least 1 when WarmupEpochs
// > 0) and the run T = Epochs*StepsPerEpoch steps; with per-epoch updates
// W = WarmupEpochs and T = Epochs. The cosine phase ends at
// E = T - CooldownEpochs (in the same unit).
//
//   - warm-up (t < W): WarmupStart + (Peak-WarmupStart)*t/W, a linear rise
//     from WarmupStart towards Peak.
//   - constant: Peak.
//   - cosine: for t < E, MinLR + (Peak-MinLR)*(1+cos(pi*(t-t0)/(E-t0)))/2,
//     where t0 = W (the cosine follows the warm-up; the default) or t0 = 0
//     (WarmupReplaces: the warm-up replaces the cosine's first part, as
//     timm's CosineLRScheduler with warmup_prefix=False); then MinLR for the
//     cool-down, t >= E.
//   - step: Peak/10^k where k is the number of milestones at or before the
//     current epoch (fractional with per-step updates: step/StepsPerEpoch).
//
// With the defaults (per-step, MinLR 0, no cool-down, warm-up as a prefix)
// the cosine decays from Peak to 0 over the steps after the warm-up.
func NewSchedule(cfg ScheduleConfig) (Schedule, error) {
	if !(cfg.Peak > 0) || math.IsInf(cfg.Peak, 0) {
		return nil, fmt.Errorf("learning rate must be a positive number, got %g", cfg.Peak)
	}
	if cfg.Epochs < 1 || cfg.StepsPerEpoch < 1 {
		return nil, fmt.Errorf("schedule needs at least one epoch and one step per epoch, got %d epochs of %d steps", cfg.Epochs, cfg.StepsPerEpoch)
	}
	if !(cfg.WarmupEpochs >= 0) || cfg.WarmupEpochs >= float64(cfg.Epochs) {
		return nil, fmt.Errorf("warm-up epochs must be in [0, epochs=%d), got %g", cfg.Epochs, cfg.WarmupEpochs)
	}
	if !(cfg.WarmupStart >= 0) || math.IsInf(cfg.WarmupStart, 0) {
		return nil, fmt.Errorf("warm-up start learning rate must be >= 0, got %g", cfg.WarmupStart)
	}
	if !(cfg.MinLR >= 0) || cfg.MinLR > cfg.Peak {
		return nil, fmt.Errorf("minimum learning rate must be in [0, peak=%g], got %g", cfg.Peak, cfg.MinLR)
	}
	if cfg.CooldownEpochs < 0 {
		return nil, fmt.Errorf("cool-down epochs must be >= 0, got %d", cfg.CooldownEpochs)
	}
	if cfg.Kind != ScheduleCosine && (cfg.MinLR > 0 || cfg.CooldownEpochs > 0) {
		return nil, fmt.Errorf("a minimum learning rate and a cool-down belong to the %s schedule, not to %s", ScheduleCosine, cfg.Kind)
	}
	if cfg.CooldownEpochs > 0 && cfg.WarmupEpochs >= float64(cfg.Epochs-cfg.CooldownEpochs) {
		return nil, fmt.Errorf("%g warm-up and %d cool-down epochs leave no epoch of the %d for the cosine", cfg.WarmupEpochs, cfg.CooldownEpochs, cfg.Epochs)
	}
	s := schedule{start: cfg.WarmupStart, peak: cfg.Peak, unit: 1}
	cosineEnd := (cfg.Epochs - cfg.CooldownEpochs) * cfg.StepsPerEpoch
	if cfg.PerEpoch {
		s.unit = cfg.StepsPerEpoch
		s.warmup = cfg.WarmupEpochs
		cosineEnd = cfg.Epochs - cfg.CooldownEpochs
	} else {
		w := int(math.Round(cfg.WarmupEpochs * float64(cfg.StepsPerEpoch)))
		if cfg.WarmupEpochs > 0 && w == 0 {
			w = 1
		}
		s.warmup = float64(w)
	}
	switch cfg.Kind {
	case ScheduleConstant:
		s.after = func(float64) float64 { return cfg.Peak }
	case ScheduleCosine:
		t0 := s.warmup
		if cfg.WarmupReplaces {
			t0 = 0
		}
		end, span, floor := float64(cosineEnd), float64(cosineEnd)-t0, cfg.MinLR
		s.after = func(t float64) float64 {
			if t >= end {
				return floor
			}
			return floor + (cfg.Peak-floor)*0.5*(1+math.Cos(math.Pi*(t-t0)/span))
		}
	case ScheduleStep:
		if len(cfg.Milestones) == 0 {
			return nil, fmt.Errorf("step schedule needs at least one milestone epoch")
		}
		for i, m := range cfg.Milestones {
			if m < 1 || m > cfg.Epochs {
				return nil, fmt.Errorf("milestone %d is outside the run's epochs [1, %d]", m, cfg.Epochs)
			}
			if i > 0 && m <= cfg.Milestones[i-1] {
				return nil, fmt.Errorf("milestones must be strictly increasing, got %v", cfg.Milestones)
			}
		}
		milestones := slices.Clone(cfg.Milestones)
		perMilestone := float64(cfg.StepsPerEpoch)
		if cfg.PerEpoch {
			perMilestone = 1
		}
		s.after = func(t float64) float64 {
			lr := cfg.Peak
			for _, m := range milestones {
				if t >= float64(m)*perMilestone {
					lr /= 10
				}
			}
			return lr
		}
	default:
		return nil, fmt.Errorf("unknown schedule %q (known: %v)", cfg.Kind, ScheduleNames)
	}
	return s, nil
}

// schedule is a linear warm-up followed by another schedule, both functions
// of the position t = step/unit (an integer: the step, or the epoch).
type schedule struct {
	start, peak float64
	// unit is the number of steps per unit of t: 1, or the steps per epoch
	// for per-epoch updates.
	unit int
	// warmup is the warm-up's length in units of t.
	warmup float64
	// after gives the rate at position t >= warmup.
	after func(t float64) float64
}

// LR implements Schedule.
func (s schedule) LR(step int) float64 {
	t := float64(step / s.unit)
	if t < s.warmup {
		return s.start + (s.peak-s.start)*t/s.warmup
	}
	return s.after(t)
}
