package train

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/sgt-dev/sgt/rundir"
)

// progress reports a run's advance: on a terminal a single line rewritten in
// place ("\r") with the step, the running loss and the throughput; otherwise
// one line per epoch.
type progress struct {
	w              io.Writer
	interactive    bool
	epochs, steps  int
	epoch          int
	epochStart     time.Time
	lastPrint      time.Time
	lineOpen       bool
	imagesPerStep  int
	stepsThisEpoch int
	firstStep      int // the step the epoch (re)started at
}

// newProgress returns a reporter writing to w (nil: silent).
func newProgress(w io.Writer, interactive bool, epochs, steps, batchSize int) *progress {
	return &progress{w: w, interactive: interactive, epochs: epochs, steps: steps, imagesPerStep: batchSize}
}

// startEpoch marks the start of an epoch, or of its rest from step
// done on (a resumed run).
func (p *progress) startEpoch(epoch, done int) {
	p.epoch = epoch
	p.epochStart = time.Now()
	p.stepsThisEpoch = done
	p.firstStep = done
}

// step records that step (counted from 1 in the epoch) finished, with the
// running mean loss and accuracy of the epoch so far.
func (p *progress) step(step int, loss, acc float64) {
	now := time.Now()
	p.stepsThisEpoch = step
	if p.w == nil || !p.interactive {
		return
	}
	if step != p.steps && now.Sub(p.lastPrint) < 200*time.Millisecond {
		return
	}
	p.lastPrint = now
	secs := now.Sub(p.epochStart).Seconds()
	rate := 0.0
	if secs > 0 && p.imagesPerStep > 0 {
		rate = float64((step-p.firstStep)*p.imagesPerStep) / secs
	}
	fmt.Fprintf(p.w, "\r\033[Kepoch %d/%d  step %d/%d  loss %.4f  acc %.2f%%  %.0f img/s",
		p.epoch, p.epochs, step, p.steps, loss, 100*acc, rate)
	p.lineOpen = true
}

// endEpoch prints the epoch's metrics.
func (p *progress) endEpoch(m rundir.EpochMetrics) {
	if p.w == nil {
		return
	}
	p.clearLine()
	fmt.Fprintf(p.w, "epoch %d/%d  lr %.4g  train loss %.4f acc %.2f%%", m.Epoch, p.epochs, m.LR, m.TrainLoss, 100*m.TrainAcc)
	if !math.IsNaN(m.TrainEvalAcc) {
		fmt.Fprintf(p.w, "  train-eval acc %.2f%%", 100*m.TrainEvalAcc)
	}
	fmt.Fprintf(p.w, "  test loss %.4f acc %.2f%%", m.TestLoss, 100*m.TestAcc)
	if !math.IsNaN(m.TestTop5) {
		fmt.Fprintf(p.w, " top-5 %.2f%%", 100*m.TestTop5)
	}
	if m.Filters > 0 {
		fmt.Fprintf(p.w, "  zeroed filters %d/%d", m.ZeroedFilters, m.Filters)
	}
	fmt.Fprintf(p.w, "  %.1fs  %.0f img/s  data wait %.0f%%\n", m.Seconds, m.ImagesPerSecond, 100*m.DataWaitShare)
}

// abort ends an open progress line before an error is reported.
func (p *progress) abort() {
	if p.w != nil {
		p.clearLine()
	}
}

// clearLine erases the in-place progress line, if one is shown.
func (p *progress) clearLine() {
	if p.lineOpen {
		fmt.Fprint(p.w, "\r\033[K")
		p.lineOpen = false
	}
}
