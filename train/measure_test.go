package train

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt/models"
	"github.com/sgt-dev/sgt/rundir"
)

// logitsSpec is a fake model whose logits are its input images [N, 1, 1, C]
// reshaped to [N, C], and whose features are the logits minus 1.
var logitsSpec = models.Spec{
	Name: "logits",
	Build: func(_ *mlctx.Context, images *graph.Node, numClasses int) *graph.Node {
		return graph.Reshape(images, images.Shape().Dimensions[0], numClasses)
	},
	Features: func(_ *mlctx.Context, images *graph.Node, numClasses int) (features, logits *graph.Node) {
		logits = graph.Reshape(images, images.Shape().Dimensions[0], numClasses)
		return graph.AddScalar(logits, -1), logits
	},
}

// TestEvalStepGraph feeds known logits through the evaluation step and
// compares every output with a direct computation: summed cross-entropy,
// top-1 and top-5 hits, summed logit L2 norms and summed absolute features.
func TestEvalStepGraph(t *testing.T) {
	const n, classes = 40, 12
	rng := rand.New(rand.NewPCG(3, 4))
	z := make([]float32, n*classes)
	for i := range z {
		z[i] = float32(3 * rng.NormFloat64())
	}
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(rng.IntN(classes))
	}
	var wantLoss, wantTop1, wantTop5, wantNorm float64
	wantAbs := make([]float64, classes)
	for i := range n {
		row := z[i*classes : (i+1)*classes]
		maxZ, arg := math.Inf(-1), 0
		var sq, above float64
		for j, v := range row {
			if float64(v) > maxZ {
				maxZ, arg = float64(v), j
			}
			sq += float64(v) * float64(v)
			if v > row[labels[i]] {
				above++
			}
			wantAbs[j] += math.Abs(float64(v) - 1)
		}
		var sumExp float64
		for _, v := range row {
			sumExp += math.Exp(float64(v) - maxZ)
		}
		wantLoss += maxZ + math.Log(sumExp) - float64(row[labels[i]])
		if arg == int(labels[i]) {
			wantTop1++
		}
		if above < 5 {
			wantTop5++
		}
		wantNorm += math.Sqrt(sq)
	}
	if wantTop5 == wantTop1 || wantTop5 == n {
		t.Fatalf("test data does not separate top-1 (%v) from top-5 (%v) of %d", wantTop1, wantTop5, n)
	}

	for _, alpha := range []float64{1, 0.3} { // the forward value ignores alpha
		step := NewStep(Config{Alpha: alpha}, logitsSpec, classes)
		exec, err := mlctx.NewExec(testBackend(t), mlctx.New(), step.Eval)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Exec(tensors.FromFlatDataAndDimensions(z, n, 1, 1, classes), tensors.FromFlatDataAndDimensions(labels, n))
		exec.Finalize()
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != evalFeatureAbs+1 {
			t.Fatalf("%d outputs, want %d", len(out), evalFeatureAbs+1)
		}
		got := make([]float64, evalFeatureAbs)
		for i := range got {
			if got[i], err = scalar(out[i]); err != nil {
				t.Fatal(err)
			}
		}
		for i, want := range []float64{wantLoss, wantTop1, wantTop5, wantNorm} {
			if math.Abs(got[i]-want) > 1e-4*math.Max(1, math.Abs(want)) {
				t.Errorf("alpha %g: output %d = %v, want %v", alpha, i, got[i], want)
			}
		}
		abs, err := accumulate(nil, out[evalFeatureAbs])
		if err != nil {
			t.Fatal(err)
		}
		for j := range abs {
			if math.Abs(abs[j]-wantAbs[j]) > 1e-4*wantAbs[j] {
				t.Errorf("alpha %g: feature %d summed |activation| %v, want %v", alpha, j, abs[j], wantAbs[j])
			}
		}
	}
}

// TestConvFilterNorms checks the per-filter norms against a direct
// computation, and that only trainable rank-4 variables count as filters.
func TestConvFilterNorms(t *testing.T) {
	ctx := mlctx.New()
	const kh, kw, in, out = 3, 2, 4, 5
	w := make([]float32, kh*kw*in*out)
	for i := range w {
		w[i] = float32(i%7) - 3
	}
	for f := range kh * kw * in {
		w[f*out+2] = 0 // filter 2 is zero
	}
	ctx.In("block").In("conv").VariableWithValue("weights", tensors.FromFlatDataAndDimensions(w, kh, kw, in, out))
	ctx.In("dense").VariableWithValue("weights", tensors.FromFlatDataAndDimensions(make([]float32, 6), 2, 3))
	ctx.In("frozen").VariableWithValue("weights", tensors.FromFlatDataAndDimensions(make([]float32, 16), 1, 1, 4, 4)).SetTrainable(false)
	layers, err := convFilterNorms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 || layers[0].Layer != "block/conv" || len(layers[0].Norms) != out {
		t.Fatalf("layers %+v, want only block/conv with %d filters", layers, out)
	}
	for f := range out {
		var sq float64
		for i := range kh * kw * in {
			sq += float64(w[i*out+f]) * float64(w[i*out+f])
		}
		if got := layers[0].Norms[f]; math.Abs(got-math.Sqrt(sq)) > 1e-9 {
			t.Errorf("filter %d: norm %v, want %v", f, got, math.Sqrt(sq))
		}
	}
	if below, total := countBelow(layers, 1e-3); below != 1 || total != out {
		t.Errorf("countBelow: %d of %d, want 1 of %d", below, total, out)
	}
}

// readFilterNorms parses filter_norms.csv into step -> layer -> norms.
func readFilterNorms(t *testing.T, path string) map[int]map[string][]float64 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if lines[0] != "step,layer,filter,norm" {
		t.Fatalf("header %q", lines[0])
	}
	out := map[int]map[string][]float64{}
	for _, line := range lines[1:] {
		parts := strings.Split(line, ",")
		if len(parts) != 4 {
			t.Fatalf("row %q", line)
		}
		step, err1 := strconv.Atoi(parts[0])
		layer := parts[1]
		filter, err2 := strconv.Atoi(parts[2])
		norm, err3 := strconv.ParseFloat(parts[3], 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("row %q: %v", line, err)
		}
		if out[step] == nil {
			out[step] = map[string][]float64{}
		}
		if filter != len(out[step][layer]) {
			t.Fatalf("row %q: filters out of order", line)
		}
		out[step][layer] = append(out[step][layer], norm)
	}
	return out
}

// checkpointFilterNorms computes the per-filter norms of the rank-4
// trainable variables stored in a checkpoint file, independently of the
// trainer.
func checkpointFilterNorms(t *testing.T, path string) map[string][]float64 {
	t.Helper()
	h, payload, err := readCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float64{}
	for _, v := range h.Variables {
		if len(v.Dims) != 4 || !v.Trainable || v.DType != dtypes.Float32.String() {
			continue
		}
		value := tensors.FromShape(shapes.Make(dtypes.Float32, v.Dims...))
		value.MutableBytes(func(b []byte) { copy(b, payload[v.Offset:v.Offset+v.Bytes]) })
		w := tensors.MustCopyFlatData[float32](value)
		filters := v.Dims[3]
		norms := make([]float64, filters)
		for i, x := range w {
			norms[i%filters] += float64(x) * float64(x)
		}
		for i := range norms {
			norms[i] = math.Sqrt(norms[i])
		}
		out[strings.TrimPrefix(v.Scope, "/")] = norms
	}
	return out
}

// TestRunMeasuresConvModel trains ResNet-20 briefly on MNIST on the cpu
// backend and checks what the run records: the extra metrics columns,
// filter_norms.csv at the configured cadence (the last rows equal to norms
// computed independently from the final checkpoint), the counts of
// filters and features, that resuming reproduces the records exactly, and
// that measuring does not change training.
func TestRunMeasuresConvModel(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Model = "resnet20"
	cfg.Backend = "cpu"
	cfg.TrainSize = 256
	cfg.TestSize = 200
	cfg.BatchSize = 64
	cfg.EvalBatchSize = 100
	cfg.Epochs = 2
	cfg.TrainEvalSize = 100
	cfg.FilterNormsEvery = 4 // one epoch is 4 steps: rows at steps 0, 4 and 8
	// Kaiming-normal fan-in initialisation gives every initial filter a norm
	// near sqrt(2) (k*k*cin weights of variance 2/(k*k*cin)): about half are below.
	cfg.ZeroThreshold = math.Sqrt2
	dirA := filepath.Join(t.TempDir(), "a")
	a, err := Run(context.Background(), cfg, Options{Out: dirA})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dirA, rundir.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	header := strings.SplitN(string(raw), "\n", 2)[0]
	for _, col := range []string{"train_eval_loss", "train_eval_acc", "gap", "logit_norm", "zeroed_filters", "filters", "zeroed_features", "features", "data_wait_share"} {
		if !slices.Contains(strings.Split(header, ","), col) {
			t.Errorf("metrics.csv header %q lacks %s", header, col)
		}
	}
	if strings.Contains(header, "test_top5") {
		t.Errorf("test_top5 recorded with 10 classes: %q", header)
	}
	const resnet20Filters = 16 + 6*16 + 6*32 + 6*64 // stem + 3 stages of 3 blocks of 2 convolutions
	for _, m := range a.History {
		if m.Filters != resnet20Filters || m.Features != 64 {
			t.Errorf("epoch %d: %d filters and %d features, want %d and 64", m.Epoch, m.Filters, m.Features, resnet20Filters)
		}
		if !(m.ZeroedFilters >= 16 && m.ZeroedFilters < m.Filters) || m.ZeroedFeatures < 0 || m.ZeroedFeatures > m.Features {
			t.Errorf("epoch %d: zeroed filters %d, features %d", m.Epoch, m.ZeroedFilters, m.ZeroedFeatures)
		}
		if math.Abs(m.Gap-(m.TrainEvalAcc-m.TestAcc)) > 1e-12 || !(m.LogitNorm > 0) || m.TrainEvalAcc < 0 || m.TrainEvalAcc > 1 {
			t.Errorf("epoch %d: gap %v, train-eval acc %v, test acc %v, logit norm %v", m.Epoch, m.Gap, m.TrainEvalAcc, m.TestAcc, m.LogitNorm)
		}
		if m.DataWaitShare < 0 || m.DataWaitShare > 1 {
			t.Errorf("epoch %d: data wait share %v", m.Epoch, m.DataWaitShare)
		}
	}
	var rec rundir.Record
	readJSON(t, filepath.Join(dirA, rundir.ConfigFile), &rec)
	if rec.TrainEvalExamples != 100 || rec.Config.FilterNormsEvery != 4 {
		t.Errorf("config.json: train_eval_examples %d, filter_norms_every %d", rec.TrainEvalExamples, rec.Config.FilterNormsEvery)
	}

	norms := readFilterNorms(t, filepath.Join(dirA, rundir.FilterNormsFile))
	if steps := len(norms); steps != 3 || norms[0] == nil || norms[4] == nil || norms[8] == nil {
		t.Fatalf("filter norms at %d steps, want 0, 4 and 8", steps)
	}
	final := checkpointFilterNorms(t, filepath.Join(dirA, rundir.CheckpointDir, checkpointName(2)))
	if len(final) != 19 || len(norms[8]) != 19 {
		t.Fatalf("%d conv layers in the checkpoint, %d in filter_norms.csv; want 19", len(final), len(norms[8]))
	}
	zeroed := 0
	for layer, want := range final {
		got := norms[8][layer]
		if len(got) != len(want) {
			t.Fatalf("layer %s: %d filters recorded, %d in the checkpoint", layer, len(got), len(want))
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-6*want[i] {
				t.Errorf("layer %s filter %d: recorded norm %v, checkpoint %v", layer, i, got[i], want[i])
			}
			if got[i] < cfg.ZeroThreshold {
				zeroed++
			}
		}
		if slices.Equal(norms[0][layer], got) {
			t.Errorf("layer %s: norms unchanged by training", layer)
		}
	}
	if zeroed != a.Final.ZeroedFilters {
		t.Errorf("%d recorded norms below the threshold, metrics say %d", zeroed, a.Final.ZeroedFilters)
	}

	// Stopped after epoch 1 with a row of a later step and a cut-off line
	// left behind (as by a kill), then resumed: the same records.
	dirB := filepath.Join(t.TempDir(), "b")
	if err := runStopped(t, cfg, Options{Out: dirB}, 1); err == nil {
		t.Fatal("stopped run succeeded")
	}
	f, err := os.OpenFile(filepath.Join(dirB, rundir.FilterNormsFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("5,resnet/stem/conv,0,1\n6,resnet/stem/co")
	f.Close()
	b, err := Run(context.Background(), Config{}, Options{Out: dirB, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	sameMetrics(t, "resumed", a.History, b.History)
	rawA, _ := os.ReadFile(filepath.Join(dirA, rundir.FilterNormsFile))
	rawB, _ := os.ReadFile(filepath.Join(dirB, rundir.FilterNormsFile))
	if string(rawA) != string(rawB) {
		t.Errorf("filter_norms.csv of the resumed run differs from the uninterrupted one")
	}

	// Measuring changes nothing in training.
	plain := cfg
	plain.TrainEvalSize, plain.FilterNormsEvery = 0, 0
	c, err := Run(context.Background(), plain, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.History {
		x, y := a.History[i], c.History[i]
		if x.TrainLoss != y.TrainLoss || x.TestLoss != y.TestLoss || x.TestAcc != y.TestAcc || x.ZeroedFilters != y.ZeroedFilters {
			t.Errorf("epoch %d without measurements: %+v\nwith: %+v", i+1, y, x)
		}
		if !math.IsNaN(y.TrainEvalAcc) || !math.IsNaN(y.Gap) {
			t.Errorf("epoch %d: train-eval measured although off: %+v", i+1, y)
		}
	}
}
