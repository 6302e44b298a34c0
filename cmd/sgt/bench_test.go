package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// refBackend is GoMLX's pure-Go backend running its ops one at a time (its
// parallel executor has data races in GoMLX v0.26 that the race detector
// reports): the bench command on a backend other than the default.
const refBackend = "go:ops_sequential"

func TestBenchJSON(t *testing.T) {
	code, out, errOut := runCLI(t, "bench", "--model", "mlp", "--backend", refBackend, "--steps", "2", "--time", "0", "--warmup", "1", "--repeats", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, out)
	}
	for _, key := range []string{"model", "batch", "backend", "images_per_s", "images_per_s_windows", "peak_rss_bytes", "alpha", "threads"} {
		if _, ok := res[key]; !ok {
			t.Errorf("JSON lacks %q: %s", key, out)
		}
	}
	if res["model"] != "mlp" || res["backend"] != refBackend || res["batch"] != 128.0 || res["alpha"] != 1.0 {
		t.Errorf("model %v backend %v batch %v alpha %v; want mlp, %s, 128, 1", res["model"], res["backend"], res["batch"], res["alpha"], refBackend)
	}
	if ips, _ := res["images_per_s"].(float64); !(ips > 0) {
		t.Errorf("images_per_s = %v, want > 0", res["images_per_s"])
	}
	if w, _ := res["images_per_s_windows"].([]any); len(w) != 1 {
		t.Errorf("images_per_s_windows = %v, want one window", res["images_per_s_windows"])
	}
	if rss, _ := res["peak_rss_bytes"].(float64); rss < 1<<20 {
		t.Errorf("peak_rss_bytes = %v, want at least 1 MiB", res["peak_rss_bytes"])
	}
	if th, _ := res["threads"].(float64); th < 1 {
		t.Errorf("threads = %v", res["threads"])
	}
}

// TestBenchTrains checks that the timed step is a real training step: on a
// single repeated batch, with the SGT backward (alpha 0.5), the MLP's loss
// falls far below its starting value log(10) ≈ 2.3.
func TestBenchTrains(t *testing.T) {
	code, out, errOut := runCLI(t, "bench", "--model", "mlp", "--backend", refBackend, "--batch", "16", "--pool", "1",
		"--steps", "15", "--time", "0", "--warmup", "1", "--alpha", "0.5", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res benchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Windows) != 1 || res.Windows[0].Steps != 15 {
		t.Fatalf("windows %+v, want one of 15 steps", res.Windows)
	}
	if loss := res.Windows[0].Loss; !(loss < 0.5) {
		t.Errorf("loss after 16 steps on one batch is %g, want < 0.5", loss)
	}
	if res.Alpha != 0.5 || res.Batch != 16 {
		t.Errorf("alpha %g batch %d, want 0.5 and 16", res.Alpha, res.Batch)
	}
}

func TestBenchText(t *testing.T) {
	code, out, errOut := runCLI(t, "bench", "--model", "mlp", "--backend", refBackend, "--batch", "8", "--steps", "2", "--time", "0", "--warmup", "0", "--repeats", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"# model=mlp params=203530 batch=8", "window 0: steps=2", "window 1: steps=2", "RESULT model=mlp", "images_per_s_median=", "peak_rss_bytes="} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--model", "resnet7"}, {"--batch", "-1"}, {"--alpha", "-0.5"}, {"--alpha", "NaN"},
		{"--steps", "0"}, {"--time", "-1"}, {"--repeats", "0"}, {"--warmup", "-1"}, {"--pool", "0"},
		{"--threads", "-2"}, {"--lr", "0"}, {"--backend", "nosuch"}, {"--isa", "nosuch"}, {"--bogus"}, {"extra"}, {"--batch", "x"},
		{"--time", "1e10"}, {"--batch", "100000000"}, {"--cpuprofile", "/nonexistent-folder/cpu.prof"},
		{"--scaling", "1"}, {"--scaling", "-3"}, {"--scaling", "4", "--threads", "2"}, {"--scaling", "4", "--backend", refBackend},
	} {
		code, _, errOut := runCLI(t, append([]string{"bench"}, args...)...)
		if code != 2 || errOut == "" {
			t.Errorf("sgt bench %v: exit %d (stderr %q), want 2 with a message", args, code, errOut)
		}
	}
}

// TestBenchCPUProfile checks that --cpuprofile writes a CPU profile in
// pprof's format (gzipped protocol buffers).
func TestBenchCPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	code, _, errOut := runCLI(t, "bench", "--model", "mlp", "--backend", refBackend, "--batch", "8", "--steps", "2", "--time", "0.2",
		"--warmup", "1", "--repeats", "1", "--cpuprofile", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("profile is not gzipped: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil || len(raw) == 0 {
		t.Fatalf("profile: %d bytes, %v", len(raw), err)
	}
	// A CPU profile's string table names its sample types and period.
	for _, want := range []string{"samples", "cpu", "nanoseconds"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("profile's strings lack %q: not a CPU profile", want)
		}
	}
}

// TestBenchScaling: --scaling N times the step on one thread with the
// kernels split for N workers and predicts the speedup at 1, 2, 4, ... N
// threads: one thread predicts no speedup, and more threads more, never
// more than the thread count.
func TestBenchScaling(t *testing.T) {
	code, out, errOut := runCLI(t, "bench", "--model", "resnet20", "--batch", "16", "--backend", "cpu", "--steps", "2", "--time", "0",
		"--warmup", "1", "--repeats", "1", "--scaling", "4", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res benchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	s := res.Scaling
	if s == nil || s.Workers != 4 || res.Threads != 1 || len(s.Predicted) != 3 {
		t.Fatalf("scaling %+v, threads %d; want 4 workers predicted at 1, 2, 4 threads, run on 1", s, res.Threads)
	}
	if s.Calls == 0 || s.ParallelSeconds <= 0 || s.SerialFraction < 0 || s.SerialFraction >= 1 {
		t.Errorf("scaling %+v: want parallel calls, a positive parallel time and a serial fraction in [0, 1)", s)
	}
	prev := 0.0
	for _, pt := range s.Predicted {
		if pt.Threads == 1 && math.Abs(pt.Speedup-1) > 1e-9 {
			t.Errorf("1 thread: predicted speedup %v, want 1", pt.Speedup)
		}
		if pt.Speedup < prev || pt.Speedup > float64(pt.Threads)+1e-9 {
			t.Errorf("%d threads: predicted speedup %v after %v", pt.Threads, pt.Speedup, prev)
		}
		prev = pt.Speedup
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %g, want %g", tc.xs, got, tc.want)
		}
	}
}
