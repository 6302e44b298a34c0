package data

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Fingerprint sizes: files below FullHashLimit bytes are hashed whole,
// larger ones by their first and last FingerprintChunk bytes.
const (
	FingerprintChunk = 64 << 10
	FullHashLimit    = 8 << 20
)

// FileFingerprint identifies a data file (or an image folder's listing)
// cheaply, so that resuming a run can check that its data did not change.
type FileFingerprint struct {
	// Path is the file (or folder) as it was read.
	Path string `json:"path"`
	// Size is the file's size in bytes (for a folder: of all its images).
	Size int64 `json:"size"`
	// SHA256 is the hex SHA-256 of the whole file when it is smaller than
	// FullHashLimit; of its first FingerprintChunk bytes followed by its last
	// FingerprintChunk bytes otherwise (Partial); for a folder, of its
	// listing (each image's path relative to the folder and size).
	SHA256 string `json:"sha256"`
	// Partial is set when SHA256 does not cover every byte: a change in the
	// middle of a large file that keeps its size goes unnoticed.
	Partial bool `json:"partial,omitempty"`
	// Files is the number of images of a folder fingerprint (0 for a file).
	Files int `json:"files,omitempty"`
}

// FingerprintFile fingerprints one file; errors are *FormatError.
func FingerprintFile(path string) (FileFingerprint, error) {
	fh, err := os.Open(path)
	if err != nil {
		return FileFingerprint{}, fmt.Errorf("fingerprint: %w", badFile(path, unwrapPath(err)))
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return FileFingerprint{}, fmt.Errorf("fingerprint: %w", badFile(path, unwrapPath(err)))
	}
	if !st.Mode().IsRegular() {
		return FileFingerprint{}, fmt.Errorf("fingerprint: %w", badFile(path, errors.New("not a regular file")))
	}
	fp := FileFingerprint{Path: path, Size: st.Size()}
	h := sha256.New()
	if st.Size() < FullHashLimit {
		_, err = io.Copy(h, fh)
	} else {
		fp.Partial = true
		buf := make([]byte, FingerprintChunk)
		if _, err = io.ReadFull(fh, buf); err == nil {
			h.Write(buf)
			if _, err = fh.ReadAt(buf, st.Size()-FingerprintChunk); err == nil {
				h.Write(buf)
			}
		}
	}
	if err != nil {
		return FileFingerprint{}, fmt.Errorf("fingerprint: %w", badFile(path, err))
	}
	fp.SHA256 = hex.EncodeToString(h.Sum(nil))
	return fp, nil
}

// Fingerprint fingerprints files in order (see FingerprintFile); a folder
// among them (the source of a dataset decoded from an image folder) gets
// the fingerprint of its listing of images, as (*ImageFolder).Fingerprint.
func Fingerprint(paths ...string) ([]FileFingerprint, error) {
	fps := make([]FileFingerprint, 0, len(paths))
	for _, p := range paths {
		var fp FileFingerprint
		var err error
		if st, serr := os.Stat(p); serr == nil && st.IsDir() {
			fp, err = folderFingerprint(p)
		} else {
			fp, err = FingerprintFile(p)
		}
		if err != nil {
			return nil, err
		}
		fps = append(fps, fp)
	}
	return fps, nil
}

// Fingerprint fingerprints the files the dataset was read from (Source).
func (d *Dataset) Fingerprint() ([]FileFingerprint, error) { return Fingerprint(d.Source...) }

// Fingerprint fingerprints the folder's listing: each image's path relative
// to the split folder and its size (a stat per file, no reading), in one
// entry for the folder. Images replaced by others of the same size go
// unnoticed (Partial is set).
func (f *ImageFolder) Fingerprint() (FileFingerprint, error) {
	return listingFingerprint(f.Dir, f.Files)
}

// folderFingerprint fingerprints the listing of the images under dir (in
// lexical order, hidden files and folders left out).
func folderFingerprint(dir string) (FileFingerprint, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && path != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && imageExtensions[strings.ToLower(filepath.Ext(d.Name()))] {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return FileFingerprint{}, fmt.Errorf("fingerprint: listing %w", badFile(dir, unwrapPath(err)))
	}
	return listingFingerprint(dir, files)
}

// listingFingerprint hashes the relative paths and sizes of files under dir.
func listingFingerprint(dir string, files []string) (FileFingerprint, error) {
	fp := FileFingerprint{Path: dir, Partial: true, Files: len(files)}
	h := sha256.New()
	for _, p := range files {
		st, err := os.Stat(p)
		if err != nil {
			return FileFingerprint{}, fmt.Errorf("fingerprint: %w", badFile(p, unwrapPath(err)))
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			rel = p
		}
		h.Write([]byte(filepath.ToSlash(rel)))
		h.Write([]byte{0})
		h.Write(strconv.AppendInt(nil, st.Size(), 10))
		h.Write([]byte{'\n'})
		fp.Size += st.Size()
	}
	fp.SHA256 = hex.EncodeToString(h.Sum(nil))
	return fp, nil
}

// FingerprintSource fingerprints a *Dataset's files or an *ImageFolder's
// listing; other sources are an error.
func FingerprintSource(src Source) ([]FileFingerprint, error) {
	switch s := src.(type) {
	case *Dataset:
		return s.Fingerprint()
	case *ImageFolder:
		fp, err := s.Fingerprint()
		if err != nil {
			return nil, err
		}
		return []FileFingerprint{fp}, nil
	}
	return nil, fmt.Errorf("fingerprint: cannot fingerprint a source of type %T", src)
}

// CompareFingerprints checks that current data matches the fingerprints
// recorded earlier, entry by entry; the paths may differ (data moved
// elsewhere), the content may not. The error names the first file that
// differs and wraps ErrBadData.
func CompareFingerprints(recorded, current []FileFingerprint) error {
	if len(recorded) != len(current) {
		return fmt.Errorf("data changed: %d files recorded (%s), %d now (%s): %w",
			len(recorded), fingerprintPaths(recorded), len(current), fingerprintPaths(current), ErrBadData)
	}
	for i, r := range recorded {
		c := current[i]
		var why string
		switch {
		case r.Files != c.Files:
			why = fmt.Sprintf("%d images recorded, %d now", r.Files, c.Files)
		case r.Size != c.Size:
			why = fmt.Sprintf("%d bytes recorded, %d now", r.Size, c.Size)
		case r.SHA256 != c.SHA256:
			why = "its content differs from the recorded fingerprint"
			if r.Files > 0 {
				why = "its listing (image names and sizes) differs from the recorded one"
			}
		default:
			continue
		}
		if r.Path != c.Path {
			why += " (recorded as " + r.Path + ")"
		}
		return fmt.Errorf("data changed since the run started: %w", badFile(c.Path, errors.New(why)))
	}
	return nil
}

// fingerprintPaths lists the paths of fingerprints for a message.
func fingerprintPaths(fps []FileFingerprint) string {
	if len(fps) == 0 {
		return "none"
	}
	s := ""
	for i, fp := range fps {
		if i > 0 {
			s += ", "
		}
		s += fp.Path
	}
	return s
}
