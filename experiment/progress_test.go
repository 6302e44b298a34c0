package experiment

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sgt-dev/sgt/train"
)

// fakeClock is a settable clock for Progress.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time             { return c.t }
func (c *fakeClock) advance(d time.Duration)    { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock                  { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func trialNamed(name string) Trial              { return Trial{Name: name, Dir: name} }
func stepAt(epoch, step int) train.StepProgress { return stepOf(epoch, 2, step, 4) }
func stepOf(epoch, epochs, step, steps int) train.StepProgress {
	return train.StepProgress{Epoch: epoch, Epochs: epochs, Step: step, Steps: steps, Loss: 1.5 / float64(epoch), Acc: 0.25 * float64(epoch)}
}

// runTrialSteps sends the events of one trial of 2 epochs of 4 steps, each
// step taking stepTime after a start-up of startup.
func runTrialSteps(p *Progress, clock *fakeClock, t Trial, startup, stepTime time.Duration) {
	p.OnTrial(TrialEvent{Trial: t, State: StateRunning, Attempt: 1})
	start := clock.t
	clock.advance(startup)
	for epoch := 1; epoch <= 2; epoch++ {
		for step := 1; step <= 4; step++ {
			clock.advance(stepTime)
			p.OnStep(t, stepAt(epoch, step))
		}
	}
	p.OnTrial(TrialEvent{Trial: t, State: StateDone, Attempt: 1, Elapsed: clock.t.Sub(start)})
}

// TestProgressPlain checks the output for a log file or a pipe: no escape
// sequences, one line per trial start and end and per epoch (not per
// step), each trial numbered k/N, and the ends with the elapsed time and
// the time left measured from the trials' rate.
func TestProgressPlain(t *testing.T) {
	clock := newFakeClock()
	var out strings.Builder
	p := NewProgress(&out, false, ProgressOptions{Total: 4, Now: clock.now})
	p.OnTrial(TrialEvent{Trial: trialNamed("a"), State: StateSkipped})
	runTrialSteps(p, clock, trialNamed("b"), 2*time.Second, 1*time.Second) // 10 s
	runTrialSteps(p, clock, trialNamed("c"), 2*time.Second, 1*time.Second) // 10 s
	p.OnTrial(TrialEvent{Trial: trialNamed("d"), State: StateRunning, Attempt: 2, Resumed: true})
	clock.advance(3 * time.Second)
	p.OnTrial(TrialEvent{Trial: trialNamed("d"), State: StateFailed, Attempt: 2, Elapsed: 3 * time.Second, Err: errors.New("boom\nstack")})
	p.Close()

	got := out.String()
	if strings.Contains(got, "\033") || strings.Contains(got, "\r") {
		t.Fatalf("plain output holds escape sequences or carriage returns:\n%q", got)
	}
	want := []string{
		"[1/4] a: already done, skipped",
		"[2/4] b: starting",
		// Half a trial in 6 s, 2.5 to go (of the 3 that run): 30 s.
		"[2/4] b: epoch 1/2 trained, loss 1.5000, accuracy 25.00% (its first step came after 3s of loading and compiling); elapsed 6s; about 30s left",
		"[2/4] b: epoch 2/2 trained, loss 0.7500, accuracy 50.00%; elapsed 10s; about 20s left",
		"[2/4] b: done in 10s; elapsed 10s; about 20s left",
		"[3/4] c: starting",
		// 1.5 trials in 16 s, 1.5 to go: 16 s, shown to 5 s.
		"[3/4] c: epoch 1/2 trained, loss 1.5000, accuracy 25.00% (its first step came after 3s of loading and compiling); elapsed 16s; about 15s left",
		"[3/4] c: epoch 2/2 trained, loss 0.7500, accuracy 50.00%; elapsed 20s; about 10s left",
		"[3/4] c: done in 10s; elapsed 20s; about 10s left",
		"[4/4] d: resuming from its checkpoint (attempt 2)",
		"[4/4] d: FAILED after 3s: boom; elapsed 23s; about 0s left",
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), got)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i+1, lines[i], want[i])
		}
	}
}

// TestProgressTimeLeft checks the time left: from the per-trial estimate
// before anything is measured (counting the time a trial has run), from
// the measured rate once a trial's worth of work is done, and with
// parallel trials.
func TestProgressTimeLeft(t *testing.T) {
	clock := newFakeClock()
	p := NewProgress(&strings.Builder{}, false, ProgressOptions{Total: 3, TrialEstimate: 100 * time.Second, Now: clock.now})
	left := func() time.Duration {
		d, ok := p.timeLeft(clock.t)
		if !ok {
			t.Fatal("no time left")
		}
		return d.Round(time.Second)
	}
	if got := left(); got != 300*time.Second {
		t.Errorf("before any trial: %v left, want 5m0s (3 trials of 100 s)", got)
	}
	a := trialNamed("a")
	p.OnTrial(TrialEvent{Trial: a, State: StateRunning, Attempt: 1})
	clock.advance(20 * time.Second)
	if got := left(); got != 280*time.Second {
		t.Errorf("20 s into the first trial, before its first step: %v left, want 4m40s", got)
	}
	// The first trial really takes 50 s: 10 s of start-up, 40 s of steps.
	clock.advance(-10 * time.Second)
	for epoch := 1; epoch <= 2; epoch++ {
		for step := 1; step <= 4; step++ {
			clock.advance(5 * time.Second)
			p.OnStep(a, stepAt(epoch, step))
		}
	}
	p.OnTrial(TrialEvent{Trial: a, State: StateDone, Elapsed: 50 * time.Second})
	// One trial's worth done (7/8 of it measured in steps, plus the last
	// step): measured rate only, 50 s per trial.
	if got := left(); got != 100*time.Second {
		t.Errorf("after a 50 s trial, 2 to go: %v left, want 1m40s", got)
	}

	// Two at once, the per-trial estimate halved by parallelism.
	q := NewProgress(&strings.Builder{}, false, ProgressOptions{Total: 4, TrialEstimate: 60 * time.Second, Parallel: 2, Now: clock.now})
	if got, _ := q.timeLeft(clock.t); got != 120*time.Second {
		t.Errorf("4 trials of 60 s, 2 at once: %v left, want 2m0s", got)
	}

	// Without an estimate nor an ended epoch, nothing is said.
	r := NewProgress(&strings.Builder{}, false, ProgressOptions{Total: 2, Now: clock.now})
	r.OnTrial(TrialEvent{Trial: a, State: StateRunning, Attempt: 1})
	r.OnStep(a, stepAt(1, 1))
	if _, ok := r.timeLeft(clock.t); ok {
		t.Error("a time left before any epoch ended and without an estimate")
	}
	if _, ok := NewProgress(&strings.Builder{}, false, ProgressOptions{Now: clock.now}).timeLeft(clock.t); ok {
		t.Error("a time left with an unknown total")
	}
}

// vt is a fake terminal: it applies what Progress writes (printable text,
// "\r", "\n", and the escapes ESC[nA, ESC[K and ESC[J) to a screen of
// lines, and fails on anything else.
type vt struct {
	t      *testing.T
	lines  []string
	row    int
	col    int
	writes int
}

var escape = regexp.MustCompile(`^\x1b\[(\d*)([AKJ])`)

func (v *vt) Write(b []byte) (int, error) {
	v.writes++
	s := string(b)
	for len(s) > 0 {
		for v.row >= len(v.lines) {
			v.lines = append(v.lines, "")
		}
		switch {
		case s[0] == '\r':
			v.col = 0
			s = s[1:]
		case s[0] == '\n':
			v.row++
			v.col = 0
			s = s[1:]
		case s[0] == 0x1b:
			m := escape.FindStringSubmatch(s)
			if m == nil {
				v.t.Fatalf("unknown escape sequence at %q", s)
			}
			n := 1
			if m[1] != "" {
				n, _ = strconv.Atoi(m[1])
			}
			line := []rune(v.lines[v.row])
			switch m[2] {
			case "A":
				if n > v.row {
					v.t.Fatalf("cursor moved %d lines up from row %d", n, v.row)
				}
				v.row -= n
			case "K":
				if v.col < len(line) {
					v.lines[v.row] = string(line[:v.col])
				}
			case "J":
				if v.col < len(line) {
					v.lines[v.row] = string(line[:v.col])
				}
				v.lines = v.lines[:v.row+1]
			}
			s = s[len(m[0]):]
		default:
			i := strings.IndexAny(s, "\r\n\x1b")
			if i < 0 {
				i = len(s)
			}
			text := []rune(s[:i])
			line := []rune(v.lines[v.row])
			for len(line) < v.col {
				line = append(line, ' ')
			}
			end := v.col + len(text)
			if end < len(line) {
				line = append(append(line[:v.col:v.col], text...), line[end:]...)
			} else {
				line = append(line[:v.col], text...)
			}
			v.lines[v.row] = string(line)
			v.col = end
			s = s[i:]
		}
	}
	return len(b), nil
}

// screen returns the screen's lines, without the empty line the cursor
// sits on at the end.
func (v *vt) screen() []string {
	lines := v.lines
	if len(lines) > 0 && lines[len(lines)-1] == "" && v.row == len(lines)-1 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// TestProgressTerminal renders two parallel trials on a fake terminal: the
// screen always shows the permanent lines once each, then one live line per
// running trial and the overall line, rewritten in place; lines are cut to
// the terminal's width, and Close leaves only the permanent lines.
func TestProgressTerminal(t *testing.T) {
	clock := newFakeClock()
	term := &vt{t: t}
	p := NewProgress(term, true, ProgressOptions{Total: 3, Parallel: 2, Width: 80, CompileEstimate: 9 * time.Second, Now: clock.now})
	check := func(what string, want ...string) {
		t.Helper()
		got := term.screen()
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: screen\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for _, l := range got {
			if n := len([]rune(l)); n >= 80 && strings.HasPrefix(l, "  ") {
				t.Errorf("%s: line of %d characters on an 80-column terminal: %q", what, n, l)
			}
		}
	}
	p.Printf("grid g: 3 trials")
	check("header", "grid g: 3 trials", "0 of 3 runs done · elapsed 0s")

	a, b := trialNamed("alpha=1_seed=0"), trialNamed("alpha=0.3_label-smoothing=0.1_seed=0_and_a_long_name_that_needs_cutting")
	p.OnTrial(TrialEvent{Trial: a, State: StateRunning, Attempt: 1})
	clock.advance(2 * time.Second)
	p.OnTrial(TrialEvent{Trial: b, State: StateRunning, Attempt: 1})
	check("two trials starting",
		"grid g: 3 trials",
		"[1/3] alpha=1_seed=0: starting",
		"[2/3] alpha=0.3_label-smoothing=0.1_seed=0_and_a_long_name_that_needs_cutting: starting",
		"  [1/3] alpha=1_seed=0  loading the data and compiling the training step (2s, …",
		"  [2/3] alpha=0.3_label-smoothing=0.1_seed=0_and_a_long_name_that_needs_cuttin…",
		"0 of 3 runs done, 2 running · elapsed 2s",
	)
	clock.advance(6 * time.Second)
	for step := 1; step <= 4; step++ {
		clock.advance(time.Second)
		p.OnStep(a, stepAt(1, step))
	}
	check("first trial at the end of its first epoch",
		"grid g: 3 trials",
		"[1/3] alpha=1_seed=0: starting",
		"[2/3] alpha=0.3_label-smoothing=0.1_seed=0_and_a_long_name_that_needs_cutting: starting",
		"  [1/3] alpha=1_seed=0  epoch 1/2  step 4/4  loss 1.5000  acc 25.00%  evaluati…",
		"  [2/3] alpha=0.3_label-smoothing=0.1_seed=0_and_a_long_name_that_needs_cuttin…",
		// Half a trial in 12 s, 2.5 to go: 60 s.
		"0 of 3 runs done, 2 running · elapsed 12s · about 1m00s left",
	)
	// Steps in quick succession are drawn at most every 250 ms.
	writes := term.writes
	clock.advance(100 * time.Millisecond)
	p.OnStep(a, stepAt(2, 1))
	if term.writes != writes {
		t.Error("a step 100 ms after the last drawing was drawn")
	}
	clock.advance(200 * time.Millisecond)
	p.OnStep(a, stepAt(2, 2))
	if term.writes != writes+1 {
		t.Error("a step 300 ms after the last drawing was not drawn")
	}
	clock.advance(time.Second)
	p.OnTrial(TrialEvent{Trial: a, State: StateDone, Elapsed: 14 * time.Second})
	check("first trial done",
		"grid g: 3 trials",
		"[1/3] alpha=1_seed=0: starting",
		"[2/3] alpha=0.3_label-smoothing=0.1_seed=0_and_a_long_name_that_needs_cutting: starting",
		"[1/3] alpha=1_seed=0: done in 14s; elapsed 13s; about 25s left",
		"  [2/3] alpha=0.3_label-smoothing=0.1_seed=0_and_a_long_name_that_needs_cuttin…",
		// One trial in 13.3 s, 2 to go: 26.6 s, shown to 5 s.
		"1 of 3 runs done, 1 running · elapsed 13s · about 25s left",
	)
	p.OnTrial(TrialEvent{Trial: b, State: StateInterrupted, Elapsed: 10 * time.Second})
	p.Close()
	check("closed",
		"grid g: 3 trials",
		"[1/3] alpha=1_seed=0: starting",
		"[2/3] alpha=0.3_label-smoothing=0.1_seed=0_and_a_long_name_that_needs_cutting: starting",
		"[1/3] alpha=1_seed=0: done in 14s; elapsed 13s; about 25s left",
		"[2/3] alpha=0.3_label-smoothing=0.1_seed=0_and_a_long_name_that_needs_cutting: interrupted after 10s; it continues from its checkpoint when the command runs again",
	)
}

func TestFmtDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {1400 * time.Millisecond, "1s"}, {59 * time.Second, "59s"}, {65 * time.Second, "1m05s"},
		{time.Hour + 7*time.Minute + 20*time.Second, "1h07m"}, {-time.Second, "0s"},
	} {
		if got := fmtDuration(c.d); got != c.want {
			t.Errorf("fmtDuration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}
