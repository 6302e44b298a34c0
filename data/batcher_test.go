package data

import (
	"errors"
	"io"
	"math"
	"slices"
	"testing"
)

// indexDataset returns a dataset whose example i has every pixel equal to i
// (mod 256) in channel 0 and 255-i in the others, and label i % classes.
func indexDataset(n, h, w, c, classes int) *Dataset {
	ds := &Dataset{Name: "toy", Split: "train", N: n, Height: h, Width: w, Channels: c, NumClasses: classes,
		Images: make([]byte, n*h*w*c), Labels: make([]int32, n)}
	for i := range n {
		img := ds.Image(i)
		for p := 0; p < len(img); p += c {
			img[p] = byte(i)
			for ch := 1; ch < c; ch++ {
				img[p+ch] = byte(255 - i)
			}
		}
		ds.Labels[i] = int32(i % classes)
	}
	return ds
}

// epochOrder runs a Batcher through one epoch of an index dataset (no
// normalisation, identity transform) and returns the example indices seen,
// read back from the pixels, and the batch sizes.
func epochOrder(t *testing.T, b *Batcher) (order []int, sizes []int) {
	t.Helper()
	images := make([]float32, b.ImagesLen())
	labels := make([]int32, b.BatchSize())
	h, w, c := b.ExampleShape()
	ex := h * w * c
	for {
		n, err := b.Next(images, labels)
		if err == io.EOF {
			return order, sizes
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, n)
		for j := range n {
			order = append(order, int(math.Round(float64(images[j*ex]*255))))
		}
		for _, v := range images[n*ex:] {
			if v != 0 {
				t.Fatalf("partial batch of %d: unused image entries are not zero", n)
			}
		}
		for _, l := range labels[n:] {
			if l != 0 {
				t.Fatalf("partial batch of %d: unused labels are not zero", n)
			}
		}
	}
}

func TestBatcherEpochsArePermutationsAndDeterministic(t *testing.T) {
	ds := indexDataset(10, 2, 2, 1, 3)
	opts := BatchOptions{BatchSize: 4, Shuffle: true, Seed: 42}
	b1, err := NewBatcher(ds, opts)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := NewBatcher(ds, opts)
	other, _ := NewBatcher(ds, BatchOptions{BatchSize: 4, Shuffle: true, Seed: 43})
	var first []int
	for epoch := range 3 {
		o1, sizes := epochOrder(t, b1)
		o2, _ := epochOrder(t, b2)
		o3, _ := epochOrder(t, other)
		if !slices.Equal(sizes, []int{4, 4, 2}) {
			t.Errorf("epoch %d: batch sizes %v, want [4 4 2]", epoch, sizes)
		}
		sorted := slices.Sorted(slices.Values(o1))
		for i, v := range sorted {
			if v != i {
				t.Fatalf("epoch %d: order %v is not a permutation of 0..9", epoch, o1)
			}
		}
		if !slices.Equal(o1, o2) {
			t.Errorf("epoch %d: same seed gave %v and %v", epoch, o1, o2)
		}
		if slices.Equal(o1, o3) {
			t.Errorf("epoch %d: seeds 42 and 43 gave the same order %v", epoch, o1)
		}
		if epoch == 0 {
			first = o1
		} else if slices.Equal(o1, first) {
			t.Errorf("epoch %d repeats epoch 0's order %v", epoch, o1)
		}
	}
	// SetEpoch replays an epoch exactly.
	b1.SetEpoch(0)
	if again, _ := epochOrder(t, b1); !slices.Equal(again, first) {
		t.Errorf("SetEpoch(0) gave %v, epoch 0 was %v", again, first)
	}
	if b1.Epoch() != 1 {
		t.Errorf("after one epoch from 0, Epoch() = %d, want 1", b1.Epoch())
	}
}

func TestBatcherSequentialAndDropLast(t *testing.T) {
	ds := indexDataset(10, 1, 1, 1, 2)
	b, err := NewBatcher(ds, BatchOptions{BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	order, sizes := epochOrder(t, b)
	if !slices.Equal(order, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) || b.NumBatches() != 3 {
		t.Errorf("unshuffled order %v (batches %v, NumBatches %d)", order, sizes, b.NumBatches())
	}
	d, _ := NewBatcher(ds, BatchOptions{BatchSize: 4, DropLast: true, Shuffle: true, Seed: 1})
	order, sizes = epochOrder(t, d)
	if !slices.Equal(sizes, []int{4, 4}) || d.NumBatches() != 2 {
		t.Errorf("DropLast: batch sizes %v, NumBatches %d, want [4 4] and 2", sizes, d.NumBatches())
	}
	if len(slices.Compact(slices.Sorted(slices.Values(order)))) != 8 {
		t.Errorf("DropLast epoch repeats examples: %v", order)
	}
	if _, err := NewBatcher(ds, BatchOptions{BatchSize: 11, DropLast: true}); err == nil {
		t.Error("DropLast with fewer examples than a batch accepted")
	}
}

func TestBatcherShuffleIsUniform(t *testing.T) {
	// Over many seeds, each of 4 examples comes first about a quarter of
	// the time (a biased shuffle, e.g. the naive swap-with-any, fails this).
	ds := indexDataset(4, 1, 1, 1, 1)
	counts := make([]int, 4)
	pairs := map[[2]int]int{}
	const seeds = 4000
	for seed := range uint64(seeds) {
		b, err := NewBatcher(ds, BatchOptions{BatchSize: 4, Shuffle: true, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		order, _ := epochOrder(t, b)
		counts[order[0]]++
		pairs[[2]int{order[0], order[1]}]++
	}
	for i, c := range counts {
		if c < seeds/4-150 || c > seeds/4+150 {
			t.Errorf("example %d came first %d times in %d shuffles, expected about %d", i, c, seeds, seeds/4)
		}
	}
	if len(pairs) != 12 {
		t.Errorf("only %d of the 12 possible (first, second) pairs appeared", len(pairs))
	}
}

func TestBatcherNormalization(t *testing.T) {
	ds := indexDataset(3, 2, 2, 3, 3)
	norm := Normalization{Mean: []float32{0.5, 0.25, 0.1}, Std: []float32{0.5, 0.2, 2}}
	b, err := NewBatcher(ds, BatchOptions{BatchSize: 3, Norm: norm})
	if err != nil {
		t.Fatal(err)
	}
	images := make([]float32, b.ImagesLen())
	labels := make([]int32, 3)
	if n, err := b.Next(images, labels); err != nil || n != 3 {
		t.Fatalf("Next = %d, %v", n, err)
	}
	for i, v := range images {
		raw := ds.Images[i]
		c := i % 3
		want := (float64(raw)/255 - float64(norm.Mean[c])) / float64(norm.Std[c])
		if math.Abs(float64(v)-want) > 1e-5 {
			t.Fatalf("value %d (channel %d, raw %d) = %v, want %v", i, c, raw, v, want)
		}
	}
	if !slices.Equal(labels, ds.Labels) {
		t.Errorf("labels %v, want %v", labels, ds.Labels)
	}
	if _, err := NewBatcher(ds, BatchOptions{BatchSize: 3, Norm: Normalization{Mean: []float32{0, 0}, Std: []float32{1, 1}}}); err == nil {
		t.Error("2-channel normalisation accepted for 3-channel images")
	}
}

func TestBatcherErrors(t *testing.T) {
	ds := indexDataset(5, 2, 2, 1, 2)
	if _, err := NewBatcher(ds, BatchOptions{BatchSize: 0}); err == nil {
		t.Error("batch size 0 accepted")
	}
	b, _ := NewBatcher(ds, BatchOptions{BatchSize: 2})
	if _, err := b.Next(make([]float32, 7), make([]int32, 2)); err == nil {
		t.Error("short images buffer accepted")
	}
	if _, err := b.Next(make([]float32, 8), make([]int32, 1)); err == nil {
		t.Error("short labels buffer accepted")
	}
	bad := *ds
	bad.Labels = []int32{0, 1, 5, 0, 1}
	b, _ = NewBatcher(&bad, BatchOptions{BatchSize: 5})
	if _, err := b.Next(make([]float32, 20), make([]int32, 5)); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("label 5 of 2 classes: error %v", err)
	}
}

func TestBatcherDoesNotAllocate(t *testing.T) {
	ds := indexDataset(64, 8, 8, 3, 10)
	b, err := NewBatcher(ds, BatchOptions{BatchSize: 8, Shuffle: true, Seed: 3, Transform: CIFARAugmentation(),
		Norm: Normalization{Mean: []float32{0.5}, Std: []float32{0.25}}})
	if err != nil {
		t.Fatal(err)
	}
	images := make([]float32, b.ImagesLen())
	labels := make([]int32, 8)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := b.Next(images, labels); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Next allocates %v times per call", allocs)
	}
}

func BenchmarkBatcherMNIST(b *testing.B) {
	ds := indexDataset(60000, 28, 28, 1, 10)
	bt, err := NewBatcher(ds, BatchOptions{BatchSize: 128, Shuffle: true, DropLast: true, Norm: Normalization{Mean: []float32{0.1307}, Std: []float32{0.3081}}})
	if err != nil {
		b.Fatal(err)
	}
	images := make([]float32, bt.ImagesLen())
	labels := make([]int32, 128)
	b.SetBytes(128 * 28 * 28)
	for b.Loop() {
		if _, err := bt.Next(images, labels); err == io.EOF {
			bt.Next(images, labels)
		}
	}
}
