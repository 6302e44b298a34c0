package experiment

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sgt-dev/sgt/train"
)

// Progress shows a person how the trials of a grid, search or demo
// advance. On a terminal it keeps a live block at the bottom of the
// screen, rewritten in place with ANSI escapes: one line per running trial
// (epoch, step, running loss and accuracy) and an overall line (run k of
// N, elapsed time, time left); lines for trials that start and end scroll
// above it. Elsewhere (a log file, a pipe) it writes plain lines only: one
// when a trial starts or ends, and one at the end of each epoch's training.
//
// Attach it to a Runner; it is safe for concurrent use by the runner's
// trials.
type Progress struct {
	w        io.Writer
	terminal bool
	opts     ProgressOptions

	mu       sync.Mutex
	created  time.Time
	first    time.Time // when the first trial started (zero before)
	numbered int       // trials numbered so far (started or left alone)
	done     int       // trials that ended done or failed in this process
	left     int       // trials left alone (skipped, busy)
	work     float64   // trials' worth of work done in this process
	running  []*liveTrial
	numbers  map[string]int // trial name -> its number k
	compile  time.Duration  // first measured time from a start to its first step
	epochs   bool           // whether some epoch of this process ended
	drawn    int            // lines of the live block on the screen
	lastDraw time.Time
}

// ProgressOptions configure a Progress.
type ProgressOptions struct {
	// Total is the number of trials the runner goes through, those found
	// done included (0: unknown, as in a search, whose rounds are decided
	// as it goes).
	Total int
	// TrialEstimate is the expected duration of one trial (0: none). The
	// time left starts from it and moves to the measured rate as the
	// trials advance; without it, the time left is shown once an epoch or
	// a trial has ended.
	TrialEstimate time.Duration
	// CompileEstimate is the expected time from a trial's start to its
	// first step (loading the data, compiling the steps); 0: unknown.
	CompileEstimate time.Duration
	// Parallel is the number of trials that run at once (values below 1
	// mean 1).
	Parallel int
	// Width, when positive, is the terminal's width: live lines are cut to
	// fit it, so that rewriting them in place stays exact.
	Width int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// liveTrial is a running trial.
type liveTrial struct {
	t         Trial
	k         int
	start     time.Time
	stepped   bool
	firstStep time.Duration
	base      float64 // the trial's fraction done at its first step here
	p         train.StepProgress
	// epochLines counts the epoch lines written (plain output).
	epochLines int
}

// NewProgress returns a display writing to w; terminal selects the live
// block (w must then be a terminal that understands ANSI escapes).
func NewProgress(w io.Writer, terminal bool, opts ProgressOptions) *Progress {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Parallel = max(opts.Parallel, 1)
	return &Progress{w: w, terminal: terminal, opts: opts, created: opts.Now(), numbers: map[string]int{}}
}

// Attach makes p the runner's display: it receives the runner's trial
// events and steps, and replaces the runner's own progress lines.
func (p *Progress) Attach(r *Runner) {
	r.OnTrial = p.OnTrial
	r.OnStep = p.OnStep
	r.Progress = nil
}

// Printf writes a line (format needs no newline) above the live block.
func (p *Progress) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.emit(fmt.Sprintf(format, args...))
}

// Close removes the live block from the terminal; lines written before
// stay.
func (p *Progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal && p.drawn > 0 {
		var b strings.Builder
		p.erase(&b)
		io.WriteString(p.w, b.String())
	}
}

// OnTrial records a trial event (Runner.OnTrial).
func (p *Progress) OnTrial(ev TrialEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opts.Now()
	name := ev.Trial.Name
	switch ev.State {
	case StateRunning:
		if p.first.IsZero() {
			p.first = now
		}
		k := p.number(name)
		p.running = append(p.running, &liveTrial{t: ev.Trial, k: k, start: now})
		verb := "starting"
		if ev.Resumed {
			verb = "resuming from its checkpoint"
		}
		if ev.Attempt > 1 {
			verb += fmt.Sprintf(" (attempt %d)", ev.Attempt)
		}
		p.emit(fmt.Sprintf("%s %s: %s", p.tag(k), name, verb))
	case StateSkipped, StateBusy:
		p.left++
		k := p.number(name)
		what := "already done, skipped"
		if ev.State == StateBusy {
			what = "running in another process, left alone"
			if ev.Err != nil {
				what = ev.Err.Error() + ", left alone"
			}
		}
		p.emit(fmt.Sprintf("%s %s: %s", p.tag(k), name, what))
	default: // the end of a running trial
		lt := p.remove(name)
		k := p.number(name)
		if lt != nil {
			p.work += 1 - lt.base
		}
		elapsed := ev.Elapsed.Round(time.Second)
		var what string
		switch ev.State {
		case StateDone:
			p.done++
			what = "done in " + fmtDuration(elapsed) + p.overall(now, "; ")
		case StateInterrupted:
			what = "interrupted after " + fmtDuration(elapsed) + "; it continues from its checkpoint when the command runs again"
		default:
			p.done++
			what = "FAILED after " + fmtDuration(elapsed)
			if ev.Err != nil {
				what += ": " + firstLine(ev.Err.Error())
			}
			what += p.overall(now, "; ")
		}
		p.emit(fmt.Sprintf("%s %s: %s", p.tag(k), name, what))
	}
}

// OnStep records the progress of a running trial (Runner.OnStep).
func (p *Progress) OnStep(t Trial, sp train.StepProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opts.Now()
	var lt *liveTrial
	for _, r := range p.running {
		if r.t.Name == t.Name {
			lt = r
		}
	}
	if lt == nil {
		return
	}
	if !lt.stepped {
		lt.stepped = true
		lt.firstStep = now.Sub(lt.start)
		if p.compile == 0 {
			p.compile = lt.firstStep
		}
		if sp.Steps > 0 && sp.Epochs > 0 {
			// Done before this step: by an earlier attempt of a resumed trial.
			lt.base = max(fraction(sp)-1/float64(sp.Steps*sp.Epochs), 0)
		}
	}
	lt.p = sp
	epochEnd := sp.Steps > 0 && sp.Step == sp.Steps
	if epochEnd {
		p.epochs = true
	}
	if !p.terminal {
		if epochEnd {
			line := fmt.Sprintf("%s %s: epoch %d/%d trained, loss %.4f, accuracy %.2f%%", p.tag(lt.k), t.Name, sp.Epoch, sp.Epochs, sp.Loss, 100*sp.Acc)
			if lt.epochLines == 0 {
				line += fmt.Sprintf(" (its first step came after %s of loading and compiling)", fmtDuration(lt.firstStep.Round(time.Second)))
			}
			lt.epochLines++
			p.emit(line + p.overall(now, "; "))
		}
		return
	}
	if epochEnd || now.Sub(p.lastDraw) >= 250*time.Millisecond {
		var b strings.Builder
		p.erase(&b)
		p.draw(&b)
		io.WriteString(p.w, b.String())
	}
}

// fraction is the share of a trial's training done at sp.
func fraction(sp train.StepProgress) float64 {
	if sp.Epochs < 1 || sp.Steps < 1 {
		return 0
	}
	return (float64(sp.Epoch-1) + float64(sp.Step)/float64(sp.Steps)) / float64(sp.Epochs)
}

// number returns the trial's number k, numbering it when it is new.
func (p *Progress) number(name string) int {
	if k, ok := p.numbers[name]; ok {
		return k
	}
	p.numbered++
	p.numbers[name] = p.numbered
	return p.numbered
}

// tag returns "[k/N]" (or "[k]" when the total is unknown).
func (p *Progress) tag(k int) string {
	if p.opts.Total > 0 {
		return fmt.Sprintf("[%d/%d]", k, p.opts.Total)
	}
	return fmt.Sprintf("[%d]", k)
}

// remove takes the named trial out of the running ones.
func (p *Progress) remove(name string) *liveTrial {
	for i, r := range p.running {
		if r.t.Name == name {
			p.running = append(p.running[:i], p.running[i+1:]...)
			return r
		}
	}
	return nil
}

// emit writes a permanent line (p.mu held): above the live block on a
// terminal, which it redraws.
func (p *Progress) emit(line string) {
	if !p.terminal {
		fmt.Fprintln(p.w, line)
		return
	}
	var b strings.Builder
	p.erase(&b)
	b.WriteString(line)
	b.WriteString("\033[K\n")
	p.draw(&b)
	io.WriteString(p.w, b.String())
}

// erase moves the cursor to the first line of the live block and clears
// the screen from there.
func (p *Progress) erase(b *strings.Builder) {
	if p.drawn > 0 {
		fmt.Fprintf(b, "\r\033[%dA\033[J", p.drawn)
		p.drawn = 0
	}
}

// draw writes the live block at the cursor.
func (p *Progress) draw(b *strings.Builder) {
	now := p.opts.Now()
	lines := make([]string, 0, len(p.running)+1)
	for _, lt := range p.running {
		lines = append(lines, "  "+p.liveLine(lt, now))
	}
	lines = append(lines, p.overallLine(now))
	for _, l := range lines {
		b.WriteString(p.cut(l))
		b.WriteString("\033[K\n")
	}
	p.drawn = len(lines)
	p.lastDraw = now
}

// liveLine describes a running trial.
func (p *Progress) liveLine(lt *liveTrial, now time.Time) string {
	head := p.tag(lt.k) + " " + lt.t.Name
	if !lt.stepped {
		s := fmt.Sprintf("%s  loading the data and compiling the training step (%s", head, fmtDuration(now.Sub(lt.start).Round(time.Second)))
		if est := p.compileEstimate(); est > 0 {
			s += ", about " + fmtDuration(est.Round(time.Second))
		}
		return s + ")"
	}
	sp := lt.p
	s := fmt.Sprintf("%s  epoch %d/%d  step %d/%d  loss %.4f  acc %.2f%%", head, sp.Epoch, sp.Epochs, sp.Step, sp.Steps, sp.Loss, 100*sp.Acc)
	if sp.Step == sp.Steps {
		s += "  evaluating"
	}
	return s
}

func (p *Progress) compileEstimate() time.Duration {
	if p.compile > 0 {
		return p.compile
	}
	return p.opts.CompileEstimate
}

// overallLine is the last line of the live block.
func (p *Progress) overallLine(now time.Time) string {
	var s string
	switch {
	case p.opts.Total > 0:
		s = fmt.Sprintf("%d of %s done", p.left+p.done, Plural(p.opts.Total, "run"))
	default:
		s = Plural(p.left+p.done, "run") + " done"
	}
	if n := len(p.running); n > 0 {
		s += fmt.Sprintf(", %d running", n)
	}
	return s + p.overall(now, " · ")
}

// overall returns sep + "elapsed X" + sep + "about Y left", the latter
// when it can be told.
func (p *Progress) overall(now time.Time, sep string) string {
	s := sep + "elapsed " + fmtDuration(now.Sub(p.created).Round(time.Second))
	if left, ok := p.timeLeft(now); ok {
		s += sep + "about " + fmtDuration(roundLeft(left)) + " left"
	}
	return s
}

// timeLeft estimates the time until every trial has ended: from the rate
// measured in this process (trials' worth of work per second), blended
// with the per-trial estimate while less than one trial's worth is done.
func (p *Progress) timeLeft(now time.Time) (time.Duration, bool) {
	if p.opts.Total <= 0 {
		return 0, false
	}
	est := p.opts.TrialEstimate
	todo := float64(p.opts.Total - p.left - p.done)
	work, remaining, remainingPrior := p.work, todo, todo
	for _, lt := range p.running {
		f := fraction(lt.p)
		if lt.stepped {
			work += max(f-lt.base, 0)
		}
		remaining -= f
		if est > 0 {
			// By the clock, for trials still compiling or evaluating.
			remainingPrior -= min(max(f, float64(now.Sub(lt.start))/float64(est)), 0.99)
		}
	}
	remaining, remainingPrior = max(remaining, 0), max(remainingPrior, 0)
	prior := time.Duration(float64(est) * remainingPrior / float64(p.opts.Parallel))
	haveMeasured := work > 0 && !p.first.IsZero() && (p.epochs || p.done > 0)
	var measured time.Duration
	if haveMeasured {
		measured = time.Duration(float64(now.Sub(p.first)) * remaining / work)
	}
	switch {
	case est > 0 && haveMeasured:
		w := min(work, 1)
		return time.Duration(w*float64(measured) + (1-w)*float64(prior)), true
	case est > 0:
		return prior, true
	case haveMeasured:
		return measured, true
	}
	return 0, false
}

// cut shortens a line to the terminal width.
func (p *Progress) cut(s string) string {
	if p.opts.Width <= 1 || utf8.RuneCountInString(s) < p.opts.Width {
		return s
	}
	r := []rune(s)
	return string(r[:p.opts.Width-2]) + "…"
}

// roundLeft rounds a time left to what is worth reading: 5 s below two
// minutes, 10 s below ten minutes, else the minute.
func roundLeft(d time.Duration) time.Duration {
	switch {
	case d < 2*time.Minute:
		return d.Round(5 * time.Second)
	case d < 10*time.Minute:
		return d.Round(10 * time.Second)
	}
	return d.Round(time.Minute)
}

// fmtDuration formats d as "45s", "3m05s" or "2h07m".
func fmtDuration(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		s := int(d.Round(time.Second) / time.Second)
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	m := int(d.Round(time.Minute) / time.Minute)
	return fmt.Sprintf("%dh%02dm", m/60, m%60)
}

// firstLine returns the first line of s.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Plural returns "1 run" or "n runs".
func Plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
