package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cifarPixel is the value written for channel c, row y, column x of the
// image with global index i.
func cifarPixel(i, c, y, x int) byte { return byte(i*31 + c*85 + y*7 + x*3) }

// writeCIFARFile writes records in the published binary layout (label bytes,
// then 1024 red, 1024 green, 1024 blue bytes, each plane row-major) for
// global indices first..first+n-1, with labels labelOf(i).
func writeCIFARFile(t *testing.T, path string, first, n int, labelOf func(i int) []byte) {
	t.Helper()
	var out []byte
	for i := first; i < first+n; i++ {
		out = append(out, labelOf(i)...)
		for c := range 3 {
			for y := range 32 {
				for x := range 32 {
					out = append(out, cifarPixel(i, c, y, x))
				}
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkCIFARPixels verifies the HWC conversion of every image.
func checkCIFARPixels(t *testing.T, ds *Dataset) {
	t.Helper()
	for i := range ds.N {
		img := ds.Image(i)
		for y := range 32 {
			for x := range 32 {
				for c := range 3 {
					if got, want := img[(y*32+x)*3+c], cifarPixel(i, c, y, x); got != want {
						t.Fatalf("%s/%s image %d pixel (%d,%d) channel %d = %d, want %d", ds.Name, ds.Split, i, y, x, c, got, want)
					}
				}
			}
		}
	}
}

// writeCIFAR10 writes a small CIFAR-10 (3 records per training file, 4 test
// records) into dir; label i is i%10.
func writeCIFAR10(t *testing.T, dir string) {
	t.Helper()
	label := func(i int) []byte { return []byte{byte(i % 10)} }
	for f := range 5 {
		writeCIFARFile(t, filepath.Join(dir, cifar10Format.train[f]), 3*f, 3, label)
	}
	writeCIFARFile(t, filepath.Join(dir, "test_batch.bin"), 0, 4, label)
}

func TestCIFAR10ReadsPublishedLayout(t *testing.T) {
	root := t.TempDir()
	writeCIFAR10(t, filepath.Join(root, "cifar-10-batches-bin"))
	// Both the archive folder itself and its parent work as --data-dir.
	for _, dir := range []string{root, filepath.Join(root, "cifar-10-batches-bin")} {
		train, err := Load("cifar10", dir, SplitTrain)
		if err != nil {
			t.Fatalf("Load(cifar10, %s): %v", dir, err)
		}
		if train.N != 15 || train.Height != 32 || train.Width != 32 || train.Channels != 3 || train.NumClasses != 10 || len(train.Source) != 5 {
			t.Fatalf("train: N=%d %dx%dx%d classes %d sources %d", train.N, train.Height, train.Width, train.Channels, train.NumClasses, len(train.Source))
		}
		for i, l := range train.Labels {
			if l != int32(i%10) {
				t.Fatalf("train label %d = %d, want %d", i, l, i%10)
			}
		}
		checkCIFARPixels(t, train)
	}
	test, err := Load("cifar10", root, SplitTest)
	if err != nil {
		t.Fatal(err)
	}
	if test.N != 4 {
		t.Errorf("test N = %d, want 4", test.N)
	}
	checkCIFARPixels(t, test)
}

func TestCIFAR100UsesFineLabels(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cifar-100-binary")
	labels := func(i int) []byte { return []byte{byte(i % 20), byte(99 - i%100)} }
	writeCIFARFile(t, filepath.Join(dir, "train.bin"), 0, 5, labels)
	writeCIFARFile(t, filepath.Join(dir, "test.bin"), 0, 2, labels)
	train, err := Load("cifar100", filepath.Dir(dir), SplitTrain)
	if err != nil {
		t.Fatal(err)
	}
	if train.N != 5 || train.NumClasses != 100 {
		t.Fatalf("N=%d classes %d, want 5 and 100", train.N, train.NumClasses)
	}
	for i, l := range train.Labels {
		if l != int32(99-i) {
			t.Errorf("label %d = %d, want the fine label %d", i, l, 99-i)
		}
	}
	checkCIFARPixels(t, train)
	if test, err := Load("cifar100", dir, SplitTest); err != nil || test.N != 2 {
		t.Errorf("test split: %v", err)
	}
}

func TestCIFARRejectsCorruptFiles(t *testing.T) {
	cases := []struct {
		name, want string
		setup      func(t *testing.T, dir string) string // returns the bad file
	}{
		{"extra-byte", "not a positive multiple", func(t *testing.T, dir string) string {
			writeCIFAR10(t, dir)
			p := filepath.Join(dir, "data_batch_3.bin")
			f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte{0})
			f.Close()
			return p
		}},
		{"truncated", "not a positive multiple", func(t *testing.T, dir string) string {
			writeCIFAR10(t, dir)
			p := filepath.Join(dir, "data_batch_2.bin")
			os.Truncate(p, 3073*2-100)
			return p
		}},
		{"empty", "not a positive multiple", func(t *testing.T, dir string) string {
			writeCIFAR10(t, dir)
			p := filepath.Join(dir, "data_batch_5.bin")
			os.WriteFile(p, nil, 0o644)
			return p
		}},
		{"label-out-of-range", "label 10", func(t *testing.T, dir string) string {
			writeCIFAR10(t, dir)
			p := filepath.Join(dir, "data_batch_4.bin")
			writeCIFARFile(t, p, 0, 3, func(i int) []byte { return []byte{byte(8 + i)} })
			return p
		}},
		{"missing-file", "data_batch_5.bin", func(t *testing.T, dir string) string {
			writeCIFAR10(t, dir)
			os.Remove(filepath.Join(dir, "data_batch_5.bin"))
			return dir
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			bad := c.setup(t, dir)
			_, err := Load("cifar10", dir, SplitTrain)
			if err == nil {
				t.Fatal("corrupt CIFAR-10 accepted")
			}
			if !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q should name %s and say %q", err, bad, c.want)
			}
		})
	}
	// CIFAR-100: fine label 100 and coarse label 20 are out of range.
	for _, labels := range [][]byte{{3, 100}, {20, 5}} {
		dir := t.TempDir()
		p := filepath.Join(dir, "train.bin")
		writeCIFARFile(t, p, 0, 2, func(i int) []byte { return labels })
		if _, err := Load("cifar100", dir, SplitTrain); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("CIFAR-100 labels %v: error %v should name %s", labels, err, p)
		}
	}
}
