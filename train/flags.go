package train

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/models"
	"github.com/sgt-dev/sgt/train/optim"
)

// Setting is one training setting given by its flag name (without dashes)
// and its value as written on a command line, e.g. {"alpha", "0.3"}.
type Setting struct {
	// Name is the flag name, e.g. "label-smoothing".
	Name string `json:"name"`
	// Value is the flag's value as text.
	Value string `json:"value"`
}

// ListFlag is implemented by the values of flags whose own value is a
// comma-separated list (--milestones 30,60,90): a grid never splits such a
// value into alternatives on commas.
type ListFlag interface {
	flag.Value
	// IsList reports that the flag's value is a list.
	IsList() bool
}

// intList is a flag.Value for a comma-separated list of integers, bound to
// a slice of the configuration.
type intList struct{ p *[]int }

// String implements flag.Value.
func (l intList) String() string {
	if l.p == nil {
		return ""
	}
	parts := make([]string, len(*l.p))
	for i, v := range *l.p {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value.
func (l intList) Set(s string) error {
	*l.p = nil
	if strings.TrimSpace(s) == "" {
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("%q is not an integer", part)
		}
		*l.p = append(*l.p, v)
	}
	return nil
}

// IsList implements ListFlag.
func (intList) IsList() bool { return true }

// PrecisionValue is a flag.Value for a precision, bound to a string: it
// takes the names of PrecisionNames and the usual short forms (bf16, fp32,
// f32) and stores the full name.
type PrecisionValue struct{ P *string }

// String implements flag.Value.
func (v PrecisionValue) String() string {
	if v.P == nil {
		return ""
	}
	return *v.P
}

// Set implements flag.Value.
func (v PrecisionValue) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "bfloat16", "bf16":
		*v.P = PrecisionBF16
	case "float32", "fp32", "f32":
		*v.P = PrecisionFloat32
	default:
		return fmt.Errorf("unknown precision %q (known: %s, bf16)", s, strings.Join(PrecisionNames, ", "))
	}
	return nil
}

// DefineFlags defines on fs one flag per setting of Config, bound to cfg:
// parsing fs writes into cfg, and each flag's default is cfg's value when
// DefineFlags is called. These are the flags of "sgt train", and the ones
// grids and searches vary: every tool that turns flags into a Config goes
// through here.
func DefineFlags(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.Data, "data", cfg.Data, "dataset: "+strings.Join(DataNames(), ", ")+" (imagefolder: --data-dir holds train/<class>/ and val/<class>/ (or test/<class>/) image folders)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory holding the dataset files (default: the dataset's usual location; required for imagefolder)")
	fs.BoolVar(&cfg.SmallStem, "small-stem", cfg.SmallStem, "give ImageNet-style ResNets a 3x3/1 stem without max pool, for small images (28x28, 32x32)")
	fs.IntVar(&cfg.ImageSize, "image-size", cfg.ImageSize, "side of the square images of --data imagefolder (0: 224); training takes random resized crops, evaluation resizes and centre-crops")
	fs.StringVar(&cfg.Model, "model", cfg.Model, "model: "+strings.Join(models.Names(), ", "))
	fs.Float64Var(&cfg.Alpha, "alpha", cfg.Alpha, "SGT exponent of the backward pass, 0 <= alpha <= 1 in the paper (1: plain training)")
	fs.Float64Var(&cfg.LabelSmoothing, "label-smoothing", cfg.LabelSmoothing, "label smoothing eps in [0, 1)")
	fs.IntVar(&cfg.Epochs, "epochs", cfg.Epochs, "number of epochs")
	fs.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "training batch size (the last incomplete batch of an epoch is dropped)")
	fs.IntVar(&cfg.EvalBatchSize, "eval-batch-size", cfg.EvalBatchSize, "evaluation batch size (0: --batch-size)")
	fs.Float64Var(&cfg.LR, "lr", cfg.LR, "peak learning rate")
	fs.Float64Var(&cfg.Momentum, "momentum", cfg.Momentum, "SGD momentum in [0, 1)")
	fs.BoolVar(&cfg.Nesterov, "nesterov", cfg.Nesterov, "use Nesterov momentum")
	fs.Float64Var(&cfg.WeightDecay, "weight-decay", cfg.WeightDecay, "weight decay added to the gradient (PyTorch SGD style)")
	fs.BoolVar(&cfg.ExemptVectors, "wd-exempt-vectors", cfg.ExemptVectors, "do not decay biases and batch-norm parameters (rank <= 1)")
	fs.Float64Var(&cfg.ClipNorm, "clip-norm", cfg.ClipNorm, "clip the gradient to this global L2 norm (0: off)")
	fs.Float64Var(&cfg.AGC, "agc", cfg.AGC, "adaptive gradient clipping factor lambda (0: off)")
	fs.BoolVar(&cfg.AGCFinal, "agc-final", cfg.AGCFinal, "apply adaptive gradient clipping to the final layer too")
	fs.StringVar(&cfg.Schedule, "schedule", cfg.Schedule, "learning-rate schedule: "+strings.Join(optim.ScheduleNames, ", "))
	fs.Float64Var(&cfg.WarmupEpochs, "warmup-epochs", cfg.WarmupEpochs, "linear warm-up length in epochs (0: none)")
	fs.Float64Var(&cfg.WarmupStartLR, "warmup-start-lr", cfg.WarmupStartLR, "learning rate at the start of the warm-up")
	fs.Var(intList{&cfg.Milestones}, "milestones", "comma-separated epochs at which --schedule step divides the learning rate by 10")
	fs.BoolVar(&cfg.WarmupReplaces, "warmup-replaces", cfg.WarmupReplaces, "the warm-up replaces the cosine's first epochs, which is then evaluated at the run's own epoch (timm's warmup_prefix=False); default: the cosine starts after the warm-up")
	fs.Float64Var(&cfg.MinLR, "min-lr", cfg.MinLR, "floor of --schedule cosine and learning rate of its cool-down (timm's --min-lr)")
	fs.IntVar(&cfg.CooldownEpochs, "cooldown-epochs", cfg.CooldownEpochs, "final epochs of --schedule cosine run at --min-lr; the cosine spans the epochs before them (timm's --cooldown-epochs)")
	fs.StringVar(&cfg.LRUpdate, "lr-update", cfg.LRUpdate, "when the learning rate changes: "+strings.Join(optim.LRUpdateNames, ", ")+" (epoch: once per epoch from the epoch's index, as timm's schedulers)")
	fs.StringVar(&cfg.Augment, "augment", cfg.Augment, "training augmentation: "+strings.Join(AugmentNames, ", ")+" (auto: pad-crop-flip for CIFAR, random-resized-crop for imagefolder, none otherwise)")
	fs.Int64Var(&cfg.Seed, "seed", cfg.Seed, "random seed (weights, data order)")
	fs.IntVar(&cfg.TrainSize, "train-size", cfg.TrainSize, "use only N training examples (0: all)")
	fs.IntVar(&cfg.TestSize, "test-size", cfg.TestSize, "use only N test examples (0: all)")
	fs.IntVar(&cfg.TrainEvalSize, "train-eval-size", cfg.TrainEvalSize, "training examples evaluated after every epoch without augmentation, in inference mode (train_eval_acc, gap); 0: off, more than the training set: all of it")
	fs.Float64Var(&cfg.ZeroThreshold, "zero-threshold", cfg.ZeroThreshold, "absolute threshold below which a conv filter's weight L2 norm, or a pooled feature's mean |activation| on the test set, counts as zeroed out")
	fs.IntVar(&cfg.FilterNormsEvery, "filter-norms-every", cfg.FilterNormsEvery, "append every conv filter's weight norm to filter_norms.csv every N steps (-1: at the end of every epoch, 0: never)")
	fs.StringVar(&cfg.Backend, "backend", cfg.Backend, "GoMLX backend (default: automatic); convolutional models need cpu or xla")
	fs.Var(PrecisionValue{&cfg.Precision}, "precision", "compute precision: "+strings.Join(PrecisionNames, ", ")+" (or bf16; bfloat16: mixed precision with float32 weights, loss and tampered softmax; needs a backend with bfloat16 arithmetic, such as XLA on a GPU)")
}

// FlagSet returns a flag set holding the flags of DefineFlags bound to cfg,
// for introspection (names, kinds, usage) and for applying settings.
func FlagSet(cfg *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	DefineFlags(fs, cfg)
	return fs
}

// IsBoolFlag reports whether f is a boolean flag (given bare, it takes no
// value).
func IsBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// IsListFlag reports whether f's own value is a comma-separated list.
func IsListFlag(f *flag.Flag) bool {
	l, ok := f.Value.(ListFlag)
	return ok && l.IsList()
}

// ErrUnknownSetting is wrapped by the error of Apply for a name that is no
// flag of DefineFlags.
var ErrUnknownSetting = errors.New("unknown setting")

// Apply returns base with the settings applied in order, as if they were
// given as flags over base's values. A setting that overrides one of two
// exclusive settings clears base's other one: a --schedule other than step
// drops base's milestones, one other than cosine base's --min-lr and
// --cooldown-epochs, --clip-norm base's adaptive clipping and vice
// versa, and --data other than imagefolder base's image size. Errors are
// *FieldError values naming the flag.
func Apply(base Config, settings []Setting) (Config, error) {
	set := map[string]bool{}
	for _, s := range settings {
		set[s.Name] = true
	}
	cfg := base
	cfg.Milestones = slices.Clone(base.Milestones)
	fs := FlagSet(&cfg)
	for _, s := range settings {
		if fs.Lookup(s.Name) == nil {
			return base, &FieldError{Field: s.Name, Err: ErrUnknownSetting}
		}
		if err := fs.Set(s.Name, s.Value); err != nil {
			return base, &FieldError{Field: s.Name, Err: fmt.Errorf("invalid value %q: %w", s.Value, err)}
		}
	}
	if set["schedule"] && !set["milestones"] && cfg.Schedule != optim.ScheduleStep {
		cfg.Milestones = nil
	}
	if set["schedule"] && cfg.Schedule != optim.ScheduleCosine {
		if !set["min-lr"] {
			cfg.MinLR = 0
		}
		if !set["cooldown-epochs"] {
			cfg.CooldownEpochs = 0
		}
	}
	if set["clip-norm"] && !set["agc"] && cfg.ClipNorm > 0 {
		cfg.AGC = 0
	}
	if set["agc"] && !set["clip-norm"] && cfg.AGC > 0 {
		cfg.ClipNorm = 0
	}
	if set["data"] && !set["image-size"] && cfg.Data != DataImageFolder {
		cfg.ImageSize = 0
	}
	return cfg, nil
}

// ConfigFor returns the configuration of a run that starts from the named
// recipe ("" for DefaultConfig) with settings applied over it (see Apply).
func ConfigFor(recipe string, settings []Setting) (Config, error) {
	base := DefaultConfig()
	if recipe != "" {
		r, err := LookupRecipe(recipe)
		if err != nil {
			return Config{}, &FieldError{Field: "recipe", Err: err}
		}
		base = r.Config
	}
	return Apply(base, settings)
}

// Settings returns cfg's settings that differ from base, sorted by flag
// name, as Apply takes them: Apply(base, Settings(base, cfg)) is cfg.
func Settings(base, cfg Config) []Setting {
	a, b := FlagSet(&base), FlagSet(&cfg)
	var out []Setting
	b.VisitAll(func(f *flag.Flag) {
		if v := f.Value.String(); v != a.Lookup(f.Name).Value.String() {
			out = append(out, Setting{Name: f.Name, Value: v})
		}
	})
	return out
}
