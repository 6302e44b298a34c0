// Package backend chooses the GoMLX backend that sgt computes on.
//
// The choice, in order: an explicit name (the --backend flag), then the
// GOMLX_BACKEND environment variable, then XLA when a PJRT plugin is already
// installed on this machine (the CUDA one only when an NVIDIA GPU is
// present), and otherwise our own pure-Go CPU backend (package backend/cpu).
// XLA's automatic plugin download is always disabled: a missing plugin gives
// a clear error, never a hang.
//
// # XLA and PJRT plugins
//
// "xla:NAME" (or its aliases stablehlo, hlo, shlo) runs on the PJRT plugin
// NAME ("cuda", "cpu"), "xla:/abs/path.so" on that plugin file, and "xla"
// alone on the CUDA plugin when a GPU is present, else the CPU one; plugin
// options follow a comma ("xla:cuda,tf32"). FindPlugin says where plugins
// are looked for: for CUDA, $SGT_PJRT_CUDA_PLUGIN, GoMLX's own locations,
// $PJRT_PLUGIN_LIBRARY_PATH and the pip-installed JAX plugin of the python3
// on PATH (jax_plugins/xla_cuda*/xla_cuda_plugin.so, from
// pip install "jax[cuda13]"). Each plugin is first loaded in a separate copy
// of this program with a time limit (probePlugin), so that a file that is
// not a plugin, a plugin that crashes or hangs while loading, or one whose
// PJRT C API version go-xla cannot use gives an error naming the file
// instead of taking sgt down; only then is it loaded here.
//
// For a CUDA plugin, sgt also prepares what JAX's Python package would:
// it loads the NVIDIA libraries of the pip packages beside the plugin
// (site-packages/nvidia/...) before the plugin, so LD_LIBRARY_PATH need not
// name them, and, unless XLA_FLAGS already sets --xla_gpu_cuda_data_dir,
// points that flag at the folder holding nvvm/libdevice when one is
// installed (else XLA_FLAGS is left alone). go-xla's own CUDA set-up, which
// would point the flag at a fixed folder in its author's home directory, is
// switched off (GOPJRT_CUDA_CHECKS=0) unless that variable is set. The GPU
// client takes the options JAX users know from the environment:
// XLA_PYTHON_CLIENT_PREALLOCATE (false: grow GPU memory as needed instead of
// taking most of it at start), XLA_PYTHON_CLIENT_MEM_FRACTION and
// XLA_PYTHON_CLIENT_ALLOCATOR. CheckXLA reports all of this without loading
// anything here (`sgt backends`).
package backend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/gomlx/go-xla/pkg/pjrt"
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
	// A copy of this program started by probePlugin only loads a plugin and
	// reports on it.
	if req, ok := os.LookupEnv(probeEnv); ok {
		os.Exit(runProbe(req, os.Stdout))
	}
}

// Names lists the registered backends.
func Names() []string { return backends.List() }

// IsXLA tells whether a backend name (the part of a configuration before
// ':') is GoMLX's XLA backend or one of its aliases.
func IsXLA(name string) bool {
	switch name {
	case xla.BackendName, "stablehlo", "hlo", "shlo":
		return true
	}
	return false
}

// Resolve returns the backend configuration ("name" or "name:config") that New
// would use for the requested one ("" means automatic). It loads nothing:
// the automatic choice only looks for plugin files (FindPlugin).
func Resolve(requested string) string {
	if requested != "" {
		return requested
	}
	if env := os.Getenv(EnvVar); env != "" {
		return env
	}
	ctx := context.Background()
	if HasNvidiaGPU() && len(FindPlugin(ctx, "cuda").Candidates) > 0 {
		return xla.BackendName + ":cuda"
	}
	if len(FindPlugin(ctx, "cpu").Candidates) > 0 {
		return xla.BackendName + ":cpu"
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
	if IsXLA(name) {
		b, err = newXLA(config)
		if err != nil {
			return nil, config, fmt.Errorf("backend %q: %w", config, err)
		}
		return b, config, nil
	}
	b, err = backends.NewWithConfig(config)
	if err != nil {
		return nil, config, fmt.Errorf("backend %q: %w", config, err)
	}
	return b, config, nil
}

// splitXLAConfig splits "xla:PLUGIN,opt1,opt2" into the plugin (a name, an
// absolute path, or "") and the options ("opt1,opt2").
func splitXLAConfig(config string) (plugin, options string) {
	_, rest, _ := strings.Cut(config, ":")
	plugin, options, _ = strings.Cut(rest, ",")
	return plugin, options
}

// verified holds the plugins a probe found usable in this process, so that
// later backends skip the probe.
var verified struct {
	sync.Mutex
	probes map[string]verifiedProbe // by plugin file
}

// verifiedProbe is a successful probe and whether it created a client.
type verifiedProbe struct {
	info   *PluginInfo
	client bool
}

// newXLA creates an XLA backend after checking its plugin in a separate
// process (CheckXLA) and preparing what a CUDA plugin needs.
func newXLA(config string) (backends.Backend, error) {
	plugin, opts := splitXLAConfig(config)
	// The probe creates a client too, so that a plugin that crashes there
	// is refused before it is loaded here.
	report := CheckXLA(context.Background(), plugin, true)
	if !report.Usable {
		return nil, fmt.Errorf("%s", report.Error)
	}
	options := pjrt.NamedValuesMap{}
	if report.CUDA != nil {
		if err := applyCUDASetup(report.CUDA); err != nil {
			return nil, err
		}
		var err error
		if options, err = gpuClientOptions(); err != nil {
			return nil, err
		}
	}
	cfg := report.Plugin.Path
	if opts != "" {
		cfg += "," + opts
	}
	// GoMLX lets the CPU plugin share buffers with the host only when it is
	// named "cpu"; sgt loads plugins by path, so it asks for it explicitly.
	if isCPUPlugin(plugin, report.Plugin.Path) && !strings.Contains(opts, "shared_buffers") {
		cfg += ",shared_buffers"
	}
	b, err := xla.NewWithOptions(cfg, options)
	if err != nil {
		return nil, fmt.Errorf("plugin %s loaded, but creating its client failed: %w", report.Plugin.Path, err)
	}
	return b, nil
}

// OnHost tells whether a backend configuration ("name" or "name:config",
// as New returns it) computes in the host's memory: every backend but XLA
// with a plugin other than the CPU one (a GPU's, whose activations live in
// device memory). XLA with no plugin named counts as on the host.
func OnHost(config string) bool {
	name, _, _ := strings.Cut(config, ":")
	if !IsXLA(name) {
		return true
	}
	plugin, _ := splitXLAConfig(config)
	return plugin == "" || isCPUPlugin(plugin, plugin)
}

// isCPUPlugin tells whether a plugin (asked for as plugin, found at path) is
// the PJRT CPU plugin.
func isCPUPlugin(plugin, path string) bool {
	if plugin == "cpu" {
		return true
	}
	for _, n := range pluginFileNames("cpu") {
		if filepath.Base(path) == n {
			return true
		}
	}
	return false
}

// applyCUDASetup prepares this process for a CUDA plugin: XLA_FLAGS, go-xla's
// CUDA checks off, and the NVIDIA libraries preloaded.
func applyCUDASetup(cs *CUDASetup) error {
	if cs.XLAFlags != os.Getenv(XLAFlagsEnv) {
		if err := os.Setenv(XLAFlagsEnv, cs.XLAFlags); err != nil {
			return fmt.Errorf("setting %s: %w", XLAFlagsEnv, err)
		}
	}
	if _, ok := os.LookupEnv(goXLACUDAChecksEnv); !ok {
		if err := os.Setenv(goXLACUDAChecksEnv, "0"); err != nil {
			return fmt.Errorf("setting %s: %w", goXLACUDAChecksEnv, err)
		}
	}
	for _, lib := range cs.Preload {
		// Failures were reported by the probe; the plugin may still find
		// the library elsewhere.
		_, _ = dlopen(lib, false)
	}
	return nil
}

// gpuClientOptions returns the GPU client's options from JAX's environment
// variables (XLA_PYTHON_CLIENT_PREALLOCATE, _MEM_FRACTION, _ALLOCATOR).
func gpuClientOptions() (pjrt.NamedValuesMap, error) {
	options := pjrt.NamedValuesMap{}
	if v := os.Getenv("XLA_PYTHON_CLIENT_PREALLOCATE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("XLA_PYTHON_CLIENT_PREALLOCATE=%q: want true or false", v)
		}
		options["preallocate"] = b
	}
	if v := os.Getenv("XLA_PYTHON_CLIENT_MEM_FRACTION"); v != "" {
		f, err := strconv.ParseFloat(v, 32)
		if err != nil || !(f > 0 && f <= 1) {
			return nil, fmt.Errorf("XLA_PYTHON_CLIENT_MEM_FRACTION=%q: want a number in (0, 1]", v)
		}
		options["memory_fraction"] = float32(f)
	}
	if v := os.Getenv("XLA_PYTHON_CLIENT_ALLOCATOR"); v != "" {
		options["allocator"] = v
	}
	return options, nil
}

// XLAReport says whether XLA can run on a PJRT plugin here, and why not.
type XLAReport struct {
	// Config is the plugin asked for: a name ("cuda", "cpu"), an absolute
	// path, or "" for the automatic choice.
	Config string `json:"config"`
	// Usable is true when a plugin loaded and passed the checks.
	Usable bool `json:"usable"`
	// Plugin is what the probe learned about the plugin used (nil when none
	// could be used).
	Plugin *PluginInfo `json:"plugin,omitempty"`
	// Source says where that plugin was found.
	Source string `json:"source,omitempty"`
	// CUDA is the set-up of a CUDA plugin.
	CUDA *CUDASetup `json:"cuda,omitempty"`
	// Searches are the plugin searches made (none for a path).
	Searches []PluginSearch `json:"searches,omitempty"`
	// Problems say, for each plugin file tried and refused, why.
	Problems []string `json:"problems,omitempty"`
	// Error is the one-line reason XLA cannot be used (empty when usable):
	// what was searched or tried, and Hint.
	Error string `json:"error,omitempty"`
	// Hint says what to install when XLA cannot be used.
	Hint string `json:"hint,omitempty"`
}

// CheckXLA finds the plugin of an XLA configuration (plugin is a name, an
// absolute path, or "" for CUDA when a GPU is present and then CPU) and
// loads each candidate in a separate process (probePlugin) until one passes;
// with devices, the probe also creates a client and lists its devices. It
// never loads a plugin into this process and never downloads one.
func CheckXLA(ctx context.Context, plugin string, devices bool) XLAReport {
	r := XLAReport{Config: plugin}
	type candidate struct{ path, source string }
	var cands []candidate
	var names []string
	switch {
	case plugin != "" && (strings.ContainsRune(plugin, os.PathSeparator) || strings.HasSuffix(plugin, ".so") || strings.HasSuffix(plugin, ".dylib")):
		if !isFile(plugin) {
			r.Error = fmt.Sprintf("PJRT plugin file %s does not exist or is not a file", plugin)
			return r
		}
		if abs, err := filepath.Abs(plugin); err == nil {
			plugin = abs // GoMLX loads plugins by absolute path only
		}
		cands = append(cands, candidate{plugin, "the configuration"})
		names = []string{plugin}
	case plugin != "":
		names = []string{plugin}
	default:
		if HasNvidiaGPU() {
			names = append(names, "cuda")
		}
		names = append(names, "cpu")
	}
	if len(cands) == 0 {
		for _, n := range names {
			s := FindPlugin(ctx, n)
			r.Searches = append(r.Searches, s)
			for _, c := range s.Candidates {
				cands = append(cands, candidate{c.Path, c.Source})
			}
		}
	}
	what := "PJRT plugin"
	if len(names) == 1 && !strings.ContainsRune(names[0], os.PathSeparator) {
		what = fmt.Sprintf("PJRT %s plugin", names[0])
	}
	if len(cands) == 0 {
		var searched []string
		for _, s := range r.Searches {
			searched = append(searched, s.Searched...)
			for _, n := range s.Notes {
				searched = append(searched, "("+n+")")
			}
		}
		r.Hint = installHint(names)
		r.Error = fmt.Sprintf("no %s found (automatic plugin download is disabled); searched: %s; %s",
			what, strings.Join(searched, ", "), r.Hint)
		return r
	}
	for _, c := range cands {
		cuda := isCUDAPlugin(c.path) || (len(names) == 1 && isCUDAPlugin(names[0]))
		var cs *CUDASetup
		var extraEnv []string
		if cuda {
			setup := cudaSetupFor(c.path, os.Getenv(XLAFlagsEnv))
			cs = &setup
			extraEnv = append(extraEnv, XLAFlagsEnv+"="+setup.XLAFlags)
			if _, ok := os.LookupEnv(goXLACUDAChecksEnv); !ok {
				extraEnv = append(extraEnv, goXLACUDAChecksEnv+"=0")
			}
		}
		info, err := cachedProbe(ctx, probeRequest{Path: c.path, Preload: preloadOf(cs), Client: devices, CUDA: cuda}, extraEnv)
		if err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("%s (from %s): %v", c.path, c.source, err))
			continue
		}
		r.Usable, r.Plugin, r.Source, r.CUDA = true, info, c.source, cs
		return r
	}
	r.Hint = installHint(names)
	r.Error = fmt.Sprintf("no usable %s: %s; %s", what, strings.Join(r.Problems, "; "), r.Hint)
	return r
}

// preloadOf returns the libraries a CUDA set-up preloads (none without one).
func preloadOf(cs *CUDASetup) []string {
	if cs == nil {
		return nil
	}
	return cs.Preload
}

// cachedProbe probes a plugin, reusing an earlier successful probe of the
// same file in this process (one that created a client, if one is asked for).
func cachedProbe(ctx context.Context, req probeRequest, extraEnv []string) (*PluginInfo, error) {
	verified.Lock()
	v, ok := verified.probes[req.Path]
	verified.Unlock()
	if ok && (v.client || !req.Client) {
		return v.info, nil
	}
	info, err := probePlugin(ctx, req, extraEnv)
	if err != nil {
		return info, err
	}
	verified.Lock()
	if verified.probes == nil {
		verified.probes = map[string]verifiedProbe{}
	}
	verified.probes[req.Path] = verifiedProbe{info: info, client: req.Client}
	verified.Unlock()
	return info, nil
}

// installHint says what to install for the plugins named.
func installHint(names []string) string {
	for _, n := range names {
		if isCUDAPlugin(n) {
			return fmt.Sprintf(`for a GPU, install JAX's CUDA plugin for the python3 on PATH (pip install -U "jax[cuda13]", or "jax[cuda12]" for CUDA 12 drivers) or set %s to its xla_cuda_plugin.so; or use --backend %s`,
				CUDAPluginEnv, defaultCPU)
		}
	}
	return fmt.Sprintf("install a PJRT plugin (pjrt_c_api_NAME_plugin.so) in ~/.local/lib/go-xla or a folder named in %s, or give its absolute path as xla:/path/to/plugin.so; or use --backend %s",
		PluginPathEnv, defaultCPU)
}
