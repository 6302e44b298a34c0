package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/gomlx/go-xla/pkg/pjrt"
)

// The PJRT C API version of the headers go-xla v0.1.4 is built with
// (pjrt_c_api.h: PJRT_API_MAJOR, PJRT_API_MINOR). Plugins must report the
// same major version. go-xla calls entries of the API table without
// checking its size, so a plugin older than these headers (a smaller minor
// version) could make it call past the table's end: such plugins are
// refused too. Newer minor versions only add entries at the end and are
// accepted.
const (
	pjrtAPIMajor = 0
	pjrtAPIMinor = 83
)

// checkAPIVersion refuses a plugin whose PJRT C API version go-xla cannot use.
func checkAPIVersion(major, minor int) error {
	if major != pjrtAPIMajor {
		return fmt.Errorf("it implements PJRT C API %d.%d, but sgt's go-xla speaks %d.%d: the major versions differ, so they are incompatible",
			major, minor, pjrtAPIMajor, pjrtAPIMinor)
	}
	if minor < pjrtAPIMinor {
		return fmt.Errorf("it implements PJRT C API %d.%d, older than the %d.%d of sgt's go-xla, which may call functions it lacks; install a newer plugin",
			major, minor, pjrtAPIMajor, pjrtAPIMinor)
	}
	return nil
}

// probeEnv carries a probe request to a copy of this program; see
// init in backend.go.
const probeEnv = "SGT_INTERNAL_PJRT_PROBE"

// Time limits of a probe: loading a plugin, and loading it and creating a
// client (which initialises the GPU driver).
var (
	probeLoadTimeout   = 60 * time.Second
	probeClientTimeout = 120 * time.Second
)

// probeRequest is what the parent asks the probe process to do.
type probeRequest struct {
	Path    string   `json:"path"`
	Preload []string `json:"preload,omitempty"`
	Client  bool     `json:"client,omitempty"`
	CUDA    bool     `json:"cuda,omitempty"`
}

// probeLine is one line of the probe process's report (JSON lines on its
// standard output); Stage says how far it got.
type probeLine struct {
	Stage         string            `json:"stage"` // preload, version, initialized, client, error
	Loaded        []string          `json:"loaded,omitempty"`
	Failed        []string          `json:"failed,omitempty"`
	StructSize    int               `json:"struct_size,omitempty"`
	Major         int               `json:"major,omitempty"`
	Minor         int               `json:"minor,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
	Platform      string            `json:"platform,omitempty"`
	PlatformVer   string            `json:"platform_version,omitempty"`
	Devices       []string          `json:"devices,omitempty"`
	XLAFlags      string            `json:"xla_flags,omitempty"`
	Error         string            `json:"error,omitempty"`
	ClientCreated bool              `json:"client_created,omitempty"`
}

// PluginInfo is what a probe learned about a PJRT plugin.
type PluginInfo struct {
	// Path is the plugin file.
	Path string `json:"path"`
	// APIMajor and APIMinor are the PJRT C API version it reports.
	APIMajor int `json:"pjrt_api_major"`
	APIMinor int `json:"pjrt_api_minor"`
	// Attributes are the plugin's own attributes (xla_version,
	// stablehlo_current_version, ...), as text.
	Attributes map[string]string `json:"attributes,omitempty"`
	// Platform and PlatformVersion are the client's (only when devices
	// were asked for).
	Platform        string `json:"platform,omitempty"`
	PlatformVersion string `json:"platform_version,omitempty"`
	// Devices describes each addressable device (only when asked for).
	Devices []string `json:"devices,omitempty"`
	// XLAFlags is the XLA_FLAGS value the plugin was initialised with.
	XLAFlags string `json:"xla_flags,omitempty"`
	// PreloadFailed lists NVIDIA libraries that could not be preloaded.
	PreloadFailed []string `json:"preload_failed,omitempty"`
}

// probePlugin loads a plugin in a separate copy of this program (so that a
// crash or a hang of the plugin cannot take sgt down), checks its PJRT C
// API version, initialises it and, with client, creates a client and lists
// its devices. extraEnv is added to the copy's environment (XLA_FLAGS).
func probePlugin(ctx context.Context, req probeRequest, extraEnv []string) (*PluginInfo, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find this program to load the plugin in a separate process: %w", err)
	}
	timeout := probeLoadTimeout
	if req.Client {
		timeout = probeClientTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(append(os.Environ(), extraEnv...), probeEnv+"="+string(raw))
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &stdout, max: 1 << 20}
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 1 << 20}
	runErr := cmd.Run()

	info := &PluginInfo{Path: req.Path}
	stage := "start"
	var reported string
	for _, line := range strings.Split(stdout.String(), "\n") {
		var pl probeLine
		if line == "" || json.Unmarshal([]byte(line), &pl) != nil {
			continue
		}
		switch pl.Stage {
		case "preload":
			info.PreloadFailed = pl.Failed
		case "version":
			info.APIMajor, info.APIMinor = pl.Major, pl.Minor
		case "initialized":
			info.Attributes, info.XLAFlags = pl.Attributes, pl.XLAFlags
		case "client":
			info.Platform, info.PlatformVersion, info.Devices = pl.Platform, pl.PlatformVer, pl.Devices
		case "error":
			reported = pl.Error
			continue
		}
		stage = pl.Stage
	}
	if reported != "" {
		return info, errors.New(reported)
	}
	after := map[string]string{
		"start":       "while loading it (dlopen)",
		"preload":     "while loading it (dlopen)",
		"version":     "while initialising it",
		"initialized": "while creating a client (initialising the devices)",
		"client":      "after creating a client",
	}[stage]
	if ctx.Err() != nil {
		return info, fmt.Errorf("it did not answer within %v %s%s", timeout, after, stderrTail(stderr.String()))
	}
	if runErr != nil {
		return info, fmt.Errorf("it crashed %s (%v)%s", after, runErr, stderrTail(stderr.String()))
	}
	if stage != "initialized" && stage != "client" {
		return info, fmt.Errorf("the probe process stopped early %s%s", after, stderrTail(stderr.String()))
	}
	return info, nil
}

// stderrTail returns "; its last message: ..." for an error message, or "":
// the signal line of a crash report when there is one, else the last line
// that is not part of a register or stack dump.
func stderrTail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	pick := ""
	for _, l := range lines { // a fatal log line of the plugin (absl, glog) says most
		if l = strings.TrimSpace(l); reFatalLog.MatchString(l) {
			pick = l
		}
	}
	for _, l := range lines {
		if l = strings.TrimSpace(l); pick == "" && (strings.HasPrefix(l, "[signal ") || strings.HasPrefix(l, "SIG")) {
			pick = l
		}
	}
	for i := len(lines) - 1; i >= 0 && pick == ""; i-- {
		l := lines[i]
		t := strings.TrimSpace(l)
		if t == "" || t != l || reRegisterLine.MatchString(t) || strings.HasPrefix(t, "goroutine ") ||
			strings.HasPrefix(t, "exit status") || strings.HasSuffix(t, ")") && strings.Contains(t, "(0x") {
			continue
		}
		pick = t
	}
	if pick == "" {
		return ""
	}
	if len(pick) > 300 {
		pick = pick[:300] + "..."
	}
	return "; its last message: " + pick
}

// reFatalLog matches a fatal message of absl or glog logging ("F1127 ...").
var reFatalLog = regexp.MustCompile(`^F\d{4} `)

// reRegisterLine matches the register lines of a Go crash report ("rax    0x0").
var reRegisterLine = regexp.MustCompile(`^[a-z0-9]+\s+0x[0-9a-f]+$`)

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// runProbe is the probe process: it reports each stage as a JSON line on w
// and returns the exit status.
func runProbe(raw string, w io.Writer) int {
	enc := json.NewEncoder(w)
	fail := func(format string, args ...any) int {
		_ = enc.Encode(probeLine{Stage: "error", Error: fmt.Sprintf(format, args...)})
		return 3
	}
	var req probeRequest
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		return fail("bad probe request: %v", err)
	}
	var loaded, failed []string
	for _, lib := range req.Preload {
		if _, err := dlopen(lib, false); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", lib, err))
		} else {
			loaded = append(loaded, lib)
		}
	}
	_ = enc.Encode(probeLine{Stage: "preload", Loaded: loaded, Failed: failed})

	size, major, minor, err := readPJRTVersion(req.Path)
	if err != nil {
		if errors.Is(err, errNoPJRTSymbol) {
			return fail("%v", err)
		}
		return fail("it cannot be loaded: %v", err)
	}
	_ = enc.Encode(probeLine{Stage: "version", StructSize: size, Major: major, Minor: minor})
	if err := checkAPIVersion(major, minor); err != nil {
		return fail("%v", err)
	}

	plugin, err := pjrt.GetPlugin(req.Path)
	if err != nil {
		return fail("initialising it failed: %v", err)
	}
	attrs := map[string]string{}
	for k, v := range plugin.Attributes() {
		attrs[k] = fmt.Sprint(v)
	}
	// go-xla may change XLA_FLAGS while loading a CUDA plugin: report what
	// the plugin runs with.
	_ = enc.Encode(probeLine{Stage: "initialized", Attributes: attrs, XLAFlags: os.Getenv("XLA_FLAGS")})
	if !req.Client {
		return 0
	}
	options := pjrt.NamedValuesMap{}
	if req.CUDA {
		// The probe only lists devices: do not take most of their memory.
		options["preallocate"] = false
	}
	client, err := plugin.NewClient(options)
	if err != nil {
		return fail("creating a client failed: %v", err)
	}
	line := probeLine{Stage: "client", Platform: client.Platform(), PlatformVer: client.PlatformVersion(), ClientCreated: true}
	for _, d := range client.AddressableDevices() {
		desc := fmt.Sprintf("device %d", d.LocalHardwareID())
		if dd, err := d.GetDescription(); err == nil {
			desc = dd.DebugString()
		}
		line.Devices = append(line.Devices, desc)
	}
	sort.Strings(line.Devices)
	_ = enc.Encode(line)
	// The client is not destroyed: the process ends now, and tearing a GPU
	// client down only risks a hang on the way out.
	return 0
}
