package backend

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// origPath is the PATH the tests started with (isolatePluginEnv replaces it).
var origPath = os.Getenv("PATH")

// isolatePluginEnv points every place FindPlugin looks at into a fresh
// temporary tree (HOME, PATH with no python3, no plugin variables) and
// returns its root.
func isolatePluginEnv(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	t.Setenv("HOME", filepath.Join(root, "home"))
	bin := filepath.Join(root, "bin")
	mkdirs(t, bin)
	t.Setenv("PATH", bin)
	t.Setenv("LD_LIBRARY_PATH", "")
	for _, v := range []string{CUDAPluginEnv, PluginPathEnv, XLAFlagsEnv, goXLACUDAChecksEnv, EnvVar} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	return root
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// touch creates an empty file (and its folders).
func touch(t *testing.T, path string) string {
	t.Helper()
	mkdirs(t, filepath.Dir(path))
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakePython writes a python3 script into root/bin that prints the given
// site-packages folders (or runs body instead when it is not empty).
func fakePython(t *testing.T, root, body string, sites ...string) {
	t.Helper()
	if body == "" {
		body = "echo '" + strings.Join(sites, "\n") + "'"
	}
	script := "#!/bin/sh\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(root, "bin", "python3"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func candidatePaths(s PluginSearch) []string {
	var p []string
	for _, c := range s.Candidates {
		p = append(p, c.Path)
	}
	return p
}

func TestFindPluginSearchOrder(t *testing.T) {
	root := isolatePluginEnv(t)
	home := filepath.Join(root, "home")
	gomlx := touch(t, filepath.Join(home, ".local", "lib", "go-xla", "nvidia", "pjrt_c_api_cuda_plugin.so"))
	envDir := filepath.Join(root, "pjrt")
	fromEnv := touch(t, filepath.Join(envDir, "xla_cuda_plugin.so"))
	t.Setenv(PluginPathEnv, envDir)
	sp := filepath.Join(root, "venv", "lib", "python3.12", "site-packages")
	pip12 := touch(t, filepath.Join(sp, "jax_plugins", "xla_cuda12", "xla_cuda_plugin.so"))
	pip13 := touch(t, filepath.Join(sp, "jax_plugins", "xla_cuda13", "xla_cuda_plugin.so"))
	fakePython(t, root, "", sp, filepath.Join(root, "missing"))

	s := FindPlugin(context.Background(), "cuda")
	want := []string{gomlx, fromEnv, pip13, pip12}
	if got := candidatePaths(s); !slices.Equal(got, want) {
		t.Fatalf("candidates %q, want %q", got, want)
	}
	sources := []string{"GoMLX locations", "$" + PluginPathEnv, "pip (python3 site-packages)", "pip (python3 site-packages)"}
	for i, c := range s.Candidates {
		if c.Source != sources[i] {
			t.Errorf("candidate %s: source %q, want %q", c.Path, c.Source, sources[i])
		}
	}
	searched := strings.Join(s.Searched, "\n")
	for _, w := range []string{
		"$" + CUDAPluginEnv + " (unset)",
		filepath.Join(home, ".local", "lib", "go-xla", "{pjrt_c_api_cuda_plugin,pjrt-plugin-cuda,pjrt_plugin_cuda}.so"),
		filepath.Join(envDir, "{pjrt_c_api_cuda_plugin,pjrt-plugin-cuda,pjrt_plugin_cuda,xla_cuda_plugin}.so"),
		filepath.Join(sp, "jax_plugins", "xla_cuda*", "xla_cuda_plugin.so"),
	} {
		if !strings.Contains(searched, w) {
			t.Errorf("searched list lacks %q:\n%s", w, searched)
		}
	}
	// The order of the searched places is the order of the search.
	iGo := strings.Index(searched, "go-xla")
	iEnv := strings.Index(searched, envDir)
	iPip := strings.Index(searched, "jax_plugins")
	if !(iGo < iEnv && iEnv < iPip) {
		t.Errorf("searched places out of order:\n%s", searched)
	}

	// The explicit variable is the only place looked at.
	own := touch(t, filepath.Join(root, "mine", "xla_cuda_plugin.so"))
	t.Setenv(CUDAPluginEnv, own)
	s = FindPlugin(context.Background(), "cuda")
	if got := candidatePaths(s); !slices.Equal(got, []string{own}) || len(s.Searched) != 1 {
		t.Fatalf("with %s: candidates %q searched %q", CUDAPluginEnv, got, s.Searched)
	}
	t.Setenv(CUDAPluginEnv, filepath.Join(root, "nothing.so"))
	s = FindPlugin(context.Background(), "cuda")
	if len(s.Candidates) != 0 || len(s.Notes) != 1 || !strings.Contains(s.Notes[0], "not a file") {
		t.Fatalf("with %s naming a missing file: %+v", CUDAPluginEnv, s)
	}

	// Other plugins are not looked for in pip's site-packages.
	os.Unsetenv(CUDAPluginEnv)
	touch(t, filepath.Join(envDir, "pjrt_c_api_cpu_plugin.so"))
	s = FindPlugin(context.Background(), "cpu")
	if got := candidatePaths(s); !slices.Equal(got, []string{filepath.Join(envDir, "pjrt_c_api_cpu_plugin.so")}) {
		t.Errorf("cpu candidates %q", got)
	}
	if strings.Contains(strings.Join(s.Searched, " "), "jax_plugins") {
		t.Errorf("cpu search looked in site-packages: %q", s.Searched)
	}
}

// TestFindPluginPythonProblems checks that a missing, failing or hanging
// python3 gives a note, and that a hanging one is abandoned in time.
func TestFindPluginPythonProblems(t *testing.T) {
	root := isolatePluginEnv(t)
	s := FindPlugin(context.Background(), "cuda")
	if len(s.Candidates) != 0 || !strings.Contains(strings.Join(s.Notes, " "), "no python3 on PATH") {
		t.Errorf("without python3: %+v", s)
	}

	fakePython(t, root, "echo broken >&2; exit 1")
	s = FindPlugin(context.Background(), "cuda")
	if !strings.Contains(strings.Join(s.Notes, " "), "failed to list its site-packages") {
		t.Errorf("failing python3: notes %q", s.Notes)
	}

	old := pythonTimeout
	pythonTimeout = 300 * time.Millisecond
	defer func() { pythonTimeout = old }()
	fakePython(t, root, "exec /bin/sleep 30")
	start := time.Now()
	s = FindPlugin(context.Background(), "cuda")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a hanging python3 held the search for %v", d)
	}
	if !strings.Contains(strings.Join(s.Notes, " "), "did not list its site-packages within") {
		t.Errorf("hanging python3: notes %q", s.Notes)
	}
}

func TestCUDASetup(t *testing.T) {
	root := t.TempDir()
	sp := filepath.Join(root, "site-packages")
	plugin := touch(t, filepath.Join(sp, "jax_plugins", "xla_cuda13", "xla_cuda_plugin.so"))
	nv := filepath.Join(sp, "nvidia")
	touch(t, filepath.Join(nv, "cu13", "lib", "libcudart.so.13"))
	touch(t, filepath.Join(nv, "cu13", "lib", "libcudart.so.13.0.96")) // not a soname
	touch(t, filepath.Join(nv, "cu13", "lib", "libcublasLt.so.13"))
	touch(t, filepath.Join(nv, "cu13", "lib", "libcublas.so.13"))
	touch(t, filepath.Join(nv, "cudnn", "lib", "libcudnn.so.9"))
	touch(t, filepath.Join(nv, "cu12", "lib", "libcudart.so.12")) // another CUDA: left out
	touch(t, filepath.Join(nv, "cu12", "nvvm", "libdevice", "libdevice.10.bc"))
	touch(t, filepath.Join(nv, "cu13", "nvvm", "libdevice", "libdevice.10.bc"))

	cs := cudaSetupFor(plugin, "--xla_dump_to=/tmp/d")
	if cs.CUDAMajor != 13 || cs.DataDir != filepath.Join(nv, "cu13") {
		t.Errorf("CUDA %d, data dir %q; want 13 and %s", cs.CUDAMajor, cs.DataDir, filepath.Join(nv, "cu13"))
	}
	if want := "--xla_dump_to=/tmp/d --xla_gpu_cuda_data_dir=" + filepath.Join(nv, "cu13"); cs.XLAFlags != want {
		t.Errorf("XLA_FLAGS %q, want %q", cs.XLAFlags, want)
	}
	wantLibs := []string{filepath.Join(nv, "cu13", "lib"), filepath.Join(nv, "cudnn", "lib")}
	if !slices.Equal(cs.LibDirs, wantLibs) {
		t.Errorf("lib dirs %q, want %q", cs.LibDirs, wantLibs)
	}
	wantPreload := []string{
		filepath.Join(nv, "cu13", "lib", "libcudart.so.13"), filepath.Join(nv, "cu13", "lib", "libcublasLt.so.13"),
		filepath.Join(nv, "cu13", "lib", "libcublas.so.13"), filepath.Join(nv, "cudnn", "lib", "libcudnn.so.9"),
	}
	if !slices.Equal(cs.Preload, wantPreload) {
		t.Errorf("preload %q, want %q", cs.Preload, wantPreload)
	}

	// A user's own data dir is kept.
	cs = cudaSetupFor(plugin, "--xla_gpu_cuda_data_dir=/opt/cuda")
	if cs.XLAFlags != "--xla_gpu_cuda_data_dir=/opt/cuda" {
		t.Errorf("user's XLA_FLAGS replaced: %q", cs.XLAFlags)
	}

	// Without nvvm/libdevice, XLA_FLAGS is left alone, with a note.
	os.RemoveAll(filepath.Join(nv, "cu13", "nvvm"))
	cs = cudaSetupFor(plugin, "")
	if cs.DataDir != "" || cs.XLAFlags != "" || !strings.Contains(strings.Join(cs.Notes, " "), "no nvvm/libdevice found") {
		t.Errorf("without libdevice: %+v", cs)
	}
	if !strings.Contains(strings.Join(cs.Notes, " "), "LD_LIBRARY_PATH="+strings.Join(wantLibs, ":")) {
		t.Errorf("notes should name the LD_LIBRARY_PATH fallback: %q", cs.Notes)
	}

	// go-xla's own layout: the plugin inside go-xla/nvidia with the
	// packages' folders beside it; the CUDA version comes from cuNN.
	gx := filepath.Join(root, "go-xla", "nvidia")
	plugin = touch(t, filepath.Join(gx, "pjrt_c_api_cuda_plugin.so"))
	touch(t, filepath.Join(gx, "cu13", "lib", "libcudart.so.13"))
	touch(t, filepath.Join(gx, "cu13", "nvvm", "libdevice", "libdevice.10.bc"))
	cs = cudaSetupFor(plugin, "")
	if cs.CUDAMajor != 13 || cs.DataDir != filepath.Join(gx, "cu13") || !slices.Equal(cs.Preload, []string{filepath.Join(gx, "cu13", "lib", "libcudart.so.13")}) {
		t.Errorf("go-xla layout: %+v", cs)
	}
}

// gcc returns the path of a C compiler, or skips the test.
func gcc(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"gcc", "cc"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no C compiler: cannot build fake shared libraries")
	return ""
}

// buildSO compiles C source into a shared library at out.
func buildSO(t *testing.T, cc, out, src string, flags ...string) string {
	t.Helper()
	mkdirs(t, filepath.Dir(out))
	srcFile := out + ".c"
	if err := os.WriteFile(srcFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-shared", "-fPIC", "-o", out, srcFile}, flags...)
	cmd := exec.Command(cc, append(args, "-ldl")...)
	cmd.Env = append(os.Environ(), "PATH="+origPath)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v\n%s", cc, args, err, b)
	}
	return out
}

// fakePluginSource is a shared library that looks like a PJRT plugin:
// GetPjrtApi returns a table with the version MAJOR.MINOR, a working
// PJRT_Plugin_Initialize (unless NO_INIT) and PJRT_Plugin_Attributes that
// reports XLA_FLAGS and whether libcudart.so.13 is already loaded; every
// other entry is NULL. CRASH makes GetPjrtApi crash, HANG makes loading
// the library hang.
const fakePluginSource = `
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct { size_t struct_size; void* ext; int major; int minor; } version_t;
typedef struct {
	size_t struct_size; void* ext; const char* name; size_t name_size; int type;
	union { const char* s; int64_t i; const int64_t* a; float f; bool b; } v;
	size_t value_size;
} named_value_t;
typedef struct { size_t struct_size; void* ext; const named_value_t* attributes; size_t num_attributes; } attributes_args_t;
typedef void* (*fn_t)(void*);
typedef struct { size_t struct_size; void* ext; version_t version; fn_t fns[1024]; } api_t;

static named_value_t attrs[2];
static api_t api;

static void set_attr(named_value_t* nv, const char* name, const char* value) {
	memset(nv, 0, sizeof *nv);
	nv->struct_size = sizeof *nv;
	nv->name = name; nv->name_size = strlen(name);
	nv->type = 0; nv->v.s = value; nv->value_size = strlen(value);
}

static void* plugin_initialize(void* args) { return NULL; }

static void* plugin_attributes(void* p) {
	attributes_args_t* args = p;
	const char* flags = getenv("XLA_FLAGS");
	set_attr(&attrs[0], "xla_flags", flags ? flags : "");
	set_attr(&attrs[1], "cudart_preloaded", dlopen("libcudart.so.13", RTLD_NOW | RTLD_NOLOAD) ? "yes" : "no");
	args->attributes = attrs;
	args->num_attributes = 2;
	return NULL;
}

#ifdef HANG
__attribute__((constructor)) static void hang(void) { sleep(60); }
#endif

const api_t* GetPjrtApi(void) {
#ifdef CRASH
	*(volatile int*)0 = 1;
#endif
	api.struct_size = sizeof api;
	api.version.struct_size = sizeof api.version;
	api.version.major = MAJOR;
	api.version.minor = MINOR;
#ifndef NO_INIT
	api.fns[3] = plugin_initialize;
#endif
	api.fns[4] = plugin_attributes;
	return &api;
}
`

// TestCheckXLARefusesBadPlugins loads broken plugins: each must give a clear
// error naming the file, quickly, without harming this process.
func TestCheckXLARefusesBadPlugins(t *testing.T) {
	cc := gcc(t)
	root := isolatePluginEnv(t)
	old := probeLoadTimeout
	probeLoadTimeout = 3 * time.Second
	defer func() { probeLoadTimeout = old }()

	empty := touch(t, filepath.Join(root, "empty", "xla_cuda_plugin.so"))
	noAPI := buildSO(t, cc, filepath.Join(root, "noapi", "xla_cuda_plugin.so"), "int not_pjrt(void) { return 1; }\n")
	build := func(name string, defs ...string) string {
		return buildSO(t, cc, filepath.Join(root, name, "xla_cuda_plugin.so"), fakePluginSource, defs...)
	}
	cases := []struct {
		path string
		want string
	}{
		{empty, "cannot be loaded: dlopen"},
		{noAPI, "does not export GetPjrtApi"},
		{build("major1", "-DMAJOR=1", "-DMINOR=0"), "PJRT C API 1.0, but sgt's go-xla speaks 0.83: the major versions differ"},
		{build("old", "-DMAJOR=0", "-DMINOR=40"), "PJRT C API 0.40, older than the 0.83"},
		{build("crash", "-DMAJOR=0", "-DMINOR=90", "-DCRASH"), "crashed while loading it"},
		{build("noinit", "-DMAJOR=0", "-DMINOR=90", "-DNO_INIT"), "crashed while initialising it"},
		{build("hang", "-DMAJOR=0", "-DMINOR=90", "-DHANG"), "did not answer within 3s while loading it"},
	}
	for _, c := range cases {
		t.Setenv(CUDAPluginEnv, c.path)
		start := time.Now()
		r := CheckXLA(context.Background(), "cuda", false)
		d := time.Since(start)
		t.Logf("%s", r.Error)
		if r.Usable || !strings.Contains(r.Error, c.path) || !strings.Contains(r.Error, c.want) {
			t.Errorf("%s: usable %v, error %q; want one naming the file and saying %q", c.path, r.Usable, r.Error, c.want)
		}
		if !strings.Contains(r.Error, "jax[cuda13]") {
			t.Errorf("%s: error %q does not say what to install", c.path, r.Error)
		}
		if strings.Contains(r.Error, "\n") {
			t.Errorf("%s: error is not one line: %q", c.path, r.Error)
		}
		if d > 15*time.Second {
			t.Errorf("%s: took %v", c.path, d)
		}
	}

	// New gives the same error for the same plugin, and this process lives on.
	t.Setenv(CUDAPluginEnv, filepath.Join(root, "crash", "xla_cuda_plugin.so"))
	_, _, err := New("xla:cuda")
	if err == nil || !strings.Contains(err.Error(), "crashed while loading it") || !strings.HasPrefix(err.Error(), `backend "xla:cuda": `) {
		t.Errorf("New(xla:cuda) with a crashing plugin: %v", err)
	}
	_, _, err = New("xla:" + noAPI)
	if err == nil || !strings.Contains(err.Error(), "does not export GetPjrtApi") {
		t.Errorf("New(xla:%s): %v", noAPI, err)
	}
}

// TestCheckXLAPipPlugin finds a working (fake) plugin through a fake
// python3's site-packages and checks what it runs with: the NVIDIA library
// preloaded, XLA_FLAGS pointing at the CUDA files, go-xla's set-up off.
func TestCheckXLAPipPlugin(t *testing.T) {
	cc := gcc(t)
	root := isolatePluginEnv(t)
	sp := filepath.Join(root, "venv", "site-packages")
	plugin := buildSO(t, cc, filepath.Join(sp, "jax_plugins", "xla_cuda13", "xla_cuda_plugin.so"), fakePluginSource, "-DMAJOR=0", "-DMINOR=95")
	nv := filepath.Join(sp, "nvidia")
	buildSO(t, cc, filepath.Join(nv, "cu13", "lib", "libcudart.so.13"), "int cudaFake(void) { return 13; }\n", "-Wl,-soname,libcudart.so.13")
	touch(t, filepath.Join(nv, "cu13", "nvvm", "libdevice", "libdevice.10.bc"))
	fakePython(t, root, "", sp)

	r := CheckXLA(context.Background(), "cuda", false)
	if !r.Usable {
		t.Fatalf("fake pip plugin unusable: %s", r.Error)
	}
	if r.Plugin.Path != plugin || r.Source != "pip (python3 site-packages)" || r.Plugin.APIMajor != 0 || r.Plugin.APIMinor != 95 {
		t.Errorf("report %+v, plugin %+v", r, r.Plugin)
	}
	if got := r.Plugin.Attributes["cudart_preloaded"]; got != "yes" {
		t.Errorf("libcudart.so.13 was not loaded before the plugin (attribute %q); preload failures %q", got, r.Plugin.PreloadFailed)
	}
	wantFlags := "--xla_gpu_cuda_data_dir=" + filepath.Join(nv, "cu13")
	if got := r.Plugin.Attributes["xla_flags"]; got != wantFlags {
		t.Errorf("plugin saw XLA_FLAGS %q, want %q", got, wantFlags)
	}
	if os.Getenv(XLAFlagsEnv) != "" {
		t.Errorf("CheckXLA changed this process's XLA_FLAGS to %q", os.Getenv(XLAFlagsEnv))
	}

	// A relative path is made absolute (GoMLX loads plugins by absolute path).
	t.Chdir(filepath.Dir(plugin))
	if rr := CheckXLA(context.Background(), "./xla_cuda_plugin.so", false); !rr.Usable || rr.Plugin.Path != plugin {
		t.Errorf("relative path: usable %v, path %v, %s", rr.Usable, rr.Plugin, rr.Error)
	}

	// The user's XLA_FLAGS wins.
	t.Setenv(XLAFlagsEnv, "--xla_gpu_cuda_data_dir=/opt/mine")
	clearVerified()
	r = CheckXLA(context.Background(), "cuda", false)
	if !r.Usable || r.Plugin.Attributes["xla_flags"] != "--xla_gpu_cuda_data_dir=/opt/mine" {
		t.Errorf("user's XLA_FLAGS: %+v", r.Plugin)
	}

	// Creating a client needs entries the fake lacks: the probe process
	// crashes there, and the report says so.
	r = CheckXLA(context.Background(), "cuda", true)
	if r.Usable || !strings.Contains(r.Error, "crashed while creating a client") {
		t.Errorf("client probe of a plugin without PJRT_Client_Create: usable %v, %q", r.Usable, r.Error)
	}
}

// TestGoXLACUDAChecksOff reproduces go-xla's CUDA set-up, which points
// XLA_FLAGS at a fixed folder of its author's home directory when the
// plugin has a nvidia/ folder beside it but no CUDA data folder was set,
// and checks that sgt switches it off.
func TestGoXLACUDAChecksOff(t *testing.T) {
	cc := gcc(t)
	root := isolatePluginEnv(t)
	gx := filepath.Join(root, "home", ".local", "lib", "go-xla", "nvidia")
	buildSO(t, cc, filepath.Join(gx, "pjrt_c_api_cuda_plugin.so"), fakePluginSource, "-DMAJOR=0", "-DMINOR=95")

	r := CheckXLA(context.Background(), "cuda", false)
	if !r.Usable || r.Source != "GoMLX locations" {
		t.Fatalf("go-xla layout: %+v", r)
	}
	if r.Plugin.XLAFlags != "" {
		t.Errorf("XLA_FLAGS after loading the plugin = %q, want it left unset", r.Plugin.XLAFlags)
	}
	// With go-xla's set-up on (the user's choice), the bug shows.
	t.Setenv(goXLACUDAChecksEnv, "1")
	clearVerified()
	r = CheckXLA(context.Background(), "cuda", false)
	if !r.Usable || !strings.Contains(r.Plugin.XLAFlags, "--xla_gpu_cuda_data_dir=/home/janpf/") {
		t.Errorf("go-xla with its checks on set XLA_FLAGS=%q; its fixed path was expected (has go-xla changed?)", r.Plugin.XLAFlags)
	}
}

func clearVerified() {
	verified.Lock()
	verified.probes = nil
	verified.Unlock()
}

func TestNewXLACUDAWithoutPlugin(t *testing.T) {
	root := isolatePluginEnv(t)
	fakePython(t, root, "", filepath.Join(root, "empty-site"))
	mkdirs(t, filepath.Join(root, "empty-site"))
	start := time.Now()
	_, _, err := New("xla:cuda")
	if err == nil {
		t.Fatal("New(xla:cuda) without a plugin succeeded")
	}
	msg := err.Error()
	for _, w := range []string{
		`backend "xla:cuda": no PJRT cuda plugin found (automatic plugin download is disabled)`,
		"$" + CUDAPluginEnv + " (unset)", filepath.Join(root, "home", ".local", "lib", "go-xla"),
		"$" + PluginPathEnv + " (unset)", filepath.Join(root, "empty-site", "jax_plugins", "xla_cuda*", "xla_cuda_plugin.so"),
		`pip install -U "jax[cuda13]"`, "--backend cpu",
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
	// GOMLX_BACKEND=xla:cuda takes the same path.
	t.Setenv(EnvVar, "xla:cuda")
	if _, cfg, err := New(""); err == nil || cfg != "xla:cuda" || !strings.Contains(err.Error(), "no PJRT cuda plugin found") {
		t.Errorf("%s=xla:cuda: config %q, error %v", EnvVar, cfg, err)
	}
	// A path that is no file.
	if _, _, err := New("xla:" + filepath.Join(root, "no.so")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("xla:<missing file>: %v", err)
	}
}

func TestGPUClientOptions(t *testing.T) {
	t.Setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
	t.Setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.5")
	t.Setenv("XLA_PYTHON_CLIENT_ALLOCATOR", "platform")
	o, err := gpuClientOptions()
	if err != nil || o["preallocate"] != false || o["memory_fraction"] != float32(0.5) || o["allocator"] != "platform" {
		t.Errorf("options %v, %v", o, err)
	}
	t.Setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "2")
	if _, err := gpuClientOptions(); err == nil || !strings.Contains(err.Error(), "XLA_PYTHON_CLIENT_MEM_FRACTION") {
		t.Errorf("bad fraction: %v", err)
	}
}

// TestAPIVersionMatchesGoXLA checks pjrtAPIMajor and pjrtAPIMinor against the
// pjrt_c_api.h of the go-xla this module builds with.
func TestAPIVersionMatchesGoXLA(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/gomlx/go-xla")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Skipf("go-xla's module folder not found: %v", err)
	}
	header := filepath.Join(dir, "pkg", "pjrt", "pjrt_c_api.h")
	b, err := os.ReadFile(header)
	if err != nil {
		t.Skipf("go-xla's header not readable: %v", err)
	}
	get := func(name string) int {
		m := regexp.MustCompile(`#define ` + name + ` (\d+)`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s not in %s", name, header)
		}
		v, _ := strconv.Atoi(string(m[1]))
		return v
	}
	if ma, mi := get("PJRT_API_MAJOR"), get("PJRT_API_MINOR"); ma != pjrtAPIMajor || mi != pjrtAPIMinor {
		t.Errorf("%s has PJRT C API %d.%d; the constants say %d.%d", header, ma, mi, pjrtAPIMajor, pjrtAPIMinor)
	}
}

func TestStderrTail(t *testing.T) {
	goCrash := "fatal error: unexpected signal during runtime execution\nSIGSEGV: segmentation violation\nPC=0x7f m=0 sigcode=1\n\ngoroutine 1 gp=0x1 m=0 [syscall]:\nruntime.cgocall(0x1, 0x2)\n\t/usr/lib/go/src/runtime/cgocall.go:167 +0x4b fp=0x1 sp=0x2 pc=0x3\nrax    0x0\nrbx    0x1\n"
	if got := stderrTail(goCrash); got != "; its last message: SIGSEGV: segmentation violation" {
		t.Errorf("Go crash report: %q", got)
	}
	absl := "I1127 10:00:00.000000 1 cuda_dnn.cc:1] loading\nF1127 10:00:01.000000 1 cuda_driver.cc:2] Check failed: cuInit(0) == CUDA_SUCCESS\nSIGABRT: abort\nrax    0x0\n"
	if got := stderrTail(absl); !strings.Contains(got, "Check failed: cuInit(0)") {
		t.Errorf("absl fatal line not picked: %q", got)
	}
	if got := stderrTail("W plugin warning\nsomething went wrong\n"); got != "; its last message: something went wrong" {
		t.Errorf("plain message: %q", got)
	}
	if got := stderrTail(""); got != "" {
		t.Errorf("empty: %q", got)
	}
}
