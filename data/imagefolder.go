package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers the JPEG decoder with image.Decode
	_ "image/png"  // registers the PNG decoder with image.Decode
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// maxImagePixels bounds the size of an image the folder reader decodes, so a
// corrupt or hostile header cannot make it allocate gigabytes.
const maxImagePixels = 1 << 26

// ImageFolder is a dataset of image files laid out one folder per class:
// Root/train/<class>/*.{jpg,jpeg,png} and Root/val/<class>/... or
// Root/test/<class>/... (files may also sit in subfolders of a class folder). Class indices follow the sorted
// class folder names of Root/train (or of the split's folder when there is
// no train folder), so both splits agree. Images are decoded on demand as
// 3-channel RGB (grey images are replicated, transparency is composed over
// black); it implements Source with images of varying size, so batching it
// needs a Transform that fixes the size (RandomResizedCrop, ResizeCenterCrop
// or Resize). LoadImageFolder decodes everything into memory instead.
type ImageFolder struct {
	// Root is the folder holding the split folders.
	Root string
	// Split is the split's folder name: "train", "val" or "test".
	Split string
	// Dir is the split's folder.
	Dir string
	// Classes are the class folder names; a label indexes this list.
	Classes []string
	// Files are the image paths, sorted by class and then by path.
	Files []string
	// Labels are the class indices of Files.
	Labels []int32
}

// imageExtensions are the file name endings of images (compared in lower case).
var imageExtensions = map[string]bool{".jpg": true, ".jpeg": true, ".png": true}

// OpenImageFolder lists the images of a split of an image folder: split
// "train" reads Root/train; "val" or "test" (the evaluation split) reads
// Root/val or Root/test, whichever exists (both is an error). There must be
// at least two classes. Nothing is decoded yet. Errors about the folder's
// layout wrap ErrBadData.
func OpenImageFolder(root, split string) (*ImageFolder, error) {
	var sub string
	switch split {
	case "train":
		sub = "train"
	case "val", "test":
		val, test := filepath.Join(root, "val"), filepath.Join(root, "test")
		hasVal, hasTest := isDirectory(val), isDirectory(test)
		switch {
		case hasVal && hasTest:
			return nil, fmt.Errorf("image folder: %w", badFile(root, fmt.Errorf("both %s and %s exist; keep the evaluation images in one of them", val, test)))
		case hasVal:
			sub = "val"
		case hasTest:
			sub = "test"
		default:
			return nil, fmt.Errorf("image folder: %w", badFile(root, errors.New("no val/ or test/ folder for the evaluation split (want val/<class>/ or test/<class>/ beside train/)")))
		}
	default:
		return nil, fmt.Errorf("image folder %s: unknown split %q (want train, val or test)", root, split)
	}
	dir := filepath.Join(root, sub)
	classDir := filepath.Join(root, "train")
	if _, err := os.Stat(classDir); err != nil {
		classDir = dir
	}
	classes, err := subfolders(classDir)
	if err != nil {
		return nil, fmt.Errorf("image folder: %w", badFile(classDir, unwrapPath(err)))
	}
	switch len(classes) {
	case 0:
		return nil, fmt.Errorf("image folder: %w", badFile(classDir, errors.New("no class folders")))
	case 1:
		return nil, fmt.Errorf("image folder: %w", badFile(classDir, fmt.Errorf("only one class folder (%s); a classifier needs at least two", classes[0])))
	}
	present, err := subfolders(dir)
	if err != nil {
		return nil, fmt.Errorf("image folder: %w", badFile(dir, unwrapPath(err)))
	}
	index := make(map[string]int32, len(classes))
	for i, c := range classes {
		index[c] = int32(i)
	}
	for _, c := range present {
		if _, ok := index[c]; !ok {
			return nil, fmt.Errorf("image folder: class folder %w", badFile(filepath.Join(dir, c), fmt.Errorf("has no counterpart in %s", classDir)))
		}
	}
	f := &ImageFolder{Root: root, Split: sub, Dir: dir, Classes: classes}
	for _, c := range present {
		label := index[c]
		err := filepath.WalkDir(filepath.Join(dir, c), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if strings.HasPrefix(name, ".") && path != filepath.Join(dir, c) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() && imageExtensions[strings.ToLower(filepath.Ext(name))] {
				f.Files = append(f.Files, path)
				f.Labels = append(f.Labels, label)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("image folder: listing %w", badFile(filepath.Join(dir, c), unwrapPath(err)))
		}
	}
	if len(f.Files) == 0 {
		return nil, fmt.Errorf("image folder: %w", badFile(dir, errors.New("no .jpg, .jpeg or .png files")))
	}
	if sub == "train" && f.Labels[0] == f.Labels[len(f.Labels)-1] { // sorted by class
		return nil, fmt.Errorf("image folder: %w", badFile(dir, fmt.Errorf("only the class folder %s holds images; a classifier needs at least two classes", classes[f.Labels[0]])))
	}
	return f, nil
}

// subfolders returns the sorted names of the non-hidden folders in dir.
func subfolders(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Len implements Source.
func (f *ImageFolder) Len() int { return len(f.Files) }

// ClassCount implements Source.
func (f *ImageFolder) ClassCount() int { return len(f.Classes) }

// Shape implements Source: images are RGB of varying size.
func (f *ImageFolder) Shape() (height, width, channels int) { return 0, 0, 3 }

// Example implements Source: it decodes image i as RGB into scratch.
func (f *ImageFolder) Example(i int, scratch *Scratch) (Image, int32, error) {
	if i < 0 || i >= len(f.Files) {
		return Image{}, 0, fmt.Errorf("image folder %s: example %d out of range [0, %d)", f.Dir, i, len(f.Files))
	}
	img, err := decodeImageFile(f.Files[i], scratch)
	if err != nil {
		return Image{}, 0, err
	}
	return img, f.Labels[i], nil
}

// decodeImageFile decodes a JPEG or PNG file into RGB bytes held in s.pix.
// Its errors are *FormatError for the file.
func decodeImageFile(path string, s *Scratch) (Image, error) {
	raw, err := readFileInto(path, s.raw[:0])
	if err != nil {
		return Image{}, fmt.Errorf("image file %w", badFile(path, unwrapPath(err)))
	}
	s.raw = raw
	cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return Image{}, fmt.Errorf("image file %w", badFile(path, err))
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxImagePixels {
		return Image{}, fmt.Errorf("image file %w", badFile(path, fmt.Errorf("size %dx%d is empty or above %d pixels", cfg.Width, cfg.Height, maxImagePixels)))
	}
	m, _, err := image.Decode(bytes.NewReader(raw))
	if err != nil {
		return Image{}, fmt.Errorf("image file %w", badFile(path, err))
	}
	b := m.Bounds()
	h, w := b.Dy(), b.Dx()
	n := h * w * 3
	if cap(s.pix) < n {
		s.pix = make([]byte, n)
	}
	pix := s.pix[:n]
	toRGB(pix, m)
	return Image{Pix: pix, Height: h, Width: w, Channels: 3}, nil
}

// readFileInto appends the content of a file to buf (reusing its memory)
// and returns it.
func readFileInto(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && int64(cap(buf)) < st.Size()+1 {
		buf = slices.Grow(buf, int(st.Size())+1-len(buf))
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 4096)
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// unwrapPath drops the path of an *fs.PathError, which the caller names
// itself, keeping the operation and the reason.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// isDirectory tells whether path is a folder.
func isDirectory(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// ycbcrToRGB converts a JPEG's YCbCr image to interleaved RGB bytes, row
// by row, with the arithmetic of color.YCbCrToRGB written out (the same
// bytes, several times faster than a call per pixel). It returns false,
// writing nothing, for layouts it does not handle (a negative origin).
func ycbcrToRGB(dst []byte, src *image.YCbCr) bool {
	b := src.Rect
	if b.Min.X < 0 || b.Min.Y < 0 {
		return false
	}
	var hShift uint // horizontal chroma subsampling: 1, 2 or 4 luma columns per chroma sample
	switch src.SubsampleRatio {
	case image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio440:
		hShift = 0
	case image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420:
		hShift = 1
	case image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410:
		hShift = 2
	default:
		return false
	}
	w := b.Dx()
	x0 := b.Min.X
	c0 := x0 >> hShift
	for y := b.Min.Y; y < b.Max.Y; y++ {
		yi, ci := src.YOffset(x0, y), src.COffset(x0, y)
		ys := src.Y[yi : yi+w]
		cn := ((x0+w-1)>>hShift - c0) + 1
		cbs, crs := src.Cb[ci:ci+cn], src.Cr[ci:ci+cn]
		row := dst[(y-b.Min.Y)*w*3 : (y-b.Min.Y+1)*w*3]
		if hShift == 1 && x0%2 == 0 {
			// 4:2:0 and 4:2:2 (most JPEGs): two luma samples per chroma sample.
			for j := range w / 2 {
				rc, gc, bc := chromaTerms(cbs[j], crs[j])
				o := row[6*j : 6*j+6]
				o[0], o[1], o[2] = ycbcrPixel(ys[2*j], rc, gc, bc)
				o[3], o[4], o[5] = ycbcrPixel(ys[2*j+1], rc, gc, bc)
			}
			if w%2 == 1 {
				rc, gc, bc := chromaTerms(cbs[w/2], crs[w/2])
				o := row[3*(w-1) : 3*w]
				o[0], o[1], o[2] = ycbcrPixel(ys[w-1], rc, gc, bc)
			}
			continue
		}
		for x, yv := range ys {
			c := (x0+x)>>hShift - c0
			rc, gc, bc := chromaTerms(cbs[c], crs[c])
			o := row[3*x : 3*x+3]
			o[0], o[1], o[2] = ycbcrPixel(yv, rc, gc, bc)
		}
	}
	return true
}

// chromaTerms returns the chroma parts of color.YCbCrToRGB's sums for R, G
// and B (its constants: 1.402, 0.34414, 0.71414 and 1.772 in 16-bit fixed
// point).
func chromaTerms(cb, cr byte) (r, g, b int32) {
	cb1, cr1 := int32(cb)-128, int32(cr)-128
	return 91881 * cr1, -22554*cb1 - 46802*cr1, 116130 * cb1
}

// ycbcrPixel finishes color.YCbCrToRGB for a luma value and the chroma
// terms: the same rounding (Y*0x10101) and clamping, bit for bit.
func ycbcrPixel(y byte, rc, gc, bc int32) (byte, byte, byte) {
	yy1 := int32(y) * 0x10101
	return clamp16(yy1 + rc), clamp16(yy1 + gc), clamp16(yy1 + bc)
}

// clamp16 returns v>>16 clamped to [0, 255], as color.YCbCrToRGB does.
func clamp16(v int32) byte {
	if uint32(v)&0xff000000 == 0 {
		return byte(v >> 16)
	}
	return byte(^(v >> 31))
}

// ycbcrToRGBGeneric converts any YCbCr layout to interleaved RGB bytes,
// pixel by pixel with the library's offsets and color.YCbCrToRGB: the
// fallback of ycbcrToRGB, and the reference its tests compare it with.
func ycbcrToRGBGeneric(dst []byte, src *image.YCbCr) {
	b := src.Bounds()
	w := b.Dx()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := dst[(y-b.Min.Y)*w*3:]
		for x := b.Min.X; x < b.Max.X; x++ {
			yi, ci := src.YOffset(x, y), src.COffset(x, y)
			r, g, bl := color.YCbCrToRGB(src.Y[yi], src.Cb[ci], src.Cr[ci])
			o := (x - b.Min.X) * 3
			row[o], row[o+1], row[o+2] = r, g, bl
		}
	}
}

// toRGB writes the pixels of m as interleaved RGB bytes (alpha composed over black).
func toRGB(dst []byte, m image.Image) {
	b := m.Bounds()
	w := b.Dx()
	switch src := m.(type) {
	case *image.YCbCr:
		if !ycbcrToRGB(dst, src) { // unusual layouts
			ycbcrToRGBGeneric(dst, src)
		}
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := dst[(y-b.Min.Y)*w*3:]
			line := src.Pix[src.PixOffset(b.Min.X, y):]
			for x := range w {
				v := line[x]
				row[3*x], row[3*x+1], row[3*x+2] = v, v, v
			}
		}
	case *image.RGBA: // premultiplied: the colour bytes already are "over black"
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := dst[(y-b.Min.Y)*w*3:]
			line := src.Pix[src.PixOffset(b.Min.X, y):]
			for x := range w {
				row[3*x], row[3*x+1], row[3*x+2] = line[4*x], line[4*x+1], line[4*x+2]
			}
		}
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := dst[(y-b.Min.Y)*w*3:]
			line := src.Pix[src.PixOffset(b.Min.X, y):]
			for x := range w {
				a := uint32(line[4*x+3])
				for c := range 3 {
					row[3*x+c] = byte((uint32(line[4*x+c])*a + 127) / 255)
				}
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := dst[(y-b.Min.Y)*w*3:]
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bl, _ := m.At(x, y).RGBA()
				o := (x - b.Min.X) * 3
				row[o], row[o+1], row[o+2] = byte(r>>8), byte(g>>8), byte(bl>>8)
			}
		}
	}
}

// Load decodes every image and resizes it bilinearly to size x size (the
// aspect ratio is not kept) into an in-memory dataset named "imagefolder",
// using workers goroutines (0 means runtime.GOMAXPROCS(0)). The result does
// not depend on workers. The first unreadable image (in file order) is
// reported, naming the file.
func (f *ImageFolder) Load(size, workers int) (*Dataset, error) {
	if size <= 0 {
		return nil, fmt.Errorf("image folder %s: image size %d must be positive", f.Dir, size)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	split := SplitTrain
	if f.Split != "train" {
		split = SplitTest
	}
	n := len(f.Files)
	ex := size * size * 3
	ds := &Dataset{
		Name: "imagefolder", Split: split,
		Images: make([]byte, n*ex), Labels: append([]int32(nil), f.Labels...),
		N: n, Height: size, Width: size, Channels: 3,
		NumClasses: len(f.Classes),
		Source:     []string{f.Dir},
	}
	errs := make([]error, n)
	// firstBad is the smallest failing index seen so far; workers skip the
	// files after it but still read those before it, so the error reported
	// is the first in file order whatever the number of workers.
	var firstBad atomic.Int64
	firstBad.Store(int64(n))
	var wg sync.WaitGroup
	for w := range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s Scratch
			for i := w; i < n && int64(i) < firstBad.Load(); i += workers {
				img, err := decodeImageFile(f.Files[i], &s)
				if err != nil {
					errs[i] = err
					for {
						cur := firstBad.Load()
						if int64(i) >= cur || firstBad.CompareAndSwap(cur, int64(i)) {
							break
						}
					}
					return
				}
				resizeInto(Image{Pix: ds.Image(i), Height: size, Width: size, Channels: 3}, img, &s)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("image folder %s: %w", f.Dir, err)
		}
	}
	return ds, nil
}

// LoadImageFolder opens a split of an image folder (see OpenImageFolder) and
// decodes it into memory at size x size (see (*ImageFolder).Load).
func LoadImageFolder(root, split string, size, workers int) (*Dataset, error) {
	f, err := OpenImageFolder(root, split)
	if err != nil {
		return nil, err
	}
	return f.Load(size, workers)
}
