//go:build linux || darwin

package report

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sgt-dev/sgt/atomicfile"
)

// fsizeChildEnv makes the test binary, run by TestFailedWriteKeepsReport,
// write a report under a file-size limit.
const fsizeChildEnv = "SGT_REPORT_TEST_FSIZE_CHILD"

// TestFailedWriteKeepsReport reproduces a full disk (issue 11 item 9): a
// child process writes a report under a file-size limit far below the
// report's size, so every write of it fails part-way. The previous report
// must stay whole, and no temporary file may be left behind. With a
// plain os.WriteFile the report is replaced by its first 4 KiB.
func TestFailedWriteKeepsReport(t *testing.T) {
	if path := os.Getenv(fsizeChildEnv); path != "" {
		writeUnderLimit(os.Getenv(fsizeChildEnv+"_RUNS"), path)
		return
	}
	root := standardRuns(t)
	rep := build(t, root)
	for _, name := range []string{"report.html", "report.md"} {
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			path := filepath.Join(out, name)
			if err := rep.Write(path); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, out)
			cmd := exec.Command(os.Args[0], "-test.run=^TestFailedWriteKeepsReport$")
			cmd.Env = append(os.Environ(), fsizeChildEnv+"="+path, fsizeChildEnv+"_RUNS="+root)
			msg, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, msg)
			}
			if !strings.Contains(string(msg), "write failed:") {
				t.Fatalf("the write under the limit did not fail, so the test shows nothing:\n%s", msg)
			}
			after := snapshot(t, out)
			for file, content := range before {
				if !bytes.Equal(after[file], content) {
					t.Errorf("%s changed by a failed write: %d bytes before, %d after", file, len(content), len(after[file]))
				}
			}
			for file := range after {
				if _, ok := before[file]; !ok {
					t.Errorf("failed write left %s behind (temporary: %v)", file, atomicfile.IsTemp(file))
				}
			}
		})
	}
}

// snapshot reads every file of dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// writeUnderLimit builds the report of the runs in root and writes it to
// path under a 4 KiB file-size limit (Go ignores SIGXFSZ, so a write past
// the limit fails with EFBIG, as on a full disk).
func writeUnderLimit(root, path string) {
	rep, err := Build([]string{root}, Options{})
	if err != nil {
		os.Stdout.WriteString("build: " + err.Error() + "\n")
		os.Exit(2)
	}
	lim := syscall.Rlimit{Cur: 4096, Max: 4096}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		os.Stdout.WriteString("setrlimit: " + err.Error() + "\n")
		os.Exit(2)
	}
	if err := rep.Write(path); err != nil {
		os.Stdout.WriteString("write failed: " + err.Error() + "\n")
		return
	}
	os.Stdout.WriteString("write succeeded\n")
}
