package data

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageFolderNeedsTwoClasses: a one-class folder would train to 100%
// accuracy on nothing; it must be refused, naming the folder.
func TestImageFolderNeedsTwoClasses(t *testing.T) {
	root := t.TempDir()
	writePNG(t, filepath.Join(root, "train", "only", "a.png"), rgbaImage(4, 4))
	writePNG(t, filepath.Join(root, "val", "only", "b.png"), rgbaImage(4, 4))
	for _, split := range []string{"train", "val"} {
		_, err := OpenImageFolder(root, split)
		if err == nil {
			t.Fatalf("%s split of a one-class folder accepted", split)
		}
		train := filepath.Join(root, "train")
		if !strings.Contains(err.Error(), train) || !strings.Contains(err.Error(), "only one class") || !errors.Is(err, ErrBadData) {
			t.Errorf("%s: error %q should name %s, say it has only one class, and wrap ErrBadData", split, err, train)
		}
	}
}

// TestImageFolderNeedsTwoTrainingClasses: two class folders, one of them
// empty, is a one-class training set too.
func TestImageFolderNeedsTwoTrainingClasses(t *testing.T) {
	root := t.TempDir()
	writePNG(t, filepath.Join(root, "train", "a", "x.png"), rgbaImage(4, 4))
	os.MkdirAll(filepath.Join(root, "train", "b"), 0o755)
	_, err := OpenImageFolder(root, "train")
	if err == nil || !strings.Contains(err.Error(), "only the class folder a holds images") || !errors.Is(err, ErrBadData) {
		t.Errorf("one class with images: error %v", err)
	}
	// The evaluation split may hold fewer classes than training.
	writePNG(t, filepath.Join(root, "train", "b", "y.png"), rgbaImage(4, 4))
	writePNG(t, filepath.Join(root, "val", "b", "z.png"), rgbaImage(4, 4))
	if _, err := OpenImageFolder(root, "val"); err != nil {
		t.Errorf("val with one of two classes: %v", err)
	}
}

// TestImageFolderTestFolder: the evaluation split may live in val/ or
// test/; val/ and test/ together are ambiguous; a missing one names both.
func TestImageFolderTestFolder(t *testing.T) {
	root := t.TempDir()
	for _, c := range []string{"a", "b"} {
		writePNG(t, filepath.Join(root, "train", c, "x.png"), rgbaImage(4, 4))
		writePNG(t, filepath.Join(root, "test", c, "y.png"), rgbaImage(4, 4))
	}
	for _, split := range []string{"val", "test"} {
		f, err := OpenImageFolder(root, split)
		if err != nil {
			t.Fatalf("split %s with a test/ folder: %v", split, err)
		}
		if f.Dir != filepath.Join(root, "test") || f.Split != "test" || f.Len() != 2 {
			t.Errorf("split %s: dir %s split %s, %d files", split, f.Dir, f.Split, f.Len())
		}
	}
	ds, err := LoadImageFolder(root, "test", 4, 1)
	if err != nil || ds.Split != SplitTest {
		t.Errorf("LoadImageFolder from test/: %v", err)
	}

	writePNG(t, filepath.Join(root, "val", "a", "z.png"), rgbaImage(4, 4))
	_, err = OpenImageFolder(root, "test")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "val")) || !strings.Contains(err.Error(), filepath.Join(root, "test")) {
		t.Errorf("both val/ and test/: error %v should name both", err)
	}

	none := t.TempDir()
	for _, c := range []string{"a", "b"} {
		writePNG(t, filepath.Join(none, "train", c, "x.png"), rgbaImage(4, 4))
	}
	_, err = OpenImageFolder(none, "val")
	if err == nil || !strings.Contains(err.Error(), "val/") || !strings.Contains(err.Error(), "test/") || !errors.Is(err, ErrBadData) {
		t.Errorf("no evaluation folder: error %v should name val/ and test/", err)
	}
}

// TestBadDataIsTyped: corrupt or vanished files are reported as bad input
// data, naming the file.
func TestBadDataIsTyped(t *testing.T) {
	root := t.TempDir()
	writePNG(t, filepath.Join(root, "train", "a", "good.png"), rgbaImage(3, 3))
	bad := writeFile(t, filepath.Join(root, "train", "b"), "bad.jpg", []byte("not a JPEG"))
	gone := filepath.Join(root, "train", "b", "gone.png")
	writePNG(t, gone, rgbaImage(3, 3))
	f, err := OpenImageFolder(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error, file string) {
		t.Helper()
		var fe *FormatError
		if err == nil || !errors.Is(err, ErrBadData) || !errors.As(err, &fe) || fe.File != file {
			t.Errorf("%s: error %v should be a *FormatError for %s wrapping ErrBadData", what, err, file)
		}
	}
	var s Scratch
	for _, p := range []string{bad, gone} {
		_, _, err := f.Example(indexOf(f.Files, p), &s)
		check("Example("+p+")", err, p)
	}
	_, _, err = f.Example(indexOf(f.Files, gone), &s)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a vanished file's error %v should still say it does not exist", err)
	}
	_, err = f.Load(4, 2)
	check("Load", err, bad)

	// Through a loader, as the trainer sees it.
	l, err := NewLoader(f, LoaderOptions{BatchOptions: BatchOptions{BatchSize: 3, Transform: Resize{Height: 4, Width: 4}}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Next()
	l.Close()
	check("Loader.Next", err, bad)

	// idx and CIFAR files.
	idx := writeFile(t, root, "t10k-images-idx3-ubyte", []byte{0, 0, 8, 3, 0, 0})
	_, err = ReadIDXFile(idx)
	check("ReadIDXFile", err, idx)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte{0, 0, 8, 1, 0, 0, 0, 5, 1, 2})
	zw.Close()
	idxgz := writeFile(t, root, "short-idx1-ubyte.gz", gz.Bytes())
	_, err = ReadIDXFile(idxgz)
	check("ReadIDXFile(gz)", err, idxgz)
	cifar := filepath.Join(root, "cifar-10-batches-bin")
	batch := writeFile(t, cifar, "test_batch.bin", make([]byte, 100))
	_, err = Load("cifar10", cifar, SplitTest)
	check("Load(cifar10)", err, batch)
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
