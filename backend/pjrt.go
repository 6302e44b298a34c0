package backend

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Environment variables that steer where PJRT plugins are looked for.
const (
	// CUDAPluginEnv names one CUDA PJRT plugin file to use (a jax
	// xla_cuda_plugin.so or GoMLX's pjrt_c_api_cuda_plugin.so). When it is
	// set, nothing else is searched.
	CUDAPluginEnv = "SGT_PJRT_CUDA_PLUGIN"
	// PluginPathEnv is GoMLX's (go-xla's) list of folders holding PJRT
	// plugins, separated by ':'.
	PluginPathEnv = "PJRT_PLUGIN_LIBRARY_PATH"
	// XLAFlagsEnv holds XLA's own flags; sgt adds --xla_gpu_cuda_data_dir
	// for a CUDA plugin whose CUDA files it found, unless the flag is there.
	XLAFlagsEnv = "XLA_FLAGS"
	// goXLACUDAChecksEnv switches go-xla's own CUDA set-up off ("0"): it
	// would set XLA_FLAGS to a fixed folder of its author's home directory.
	goXLACUDAChecksEnv = "GOPJRT_CUDA_CHECKS"
)

// pythonTimeout bounds the python3 call that lists its site-packages.
var pythonTimeout = 5 * time.Second

// PluginCandidate is a plugin file found by FindPlugin.
type PluginCandidate struct {
	// Path is the plugin's absolute path.
	Path string `json:"path"`
	// Source says where it was found: "$SGT_PJRT_CUDA_PLUGIN", "GoMLX
	// locations", "$PJRT_PLUGIN_LIBRARY_PATH" or "pip (python3 site-packages)".
	Source string `json:"source"`
}

// PluginSearch is what FindPlugin looked at and found.
type PluginSearch struct {
	// Name is the plugin name searched for ("cuda", "cpu", ...).
	Name string `json:"name"`
	// Candidates are the plugin files found, in order of preference.
	Candidates []PluginCandidate `json:"candidates"`
	// Searched lists every place looked at, in order, with brace notation
	// for several file names in one folder.
	Searched []string `json:"searched"`
	// Notes are remarks on the search (python3 missing or slow, say).
	Notes []string `json:"notes,omitempty"`
}

// pluginFileNames returns the file names GoMLX (go-xla) recognises for a
// plugin name: pjrt_c_api_NAME_plugin.so, pjrt-plugin-NAME.so and
// pjrt_plugin_NAME.so (.dylib on macOS).
func pluginFileNames(name string) []string {
	ext := ".so"
	if runtime.GOOS == "darwin" {
		ext = ".dylib"
	}
	return []string{"pjrt_c_api_" + name + "_plugin" + ext, "pjrt-plugin-" + name + ext, "pjrt_plugin_" + name + ext}
}

// jaxCUDAPluginName is the file name of the CUDA plugin in JAX's pip
// packages (jax-cuda12-pjrt, jax-cuda13-pjrt).
const jaxCUDAPluginName = "xla_cuda_plugin.so"

// isCUDAPlugin tells whether a plugin name or path is a CUDA one (the same
// rule as go-xla's).
func isCUDAPlugin(nameOrPath string) bool {
	u := strings.ToUpper(nameOrPath)
	return strings.Contains(u, "CUDA") || strings.Contains(u, "NVIDIA")
}

// goMLXPluginDirs returns the folders go-xla searches when
// PJRT_PLUGIN_LIBRARY_PATH is not set, in its order: its user and system
// install folders, then LD_LIBRARY_PATH and the folders of /etc/ld.so.conf.
func goMLXPluginDirs() []string {
	var dirs []string
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		d := filepath.Join(home, ".local", "lib", "go-xla")
		dirs = append(dirs, d, filepath.Join(d, "nvidia"), filepath.Join(home, ".local", "lib", "gomlx", "pjrt"))
	}
	dirs = append(dirs, "/usr/local/lib/go-xla", "/usr/local/lib/go-xla/nvidia", "/usr/local/lib/gomlx/pjrt")
	for _, d := range filepath.SplitList(os.Getenv("LD_LIBRARY_PATH")) {
		if filepath.IsAbs(d) {
			dirs = append(dirs, d)
		}
	}
	dirs = append(dirs, ldSoConfDirs("/etc/ld.so.conf", 0)...)
	return dedupe(dirs)
}

// ldSoConfDirs returns the folders listed in an ld.so.conf file, following
// its include lines (at most 8 levels deep).
func ldSoConfDirs(file string, depth int) []string {
	if depth > 8 {
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "include "), strings.HasPrefix(line, "include\t"):
			pattern := strings.TrimSpace(line[len("include"):])
			if !filepath.IsAbs(pattern) {
				pattern = filepath.Join(filepath.Dir(file), pattern)
			}
			matches, _ := filepath.Glob(pattern)
			for _, m := range matches {
				dirs = append(dirs, ldSoConfDirs(m, depth+1)...)
			}
		default:
			if filepath.IsAbs(line) {
				dirs = append(dirs, line)
			}
		}
	}
	return dirs
}

// dedupe removes empty and repeated entries, keeping the first of each.
func dedupe(list []string) []string {
	seen := make(map[string]bool, len(list))
	out := list[:0:0]
	for _, s := range list {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// braces writes dir/{a,b,c} (or dir/a for one name) for the Searched list.
func braces(dir string, names []string) string {
	if len(names) == 1 {
		return filepath.Join(dir, names[0])
	}
	ext := filepath.Ext(names[0])
	stems := make([]string, len(names))
	for i, n := range names {
		if filepath.Ext(n) != ext {
			return filepath.Join(dir, "{"+strings.Join(names, ",")+"}")
		}
		stems[i] = strings.TrimSuffix(n, ext)
	}
	return filepath.Join(dir, "{"+strings.Join(stems, ",")+"}"+ext)
}

// isFile tells whether path is a regular file (following links).
func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// isDir tells whether path is a folder (following links).
func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// FindPlugin looks for the files of a PJRT plugin without loading any. For
// "cuda" it looks, in order:
//
//  1. at $SGT_PJRT_CUDA_PLUGIN, which, when set, is the only place looked at;
//  2. in GoMLX's own locations (~/.local/lib/go-xla and its nvidia/,
//     ~/.local/lib/gomlx/pjrt, the same under /usr/local/lib, then
//     LD_LIBRARY_PATH and /etc/ld.so.conf) for pjrt_c_api_cuda_plugin.so,
//     pjrt-plugin-cuda.so or pjrt_plugin_cuda.so;
//  3. in the folders of $PJRT_PLUGIN_LIBRARY_PATH for those names and JAX's
//     xla_cuda_plugin.so;
//  4. in the site-packages of the python3 on PATH (asked with a timeout) for
//     pip-installed JAX plugins, jax_plugins/xla_cuda*/xla_cuda_plugin.so
//     (newest CUDA first).
//
// Other names are looked for in 2 and 3 only. Unlike go-xla, which
// searches only $PJRT_PLUGIN_LIBRARY_PATH when it is set, sgt searches
// GoMLX's locations in any case.
func FindPlugin(ctx context.Context, name string) PluginSearch {
	s := PluginSearch{Name: name}
	cuda := isCUDAPlugin(name)
	add := func(path, source string) {
		if !isFile(path) {
			return
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			abs = path
		}
		for _, c := range s.Candidates {
			if c.Path == abs {
				return
			}
		}
		s.Candidates = append(s.Candidates, PluginCandidate{Path: abs, Source: source})
	}

	if cuda {
		if p := os.Getenv(CUDAPluginEnv); p != "" {
			s.Searched = append(s.Searched, "$"+CUDAPluginEnv+"="+p)
			if !isFile(p) {
				s.Notes = append(s.Notes, fmt.Sprintf("$%s=%s is not a file", CUDAPluginEnv, p))
			}
			add(p, "$"+CUDAPluginEnv)
			return s
		}
		s.Searched = append(s.Searched, "$"+CUDAPluginEnv+" (unset)")
	}

	names := pluginFileNames(name)
	for _, d := range goMLXPluginDirs() {
		s.Searched = append(s.Searched, braces(d, names))
		for _, n := range names {
			add(filepath.Join(d, n), "GoMLX locations")
		}
	}

	envNames := names
	if cuda {
		envNames = append(slices.Clone(names), jaxCUDAPluginName)
	}
	if v := os.Getenv(PluginPathEnv); v != "" {
		for _, d := range filepath.SplitList(v) {
			if d == "" {
				continue
			}
			s.Searched = append(s.Searched, braces(d, envNames))
			for _, n := range envNames {
				add(filepath.Join(d, n), "$"+PluginPathEnv)
			}
		}
	} else {
		s.Searched = append(s.Searched, "$"+PluginPathEnv+" (unset)")
	}

	if cuda {
		python, sites, note := pythonSitePackages(ctx)
		if note != "" {
			s.Notes = append(s.Notes, note)
		}
		for _, sp := range sites {
			pattern := filepath.Join(sp, "jax_plugins", "xla_cuda*", jaxCUDAPluginName)
			s.Searched = append(s.Searched, pattern+" (site-packages of "+python+")")
			matches, _ := filepath.Glob(pattern)
			slices.SortFunc(matches, func(a, b string) int { return -compareNatural(a, b) })
			for _, m := range matches {
				add(m, "pip (python3 site-packages)")
			}
		}
	}
	return s
}

// compareNatural orders strings with embedded numbers by value
// (xla_cuda9 < xla_cuda12 < xla_cuda13).
func compareNatural(a, b string) int {
	pa, pb := reNaturalParts.FindAllString(a, -1), reNaturalParts.FindAllString(b, -1)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, y := pa[i], pb[i]
		nx, ex := strconv.Atoi(x)
		ny, ey := strconv.Atoi(y)
		if ex == nil && ey == nil {
			if nx != ny {
				return nx - ny
			}
			continue
		}
		if c := strings.Compare(x, y); c != 0 {
			return c
		}
	}
	return len(pa) - len(pb)
}

// pythonSiteScript prints the folders python3 installs packages in.
const pythonSiteScript = `import site, sys
p = []
try:
    p += site.getsitepackages()
except Exception:
    pass
try:
    if site.ENABLE_USER_SITE:
        p.append(site.getusersitepackages())
except Exception:
    pass
p += [x for x in sys.path if x.endswith(("site-packages", "dist-packages"))]
print("\n".join(p))
`

// pythonSitePackages asks the python3 on PATH for its site-packages
// folders, giving up after pythonTimeout. It returns python3's path, the
// folders that exist, and a note when python3 is missing or fails.
func pythonSitePackages(ctx context.Context) (python string, dirs []string, note string) {
	python, err := exec.LookPath("python3")
	if err != nil {
		return "python3", nil, "no python3 on PATH, so no pip-installed JAX plugin was looked for"
	}
	ctx, cancel := context.WithTimeout(ctx, pythonTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", pythonSiteScript)
	cmd.WaitDelay = time.Second // do not wait on pipes held by stray children
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return python, nil, fmt.Sprintf("%s did not list its site-packages within %v, so no pip-installed JAX plugin was looked for", python, pythonTimeout)
	}
	if err != nil {
		return python, nil, fmt.Sprintf("%s failed to list its site-packages (%v), so no pip-installed JAX plugin was looked for", python, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && filepath.IsAbs(line) && isDir(line) {
			dirs = append(dirs, line)
		}
	}
	return python, dedupe(dirs), ""
}

// CUDASetup is what sgt prepares for a CUDA plugin from the NVIDIA files
// installed next to it (pip's nvidia/ folder for JAX's plugin, go-xla's
// nvidia/ folder for its own).
type CUDASetup struct {
	// CUDAMajor is the CUDA major version the plugin was built for, read
	// from its folder name (xla_cuda13: 13), or 0 when unknown.
	CUDAMajor int `json:"cuda_major,omitempty"`
	// DataDir is a folder holding nvvm/libdevice (XLA's
	// --xla_gpu_cuda_data_dir), or "" when none was found.
	DataDir string `json:"cuda_data_dir,omitempty"`
	// LibDirs are the folders of the NVIDIA libraries found (what
	// LD_LIBRARY_PATH would need to hold if sgt did not preload them).
	LibDirs []string `json:"lib_dirs,omitempty"`
	// Preload are the NVIDIA libraries sgt loads, in order, before the
	// plugin, as JAX does, so that the plugin finds them without
	// LD_LIBRARY_PATH.
	Preload []string `json:"preload,omitempty"`
	// XLAFlags is the XLA_FLAGS value the plugin runs with.
	XLAFlags string `json:"xla_flags,omitempty"`
	// Notes say what was set or could not be found.
	Notes []string `json:"notes,omitempty"`
}

// preloadOrder lists the NVIDIA libraries (lib<name>.so.<major>) loaded
// before a CUDA plugin, dependencies first: the ones JAX's plugin package
// loads itself before registering the plugin.
var preloadOrder = []string{
	"cudart", "nvrtc", "nvJitLink", "cublasLt", "cublas", "cusparse", "cusolver",
	"cufft", "cupti", "nccl", "cudnn", "nvshmem_host",
}

var (
	reNaturalParts = regexp.MustCompile(`\d+|\D+`)
	reCUDAMajor    = regexp.MustCompile(`cuda(\d+)`)
	reCUPackage    = regexp.MustCompile(`^cu(\d+)$`)
	reSonameFile   = regexp.MustCompile(`^lib(.+)\.so\.(\d+)$`)
)

// cudaSetupFor finds the CUDA files belonging to a CUDA plugin and the
// XLA_FLAGS value it should run with, given the current XLA_FLAGS. It
// changes nothing.
func cudaSetupFor(pluginPath, xlaFlags string) CUDASetup {
	var cs CUDASetup
	if m := reCUDAMajor.FindStringSubmatch(filepath.Base(filepath.Dir(pluginPath))); m != nil {
		cs.CUDAMajor, _ = strconv.Atoi(m[1])
	}
	// NVIDIA's pip packages install into site-packages/nvidia/<package>/
	// (CUDA 13: nvidia/cu13/ for the toolkit's libraries); JAX's plugin is
	// site-packages/jax_plugins/xla_cudaNN/xla_cuda_plugin.so, go-xla's
	// is .../go-xla/nvidia/pjrt_c_api_cuda_plugin.so with the packages'
	// folders beside it.
	dir := filepath.Dir(pluginPath)
	var roots []string
	for _, r := range []string{filepath.Join(dir, "nvidia"), dir, filepath.Join(filepath.Dir(dir), "nvidia"),
		filepath.Join(filepath.Dir(filepath.Dir(dir)), "nvidia")} {
		if isDir(r) {
			roots = append(roots, r)
		}
	}
	roots = dedupe(roots)

	// The packages' folders, the plugin's CUDA version first; folders of
	// another CUDA version (cu12 beside cu13) are left out.
	var pkgs []string
	for _, r := range roots {
		entries, err := os.ReadDir(r)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !strings.HasPrefix(e.Name(), "__") {
				pkgs = append(pkgs, filepath.Join(r, e.Name()))
			}
		}
	}
	if cs.CUDAMajor == 0 { // unknown: take the newest cuNN folder
		for _, p := range pkgs {
			if m := reCUPackage.FindStringSubmatch(filepath.Base(p)); m != nil {
				v, _ := strconv.Atoi(m[1])
				cs.CUDAMajor = max(cs.CUDAMajor, v)
			}
		}
	}
	rank := func(p string) int {
		base := filepath.Base(p)
		if m := reCUPackage.FindStringSubmatch(base); m != nil {
			if v, _ := strconv.Atoi(m[1]); v == cs.CUDAMajor {
				return 0
			}
			return -1 // another CUDA version
		}
		if base == "cuda_nvcc" {
			return 1
		}
		return 2
	}
	pkgs = slices.DeleteFunc(pkgs, func(p string) bool { return rank(p) < 0 })
	slices.SortStableFunc(pkgs, func(a, b string) int { return rank(a) - rank(b) })

	for _, p := range append(slices.Clone(pkgs), roots...) {
		if matches, _ := filepath.Glob(filepath.Join(p, "nvvm", "libdevice", "libdevice*.bc")); len(matches) > 0 {
			cs.DataDir = p
			break
		}
	}
	for _, p := range pkgs {
		if isDir(filepath.Join(p, "lib")) {
			cs.LibDirs = append(cs.LibDirs, filepath.Join(p, "lib"))
		}
	}
	for _, name := range preloadOrder {
	dirs:
		for _, d := range cs.LibDirs {
			entries, err := os.ReadDir(d)
			if err != nil {
				continue
			}
			for _, e := range entries {
				if m := reSonameFile.FindStringSubmatch(e.Name()); m != nil && m[1] == name {
					cs.Preload = append(cs.Preload, filepath.Join(d, e.Name()))
					break dirs
				}
			}
		}
	}

	switch {
	case strings.Contains(xlaFlags, "--xla_gpu_cuda_data_dir"):
		cs.XLAFlags = xlaFlags
		cs.Notes = append(cs.Notes, "XLA_FLAGS already sets --xla_gpu_cuda_data_dir; kept as it is")
	case cs.DataDir != "":
		cs.XLAFlags = strings.TrimSpace(xlaFlags + " --xla_gpu_cuda_data_dir=" + cs.DataDir)
		cs.Notes = append(cs.Notes, "XLA_FLAGS gets --xla_gpu_cuda_data_dir="+cs.DataDir+" (the folder holding nvvm/libdevice)")
	default:
		cs.XLAFlags = xlaFlags
		where := "beside the plugin"
		if len(roots) > 0 {
			where = "under " + strings.Join(roots, ", ")
		}
		cs.Notes = append(cs.Notes, "no nvvm/libdevice found "+where+" (pip package nvidia-cuda-nvcc); XLA_FLAGS left alone, so XLA looks in its default places (such as /usr/local/cuda)")
	}
	if len(cs.LibDirs) > 0 {
		cs.Notes = append(cs.Notes, "sgt preloads the NVIDIA libraries found; if the plugin still misses one, start sgt with LD_LIBRARY_PATH="+strings.Join(cs.LibDirs, ":"))
	} else {
		cs.Notes = append(cs.Notes, "no NVIDIA pip libraries found beside the plugin; the CUDA libraries must be on the system library path (ldconfig or LD_LIBRARY_PATH)")
	}
	return cs
}

// HasNvidiaGPU tells whether the NVIDIA driver exposes a GPU here (a
// /dev/nvidiaN device).
func HasNvidiaGPU() bool {
	m, _ := filepath.Glob("/dev/nvidia[0-9]*")
	return len(m) > 0
}
