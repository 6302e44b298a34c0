package train

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/sgt-dev/sgt/atomicfile"
	"github.com/sgt-dev/sgt/rundir"
)

// ErrFinishedRun is returned (wrapped) when the output directory already
// holds a finished run and overwriting was not allowed.
var ErrFinishedRun = errors.New("directory holds a finished run")

// ErrUnfinishedRun is returned (wrapped) when the output directory holds a
// run that did not finish and neither resuming nor overwriting was asked.
var ErrUnfinishedRun = errors.New("directory holds an unfinished run")

// checkRunDir refuses a directory that holds a finished or unfinished run,
// unless force is set. It changes nothing.
func checkRunDir(dir string, force bool) error {
	if info, err := os.Stat(dir); err == nil && !info.IsDir() {
		return &FieldError{Field: "out", Err: fmt.Errorf("%s is a file, not a directory", dir)}
	}
	state, err := rundir.Inspect(dir)
	if err != nil {
		return &FieldError{Field: "out", Err: err}
	}
	switch {
	case state == rundir.Finished && !force:
		return fmt.Errorf("output directory %s: %w (use --force to overwrite it, or choose another --out)", dir, ErrFinishedRun)
	case state == rundir.Unfinished && !force:
		return fmt.Errorf("output directory %s: %w (use --resume to continue it, --force to overwrite it, or choose another --out)", dir, ErrUnfinishedRun)
	}
	return nil
}

// prepareRunDir creates dir for a new run. A directory holding a finished or
// unfinished run is refused unless force is set, in which case the old run's
// files (and only those) are removed.
func prepareRunDir(dir string, force bool) error {
	if err := checkRunDir(dir, force); err != nil {
		return err
	}
	if err := rundir.Clear(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return &FieldError{Field: "out", Err: fmt.Errorf("creating output directory: %w", err)}
	}
	return nil
}

// removeStale deletes the temporary files that killed writes left in the
// run directory and its checkpoint folder.
func removeStale(dir string) error {
	if _, err := atomicfile.RemoveStale(dir); err != nil {
		return err
	}
	_, err := atomicfile.RemoveStale(filepath.Join(dir, rundir.CheckpointDir))
	return err
}

var (
	codeVersionOnce sync.Once
	codeVersion     string
)

// CodeVersion returns the version control revision the running binary was
// built from ("<revision>", with "+dirty" when the tree had local changes).
// It comes from the binary's build information; a binary built without it
// ("go run", "go test") asks git about the source tree it was compiled
// from, when that tree is still there. Otherwise it is "unknown".
func CodeVersion() string {
	codeVersionOnce.Do(func() { codeVersion = findCodeVersion() })
	return codeVersion
}

func findCodeVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev string
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			if modified {
				rev += "+dirty"
			}
			return rev
		}
		if v := info.Main.Version; v != "" && v != "(devel)" {
			return v
		}
	}
	if v := gitVersion(); v != "" {
		return v
	}
	return "unknown"
}

// gitVersion asks git for the revision of the source tree this file was
// compiled from, and whether it has local changes; "" when that fails.
func gitVersion() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	dir := filepath.Dir(file)
	if _, err := os.Stat(dir); err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	status, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output()
	if err == nil && len(strings.TrimSpace(string(status))) > 0 {
		rev += "+dirty"
	}
	return rev
}
