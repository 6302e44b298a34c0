package train

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sgt-dev/sgt/rundir"
)

func TestPrepareRunDirProtectsRuns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if state, err := rundir.Inspect(dir); err != nil || state != rundir.None {
		t.Fatalf("missing dir: state %v err %v", state, err)
	}
	if err := prepareRunDir(dir, false); err != nil {
		t.Fatalf("new dir: %v", err)
	}
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Unrelated files do not make a run.
	write("notes.txt")
	if err := prepareRunDir(dir, false); err != nil {
		t.Fatalf("dir with unrelated file: %v", err)
	}
	write(rundir.ConfigFile)
	if err := prepareRunDir(dir, false); !errors.Is(err, ErrUnfinishedRun) {
		t.Fatalf("unfinished run: err %v, want ErrUnfinishedRun", err)
	}
	write(rundir.MetricsFile)
	write(rundir.SummaryFile)
	err := prepareRunDir(dir, false)
	if !errors.Is(err, ErrFinishedRun) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("finished run: err %v, want ErrFinishedRun mentioning --force", err)
	}
	if _, err := os.Stat(filepath.Join(dir, rundir.SummaryFile)); err != nil {
		t.Fatalf("refusal touched the finished run: %v", err)
	}
	if err := prepareRunDir(dir, true); err != nil {
		t.Fatalf("force: %v", err)
	}
	for _, name := range []string{rundir.ConfigFile, rundir.MetricsFile, rundir.SummaryFile} {
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
	err = prepareRunDir(file, false)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "out" {
		t.Fatalf("a plain file as output directory: err %v, want a FieldError for --out", err)
	}
}
