package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sgt-dev/sgt/backend"
)

// isolateBackends makes the XLA plugin search look only into an empty
// temporary tree, with no python3 on PATH.
func isolateBackends(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	t.Setenv("HOME", filepath.Join(root, "home"))
	t.Setenv("PATH", filepath.Join(root, "bin"))
	t.Setenv("LD_LIBRARY_PATH", "")
	for _, v := range []string{backend.CUDAPluginEnv, backend.PluginPathEnv, backend.EnvVar} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	return root
}

// backendsJSON runs "sgt backends --json" and returns its report.
func backendsJSON(t *testing.T) backendsReport {
	t.Helper()
	code, out, errOut := runCLI(t, "backends", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep backendsReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, out)
	}
	return rep
}

func TestBackendsCommand(t *testing.T) {
	isolateBackends(t)
	start := time.Now()
	rep := backendsJSON(t)
	byName := map[string]backendEntry{}
	for _, e := range rep.Backends {
		byName[e.Name] = e
	}
	cpu, ok := byName["cpu"]
	if !ok || !cpu.Usable || cpu.CPU == nil || cpu.CPU.ISA == "" || cpu.CPU.GOMAXPROCS < 1 || cpu.CPU.Model == "" {
		t.Errorf("cpu entry %+v", cpu)
	}
	if g := byName["go"]; !g.Usable {
		t.Errorf("go entry %+v", g)
	}
	for _, name := range []string{"xla:cpu", "xla:cuda"} {
		e, ok := byName[name]
		if !ok || e.Usable || e.XLA == nil || !strings.Contains(e.Reason, "plugin found") || e.XLA.Hint == "" {
			t.Errorf("%s entry %+v", name, e)
		}
	}
	if !strings.Contains(byName["xla:cuda"].Reason, backend.CUDAPluginEnv) {
		t.Errorf("xla:cuda reason should list the places searched: %q", byName["xla:cuda"].Reason)
	}
	if rep.Default != "cpu" || rep.GoVersion == "" {
		t.Errorf("default %q, go %q", rep.Default, rep.GoVersion)
	}

	code, out, errOut := runCLI(t, "backends")
	if code != 0 || !strings.Contains(out, "xla:cuda  no") || !strings.Contains(out, "searched: $"+backend.CUDAPluginEnv+" (unset)") ||
		!strings.Contains(out, "Default backend here: cpu") {
		t.Errorf("text output (exit %d, %s):\n%s", code, errOut, out)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("sgt backends took %v without any plugin", d)
	}
	if code, _, errOut := runCLI(t, "backends", "--timeout", "0s"); code != 2 || !strings.Contains(errOut, "--timeout") {
		t.Errorf("--timeout 0s: exit %d, %q", code, errOut)
	}
}

// TestBackendsBrokenPlugin lists a CUDA plugin file that is a shared library
// without the PJRT entry point: the command must report it, not crash.
func TestBackendsBrokenPlugin(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc: cannot build a fake shared library")
	}
	root := isolateBackends(t)
	src := filepath.Join(root, "fake.c")
	so := filepath.Join(root, "plugins", "xla_cuda_plugin.so")
	if err := os.MkdirAll(filepath.Dir(so), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte("int not_pjrt(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cc, "-shared", "-fPIC", "-o", so, src)
	cmd.Env = append(os.Environ(), "PATH=/usr/local/bin:/usr/bin:/bin")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	t.Setenv(backend.CUDAPluginEnv, so)
	rep := backendsJSON(t)
	for _, e := range rep.Backends {
		if e.Name == "xla:cuda" {
			if e.Usable || !strings.Contains(e.Reason, so) || !strings.Contains(e.Reason, "GetPjrtApi") {
				t.Errorf("xla:cuda with a non-plugin: %+v", e)
			}
			return
		}
	}
	t.Error("no xla:cuda entry")
}
