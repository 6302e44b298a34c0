package data

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writePNG encodes m as PNG at path.
func writePNG(t *testing.T, path string, m image.Image) {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Dir(path), filepath.Base(path), b.Bytes())
}

// writeJPEG encodes m as a high-quality JPEG at path.
func writeJPEG(t *testing.T, path string, m image.Image) {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Dir(path), filepath.Base(path), b.Bytes())
}

// rgbaImage returns an RGBA image whose pixel (x, y) is (10x, 20y, x+y, 255).
func rgbaImage(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.Set(x, y, color.RGBA{byte(10 * x), byte(20 * y), byte(x + y), 255})
		}
	}
	return m
}

// uniform returns a w x h image filled with one colour.
func uniform(w, h int, c color.RGBA) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetRGBA(x, y, c)
		}
	}
	return m
}

// makeImageTree writes a small image folder and returns its root.
func makeImageTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	tr := filepath.Join(root, "train")
	writePNG(t, filepath.Join(tr, "cat", "a.png"), rgbaImage(6, 4))
	writeJPEG(t, filepath.Join(tr, "cat", "b.jpg"), uniform(10, 8, color.RGBA{200, 40, 90, 255}))
	gray := image.NewGray(image.Rect(0, 0, 5, 5))
	for i := range gray.Pix {
		gray.Pix[i] = byte(i * 9)
	}
	writePNG(t, filepath.Join(tr, "cat", "sub", "c.PNG"), gray)
	nrgba := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	for i := 0; i < len(nrgba.Pix); i += 4 {
		copy(nrgba.Pix[i:], []byte{200, 100, 50, 128})
	}
	writePNG(t, filepath.Join(tr, "dog", "d.png"), nrgba)
	writeJPEG(t, filepath.Join(tr, "zebra", "e.jpeg"), uniform(7, 9, color.RGBA{20, 220, 120, 255}))
	writeFile(t, filepath.Join(tr, "cat"), "notes.txt", []byte("not an image"))
	writePNG(t, filepath.Join(tr, ".hidden", "x.png"), rgbaImage(2, 2))
	writePNG(t, filepath.Join(root, "val", "dog", "f.png"), uniform(4, 4, color.RGBA{1, 2, 3, 255}))
	writeJPEG(t, filepath.Join(root, "val", "zebra", "g.jpg"), uniform(16, 12, color.RGBA{90, 90, 240, 255}))
	return root
}

func TestImageFolderListsAndDecodes(t *testing.T) {
	root := makeImageTree(t)
	f, err := OpenImageFolder(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Classes, []string{"cat", "dog", "zebra"}) {
		t.Fatalf("classes %v", f.Classes)
	}
	var rel []string
	for _, p := range f.Files {
		r, _ := filepath.Rel(root, p)
		rel = append(rel, filepath.ToSlash(r))
	}
	wantFiles := []string{"train/cat/a.png", "train/cat/b.jpg", "train/cat/sub/c.PNG", "train/dog/d.png", "train/zebra/e.jpeg"}
	if !slices.Equal(rel, wantFiles) || !slices.Equal(f.Labels, []int32{0, 0, 0, 1, 2}) {
		t.Fatalf("files %v labels %v, want %v and [0 0 0 1 2]", rel, f.Labels, wantFiles)
	}
	var s Scratch
	// PNG is lossless: exact pixels.
	img, label, err := f.Example(0, &s)
	if err != nil || label != 0 || img.Height != 4 || img.Width != 6 || img.Channels != 3 {
		t.Fatalf("a.png: %dx%dx%d label %d err %v", img.Height, img.Width, img.Channels, label, err)
	}
	for y := range 4 {
		for x := range 6 {
			p := img.Pix[(y*6+x)*3:]
			if p[0] != byte(10*x) || p[1] != byte(20*y) || p[2] != byte(x+y) {
				t.Fatalf("a.png pixel (%d,%d) = %v", x, y, p[:3])
			}
		}
	}
	// JPEG of a flat colour decodes to nearly that colour.
	img, _, err = f.Example(1, &s)
	if err != nil || img.Height != 8 || img.Width != 10 {
		t.Fatalf("b.jpg: %dx%d err %v", img.Height, img.Width, err)
	}
	for i, v := range img.Pix {
		want := []byte{200, 40, 90}[i%3]
		if d := int(v) - int(want); d < -3 || d > 3 {
			t.Fatalf("b.jpg value %d = %d, want about %d", i, v, want)
		}
	}
	// Grey is replicated into three channels.
	img, _, _ = f.Example(2, &s)
	for i := range 25 {
		if p := img.Pix[3*i : 3*i+3]; p[0] != byte(i*9) || p[1] != p[0] || p[2] != p[0] {
			t.Fatalf("c.PNG pixel %d = %v, want grey %d", i, p, i*9)
		}
	}
	// Half-transparent pixels are composed over black.
	img, label, _ = f.Example(3, &s)
	if label != 1 || !slices.Equal(img.Pix[:3], []byte{100, 50, 25}) {
		t.Errorf("d.png first pixel %v label %d, want [100 50 25] over black, label 1", img.Pix[:3], label)
	}

	val, err := OpenImageFolder(root, "test")
	if err != nil {
		t.Fatal(err)
	}
	if val.Split != "val" || !slices.Equal(val.Classes, f.Classes) || !slices.Equal(val.Labels, []int32{1, 2}) {
		t.Errorf("val: split %s classes %v labels %v; want train's class indices [1 2]", val.Split, val.Classes, val.Labels)
	}
	if h, w, c := val.Shape(); h != 0 || w != 0 || c != 3 {
		t.Errorf("Shape() = %d, %d, %d", h, w, c)
	}
}

func TestImageFolderLoadResizes(t *testing.T) {
	root := makeImageTree(t)
	ds1, err := LoadImageFolder(root, "val", 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ds1.N != 2 || ds1.Height != 5 || ds1.Width != 5 || ds1.Channels != 3 || ds1.NumClasses != 3 || ds1.Split != SplitTest {
		t.Fatalf("val dataset: N=%d %dx%dx%d classes %d split %s", ds1.N, ds1.Height, ds1.Width, ds1.Channels, ds1.NumClasses, ds1.Split)
	}
	if err := ds1.Validate(); err != nil {
		t.Fatal(err)
	}
	// Flat colours stay flat whatever the resize.
	for i, v := range ds1.Image(0) {
		if want := []byte{1, 2, 3}[i%3]; v != want {
			t.Fatalf("resized f.png value %d = %d, want %d", i, v, want)
		}
	}
	// The train split decoded by 1 and 3 workers agrees, and matches
	// ResizeBilinear of the decoded image.
	a, err := LoadImageFolder(root, "train", 6, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadImageFolder(root, "train", 6, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Images, b.Images) || !slices.Equal(a.Labels, b.Labels) {
		t.Error("1 and 3 workers decoded different datasets")
	}
	f, _ := OpenImageFolder(root, "train")
	var s Scratch
	src, _, _ := f.Example(0, &s)
	want, _ := ResizeBilinear(src, 6, 6)
	if !slices.Equal(a.Image(0), want.Pix) {
		t.Error("Load's image 0 differs from ResizeBilinear of the decoded file")
	}
	if _, err := LoadImageFolder(root, "train", 0, 1); err == nil {
		t.Error("size 0 accepted")
	}
}

func TestImageFolderRejectsBadInput(t *testing.T) {
	root := t.TempDir()
	good := filepath.Join(root, "train", "a", "good.png")
	writePNG(t, good, rgbaImage(3, 3))
	garbage := writeFile(t, filepath.Join(root, "train", "a"), "h_garbage.jpg", []byte("this is not a JPEG"))
	var whole bytes.Buffer
	if err := png.Encode(&whole, rgbaImage(20, 20)); err != nil {
		t.Fatal(err)
	}
	truncated := writeFile(t, filepath.Join(root, "train", "b"), "truncated.png", whole.Bytes()[:whole.Len()/2])
	f, err := OpenImageFolder(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	var s Scratch
	for i, bad := range []string{garbage, truncated} {
		idx := slices.Index(f.Files, bad)
		if _, _, err := f.Example(idx, &s); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("bad image %d: error %v should name %s", i, err, bad)
		}
	}
	// Load reports the first bad file in order, whatever the workers.
	for _, workers := range []int{1, 3} {
		if _, err := f.Load(4, workers); err == nil || !strings.Contains(err.Error(), garbage) {
			t.Errorf("Load with %d workers: error %v should name %s", workers, err, garbage)
		}
	}
	// A class in val that train lacks, an unknown split, no images at all.
	writePNG(t, filepath.Join(root, "val", "zzz", "x.png"), rgbaImage(2, 2))
	if _, err := OpenImageFolder(root, "val"); err == nil || !strings.Contains(err.Error(), "zzz") {
		t.Errorf("unknown val class: error %v", err)
	}
	if _, err := OpenImageFolder(root, "holdout"); err == nil || !strings.Contains(err.Error(), "holdout") {
		t.Errorf("unknown split: error %v", err)
	}
	empty := t.TempDir()
	os.MkdirAll(filepath.Join(empty, "train", "a"), 0o755)
	os.MkdirAll(filepath.Join(empty, "train", "b"), 0o755)
	if _, err := OpenImageFolder(empty, "train"); err == nil || !strings.Contains(err.Error(), "no .jpg") {
		t.Errorf("no images: error %v", err)
	}
	if _, err := OpenImageFolder(filepath.Join(empty, "missing"), "train"); err == nil {
		t.Error("missing folder accepted")
	}
}
