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
	// Milestones are the epochs at which the step schedule divides the
	// learning rate by 10, strictly increasing.
	Milestones []int
}

// NewSchedule validates cfg and returns its schedule.
//
//   - constant: Peak throughout (after the warm-up, if any).
//   - cosine: after the warm-up, Peak*(1+cos(pi*t/T))/2, where t counts the
//     steps since the warm-up and T is the number of steps left after it, so
//     the rate decays from Peak towards 0 at the end of the run.
//   - step: after the warm-up, Peak/10^k where k is the number of milestones
//     at or before the current (fractional) epoch step/StepsPerEpoch.
//
// The warm-up rises linearly from WarmupStart at step 0 to Peak at step
// W = round(WarmupEpochs*StepsPerEpoch), the first step after it.
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
	total := cfg.Epochs * cfg.StepsPerEpoch
	warmup := int(math.Round(cfg.WarmupEpochs * float64(cfg.StepsPerEpoch)))
	if cfg.WarmupEpochs > 0 && warmup == 0 {
		warmup = 1
	}
	base := warmupSchedule{start: cfg.WarmupStart, peak: cfg.Peak, steps: warmup}
	switch cfg.Kind {
	case ScheduleConstant:
		base.after = func(int) float64 { return cfg.Peak }
	case ScheduleCosine:
		span := float64(total - warmup)
		base.after = func(t int) float64 {
			return cfg.Peak * 0.5 * (1 + math.Cos(math.Pi*float64(t)/span))
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
		spe := cfg.StepsPerEpoch
		base.after = func(t int) float64 {
			step := t + warmup
			lr := cfg.Peak
			for _, m := range milestones {
				if step >= m*spe {
					lr /= 10
				}
			}
			return lr
		}
	default:
		return nil, fmt.Errorf("unknown schedule %q (known: %v)", cfg.Kind, ScheduleNames)
	}
	return base, nil
}

// warmupSchedule is a linear warm-up followed by another schedule.
type warmupSchedule struct {
	start, peak float64
	steps       int
	// after gives the rate t steps after the warm-up.
	after func(t int) float64
}

// LR implements Schedule.
func (s warmupSchedule) LR(step int) float64 {
	if step < s.steps {
		return s.start + (s.peak-s.start)*float64(step)/float64(s.steps)
	}
	return s.after(step - s.steps)
}
