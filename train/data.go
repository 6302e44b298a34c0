package train

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/sgt-dev/sgt/data"
)

// Augmentation names accepted by Config.Augment (and --augment).
const (
	// AugmentAuto uses the customary augmentation of the dataset (see
	// data.DefaultTransforms): pad-crop-flip for CIFAR, random-resized-crop
	// for an image folder, none for the MNIST family.
	AugmentAuto = "auto"
	// AugmentNone disables augmentation: training images go through the
	// evaluation transform (for an image folder: resize and centre crop).
	AugmentNone = "none"
	// AugmentPadCropFlip pads by 4 pixels, crops at random and flips
	// horizontally at random (the CIFAR recipe). It needs images of one
	// size, so not an image folder.
	AugmentPadCropFlip = "pad-crop-flip"
	// AugmentRandomResizedCrop crops a random region (8% to 100% of the
	// area, aspect ratio 3/4 to 4/3), resizes it to --image-size and flips
	// it at random (the ImageNet recipe); image folders only.
	AugmentRandomResizedCrop = "random-resized-crop"
)

// AugmentNames lists the accepted augmentation names.
var AugmentNames = []string{AugmentAuto, AugmentNone, AugmentPadCropFlip, AugmentRandomResizedCrop}

// folderImageSize returns the image side of an image folder run (0: 224).
func folderImageSize(size int) int {
	if size == 0 {
		return 224
	}
	return size
}

// evalTransform returns the evaluation transform of the named dataset:
// resize and centre crop for an image folder, none otherwise.
func evalTransform(dataset string, size int) data.Transform {
	if dataset == DataImageFolder {
		return data.ResizeCenterCrop{Size: folderImageSize(size)}
	}
	return data.Identity{}
}

// augmentTransform returns the training transform for an augmentation name
// applied to the named dataset (size is Config.ImageSize).
func augmentTransform(augment, dataset string, size int) (data.Transform, error) {
	folder := dataset == DataImageFolder
	switch augment {
	case "", AugmentAuto:
		if folder {
			return data.RandomResizedCrop{Size: folderImageSize(size), Flip: true}, nil
		}
		if strings.HasPrefix(dataset, "cifar") {
			return data.CIFARAugmentation(), nil
		}
		return data.Identity{}, nil
	case AugmentNone:
		return evalTransform(dataset, size), nil
	case AugmentPadCropFlip:
		if folder {
			return nil, fmt.Errorf("%s needs images of one size; with --data %s use %s or %s", augment, DataImageFolder, AugmentAuto, AugmentRandomResizedCrop)
		}
		return data.CIFARAugmentation(), nil
	case AugmentRandomResizedCrop:
		if !folder {
			return nil, fmt.Errorf("%s is for --data %s (its images differ in size), not for %s", augment, DataImageFolder, dataset)
		}
		return data.RandomResizedCrop{Size: folderImageSize(size), Flip: true}, nil
	}
	return nil, fmt.Errorf("unknown augmentation %q (known: %s)", augment, strings.Join(AugmentNames, ", "))
}

// spreadSource is a subset of a source: size examples spread evenly over
// it (example i is the source's i*N/size), so that a subset of an image
// folder, stored class after class, still holds every class.
type spreadSource struct {
	src  data.Source
	size int
}

// Len implements data.Source.
func (s spreadSource) Len() int { return s.size }

// ClassCount implements data.Source.
func (s spreadSource) ClassCount() int { return s.src.ClassCount() }

// Shape implements data.Source.
func (s spreadSource) Shape() (height, width, channels int) { return s.src.Shape() }

// Example implements data.Source.
func (s spreadSource) Example(i int, scratch *data.Scratch) (data.Image, int32, error) {
	if i < 0 || i >= s.size {
		return data.Image{}, 0, fmt.Errorf("subset: example %d out of range [0, %d)", i, s.size)
	}
	return s.src.Example(int(int64(i)*int64(s.src.Len())/int64(s.size)), scratch)
}

// split is one dataset split with its normalisation and evaluation
// transform.
type split struct {
	src        data.Source
	n          int
	numClasses int
	sources    []string
	norm       data.Normalization
	// eval is the evaluation transform; h, w and c the shape of an example
	// after it (and after the training transform, which must agree).
	eval    data.Transform
	h, w, c int
	// workers is the number of goroutines of this split's loaders.
	workers int
}

// loadSplit loads a split ("train" or "test") of the configured dataset and
// keeps size examples (0: all): the first ones of an in-memory dataset,
// evenly spread ones of an image folder. Its normalisation is the dataset's
// customary one (statistics of the training split), or computed from the
// data for datasets without published statistics.
func loadSplit(cfg *Config, which string, size int) (*split, error) {
	field := "data"
	if cfg.DataDir != "" {
		field = "data-dir"
	}
	sizeField := "train-size"
	if which == data.SplitTest {
		sizeField = "test-size"
	}
	s := &split{eval: evalTransform(cfg.Data, cfg.ImageSize), workers: 2}
	if cfg.Data == DataImageFolder {
		if cfg.DataDir == "" {
			return nil, fieldErrorf("data-dir", "--data %s needs the folder holding train/<class>/ and val/<class>/ (or test/<class>/)", DataImageFolder)
		}
		f, err := data.OpenImageFolder(cfg.DataDir, which)
		if err != nil {
			return nil, &FieldError{Field: "data-dir", Err: err}
		}
		if size > f.Len() {
			return nil, fieldErrorf(sizeField, "%d is more than the %d images of %s", size, f.Len(), f.Dir)
		}
		s.src, s.sources = f, []string{f.Dir}
		if size > 0 && size < f.Len() {
			s.src = spreadSource{src: f, size: size}
		}
		s.norm, _ = data.DefaultNormalization(DataImageFolder)
		// Decoding images is the expensive part: use every core.
		s.workers = runtime.GOMAXPROCS(0)
	} else {
		ds, err := data.Load(cfg.Data, cfg.DataDir, which)
		if err != nil {
			return nil, &FieldError{Field: field, Err: err}
		}
		if size > 0 {
			if size > ds.N {
				return nil, fieldErrorf(sizeField, "%d is more than the %d examples of %s/%s", size, ds.N, cfg.Data, which)
			}
			ds = ds.Subset(size)
		}
		norm, ok := data.DefaultNormalization(cfg.Data)
		if !ok {
			norm = ds.ComputeNormalization()
		}
		s.src, s.sources, s.norm = ds, ds.Source, norm
	}
	s.n, s.numClasses = s.src.Len(), s.src.ClassCount()
	if s.n == 0 {
		return nil, fmt.Errorf("dataset %s/%s has no examples", cfg.Data, which)
	}
	h, w, c := s.src.Shape()
	var err error
	if s.h, s.w, err = s.eval.OutputShape(h, w, c); err != nil {
		return nil, fmt.Errorf("dataset %s/%s: %w", cfg.Data, which, err)
	}
	s.c = c
	return s, nil
}

// subset returns a split of size examples spread evenly over s (s itself
// when size covers it).
func (s *split) subset(size int) *split {
	if size >= s.n {
		return s
	}
	sub := *s
	sub.src, sub.n = spreadSource{src: s.src, size: size}, size
	return &sub
}

// prefetch returns the number of batches this split's loaders hold at
// once (data.LoaderOptions' default for its workers).
func (s *split) prefetch() int { return max(2*s.workers, s.workers+1) }

// exampleSize returns the number of floats of one example.
func (s *split) exampleSize() int { return s.h * s.w * s.c }

// dims returns the shape of a batch of n images.
func (s *split) dims(n int) []int { return []int{n, s.h, s.w, s.c} }

// sameShape reports whether the images of s and o have the same shape.
func (s *split) sameShape(o *split) bool { return s.h == o.h && s.w == o.w && s.c == o.c }

// trainLoader returns a loader of shuffled, augmented training batches
// (dropping each epoch's last partial batch) that starts at batch
// startBatch of the 0-based epoch startEpoch. Its workers decode and augment ahead of the trainer. The
// order and augmentation depend only on the seed and the epoch, so that a
// resumed run sees the same batches.
func (s *split) trainLoader(batchSize int, seed int64, transform data.Transform, startEpoch, startBatch int) (*data.Loader, error) {
	l, err := data.NewLoader(s.src, data.LoaderOptions{
		BatchOptions: data.BatchOptions{
			BatchSize: batchSize, Shuffle: true, DropLast: true, Seed: uint64(seed),
			Norm: s.norm, Transform: transform,
		},
		Workers:    s.workers,
		StartEpoch: startEpoch,
		StartBatch: startBatch,
	})
	if err != nil {
		return nil, fmt.Errorf("training batches: %w", err)
	}
	if h, w, c := l.ExampleShape(); h != s.h || w != s.w || c != s.c {
		_ = l.Close()
		return nil, fmt.Errorf("training batches: the augmentation gives %dx%dx%d images but evaluation %dx%dx%d", h, w, c, s.h, s.w, s.c)
	}
	return l, nil
}

// evalLoader returns a loader over the split in order, with the evaluation
// transform and a final partial batch; read one epoch, then close it.
func (s *split) evalLoader(batchSize int) (*data.Loader, error) {
	l, err := data.NewLoader(s.src, data.LoaderOptions{
		BatchOptions: data.BatchOptions{BatchSize: batchSize, Norm: s.norm, Transform: s.eval},
		Workers:      s.workers,
	})
	if err != nil {
		return nil, fmt.Errorf("evaluation batches: %w", err)
	}
	return l, nil
}

// batchTensors copies the first n examples of a batch into tensors: images
// float32 [n,H,W,C] and labels int32 [n].
func (s *split) batchTensors(images []float32, labels []int32, n int) (*tensors.Tensor, *tensors.Tensor) {
	return tensors.FromFlatDataAndDimensions(images[:n*s.exampleSize()], s.dims(n)...),
		tensors.FromFlatDataAndDimensions(labels[:n], n)
}

// nextBatch returns the loader's next batch as tensors, or io.EOF at the end
// of the epoch.
func (s *split) nextBatch(l *data.Loader, what string) (images, labels *tensors.Tensor, err error) {
	b, err := l.Next()
	if errors.Is(err, io.EOF) {
		return nil, nil, io.EOF
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	defer l.Release(b)
	images, labels = s.batchTensors(b.Images, b.Labels, b.N)
	return images, labels, nil
}
