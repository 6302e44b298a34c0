package data

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// CIFAR image geometry: 32x32 RGB, stored channel-planar (CHW) on disk.
const (
	cifarSide      = 32
	cifarChannels  = 3
	cifarImageSize = cifarSide * cifarSide * cifarChannels
)

// cifarFormat describes one of the two CIFAR binary formats.
type cifarFormat struct {
	name       string   // dataset name, "cifar10" or "cifar100"
	folder     string   // folder the published archive unpacks to
	url        string   // where to download the archive
	train      []string // training files
	test       []string // test files
	labelBytes int      // label bytes before the pixels of each record
	numClasses int      // classes of the label that is used (the last label byte)
	numCoarse  int      // classes of the coarse label (CIFAR-100 only)
}

// cifar10Format is CIFAR-10's binary version: records of 1 label byte and
// 3072 pixel bytes, 10000 records per file.
var cifar10Format = cifarFormat{
	name:   "cifar10",
	folder: "cifar-10-batches-bin",
	url:    "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
	train: []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
		"data_batch_4.bin", "data_batch_5.bin"},
	test:       []string{"test_batch.bin"},
	labelBytes: 1,
	numClasses: 10,
}

// cifar100Format is CIFAR-100's binary version: records of a coarse label
// byte, a fine label byte and 3072 pixel bytes; the fine label is used.
var cifar100Format = cifarFormat{
	name:       "cifar100",
	folder:     "cifar-100-binary",
	url:        "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
	train:      []string{"train.bin"},
	test:       []string{"test.bin"},
	labelBytes: 2,
	numClasses: 100,
	numCoarse:  20,
}

// loadCIFAR10 finds and reads a CIFAR-10 split.
func loadCIFAR10(dir, split string) (*Dataset, error) { return loadCIFAR(cifar10Format, dir, split) }

// loadCIFAR100 finds and reads a CIFAR-100 split.
func loadCIFAR100(dir, split string) (*Dataset, error) { return loadCIFAR(cifar100Format, dir, split) }

// cifarDefaultDirs returns where a CIFAR dataset is looked for without --data-dir.
func cifarDefaultDirs(f cifarFormat) []string {
	var bases []string
	if cache, err := os.UserCacheDir(); err == nil && cache != "" {
		bases = append(bases, filepath.Join(cache, "sgt"))
	}
	bases = append(bases, "/usr/share/datasets")
	var dirs []string
	for _, b := range bases {
		dirs = append(dirs, filepath.Join(b, f.folder), filepath.Join(b, f.name))
	}
	return dirs
}

// loadCIFAR finds the files of a split in the first folder that has them all.
func loadCIFAR(f cifarFormat, dir, split string) (*Dataset, error) {
	files := f.train
	if split == SplitTest {
		files = f.test
	}
	dirs := candidateDirs(dir, []string{f.folder, f.name}, func() []string { return cifarDefaultDirs(f) })
	var partial []string
	for _, d := range dirs {
		var paths, missing []string
		for _, name := range files {
			p := filepath.Join(d, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				paths = append(paths, p)
			} else {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return readCIFAR(f, split, paths)
		}
		if len(paths) > 0 {
			partial = append(partial, fmt.Sprintf("%s lacks %s", d, strings.Join(missing, ", ")))
		}
	}
	msg := fmt.Sprintf("dataset %s: %s split not found: looked for %s in %s", f.name, split, strings.Join(files, ", "), quoteList(dirs))
	if len(partial) > 0 {
		msg += " (" + strings.Join(partial, "; ") + ")"
	}
	return nil, fmt.Errorf("%s; this dataset is not shipped with sgt and cannot be fetched offline: download %s yourself, unpack it (it makes the folder %s) and pass --data-dir with that folder or its parent",
		msg, f.url, f.folder)
}

// readCIFAR reads CIFAR binary files into one dataset, converting the
// channel-planar pixels to HWC. Every file must hold a positive whole number
// of records (the published files hold 10000 each, 50000 for CIFAR-100's
// train.bin), and every label must be in range.
func readCIFAR(f cifarFormat, split string, paths []string) (*Dataset, error) {
	record := f.labelBytes + cifarImageSize
	sizes := make([]int64, len(paths))
	total := 0
	for i, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("dataset %s: file %w", f.name, badFile(p, unwrapPath(err)))
		}
		if st.Size() == 0 || st.Size()%int64(record) != 0 {
			return nil, fmt.Errorf("dataset %s: file %w", f.name, badFile(p, fmt.Errorf("has %d bytes, not a positive multiple of the %d-byte record (%d label bytes + %d pixels)",
				st.Size(), record, f.labelBytes, cifarImageSize)))
		}
		sizes[i] = st.Size()
		total += int(st.Size() / int64(record))
	}
	ds := &Dataset{
		Name: f.name, Split: split,
		Images: make([]byte, total*cifarImageSize),
		Labels: make([]int32, total),
		N:      total, Height: cifarSide, Width: cifarSide, Channels: cifarChannels,
		NumClasses: f.numClasses,
		Source:     append([]string(nil), paths...),
	}
	var buf []byte
	next := 0
	for i, p := range paths {
		if int64(cap(buf)) < sizes[i] {
			buf = make([]byte, sizes[i])
		}
		buf = buf[:sizes[i]]
		if err := readWholeFile(p, buf); err != nil {
			return nil, fmt.Errorf("dataset %s: %w", f.name, err)
		}
		for r := 0; r < len(buf)/record; r++ {
			rec := buf[r*record : (r+1)*record]
			if f.numCoarse > 0 && int(rec[0]) >= f.numCoarse {
				return nil, fmt.Errorf("dataset %s: file %w", f.name, badFile(p, fmt.Errorf("record %d has coarse label %d outside [0, %d)", r, rec[0], f.numCoarse)))
			}
			label := rec[f.labelBytes-1]
			if int(label) >= f.numClasses {
				return nil, fmt.Errorf("dataset %s: file %w", f.name, badFile(p, fmt.Errorf("record %d has label %d outside [0, %d)", r, label, f.numClasses)))
			}
			ds.Labels[next] = int32(label)
			chwToHWC(ds.Image(next), rec[f.labelBytes:], cifarSide*cifarSide, cifarChannels)
			next++
		}
	}
	return ds, nil
}

// readWholeFile fills buf with the content of path, which must have exactly
// len(buf) bytes (it was checked just before; a change in between is an
// error). Its errors are *FormatError for the file.
func readWholeFile(path string, buf []byte) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("file %w", badFile(path, unwrapPath(err)))
	}
	defer fh.Close()
	if _, err := io.ReadFull(fh, buf); err != nil {
		return fmt.Errorf("file %w", badFile(path, fmt.Errorf("reading %d bytes: %w", len(buf), err)))
	}
	var extra [1]byte
	if n, _ := fh.Read(extra[:]); n > 0 {
		return fmt.Errorf("file %w", badFile(path, errors.New("grew while being read")))
	}
	return nil
}

// chwToHWC converts one channel-planar image of pixels pixels per channel to
// interleaved HWC order.
func chwToHWC(dst, src []byte, pixels, channels int) {
	for c := range channels {
		plane := src[c*pixels : (c+1)*pixels]
		for p, v := range plane {
			dst[p*channels+c] = v
		}
	}
}
