package data

import (
	"fmt"
	"io"
)

// BatchOptions configures how a Batcher or Loader makes batches.
type BatchOptions struct {
	// BatchSize is the number of examples per batch (> 0).
	BatchSize int
	// Shuffle draws a new order of the examples every epoch; otherwise
	// batches follow the source order.
	Shuffle bool
	// DropLast skips the final partial batch of an epoch (for training).
	DropLast bool
	// Seed determines the shuffling order and the augmentation: the same
	// seed, epoch and source give the same batches.
	Seed uint64
	// Norm is the per-channel normalisation; see Normalization.
	Norm Normalization
	// Transform is the per-example augmentation or resizing; nil means Identity.
	Transform Transform
}

// batchCore is the part of batching shared by Batcher and Loader: turning a
// list of source indices into normalised float32 images and labels.
type batchCore struct {
	src          Source
	transform    Transform
	fused        normalizingTransform // transform, when it can normalise as it writes
	scale, bias  []float32            // per output channel: v*scale + bias normalises
	norm         affine               // scale and bias, for fused
	seed         uint64
	batchSize    int
	numBatches   int
	dropLast     bool
	shuffle      bool
	inH, inW     int // declared source image size (0 when it varies)
	outH, outW   int
	channels     int
	exampleSize  int // outH*outW*channels floats
	numClasses   int
	sourceLength int
}

// newBatchCore validates the options against the source.
func newBatchCore(src Source, opts BatchOptions) (*batchCore, error) {
	if src == nil {
		return nil, fmt.Errorf("batching: nil source")
	}
	if opts.BatchSize <= 0 {
		return nil, fmt.Errorf("batching: batch size %d must be positive", opts.BatchSize)
	}
	n := src.Len()
	if n <= 0 {
		return nil, fmt.Errorf("batching: the source has no examples")
	}
	numClasses := src.ClassCount()
	if numClasses <= 0 {
		return nil, fmt.Errorf("batching: the source has %d classes", numClasses)
	}
	h, w, c := src.Shape()
	if c <= 0 || h < 0 || w < 0 {
		return nil, fmt.Errorf("batching: bad source image shape %dx%dx%d", h, w, c)
	}
	tr := opts.Transform
	if tr == nil {
		tr = Identity{}
	}
	oh, ow, err := tr.OutputShape(h, w, c)
	if err != nil {
		return nil, fmt.Errorf("batching: %w", err)
	}
	scale, bias, err := opts.Norm.affine(c)
	if err != nil {
		return nil, fmt.Errorf("batching: %w", err)
	}
	numBatches := n / opts.BatchSize
	if !opts.DropLast && n%opts.BatchSize != 0 {
		numBatches++
	}
	if numBatches == 0 {
		return nil, fmt.Errorf("batching: %d examples make no full batch of %d (DropLast is set)", n, opts.BatchSize)
	}
	fused, _ := tr.(normalizingTransform)
	return &batchCore{
		src: src, transform: tr, fused: fused, scale: scale, bias: bias, norm: affine{scale, bias}, seed: opts.Seed,
		batchSize: opts.BatchSize, numBatches: numBatches, dropLast: opts.DropLast, shuffle: opts.Shuffle,
		inH: h, inW: w, outH: oh, outW: ow, channels: c, exampleSize: oh * ow * c,
		numClasses: numClasses, sourceLength: n,
	}, nil
}

// order fills perm (length sourceLength) with the example order of an epoch.
func (k *batchCore) order(perm []int32, epoch int) {
	if !k.shuffle {
		for i := range perm {
			perm[i] = int32(i)
		}
		return
	}
	rng := NewRNG(k.seed, streamShuffle, uint64(epoch))
	rng.Permutation(perm)
}

// batchIndices returns the source indices of batch b in an epoch order.
func (k *batchCore) batchIndices(perm []int32, b int) []int32 {
	return perm[b*k.batchSize : min((b+1)*k.batchSize, len(perm))]
}

// checkBuffers verifies that caller buffers can hold a batch.
func (k *batchCore) checkBuffers(images []float32, labels []int32) error {
	if len(images) < k.batchSize*k.exampleSize {
		return fmt.Errorf("batching: images buffer has %d floats, a batch needs %d (%d x %dx%dx%d)",
			len(images), k.batchSize*k.exampleSize, k.batchSize, k.outH, k.outW, k.channels)
	}
	if len(labels) < k.batchSize {
		return fmt.Errorf("batching: labels buffer has %d entries, a batch needs %d", len(labels), k.batchSize)
	}
	return nil
}

// fill writes the examples idx (source indices) of the given epoch into
// images and labels, and zeroes the rest of a full batch's worth of both.
func (k *batchCore) fill(images []float32, labels []int32, idx []int32, epoch int, s *Scratch) error {
	ex := k.exampleSize
	for j, i := range idx {
		img, label, err := k.src.Example(int(i), s)
		if err != nil {
			return fmt.Errorf("batching: %w", err)
		}
		if err := k.checkExample(int(i), img, label); err != nil {
			return err
		}
		dst := images[j*ex : (j+1)*ex]
		// The generator lives in the scratch: a local one would escape to
		// the heap through the interface call.
		s.rng = NewRNG(k.seed, streamAugment, uint64(epoch), uint64(i))
		if k.fused != nil {
			k.fused.applyNormalized(dst, img, &s.rng, s, &k.norm)
		} else {
			k.transform.Apply(dst, img, &s.rng, s)
			k.normalize(dst)
		}
		labels[j] = label
	}
	clear(images[len(idx)*ex : k.batchSize*ex])
	clear(labels[len(idx):k.batchSize])
	return nil
}

// normalizingTransform is a Transform that can also apply the batcher's
// normalisation while it writes, saving a pass over each example; its
// result must be the same bytes as Apply followed by the normalisation.
// norm nil means no normalisation (Apply).
type normalizingTransform interface {
	Transform
	applyNormalized(dst []float32, src Image, rng *RNG, s *Scratch, norm *affine)
}

// checkExample verifies an example against the source's declared shape and classes.
func (k *batchCore) checkExample(i int, img Image, label int32) error {
	if img.Channels != k.channels || (k.inH > 0 && (img.Height != k.inH || img.Width != k.inW)) {
		return fmt.Errorf("batching: example %d has shape %dx%dx%d, the source declares %dx%dx%d",
			i, img.Height, img.Width, img.Channels, k.inH, k.inW, k.channels)
	}
	if err := checkImage(img); err != nil {
		return fmt.Errorf("batching: example %d: %w", i, err)
	}
	if label < 0 || int(label) >= k.numClasses {
		return fmt.Errorf("batching: example %d has label %d outside [0, %d)", i, label, k.numClasses)
	}
	return nil
}

// normalize maps pixel values v in channel c to v*scale[c] + bias[c].
func (k *batchCore) normalize(dst []float32) {
	c := k.channels
	if c == 1 {
		s, b := k.scale[0], k.bias[0]
		for i, v := range dst {
			dst[i] = v*s + b
		}
		return
	}
	for p := 0; p < len(dst); p += c {
		px := dst[p : p+c]
		for ch, v := range px {
			px[ch] = v*k.scale[ch] + k.bias[ch]
		}
	}
}

// Batcher makes batches of a Source one after another in the calling
// goroutine (see Loader for the parallel, prefetching version, which yields
// the same batches). Every epoch visits each example once, in an order drawn
// from the seed and the epoch when shuffling. Batches hold float32 images in
// NHWC order and int32 labels. A Batcher is not safe for concurrent use.
type Batcher struct {
	core    *batchCore
	perm    []int32
	epoch   int
	batch   int  // next batch of the epoch
	ordered bool // perm holds the order of epoch
	scratch Scratch
}

// NewBatcher returns a Batcher over src starting at epoch 0.
func NewBatcher(src Source, opts BatchOptions) (*Batcher, error) {
	core, err := newBatchCore(src, opts)
	if err != nil {
		return nil, err
	}
	return &Batcher{core: core, perm: make([]int32, core.sourceLength)}, nil
}

// BatchSize returns the number of examples of a full batch.
func (b *Batcher) BatchSize() int { return b.core.batchSize }

// NumBatches returns the number of batches per epoch, counting a final
// partial batch unless DropLast is set.
func (b *Batcher) NumBatches() int { return b.core.numBatches }

// ExampleShape returns the height, width and channels of each batch example
// (after the transform).
func (b *Batcher) ExampleShape() (height, width, channels int) {
	return b.core.outH, b.core.outW, b.core.channels
}

// ImagesLen returns the number of float32 values of a full batch of images,
// the size the images buffer passed to Next needs.
func (b *Batcher) ImagesLen() int { return b.core.batchSize * b.core.exampleSize }

// Epoch returns the epoch that the next call to Next serves.
func (b *Batcher) Epoch() int { return b.epoch }

// SetEpoch restarts batching at the first batch of the given epoch (for
// example when resuming a run).
func (b *Batcher) SetEpoch(epoch int) {
	b.epoch, b.batch, b.ordered = epoch, 0, false
}

// Next fills images (at least ImagesLen floats, NHWC) and labels (at least
// BatchSize entries) with the next batch of the current epoch and returns
// the number of examples in it: BatchSize, or fewer for the final partial
// batch (whose unused entries are zeroed). At the end of each epoch it
// returns 0 and io.EOF once, and the call after that starts the next epoch.
// It does not allocate.
func (b *Batcher) Next(images []float32, labels []int32) (int, error) {
	k := b.core
	if err := k.checkBuffers(images, labels); err != nil {
		return 0, err
	}
	if b.batch == k.numBatches {
		b.epoch, b.batch, b.ordered = b.epoch+1, 0, false
		return 0, io.EOF
	}
	if !b.ordered {
		k.order(b.perm, b.epoch)
		b.ordered = true
	}
	idx := k.batchIndices(b.perm, b.batch)
	if err := k.fill(images, labels, idx, b.epoch, &b.scratch); err != nil {
		return 0, fmt.Errorf("epoch %d batch %d: %w", b.epoch, b.batch, err)
	}
	b.batch++
	return len(idx), nil
}
