package train

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/sgt-dev/sgt/data"
)

// Augmentation names accepted by Config.Augment (and --augment).
const (
	// AugmentAuto uses the customary augmentation of the dataset: pad-crop-flip
	// for CIFAR, none for the MNIST family.
	AugmentAuto = "auto"
	// AugmentNone disables augmentation.
	AugmentNone = "none"
	// AugmentPadCropFlip pads by 4 pixels, crops at random and flips
	// horizontally at random (the CIFAR recipe).
	AugmentPadCropFlip = "pad-crop-flip"
)

// AugmentNames lists the accepted augmentation names.
var AugmentNames = []string{AugmentAuto, AugmentNone, AugmentPadCropFlip}

// augmentTransform returns the data transform for an augmentation name
// applied to the named dataset.
func augmentTransform(augment, dataset string) (data.Transform, error) {
	switch augment {
	case "", AugmentAuto:
		if strings.HasPrefix(dataset, "cifar") {
			return data.CIFARAugmentation(), nil
		}
		return data.Identity{}, nil
	case AugmentNone:
		return data.Identity{}, nil
	case AugmentPadCropFlip:
		return data.CIFARAugmentation(), nil
	}
	return nil, fmt.Errorf("unknown augmentation %q (known: %s)", augment, strings.Join(AugmentNames, ", "))
}

// split is one dataset split in memory with its normalisation.
type split struct {
	ds         *data.Dataset
	n          int
	numClasses int
	sources    []string
	norm       data.Normalization
}

// loadSplit loads a split of the named dataset and keeps its first size
// examples (0: all). Its normalisation is the dataset's customary one
// (statistics of the training split), or computed from the data for datasets
// without published statistics.
func loadSplit(name, dir, which string, size int) (*split, error) {
	ds, err := data.Load(name, dir, which)
	if err != nil {
		field := "data"
		if dir != "" {
			field = "data-dir"
		}
		return nil, &FieldError{Field: field, Err: err}
	}
	if size > 0 {
		if size > ds.N {
			f := "train-size"
			if which == data.SplitTest {
				f = "test-size"
			}
			return nil, fieldErrorf(f, "%d is more than the %d examples of %s/%s", size, ds.N, name, which)
		}
		ds = ds.Subset(size)
	}
	if ds.N == 0 {
		return nil, fmt.Errorf("dataset %s/%s has no examples", name, which)
	}
	norm, ok := data.DefaultNormalization(name)
	if !ok {
		norm = ds.ComputeNormalization()
	}
	return &split{ds: ds, n: ds.N, numClasses: ds.NumClasses, sources: ds.Source, norm: norm}, nil
}

// dims returns the shape of a batch of n images.
func (s *split) dims(n int) []int {
	return []int{n, s.ds.Height, s.ds.Width, s.ds.Channels}
}

// sameShape reports whether the images of s and o have the same shape.
func (s *split) sameShape(o *split) bool {
	return s.ds.Height == o.ds.Height && s.ds.Width == o.ds.Width && s.ds.Channels == o.ds.Channels
}

// trainLoader returns a loader of shuffled, augmented training batches
// (dropping each epoch's last partial batch) that starts at the 0-based
// epoch startEpoch. The order and augmentation depend only on the seed and
// the epoch, so that a resumed run sees the same batches.
func (s *split) trainLoader(batchSize int, seed int64, transform data.Transform, startEpoch int) (*data.Loader, error) {
	l, err := data.NewLoader(s.ds, data.LoaderOptions{
		BatchOptions: data.BatchOptions{
			BatchSize: batchSize, Shuffle: true, DropLast: true, Seed: uint64(seed),
			Norm: s.norm, Transform: transform,
		},
		Workers:    2,
		StartEpoch: startEpoch,
	})
	if err != nil {
		return nil, fmt.Errorf("training batches: %w", err)
	}
	return l, nil
}

// evalBatcher returns a batcher over the split in order, without
// augmentation, with a final partial batch.
func (s *split) evalBatcher(batchSize int) (*data.Batcher, error) {
	b, err := data.NewBatcher(s.ds, data.BatchOptions{BatchSize: batchSize, Norm: s.norm})
	if err != nil {
		return nil, fmt.Errorf("evaluation batches: %w", err)
	}
	return b, nil
}

// batchTensors copies the first n examples of a batch into tensors: images
// float32 [n,H,W,C] and labels int32 [n].
func (s *split) batchTensors(images []float32, labels []int32, n int) (*tensors.Tensor, *tensors.Tensor) {
	size := s.ds.ExampleSize()
	return tensors.FromFlatDataAndDimensions(images[:n*size], s.dims(n)...),
		tensors.FromFlatDataAndDimensions(labels[:n], n)
}

// nextTrainBatch returns the loader's next batch as tensors, or io.EOF at
// the end of the epoch.
func (s *split) nextTrainBatch(l *data.Loader) (images, labels *tensors.Tensor, err error) {
	b, err := l.Next()
	if errors.Is(err, io.EOF) {
		return nil, nil, io.EOF
	}
	if err != nil {
		return nil, nil, fmt.Errorf("training batches: %w", err)
	}
	defer l.Release(b)
	images, labels = s.batchTensors(b.Images, b.Labels, b.N)
	return images, labels, nil
}
