package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gorunHelperEnv makes TestGoRunBuildTimeHelper print goRunBuildTime.
const gorunHelperEnv = "SGT_TEST_GORUN_HELPER"

func TestGoRunBuildTimeHelper(t *testing.T) {
	if os.Getenv(gorunHelperEnv) == "" {
		t.Skip("helper of TestGoRunBuildTime")
	}
	fmt.Printf("built=%d\n", goRunBuildTime())
}

// TestGoRunBuildTime starts the test binary from a parent process named
// "go" with the argument "run" that first waits 1.5 s (as go run builds
// before it starts the program): the child must find about that time; from
// a parent "go" without "run" (go test), none.
func TestGoRunBuildTime(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	goCmd := filepath.Join(dir, "go")
	if err := os.Symlink(bash, goCmd); err != nil {
		t.Fatal(err)
	}
	built := func(word string) time.Duration {
		t.Helper()
		// "; true" keeps bash from replacing itself with the child.
		cmd := exec.Command(goCmd, "-c", `sleep 1.5; "$0" -test.run='^TestGoRunBuildTimeHelper$'; true`, os.Args[0], word)
		cmd.Env = append(os.Environ(), gorunHelperEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(line, "built="); ok {
				var n int64
				fmt.Sscan(v, &n)
				return time.Duration(n)
			}
		}
		t.Fatalf("no built= line:\n%s", out)
		return 0
	}
	if d := built("run"); d < 1400*time.Millisecond || d > time.Minute {
		t.Errorf("under a parent \"go ... run\" that waited 1.5 s: build time %v, want about 1.5 s", d)
	}
	if d := built("test"); d != 0 {
		t.Errorf("under a parent \"go ... test\": build time %v, want 0", d)
	}
}
