package backend

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/gomlx/backends/xla"
)

func TestResolvePrecedence(t *testing.T) {
	t.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	t.Setenv(EnvVar, "")
	if len(FindPlugin(context.Background(), "cpu").Candidates) == 0 && !HasNvidiaGPU() {
		if got := Resolve(""); got != "cpu" {
			t.Errorf("Resolve(\"\") with no env and no XLA plugin = %q, want cpu", got)
		}
	}
	t.Setenv(EnvVar, "go")
	if got := Resolve(""); got != "go" {
		t.Errorf("Resolve(\"\") with %s=go = %q, want go", EnvVar, got)
	}
	if got := Resolve("cpu"); got != "cpu" {
		t.Errorf("explicit request must win over %s: got %q", EnvVar, got)
	}
}

func TestNewCPUAndGo(t *testing.T) {
	t.Setenv(EnvVar, "")
	for _, name := range []string{"cpu", "go"} {
		b, cfg, err := New(name)
		if err != nil {
			t.Fatalf("New(%q): %v", name, err)
		}
		if cfg != name || !strings.Contains(b.Name(), name) {
			t.Errorf("New(%q) gave backend %q config %q", name, b.Name(), cfg)
		}
		b.Finalize()
	}
}

func TestNewUnknownBackend(t *testing.T) {
	_, _, err := New("nosuch")
	if err == nil || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "cpu") {
		t.Fatalf("New(nosuch) error = %v, want one naming the backend and listing the available ones", err)
	}
}

// TestXLAWithoutPluginFailsFast checks that asking for XLA on a machine
// without a PJRT plugin returns a clear error at once instead of trying to
// download one.
func TestXLAWithoutPluginFailsFast(t *testing.T) {
	if len(xla.GetAvailablePlugins()) > 0 {
		t.Skip("an XLA PJRT plugin is installed here; nothing to check")
	}
	start := time.Now()
	_, _, err := New("xla:cpu")
	if err == nil {
		t.Fatal("New(xla:cpu) without a plugin succeeded")
	}
	if !strings.Contains(err.Error(), "download is disabled") {
		t.Errorf("error %q should say that automatic download is disabled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("New(xla:cpu) took %v; it must fail fast", d)
	}
}

// TestOnHost: the backends that compute in host memory, and those (XLA
// with a GPU plugin) whose model lives in device memory.
func TestOnHost(t *testing.T) {
	for config, want := range map[string]bool{
		"cpu": true, "go": true, "go:ops_sequential": true, "xla": true, "xla:cpu": true,
		"xla:/opt/pjrt/pjrt_c_api_cpu_plugin.so": true, "xla:cuda": false,
		"xla:/site-packages/jax_plugins/xla_cuda13/xla_cuda_plugin.so": false, "stablehlo:cuda": false,
	} {
		if got := OnHost(config); got != want {
			t.Errorf("OnHost(%q) = %v, want %v", config, got, want)
		}
	}
}
