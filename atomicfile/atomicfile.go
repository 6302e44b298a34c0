// Package atomicfile writes files so that a reader, a crash or a full disk
// never leaves a partial file behind: every file sgt writes goes through
// WriteFile (or WriteJSON), which writes a temporary file in the target's
// directory, syncs it, renames it over the target and syncs the directory.
// Either the old content or the complete new one is seen, never a mix.
//
// A process killed during a write leaves its temporary file behind;
// RemoveStale deletes such leftovers, and runs call it when they start and
// when they finish.
package atomicfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// tmpMarker is part of every temporary file's name: ".<target>.tmp<random>".
const tmpMarker = ".tmp"

// WriteFile writes data to path atomically, with permissions 0644.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+tmpMarker+"*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmpName := tmp.Name()
	fail := func(what string, err error) error {
		_ = tmp.Close()
		_ = os.Remove(tmpName)
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail("writing", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fail("writing", err)
	}
	if err := tmp.Sync(); err != nil {
		return fail("syncing", err)
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmpName)
		return fmt.Errorf("closing %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		_ = os.Remove(tmpName)
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Some file systems cannot sync a
// directory (EINVAL); that is not an error.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// WriteJSON writes v as indented JSON (HTML characters unescaped, with a
// final newline) to path atomically.
func WriteJSON(path string, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return WriteFile(path, b.Bytes())
}

// IsTemp reports whether name (a base name) is a temporary file of
// WriteFile.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name[1:], tmpMarker)
}

// RemoveStale deletes the temporary files that interrupted writes left in
// dir (not in its subdirectories) and returns how many it removed. A
// missing dir is not an error.
func RemoveStale(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cleaning %s: %w", dir, err)
	}
	n := 0
	for _, e := range entries {
		if !e.Type().IsRegular() || !IsTemp(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("cleaning %s: %w", dir, err)
		}
		n++
	}
	return n, nil
}
