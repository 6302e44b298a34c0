package data

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// recorded is one batch as the consumer saw it.
type recorded struct {
	images       []float32
	labels       []int32
	n            int
	epoch, index int
}

// batcherStream records the batches of epochs [start, start+epochs) made by a Batcher.
func batcherStream(t *testing.T, src Source, opts BatchOptions, start, epochs int) [][]recorded {
	t.Helper()
	b, err := NewBatcher(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	b.SetEpoch(start)
	images := make([]float32, b.ImagesLen())
	labels := make([]int32, b.BatchSize())
	out := make([][]recorded, epochs)
	for e := range epochs {
		for i := 0; ; i++ {
			n, err := b.Next(images, labels)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out[e] = append(out[e], recorded{slices.Clone(images), slices.Clone(labels), n, start + e, i})
		}
	}
	return out
}

// loaderStream records the batches of the first epochs made by a Loader.
func loaderStream(t *testing.T, src Source, opts LoaderOptions, epochs int) [][]recorded {
	t.Helper()
	l, err := NewLoader(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out := make([][]recorded, epochs)
	for e := range epochs {
		for {
			b, err := l.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out[e] = append(out[e], recorded{slices.Clone(b.Images), slices.Clone(b.Labels), b.N, b.Epoch, b.Index})
			l.Release(b)
		}
	}
	if st := l.Stats(); st.Batches != int64(epochs*l.NumBatches()) {
		t.Errorf("Stats().Batches = %d, want %d", st.Batches, epochs*l.NumBatches())
	}
	return out
}

// sameStreams fails the test where two batch streams differ.
func sameStreams(t *testing.T, what string, got, want [][]recorded) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d epochs, want %d", what, len(got), len(want))
	}
	for e := range want {
		if len(got[e]) != len(want[e]) {
			t.Fatalf("%s: epoch %d has %d batches, want %d", what, e, len(got[e]), len(want[e]))
		}
		for i, w := range want[e] {
			g := got[e][i]
			if g.n != w.n || g.epoch != w.epoch || g.index != w.index || !slices.Equal(g.labels, w.labels) || !slices.Equal(g.images, w.images) {
				t.Fatalf("%s: epoch %d batch %d differs (n %d/%d, epoch %d/%d, index %d/%d)", what, e, i, g.n, w.n, g.epoch, w.epoch, g.index, w.index)
			}
		}
	}
}

func TestLoaderMatchesBatcherForAnyWorkers(t *testing.T) {
	ds := indexDataset(37, 8, 8, 3, 5)
	norm, _ := DefaultNormalization("cifar10")
	opts := BatchOptions{BatchSize: 8, Shuffle: true, Seed: 11, Transform: PadCropFlip{Pad: 2, Flip: true}, Norm: norm}
	want := batcherStream(t, ds, opts, 0, 3)
	if n := len(want[0]); n != 5 || want[0][4].n != 5 {
		t.Fatalf("reference has %d batches, last of %d examples; want 5 and 5", n, want[0][4].n)
	}
	for _, workers := range []int{1, 4} {
		got := loaderStream(t, ds, LoaderOptions{BatchOptions: opts, Workers: workers, Prefetch: 3}, 3)
		sameStreams(t, fmt.Sprintf("%d workers", workers), got, want)
	}
	// Resuming at epoch 2.
	resumed := loaderStream(t, ds, LoaderOptions{BatchOptions: opts, Workers: 2, StartEpoch: 2}, 1)
	sameStreams(t, "StartEpoch 2", resumed, want[2:])
	// Resuming within epoch 1, at its batch 3: the rest of that epoch, then
	// epoch 2 whole.
	l, err := NewLoader(ds, LoaderOptions{BatchOptions: opts, Workers: 2, StartEpoch: 1, StartBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var got []recorded
	for len(got) < 2+5 {
		b, err := l.Next()
		if err == io.EOF {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, recorded{slices.Clone(b.Images), slices.Clone(b.Labels), b.N, b.Epoch, b.Index})
		l.Release(b)
	}
	sameStreams(t, "StartEpoch 1, StartBatch 3", [][]recorded{got[:2], got[2:]}, [][]recorded{want[1][3:], want[2]})
	if _, err := NewLoader(ds, LoaderOptions{BatchOptions: opts, StartBatch: 5}); err == nil {
		t.Error("StartBatch past the epoch's last batch accepted")
	}
	// Augmentation really changes between epochs and seeds.
	if slices.Equal(want[0][0].images, want[1][0].images) {
		t.Error("epochs 0 and 1 start with identical batches")
	}
}

func TestLoaderImageFolderDeterministic(t *testing.T) {
	root := makeImageTree(t)
	f, err := OpenImageFolder(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	norm, _ := DefaultNormalization("imagenet")
	opts := BatchOptions{BatchSize: 2, Shuffle: true, Seed: 5, Transform: RandomResizedCrop{Size: 6, Flip: true}, Norm: norm}
	want := batcherStream(t, f, opts, 0, 2)
	sameStreams(t, "image folder, 1 worker", loaderStream(t, f, LoaderOptions{BatchOptions: opts, Workers: 1}, 2), want)
	sameStreams(t, "image folder, 4 workers", loaderStream(t, f, LoaderOptions{BatchOptions: opts, Workers: 4}, 2), want)
	// Without a size-fixing transform an image folder cannot be batched.
	if _, err := NewLoader(f, LoaderOptions{BatchOptions: BatchOptions{BatchSize: 2}}); err == nil {
		t.Error("image folder batched without a resizing transform")
	}
}

// waitGoroutines waits until at most n goroutines run, reporting whether that happened.
func waitGoroutines(n int) bool {
	for range 200 {
		if runtime.NumGoroutine() <= n {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

func TestLoaderCloseLeavesNoGoroutines(t *testing.T) {
	ds := indexDataset(100, 4, 4, 1, 3)
	base := runtime.NumGoroutine()
	opts := LoaderOptions{BatchOptions: BatchOptions{BatchSize: 4, Shuffle: true}, Workers: 4, Prefetch: 6}
	// Closed at once; closed with batches held and workers blocked on a
	// full queue; closed mid-epoch after consuming some.
	for _, consume := range []int{0, 3, 30} {
		l, err := NewLoader(ds, opts)
		if err != nil {
			t.Fatal(err)
		}
		var held []*Batch
		for i := range consume {
			b, err := l.Next()
			if err == io.EOF { // 25 batches per epoch
				b, err = l.Next()
			}
			if err != nil {
				t.Fatal(err)
			}
			if i < 2 {
				held = append(held, b)
			} else {
				l.Release(b)
			}
		}
		time.Sleep(10 * time.Millisecond) // let the workers fill the queue and block
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if !waitGoroutines(base) {
			t.Fatalf("after Close (consumed %d): %d goroutines, %d before", consume, runtime.NumGoroutine(), base)
		}
		if _, err := l.Next(); !errors.Is(err, ErrClosed) {
			t.Errorf("Next after Close: %v, want ErrClosed", err)
		}
		for _, b := range held {
			l.Release(b) // harmless after Close
		}
		l.Close() // idempotent
	}
}

func TestLoaderHeldBuffersAndRelease(t *testing.T) {
	ds := indexDataset(20, 2, 2, 1, 2)
	l, err := NewLoader(ds, LoaderOptions{BatchOptions: BatchOptions{BatchSize: 2}, Workers: 2, Prefetch: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var held []*Batch
	for range 3 {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, b)
	}
	if _, err := l.Next(); err == nil || !strings.Contains(err.Error(), "Release") {
		t.Fatalf("Next with every buffer held: %v", err)
	}
	l.Release(held[0])
	l.Release(held[0]) // a double release must not free the buffer twice
	b, err := l.Next()
	if err != nil || b.Index != 3 {
		t.Fatalf("after a release: batch %v, %v; want batch 3", b, err)
	}
	if _, err := l.Next(); err == nil {
		t.Error("double Release freed a buffer twice")
	}
}

// failingSource wraps a Source and fails on one example, or sleeps per example.
type failingSource struct {
	Source
	bad   int
	sleep time.Duration
}

func (f failingSource) Example(i int, s *Scratch) (Image, int32, error) {
	if i == f.bad {
		return Image{}, 0, fmt.Errorf("example %d: image file /fake/broken.jpg: unexpected EOF", i)
	}
	time.Sleep(f.sleep)
	return f.Source.Example(i, s)
}

func TestLoaderReportsErrorsAndWaits(t *testing.T) {
	ds := indexDataset(16, 2, 2, 1, 2)
	base := runtime.NumGoroutine()
	l, err := NewLoader(failingSource{Source: ds, bad: 9}, LoaderOptions{BatchOptions: BatchOptions{BatchSize: 4}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		b, err := l.Next()
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		l.Release(b)
	}
	_, err = l.Next()
	if err == nil || !strings.Contains(err.Error(), "/fake/broken.jpg") || !strings.Contains(err.Error(), "batch 2") {
		t.Fatalf("batch with a broken example: error %v", err)
	}
	if _, again := l.Next(); again == nil || again.Error() != err.Error() {
		t.Errorf("the error is not sticky: %v", again)
	}
	l.Close()
	if !waitGoroutines(base) {
		t.Errorf("goroutines leaked after an error: %d, %d before", runtime.NumGoroutine(), base)
	}

	// A slow source makes the consumer wait, and the statistic shows it.
	slow, err := NewLoader(failingSource{Source: ds, bad: -1, sleep: 2 * time.Millisecond}, LoaderOptions{BatchOptions: BatchOptions{BatchSize: 4}, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	for range 4 {
		b, err := slow.Next()
		if err != nil {
			t.Fatal(err)
		}
		slow.Release(b)
	}
	if st := slow.Stats(); st.Batches != 4 || st.Waits == 0 || st.Wait < 4*time.Millisecond {
		t.Errorf("slow source: stats %+v; expected waiting", st)
	}
}

func BenchmarkLoaderCIFARAugment(b *testing.B) {
	ds := indexDataset(4096, 32, 32, 3, 10)
	norm, _ := DefaultNormalization("cifar10")
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			l, err := NewLoader(ds, LoaderOptions{BatchOptions: BatchOptions{BatchSize: 128, Shuffle: true, DropLast: true,
				Transform: CIFARAugmentation(), Norm: norm}, Workers: workers})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.SetBytes(128 * 32 * 32 * 3)
			b.ReportAllocs()
			for b.Loop() {
				batch, err := l.Next()
				if err == io.EOF {
					batch, err = l.Next()
				}
				if err != nil {
					b.Fatal(err)
				}
				l.Release(batch)
			}
			b.ReportMetric(float64(l.Stats().Wait.Nanoseconds())/float64(max(l.Stats().Batches, 1)), "wait-ns/batch")
		})
	}
}

func TestLoaderSteadyStateDoesNotAllocate(t *testing.T) {
	ds := indexDataset(256, 8, 8, 3, 10)
	l, err := NewLoader(ds, LoaderOptions{BatchOptions: BatchOptions{BatchSize: 16, Shuffle: true, Transform: CIFARAugmentation()}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Counts the workers' and the dispatcher's allocations too: the process
	// allocation counter is global.
	allocs := testing.AllocsPerRun(100, func() {
		b, err := l.Next()
		if err == io.EOF {
			b, err = l.Next()
		}
		if err != nil {
			t.Fatal(err)
		}
		l.Release(b)
	})
	if allocs >= 1 {
		t.Errorf("Next+Release allocate %v times per batch", allocs)
	}
}
