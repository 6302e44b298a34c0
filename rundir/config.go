package rundir

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/atomicfile"
)

// Config holds every setting of a training run. Its JSON form is recorded in
// config.json.
type Config struct {
	// Data is the dataset name: a dataset name ("mnist", "fashion-mnist",
	// "cifar10", "cifar100") or "imagefolder". DataDir is
	// the directory to read it from ("" for the default location; required
	// for an image folder, where it holds the train and val folders).
	Data    string `json:"data"`
	DataDir string `json:"data_dir"`
	// ImageSize is the side of the square images an image folder is cropped
	// and resized to (0: 224). Only used with "imagefolder".
	ImageSize int `json:"image_size"`
	// Model is a registered model name (see "sgt models").
	Model string `json:"model"`
	// SmallStem replaces an ImageNet-style ResNet's 7x7/2 stem and max pool
	// by a 3x3/1 convolution, for small images such as 28x28 or 32x32.
	SmallStem bool `json:"small_stem"`
	// Alpha is the SGT exponent of the backward pass (1: plain training).
	Alpha float64 `json:"alpha"`
	// LabelSmoothing is the label-smoothing amount eps in [0, 1).
	LabelSmoothing float64 `json:"label_smoothing"`
	// Epochs is the number of passes over the training set.
	Epochs int `json:"epochs"`
	// BatchSize is the number of examples per optimizer step; the last
	// incomplete batch of each epoch is dropped.
	BatchSize int `json:"batch_size"`
	// EvalBatchSize is the batch size of evaluation (0: BatchSize).
	EvalBatchSize int `json:"eval_batch_size"`
	// LR is the peak learning rate.
	LR float64 `json:"lr"`
	// Momentum is the SGD momentum coefficient in [0, 1) and Nesterov
	// selects Nesterov momentum.
	Momentum float64 `json:"momentum"`
	Nesterov bool    `json:"nesterov"`
	// WeightDecay is added to the gradient as WeightDecay*w (PyTorch SGD).
	WeightDecay float64 `json:"weight_decay"`
	// ExemptVectors leaves parameters of rank <= 1 (biases, batch-norm
	// scales and offsets) undecayed; by default (as in PyTorch) every
	// parameter is decayed.
	ExemptVectors bool `json:"wd_exempt_vectors"`
	// ClipNorm is the global-norm gradient clipping threshold (0: off).
	ClipNorm float64 `json:"clip_norm"`
	// AGC is the adaptive gradient clipping factor lambda (0: off).
	AGC float64 `json:"agc"`
	// AGCFinal also applies AGC to the final layer.
	AGCFinal bool `json:"agc_final"`
	// Schedule is the learning-rate schedule: constant, cosine or step.
	Schedule string `json:"schedule"`
	// WarmupEpochs is the length of the linear warm-up, which starts at
	// WarmupStartLR.
	WarmupEpochs  float64 `json:"warmup_epochs"`
	WarmupStartLR float64 `json:"warmup_start_lr"`
	// Milestones are the epochs at which the step schedule divides the
	// learning rate by 10.
	Milestones []int `json:"milestones,omitempty"`
	// WarmupReplaces makes the warm-up replace the first epochs of the
	// cosine, as timm's CosineLRScheduler does (warmup_prefix=False): after
	// the warm-up the cosine is evaluated at the run's own epoch over its
	// whole length. By default (false) the cosine starts after the warm-up
	// and spans the epochs left. The step and constant schedules count from
	// the run's start either way.
	WarmupReplaces bool `json:"warmup_replaces"`
	// MinLR is the cosine schedule's floor and the learning rate of its
	// cool-down (timm's min_lr); 0 by default.
	MinLR float64 `json:"min_lr"`
	// CooldownEpochs is the number of final epochs run at MinLR after the
	// cosine (timm's cooldown_epochs): the cosine spans the first
	// Epochs-CooldownEpochs epochs. Only the cosine schedule has one.
	CooldownEpochs int `json:"cooldown_epochs"`
	// LRUpdate says when the learning rate changes: "step" (the default;
	// "" reads as "step") at every optimizer step, or "epoch" once per
	// epoch, computed from the epoch's index (timm's t_in_epochs=True), so
	// that it is constant within an epoch and the warm-up rises in steps of
	// whole epochs.
	LRUpdate string `json:"lr_update"`
	// Augment selects the training-data augmentation (see "sgt train -h";
	// "" means "auto").
	Augment string `json:"augment"`
	// Seed seeds the weight initialisation, the model's random numbers and
	// the data order.
	Seed int64 `json:"seed"`
	// TrainSize and TestSize limit the number of examples used (0: all).
	TrainSize int `json:"train_size"`
	TestSize  int `json:"test_size"`
	// TrainEvalSize is the number of training examples (the first ones of
	// the training set used) evaluated after every epoch without
	// augmentation and in inference mode, giving train_eval_loss,
	// train_eval_acc and the generalisation gap. 0 disables this pass; a
	// number above the training set's size means all of it.
	TrainEvalSize int `json:"train_eval_size"`
	// ZeroThreshold is the absolute threshold below which a convolution
	// filter's weight L2 norm, or a pooled feature's mean absolute
	// activation over the test set, counts as zeroed out.
	ZeroThreshold float64 `json:"zero_threshold"`
	// FilterNormsEvery is the cadence, in optimizer steps, at which the
	// weight L2 norm of every convolution filter is appended to
	// filter_norms.csv: N > 0 every N steps, -1 at the
	// end of every epoch, 0 never. The initial norms (step 0) are recorded
	// too whenever it is not 0.
	FilterNormsEvery int `json:"filter_norms_every"`
	// Backend is the requested GoMLX backend ("" for the automatic choice).
	Backend string `json:"backend"`
	// Precision is the dtype of the activations, convolutions and matrix
	// multiplications: "float32" or "bfloat16" (mixed precision: float32
	// master weights, optimizer state, batch-norm statistics, loss and
	// tampered softmax).
	Precision string `json:"precision"`
	// Recipe names the recipe the settings started from ("" for none); see
	// "sgt recipes". It is recorded, not interpreted.
	Recipe string `json:"recipe,omitempty"`
}

// Field is one setting of a Config as it appears in config.json: its JSON
// key and its value formatted as text.
type Field struct {
	Key, Value string
}

// Fields returns c's settings in declaration order, keyed by their JSON
// names, with values formatted as in config.json (lists comma-separated).
func (c Config) Fields() []Field {
	v := reflect.ValueOf(c)
	t := v.Type()
	out := make([]Field, 0, t.NumField())
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if key == "" || key == "-" {
			continue
		}
		out = append(out, Field{Key: key, Value: formatValue(v.Field(i))})
	}
	return out
}

// formatValue formats one Config field.
func formatValue(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = formatValue(v.Index(i))
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(v.Interface())
	}
}

// Diff returns the settings in which a and b differ, one "key: a vs b"
// entry per field, in declaration order; nil when they are equal. Settings
// that mean the same are equal: an empty and a nil list, an evaluation
// batch size of 0 and the training batch size, and the values records of
// earlier versions lack (see upgrade).
func Diff(a, b Config) []string {
	a, b = a.canonical(), b.canonical()
	fa, fb := a.Fields(), b.Fields()
	var out []string
	for i := range fa {
		if fa[i].Value != fb[i].Value {
			out = append(out, fmt.Sprintf("%s: %s vs %s", fa[i].Key, quoteEmpty(fa[i].Value), quoteEmpty(fb[i].Value)))
		}
	}
	return out
}

func quoteEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// FileFingerprint identifies a data file cheaply: its size and a SHA-256
// hash of its head and tail (of the whole file when it is small), so that a
// resumed run can tell that its data changed.
type FileFingerprint struct {
	// Path is the file as the run read it.
	Path string `json:"path"`
	// Size is the file's length in bytes.
	Size int64 `json:"size"`
	// SHA256 is the hex hash described by Method.
	SHA256 string `json:"sha256"`
	// Method says what was hashed, e.g. "full" or "head+tail 65536".
	Method string `json:"method"`
}

// Record is the content of config.json: every setting of the run and where
// it ran. A resumed run restores everything from it.
type Record struct {
	// ID identifies the run however its directory is reached (a random
	// hex string made when the run starts; empty in runs recorded before
	// it existed).
	ID string `json:"id,omitempty"`
	// Config holds every training setting.
	Config Config `json:"config"`
	// Sources says, per setting (keyed by its JSON name), where a recipe's
	// value comes from: "paper: ...", "authors' code: ..." or "chosen:
	// ..." (empty without a recipe).
	Sources map[string]string `json:"sources,omitempty"`
	// KeepCheckpoints is the number of recent epoch checkpoints the run
	// keeps (see "sgt train --keep-checkpoints"); a resumed run keeps it.
	KeepCheckpoints int `json:"keep_checkpoints"`
	// CodeVersion is the VCS revision of the binary ("+dirty" when built
	// from a modified tree).
	CodeVersion string `json:"code_version"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Backend is the GoMLX backend's name and BackendConfig the
	// configuration it was created with.
	Backend       string `json:"backend"`
	BackendConfig string `json:"backend_config"`
	// TrainSources and TestSources name the files the data came from.
	TrainSources []string `json:"train_sources"`
	TestSources  []string `json:"test_sources"`
	// Data fingerprints every data file, checked again on resume.
	Data []FileFingerprint `json:"data,omitempty"`
	// TrainExamples and TestExamples count the examples used.
	TrainExamples int `json:"train_examples"`
	TestExamples  int `json:"test_examples"`
	// TrainEvalExamples counts the training examples evaluated cleanly
	// after every epoch (0: none; see Config.TrainEvalSize).
	TrainEvalExamples int `json:"train_eval_examples"`
	// Classes is the number of classes.
	Classes int `json:"classes,omitempty"`
	// StepsPerEpoch is the number of optimizer steps in one epoch.
	StepsPerEpoch int `json:"steps_per_epoch"`
	// Parameters counts the model's trainable parameters.
	Parameters int `json:"parameters"`
	// Optimizer describes the chain of gradient transforms.
	Optimizer string `json:"optimizer"`
	// Started is the wall-clock start time (RFC 3339).
	Started string `json:"started"`
	// Warnings lists settings outside the paper's range and similar notes.
	Warnings []string `json:"warnings,omitempty"`
}

// NewID returns a new random run ID.
func NewID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return ""
	}
	return hex.EncodeToString(b[:])
}

// WriteRecord writes rec to dir's config.json.
func WriteRecord(dir string, rec *Record) error {
	return atomicfile.WriteJSON(filepath.Join(dir, ConfigFile), rec)
}

// ReadRecord reads dir's config.json. Errors name the file and, for a
// value of the wrong type, the field.
func ReadRecord(dir string) (*Record, error) {
	path := filepath.Join(dir, ConfigFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("%s: %w", path, describeJSONError(err))
	}
	if top == nil {
		return nil, fmt.Errorf("%s: holds %s, not a run record (an object with a \"config\" field)", path, strings.TrimSpace(string(raw)))
	}
	if c, ok := top["config"]; !ok || string(c) == "null" {
		return nil, fmt.Errorf("%s: no \"config\" object", path)
	}
	var rec Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, describeJSONError(err))
	}
	rec.Config.upgrade()
	return &rec, nil
}

// canonical returns c with the settings that have two spellings of the
// same meaning written one way.
func (c Config) canonical() Config {
	c.upgrade()
	if c.EvalBatchSize == 0 {
		c.EvalBatchSize = c.BatchSize
	}
	return c
}

// upgrade gives the settings that records of earlier versions lack the
// value those versions used.
func (c *Config) upgrade() {
	if c.LRUpdate == "" {
		c.LRUpdate = "step" // per-step updates, the only kind before lr_update
	}
	if c.Precision == "" {
		c.Precision = "float32" // the only precision before precision
	}
}

// describeJSONError names the field of a JSON type error.
func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("field %q: %s is not a valid %s", te.Field, te.Value, te.Type)
	}
	return err
}
