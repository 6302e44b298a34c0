package train

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/backends"

	"github.com/sgt-dev/sgt/models"
)

// stepMemoryFactor scales the per-example bytes of a model's forward graph
// to a training step's working memory per example: the activations kept
// for the backward pass, their gradients, and the backend's scratch space.
// The forward graph's sum counts every value of every op, unfused, and
// bounds what sgt's CPU backend keeps: its measured peak resident memory of
// a whole bench run (sgt bench, 2 threads, 2026-12-03) was 0.54 to 0.96 of
// the estimate with factor 1 (ResNet-20 at batch 128 and 512, ResNet-18
// at 64x64 batch 64, ResNet-50 at 224x224 batch 8, 16 and 64: 6.4 GiB
// against 11.8).
const stepMemoryFactor = 1

// memoryNeed is what a run's steps need in memory, from the model's graph.
type memoryNeed struct {
	// perExample is the forward graph's bytes per example of the batch
	// (every value that grows with the batch, the input included).
	perExample int64
	// params is the bytes of the trainable variables.
	params int64
}

// trainStep returns the bytes of a training step of batch examples: the
// activations and their gradients (stepMemoryFactor times the forward
// graph), the weights with their gradients, momentum and update, and the
// loader's prefetched batches.
func (m memoryNeed) trainStep(batch, exampleBytes, prefetch int) int64 {
	return stepMemoryFactor*m.perExample*int64(batch) + 4*m.params + int64(prefetch)*int64(batch)*int64(exampleBytes)
}

// evalStep returns the bytes of an evaluation step of batch examples: the
// forward graph, the weights and the loader's prefetched batches.
func (m memoryNeed) evalStep(batch, exampleBytes, prefetch int) int64 {
	return m.perExample*int64(batch) + m.params + int64(prefetch)*int64(batch)*int64(exampleBytes)
}

// availableMemory returns the bytes this process may still use: the
// smaller of the system's available memory and the cgroup's limit, or 0
// when neither can be read (the check is then skipped).
func availableMemory() int64 {
	avail := meminfoAvailable()
	if limit := cgroupLimit(); limit > 0 && (avail == 0 || limit < avail) {
		avail = limit
	}
	return avail
}

// meminfoAvailable reads MemAvailable from /proc/meminfo (0 if unknown).
func meminfoAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// cgroupLimit reads a cgroup v2 memory limit minus its usage (0 if none).
func cgroupLimit() int64 {
	raw, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return 0 // "max": no limit
	}
	if raw, err := os.ReadFile("/sys/fs/cgroup/memory.current"); err == nil {
		if used, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64); err == nil && used < limit {
			return limit - used
		}
	}
	return limit
}

// gib formats bytes as GiB.
func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// checkMemory refuses settings whose steps cannot fit in the memory
// available (avail bytes; 0 skips the check), naming the flag to change.
// It runs before anything large is allocated.
func checkMemory(cfg *Config, need memoryNeed, exampleBytes, evalBatch, prefetch int, avail int64) error {
	if avail <= 0 {
		return nil
	}
	fits := func(field string, bytes int64, what string) error {
		if bytes <= avail {
			return nil
		}
		return fieldErrorf(field, "%s needs about %s of memory, and %s is available; use a smaller --%s", what, gib(bytes), gib(avail), field)
	}
	if cfg.ImageSize > 0 {
		if err := fits("image-size", need.trainStep(1, exampleBytes, prefetch), fmt.Sprintf("one training example of %dx%d", cfg.ImageSize, cfg.ImageSize)); err != nil {
			return err
		}
	}
	if err := fits("batch-size", need.trainStep(cfg.BatchSize, exampleBytes, prefetch), fmt.Sprintf("a training step of %d examples", cfg.BatchSize)); err != nil {
		return err
	}
	return fits("eval-batch-size", need.evalStep(evalBatch, exampleBytes, prefetch), fmt.Sprintf("an evaluation step of %d examples", evalBatch))
}

// AvailableMemory returns the bytes this process may still use (the
// smaller of the system's available memory and its cgroup's limit), or 0
// when that cannot be read.
func AvailableMemory() int64 { return availableMemory() }

// StepMemory estimates the bytes of one training step of spec on batch
// examples of the given input shape [H, W, C], from the model's graph
// (built on b, not run), as sgt train's own check does.
func StepMemory(b backends.Backend, spec models.Spec, input []int, numClasses, batch int) (int64, error) {
	need, err := probeModel(b, spec, append([]int{1}, input...), numClasses, nil)
	if err != nil {
		return 0, err
	}
	return need.trainStep(batch, 0, 0), nil
}
