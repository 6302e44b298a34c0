package train

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt/models"
	"github.com/sgt-dev/sgt/rundir"
)

// BenchmarkTrainStepMLP measures one SGT train step (alpha 0.3, the default
// optimizer) of the MLP on a batch of 128 MNIST-shaped images; images/s is
// the training throughput.
func BenchmarkTrainStepMLP(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Alpha = 0.3
	spec, err := models.Get("mlp")
	if err != nil {
		b.Fatal(err)
	}
	backend := testBackend(b)
	ctx := mlctx.New()
	if err := ctx.SetRNGStateFromSeed(1); err != nil {
		b.Fatal(err)
	}
	exec, err := mlctx.NewExec(backend, ctx.Checked(false), NewStep(cfg, spec, 10).Train)
	if err != nil {
		b.Fatal(err)
	}
	const bs = 128
	pix := make([]float32, bs*28*28)
	lab := make([]int32, bs)
	for i := range pix {
		pix[i] = float32(i%255) / 255
	}
	for i := range lab {
		lab[i] = int32(i % 10)
	}
	images := tensors.FromFlatDataAndDimensions(pix, bs, 28, 28, 1)
	labels := tensors.FromFlatDataAndDimensions(lab, bs)
	if _, _, err := runStep(exec, "warm-up", images, labels, float32(0.01)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, _, err := runStep(exec, "bench", images, labels, float32(0.01)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*bs)/time.Since(start).Seconds(), "images/s")
}

func TestProgressOutput(t *testing.T) {
	m := rundir.EpochMetrics{Epoch: 1, LR: 0.1, TrainLoss: 0.5, TrainAcc: 0.9, TestLoss: 0.25, TestAcc: 0.95, Seconds: 2, ImagesPerSecond: 100}

	// Not a terminal: one line per epoch, no carriage returns.
	var plain bytes.Buffer
	p := newProgress(&plain, false, 2, 3, 10)
	p.startEpoch(1, 0)
	for s := 1; s <= 3; s++ {
		p.step(s, 0.5, 0.9)
	}
	p.endEpoch(m)
	if got := plain.String(); strings.Contains(got, "\r") || strings.Count(got, "\n") != 1 ||
		!strings.Contains(got, "epoch 1/2") || !strings.Contains(got, "test loss 0.2500 acc 95.00%") {
		t.Errorf("plain progress %q", got)
	}

	// Terminal: a line rewritten in place with step/total, loss and
	// throughput, cleared before the epoch line.
	var term bytes.Buffer
	p = newProgress(&term, true, 2, 3, 10)
	p.startEpoch(1, 0)
	for s := 1; s <= 3; s++ {
		p.step(s, 0.5, 0.9)
	}
	got := term.String()
	if !strings.HasPrefix(got, "\r") || !strings.Contains(got, "step 3/3") || !strings.Contains(got, "loss 0.5000") ||
		!strings.Contains(got, "img/s") || strings.Contains(got, "\n") {
		t.Errorf("interactive progress %q", got)
	}
	p.endEpoch(m)
	if got := term.String(); !strings.HasSuffix(got, "\n") || !strings.Contains(got, "\r\033[Kepoch 1/2  lr") {
		t.Errorf("interactive epoch line %q", got)
	}
}

// BenchmarkConvFilterNorms measures computing the per-filter norms on the
// host for a model with ResNet-18's convolution kernels (11M weights), as a
// run does at every filter-norm record and every epoch end.
func BenchmarkConvFilterNorms(b *testing.B) {
	ctx := mlctx.New()
	shapes := [][4]int{{7, 7, 3, 64}}
	in := 64
	for _, out := range []int{64, 128, 256, 512} {
		for block := range 2 {
			shapes = append(shapes, [4]int{3, 3, in, out}, [4]int{3, 3, out, out})
			if block == 0 && in != out {
				shapes = append(shapes, [4]int{1, 1, in, out})
			}
			in = out
		}
	}
	weights := 0
	for i, s := range shapes {
		n := s[0] * s[1] * s[2] * s[3]
		weights += n
		w := make([]float32, n)
		for j := range w {
			w[j] = float32(j%13) * 0.01
		}
		ctx.Inf("conv%d", i).VariableWithValue("weights", tensors.FromFlatDataAndDimensions(w, s[:]...))
	}
	b.ResetTimer()
	for range b.N {
		if _, err := convFilterNorms(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(weights)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mweights/s")
}
