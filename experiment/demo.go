package experiment

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/train"
)

// Demo is the quick-start comparison of plain training against SGT: a grid
// over alpha and label smoothing, repeated over seeds, on a small real
// dataset with a convolutional model.
type Demo struct {
	// Data is the dataset; "" picks Fashion-MNIST when present, else MNIST
	// (see DemoDataset).
	Data string
	// Model is the registered model to train.
	Model string
	// Alphas and LabelSmoothings are the values compared (comma lists).
	Alphas, LabelSmoothings string
	// Seeds is the number of seeds of every setting.
	Seeds int
	// Epochs, TrainSize, TestSize and BatchSize size each run.
	Epochs, TrainSize, TestSize, BatchSize int
	// LR is the peak learning rate.
	LR float64
	// Backend is the GoMLX backend ("" for the automatic choice).
	Backend string
}

// DefaultDemo returns the demo's defaults: alpha 1 and 0.3, label smoothing
// 0 and 0.1, 2 seeds (8 runs), a CIFAR ResNet-20 for 4 epochs on 10000
// training and 2000 test images at batch 128 and peak learning rate 0.1.
// They are sized for about ten minutes on two CPU cores with the cpu backend
// (measured: about 1000 training images per second on 28x28 Fashion-MNIST);
// every size is a flag of "sgt demo".
func DefaultDemo() Demo {
	return Demo{
		Model:           "resnet20",
		Alphas:          "1,0.3",
		LabelSmoothings: "0,0.1",
		Seeds:           2,
		Epochs:          4,
		TrainSize:       10000,
		TestSize:        2000,
		BatchSize:       128,
		LR:              0.1,
	}
}

// DemoDataset returns the dataset the demo trains on: d.Data when set, else
// Fashion-MNIST when available says its files are present, else MNIST
// (which ships with the Go module cache).
func (d Demo) DemoDataset(available func(name string) bool) string {
	if d.Data != "" {
		return d.Data
	}
	if available != nil && available("fashion-mnist") {
		return "fashion-mnist"
	}
	return "mnist"
}

// Validate checks the demo's settings.
func (d Demo) Validate() error {
	switch {
	case strings.TrimSpace(d.Model) == "":
		return fmt.Errorf("model: a model name is required")
	case d.Seeds < 1:
		return fmt.Errorf("seeds %d: need at least 1", d.Seeds)
	case d.Epochs < 1:
		return fmt.Errorf("epochs %d: need at least 1", d.Epochs)
	case d.TrainSize < 0 || d.TestSize < 0:
		return fmt.Errorf("train size %d, test size %d: must be >= 0", d.TrainSize, d.TestSize)
	case d.BatchSize < 1:
		return fmt.Errorf("batch size %d: need at least 1", d.BatchSize)
	case !(d.LR > 0):
		return fmt.Errorf("learning rate %v: must be positive", d.LR)
	}
	if _, err := ParseAlphaList(d.Alphas); err != nil {
		return err
	}
	if _, err := SplitValues(d.LabelSmoothings, false); err != nil {
		return fmt.Errorf("label smoothing: %w", err)
	}
	return nil
}

// Grid returns the demo's grid for the dataset data: alpha and label
// smoothing varied, the sizes fixed, over seeds 0..Seeds-1.
func (d Demo) Grid(data string) (*Grid, error) {
	settings := []train.Setting{
		{Name: "data", Value: data},
		{Name: "model", Value: d.Model},
		{Name: AlphaFlag, Value: d.Alphas},
		{Name: LabelSmoothingFlag, Value: d.LabelSmoothings},
		{Name: EpochsFlag, Value: strconv.Itoa(d.Epochs)},
		{Name: "train-size", Value: strconv.Itoa(d.TrainSize)},
		{Name: "test-size", Value: strconv.Itoa(d.TestSize)},
		{Name: "batch-size", Value: strconv.Itoa(d.BatchSize)},
		{Name: "lr", Value: strconv.FormatFloat(d.LR, 'g', -1, 64)},
	}
	if d.Backend != "" {
		settings = append(settings, train.Setting{Name: "backend", Value: d.Backend})
	}
	seeds := make([]int, d.Seeds)
	for i := range seeds {
		seeds[i] = i
	}
	return NewGrid("", settings, seeds)
}
