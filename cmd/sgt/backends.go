package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sgt-dev/sgt/backend"
	"github.com/sgt-dev/sgt/backend/kernels"
)

func init() {
	register("backends", "list the compute backends usable here, with their devices and versions", runBackends)
}

// backendsReport is what "sgt backends --json" prints.
type backendsReport struct {
	GoVersion    string `json:"go_version"`
	GoMLXVersion string `json:"gomlx_version"`
	// Default is the backend used when none is asked for (see package backend).
	Default  string         `json:"default"`
	Backends []backendEntry `json:"backends"`
}

// backendEntry is one backend of "sgt backends".
type backendEntry struct {
	Name    string   `json:"name"`
	Usable  bool     `json:"usable"`
	Summary string   `json:"summary"`
	Devices []string `json:"devices,omitempty"`
	// Reason says why the backend cannot be used here.
	Reason string `json:"reason,omitempty"`
	// CPU details the cpu and go backends' machine.
	CPU *cpuDetails `json:"cpu,omitempty"`
	// XLA is the plugin search and probe of the xla backends.
	XLA *backend.XLAReport `json:"xla,omitempty"`
}

// cpuDetails describes the processor the pure-Go backends run on.
type cpuDetails struct {
	Model      string   `json:"model"`
	NumCPU     int      `json:"num_cpu"`
	GOMAXPROCS int      `json:"gomaxprocs"`
	ISA        string   `json:"kernel_family,omitempty"`
	ISAs       []string `json:"kernel_families,omitempty"`
}

// runBackends implements "sgt backends": for each backend, whether it works
// here, on which devices, in which version, or why not. The XLA plugins are
// loaded in separate processes with time limits, so a missing, broken or
// hanging plugin is reported, never fatal.
func runBackends(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("backends", stderr)
	asJSON := fs.Bool("json", false, "print a JSON object instead of a table")
	devices := fs.Bool("devices", true, "create an XLA client to list each plugin's devices (this initialises the GPU)")
	timeout := fs.Duration("timeout", 3*time.Minute, "time limit for looking at all XLA plugins")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive, got %v", *timeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	rep := collectBackends(ctx, *devices)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "BACKEND\tUSABLE\tDETAILS\n")
	for _, e := range rep.Backends {
		if e.Usable {
			fmt.Fprintf(tw, "%s\tyes\t%s\n", e.Name, e.Summary)
		} else if e.XLA == nil {
			fmt.Fprintf(tw, "%s\tno\t%s\n", e.Name, e.Reason)
		}
		for _, d := range e.Devices {
			fmt.Fprintf(tw, "\t\tdevice: %s\n", oneLine(d))
		}
		x := e.XLA
		if x == nil {
			continue
		}
		if !x.Usable {
			why := "no PJRT " + strings.TrimPrefix(e.Name, "xla:") + " plugin found"
			if len(x.Problems) > 0 {
				why = "no plugin found works"
			}
			if e.Name == "xla:cuda" && !backend.HasNvidiaGPU() {
				why += " (and no NVIDIA GPU here)"
			}
			fmt.Fprintf(tw, "%s\tno\t%s\n", e.Name, why)
			for _, p := range x.Problems {
				fmt.Fprintf(tw, "\t\trefused: %s\n", p)
			}
			if len(x.Problems) == 0 {
				for _, s := range x.Searches {
					for _, p := range s.Searched {
						fmt.Fprintf(tw, "\t\tsearched: %s\n", p)
					}
				}
			}
			if x.Hint != "" {
				fmt.Fprintf(tw, "\t\tto use it: %s\n", x.Hint)
			}
		}
		if x.CUDA != nil {
			for _, n := range x.CUDA.Notes {
				fmt.Fprintf(tw, "\t\tnote: %s\n", n)
			}
		}
		for _, s := range x.Searches {
			for _, n := range s.Notes {
				fmt.Fprintf(tw, "\t\tnote: %s\n", n)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nDefault backend here: %s (%s; GoMLX %s). Choose one with --backend NAME or %s.\n",
		rep.Default, rep.GoVersion, rep.GoMLXVersion, backend.EnvVar)
	return nil
}

// collectBackends looks at every backend.
func collectBackends(ctx context.Context, devices bool) backendsReport {
	rep := backendsReport{GoVersion: runtime.Version(), GoMLXVersion: moduleVersion("github.com/gomlx/gomlx"), Default: backend.Resolve("")}
	cpuInfo := &cpuDetails{Model: cpuModel(), NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0)}

	ours := *cpuInfo
	ours.ISA, ours.ISAs = kernels.CurrentISA(), kernels.AvailableISAs()
	cpuEntry := backendEntry{Name: "cpu", CPU: &ours,
		Summary: fmt.Sprintf("sgt's CPU backend: %s kernels (available: %s), GOMAXPROCS %d of %d CPUs, %s",
			ours.ISA, strings.Join(ours.ISAs, ", "), ours.GOMAXPROCS, ours.NumCPU, ours.Model)}
	checkNew(&cpuEntry, "cpu")
	goEntry := backendEntry{Name: "go", CPU: cpuInfo,
		Summary: fmt.Sprintf("GoMLX's pure-Go reference backend (simplego, GoMLX %s), GOMAXPROCS %d", rep.GoMLXVersion, cpuInfo.GOMAXPROCS)}
	checkNew(&goEntry, "go")
	rep.Backends = append(rep.Backends, cpuEntry, goEntry)

	for _, plugin := range []string{"cpu", "cuda"} {
		e := backendEntry{Name: "xla:" + plugin}
		r := backend.CheckXLA(ctx, plugin, devices)
		e.XLA = &r
		if !r.Usable {
			e.Reason = r.Error
			if plugin == "cuda" && !backend.HasNvidiaGPU() {
				e.Reason = "no NVIDIA GPU here (no /dev/nvidiaN device); " + e.Reason
			}
		} else {
			e.Usable = true
			e.Devices = r.Plugin.Devices
			e.Summary = xlaSummary(r)
		}
		rep.Backends = append(rep.Backends, e)
	}
	return rep
}

// checkNew creates and frees a backend to confirm that it works.
func checkNew(e *backendEntry, name string) {
	b, _, err := backend.New(name)
	if err != nil {
		e.Reason = err.Error()
		return
	}
	b.Finalize()
	e.Usable = true
}

// xlaSummary describes a usable XLA plugin in one line.
func xlaSummary(r backend.XLAReport) string {
	p := r.Plugin
	s := fmt.Sprintf("plugin %s (from %s), PJRT C API %d.%d", p.Path, r.Source, p.APIMajor, p.APIMinor)
	keys := make([]string, 0, len(p.Attributes))
	for k := range p.Attributes {
		if strings.Contains(k, "version") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		s += fmt.Sprintf(", %s %s", k, p.Attributes[k])
	}
	if p.Platform != "" {
		s += fmt.Sprintf(", platform %s %s, %d device(s)", p.Platform, p.PlatformVersion, len(p.Devices))
	}
	return s
}

// oneLine folds a multi-line description onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// moduleVersion returns the version of a module this binary was built with,
// or "unknown".
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path && d.Version != "" {
				return d.Version
			}
		}
	}
	return "unknown"
}

// cpuModel returns the processor's name from /proc/cpuinfo, or GOARCH.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
