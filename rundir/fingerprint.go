package rundir

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Sizes of the fingerprint of a data file: files up to fullHashLimit bytes
// are hashed whole, larger ones by their first and last edgeBytes.
const (
	fullHashLimit = 8 << 20
	edgeBytes     = 64 << 10
)

// Fingerprint identifies the data file or folder at path cheaply. A file
// is hashed whole when it is small, else by its head and tail; a folder
// (an image folder) by the names and sizes of the files under it, in
// lexical order.
func Fingerprint(path string) (FileFingerprint, error) {
	info, err := os.Stat(path)
	if err != nil {
		return FileFingerprint{}, err
	}
	if info.IsDir() {
		return fingerprintDir(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return FileFingerprint{}, err
	}
	defer f.Close()
	h := sha256.New()
	fp := FileFingerprint{Path: path, Size: info.Size()}
	if info.Size() <= fullHashLimit {
		fp.Method = "full"
		if _, err := io.Copy(h, f); err != nil {
			return FileFingerprint{}, fmt.Errorf("reading %s: %w", path, err)
		}
	} else {
		fp.Method = "head+tail " + strconv.Itoa(edgeBytes)
		buf := make([]byte, edgeBytes)
		for _, off := range []int64{0, info.Size() - edgeBytes} {
			if _, err := f.ReadAt(buf, off); err != nil {
				return FileFingerprint{}, fmt.Errorf("reading %s: %w", path, err)
			}
			h.Write(buf)
		}
	}
	fp.SHA256 = hex.EncodeToString(h.Sum(nil))
	return fp, nil
}

// fingerprintDir hashes the relative names and sizes of the regular files
// under dir.
func fingerprintDir(dir string) (FileFingerprint, error) {
	h := sha256.New()
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		total += info.Size()
		fmt.Fprintf(h, "%s\x00%d\n", filepath.ToSlash(rel), info.Size())
		return nil
	})
	if err != nil {
		return FileFingerprint{}, fmt.Errorf("listing %s: %w", dir, err)
	}
	return FileFingerprint{Path: dir, Size: total, SHA256: hex.EncodeToString(h.Sum(nil)), Method: "folder names+sizes"}, nil
}
