package train

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.json")
	for _, content := range []string{"first", "second, longer content"} {
		if err := WriteFileAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Fatalf("content %q, want %q", got, content)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), nil); err == nil {
		t.Fatal("no error writing into a missing directory")
	}
}

func TestPrepareRunDirProtectsRuns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if state, err := InspectRunDir(dir); err != nil || state != RunNone {
		t.Fatalf("missing dir: state %v err %v", state, err)
	}
	if err := prepareRunDir(dir, false); err != nil {
		t.Fatalf("new dir: %v", err)
	}
	write := func(name string) {
		if err := WriteFileAtomic(filepath.Join(dir, name), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// Unrelated files do not make a run.
	write("notes.txt")
	if err := prepareRunDir(dir, false); err != nil {
		t.Fatalf("dir with unrelated file: %v", err)
	}
	write(ConfigFile)
	if err := prepareRunDir(dir, false); !errors.Is(err, ErrUnfinishedRun) {
		t.Fatalf("unfinished run: err %v, want ErrUnfinishedRun", err)
	}
	write(MetricsFile)
	write(SummaryFile)
	err := prepareRunDir(dir, false)
	if !errors.Is(err, ErrFinishedRun) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("finished run: err %v, want ErrFinishedRun mentioning --force", err)
	}
	if _, err := os.Stat(filepath.Join(dir, SummaryFile)); err != nil {
		t.Fatalf("refusal touched the finished run: %v", err)
	}
	if err := prepareRunDir(dir, true); err != nil {
		t.Fatalf("force: %v", err)
	}
	for _, name := range []string{ConfigFile, MetricsFile, SummaryFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("force left %s behind (err %v)", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatalf("force removed a file that is not the run's: %v", err)
	}
	file := filepath.Join(t.TempDir(), "plain")
	write2 := os.WriteFile(file, nil, 0o644)
	if write2 != nil {
		t.Fatal(write2)
	}
	if err := prepareRunDir(file, false); err == nil {
		t.Fatal("a plain file accepted as output directory")
	}
}
