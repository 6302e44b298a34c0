// Package backend chooses the GoMLX backend that sgt computes on.
//
// The choice, in order: an explicit name (the --backend flag), then the
// GOMLX_BACKEND environment variable, then XLA when a PJRT plugin is already
// installed on this machine, and otherwise our own pure-Go CPU backend
// (package backend/cpu). XLA's automatic plugin download is always disabled:
// a missing plugin gives a clear error, never a hang.
package backend

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego" // GoMLX's reference pure-Go backend, "go".
	"github.com/gomlx/gomlx/backends/xla"

	"github.com/sgt-dev/sgt/backend/cpu"
)

// EnvVar is the environment variable that selects a backend, as in GoMLX.
const EnvVar = backends.ConfigEnvVar

// defaultCPU is the name of the backend used when nothing else is asked for and
// no XLA plugin is installed: our own CPU backend.
const defaultCPU = cpu.BackendName

func init() {
	// Never download PJRT plugins: this tool must work offline and must not hang.
	xla.EnableAutoInstall(false)
}

// Names lists the registered backends.
func Names() []string { return backends.List() }

// Resolve returns the backend configuration ("name" or "name:config") that New
// would use for the requested one ("" means automatic).
func Resolve(requested string) string {
	if requested != "" {
		return requested
	}
	if env := os.Getenv(EnvVar); env != "" {
		return env
	}
	if len(xla.GetAvailablePlugins()) > 0 {
		return xla.BackendName
	}
	return defaultCPU
}

// New creates the backend for the requested configuration ("" means automatic,
// see the package documentation). It returns the backend and the configuration
// that was used.
func New(requested string) (b backends.Backend, config string, err error) {
	config = Resolve(requested)
	name, _, _ := strings.Cut(config, ":")
	known := false
	for _, n := range backends.List() {
		if n == name {
			known = true
			break
		}
	}
	if !known {
		return nil, config, fmt.Errorf("unknown backend %q (available: %s)", name, strings.Join(backends.List(), ", "))
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("backend %q: %v", config, r)
		}
	}()
	b, err = backends.NewWithConfig(config)
	if err != nil {
		if name == xla.BackendName {
			return nil, config, fmt.Errorf("backend %q: %w (automatic plugin download is disabled; install a PJRT plugin and set PJRT_PLUGIN_LIBRARY_PATH, or use --backend %s)", config, err, defaultCPU)
		}
		return nil, config, fmt.Errorf("backend %q: %w", config, err)
	}
	return b, config, nil
}
