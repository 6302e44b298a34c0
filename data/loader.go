package data

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"
)

// ErrClosed is returned by Loader.Next after Close.
var ErrClosed = errors.New("data loader: closed")

// LoaderOptions configures a Loader.
type LoaderOptions struct {
	BatchOptions
	// Workers is the number of goroutines that read, decode and augment
	// batches; 0 means runtime.GOMAXPROCS(0).
	Workers int
	// Prefetch is the number of batch buffers, i.e. how many batches may be
	// ready or in the making ahead of the consumer (including those it
	// holds); 0 means 2*Workers. It is raised to at least Workers+1.
	Prefetch int
	// StartEpoch is the first epoch served (to resume a run).
	StartEpoch int
	// StartBatch is the first batch served of StartEpoch (to resume a run
	// stopped within an epoch); the batches before it are skipped, and
	// the later ones are exactly those of an uninterrupted stream.
	StartBatch int
}

// Batch is one batch made by a Loader. Its buffers belong to the loader:
// hand the batch back with Loader.Release when done with it.
type Batch struct {
	// Images holds BatchSize examples in NHWC order (float32, normalised);
	// only the first N are real, the rest are zero.
	Images []float32
	// Labels holds BatchSize labels; only the first N are real, the rest are zero.
	Labels []int32
	// N is the number of real examples: BatchSize, or fewer in the final
	// partial batch of an epoch.
	N int
	// Epoch and Index say which batch of which epoch this is.
	Epoch, Index int

	seq      uint64  // position in the stream of batches
	idx      []int32 // source indices of the examples
	err      error   // set when making the batch failed
	owner    *Loader // never changes
	released bool    // read and written by the consumer only
}

// LoaderStats reports how well prefetching keeps up with the consumer.
type LoaderStats struct {
	// Batches is the number of batches Next has returned.
	Batches int64
	// Waits is how many of those calls had to wait for the batch.
	Waits int64
	// Wait is the total time Next spent waiting for batches to be ready;
	// near zero means the loader keeps ahead of the trainer.
	Wait time.Duration
}

// Loader makes the same batches as a Batcher with the same options, but in
// parallel goroutines ahead of the consumer: a bounded queue of ready
// batches. Next returns them in order, with io.EOF once at the end of each
// epoch, and the stream continues with the next epoch until Close. Next,
// Release, Stats and Close must be called from one goroutine (the consumer).
type Loader struct {
	core *batchCore
	opts LoaderOptions

	free chan *Batch // buffers ready for the dispatcher
	jobs chan *Batch // batches to make
	done chan *Batch // batches made
	quit chan struct{}
	wg   sync.WaitGroup

	ring    []*Batch // made batches waiting for their turn, at seq % len(ring)
	nextSeq uint64   // the next batch Next returns
	held    int      // batches given to the consumer and not yet released
	eofDue  bool     // the last batch of an epoch was returned; io.EOF comes next
	err     error    // sticky error
	closed  bool
	stats   LoaderStats
}

// NewLoader starts a loader over src. Close it when done: it runs goroutines.
func NewLoader(src Source, opts LoaderOptions) (*Loader, error) {
	core, err := newBatchCore(src, opts.BatchOptions)
	if err != nil {
		return nil, err
	}
	if opts.Workers < 0 || opts.Prefetch < 0 {
		return nil, fmt.Errorf("data loader: workers %d and prefetch %d must not be negative", opts.Workers, opts.Prefetch)
	}
	if opts.StartEpoch < 0 {
		return nil, fmt.Errorf("data loader: start epoch %d is negative", opts.StartEpoch)
	}
	if opts.StartBatch < 0 || opts.StartBatch >= core.numBatches {
		return nil, fmt.Errorf("data loader: start batch %d is outside the epoch's %d batches", opts.StartBatch, core.numBatches)
	}
	if opts.Workers == 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Prefetch == 0 {
		opts.Prefetch = 2 * opts.Workers
	}
	opts.Prefetch = max(opts.Prefetch, opts.Workers+1)
	l := &Loader{
		core: core,
		opts: opts,
		free: make(chan *Batch, opts.Prefetch),
		jobs: make(chan *Batch, opts.Prefetch),
		done: make(chan *Batch, opts.Prefetch),
		quit: make(chan struct{}),
		ring: make([]*Batch, opts.Prefetch),
	}
	for range opts.Prefetch {
		l.free <- &Batch{
			Images: make([]float32, core.batchSize*core.exampleSize),
			Labels: make([]int32, core.batchSize),
			idx:    make([]int32, 0, core.batchSize),
			owner:  l,
		}
	}
	l.wg.Add(1 + opts.Workers)
	go l.dispatch()
	for range opts.Workers {
		go l.work()
	}
	return l, nil
}

// BatchSize returns the number of examples of a full batch.
func (l *Loader) BatchSize() int { return l.core.batchSize }

// NumBatches returns the number of batches per epoch.
func (l *Loader) NumBatches() int { return l.core.numBatches }

// ExampleShape returns the height, width and channels of each batch example.
func (l *Loader) ExampleShape() (height, width, channels int) {
	return l.core.outH, l.core.outW, l.core.channels
}

// dispatch assigns batches, in stream order, to free buffers.
func (l *Loader) dispatch() {
	defer l.wg.Done()
	k := l.core
	perm := make([]int32, k.sourceLength)
	skip := uint64(l.opts.StartBatch)
	for seq := uint64(0); ; seq++ {
		var b *Batch
		select {
		case b = <-l.free:
		case <-l.quit:
			return
		}
		pos := seq + skip
		epoch := l.opts.StartEpoch + int(pos/uint64(k.numBatches))
		index := int(pos % uint64(k.numBatches))
		if index == 0 || seq == 0 {
			k.order(perm, epoch)
		}
		b.seq, b.Epoch, b.Index, b.err = seq, epoch, index, nil
		b.idx = append(b.idx[:0], k.batchIndices(perm, index)...)
		b.N = len(b.idx)
		select {
		case l.jobs <- b:
		case <-l.quit:
			return
		}
	}
}

// work makes batches.
func (l *Loader) work() {
	defer l.wg.Done()
	var s Scratch
	for {
		select {
		case b := <-l.jobs:
			if err := l.core.fill(b.Images, b.Labels, b.idx, b.Epoch, &s); err != nil {
				b.err = fmt.Errorf("epoch %d batch %d: %w", b.Epoch, b.Index, err)
			}
			select {
			case l.done <- b:
			case <-l.quit:
				return
			}
		case <-l.quit:
			return
		}
	}
}

// Next returns the next batch, waiting for it if needed, or io.EOF once at
// the end of each epoch (the following call starts the next epoch). The
// batch stays valid until it is passed to Release. An error making a batch
// (an unreadable image, say) is returned and every later call returns it
// too. Next does not allocate.
func (l *Loader) Next() (*Batch, error) {
	if l.closed {
		return nil, ErrClosed
	}
	if l.err != nil {
		return nil, l.err
	}
	if l.eofDue {
		l.eofDue = false
		return nil, io.EOF
	}
	if l.held == len(l.ring) {
		return nil, fmt.Errorf("data loader: all %d batch buffers are held by the caller; Release batches before asking for more", l.held)
	}
	slot := int(l.nextSeq % uint64(len(l.ring)))
	if l.ring[slot] == nil {
		start := time.Now()
		for l.ring[slot] == nil {
			b := <-l.done
			l.ring[b.seq%uint64(len(l.ring))] = b
		}
		l.stats.Wait += time.Since(start)
		l.stats.Waits++
	}
	b := l.ring[slot]
	l.ring[slot] = nil
	l.nextSeq++
	l.held++
	b.released = false // only the consumer's goroutine touches this flag
	if b.err != nil {
		l.err = b.err
		l.Release(b)
		return nil, l.err
	}
	l.stats.Batches++
	l.eofDue = b.Index == l.core.numBatches-1
	return b, nil
}

// Release hands a batch's buffers back to the loader for reuse. Releasing a
// batch twice, or one from another loader, does nothing.
func (l *Loader) Release(b *Batch) {
	if b == nil || b.owner != l || b.released || l.closed {
		return
	}
	b.released = true
	l.held--
	l.free <- b // never blocks: there are only len(free) buffers
}

// Stats returns the prefetching statistics so far.
func (l *Loader) Stats() LoaderStats { return l.stats }

// Close stops the loader's goroutines and waits for them to finish. Batches
// still held become invalid. Close is idempotent and always returns nil.
func (l *Loader) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.quit)
	l.wg.Wait()
	return nil
}
