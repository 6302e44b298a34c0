package models

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego"
)

// newGoBackend creates GoMLX's pure-Go backend once for all the tests of this
// package (tensors cannot move between backend instances). It runs its ops
// one at a time: its parallel executor has data races in GoMLX v0.26 that
// the race detector reports.
var newGoBackend = sync.OnceValues(func() (backends.Backend, error) {
	os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	return backends.NewWithConfig("go:ops_sequential")
})

// goBackend returns the shared pure-Go backend.
func goBackend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := newGoBackend()
	if err != nil {
		t.Fatalf("creating backend go: %v", err)
	}
	return b
}

// seHidden is the hidden width of timm's SE blocks for the channel counts
// of the ResNets at reduction 16, worked out by hand from timm's rule
// max(8, floor((C/16 + 4)/8)*8).
var seHidden = map[int]int{64: 8, 128: 8, 256: 16, 512: 32, 1024: 64, 2048: 128}

// resnetFormula counts the parameters of a ResNet from its architecture:
// variant "" has batch norm (scale and offset per channel), "-nobn" has
// nothing in its place, "-nobn-skipinit" a conv bias per channel and one
// branch scale per block.
func resnetFormula(cifar bool, blocks []int, bottleneck, se bool, variant string, stemKernel, classes int) int {
	norm := func(c int) int {
		switch variant {
		case "":
			return 2 * c
		case "-nobn-skipinit":
			return c
		}
		return 0
	}
	conv := func(k, in, out int) int { return k*k*in*out + norm(out) }
	widths, in := []int{64, 128, 256, 512}, 64
	n := conv(stemKernel, 3, 64)
	if cifar {
		widths, in = []int{16, 32, 64}, 16
		n = conv(3, 3, 16)
	}
	for stage, count := range blocks {
		planes := widths[stage]
		for b := range count {
			stride := 1
			if stage > 0 && b == 0 {
				stride = 2
			}
			out := planes
			if bottleneck {
				out = 4 * planes
				n += conv(1, in, planes) + conv(3, planes, planes) + conv(1, planes, out)
			} else {
				n += conv(3, in, planes) + conv(3, planes, planes)
			}
			if se {
				h := seHidden[out]
				n += out*h + h + h*out + out
			}
			if (stride != 1 || in != out) && !cifar { // option A (CIFAR) has no parameters
				n += conv(1, in, out)
			}
			if variant == "-nobn-skipinit" {
				n++
			}
			in = out
		}
	}
	return n + in*classes + classes
}

// TestParameterCountFormula checks resnetFormula itself against published
// counts: torchvision's ImageNet ResNets (1000 classes), timm's
// SE-ResNet-50, and He et al. (2016) Table 6 for the CIFAR ResNets (10
// classes, given there to two significant digits).
func TestParameterCountFormula(t *testing.T) {
	for _, tc := range []struct {
		name       string
		blocks     []int
		bottleneck bool
		se         bool
		want       int
	}{
		{"resnet18", []int{2, 2, 2, 2}, false, false, 11689512},
		{"resnet34", []int{3, 4, 6, 3}, false, false, 21797672},
		{"resnet50", []int{3, 4, 6, 3}, true, false, 25557032},
		{"resnet101", []int{3, 4, 23, 3}, true, false, 44549160},
		{"resnet152", []int{3, 8, 36, 3}, true, false, 60192808},
		{"seresnet50", []int{3, 4, 6, 3}, true, true, 28088024},
	} {
		if got := resnetFormula(false, tc.blocks, tc.bottleneck, tc.se, "", 7, 1000); got != tc.want {
			t.Errorf("formula for %s: %d, published %d", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		n    int
		want string // millions, as in the paper
	}{{3, "0.27"}, {5, "0.46"}, {7, "0.66"}, {9, "0.85"}, {18, "1.7"}} {
		got := resnetFormula(true, []int{tc.n, tc.n, tc.n}, false, false, "", 3, 10)
		if m := strconv.FormatFloat(float64(got)/1e6, 'g', 2, 64); m != tc.want {
			t.Errorf("formula for the CIFAR ResNet-%d: %d (%sM), He et al. give %sM", 6*tc.n+2, got, m, tc.want)
		}
	}
}

// TestParameterCounts checks the parameter count of every registered model
// against resnetFormula (and the MLP against its own formula).
func TestParameterCounts(t *testing.T) {
	b := goBackend(t)
	type arch struct {
		cifar      bool
		blocks     []int
		bottleneck bool
		se         bool
	}
	archs := map[string]arch{
		"resnet20": {true, []int{3, 3, 3}, false, false}, "resnet32": {true, []int{5, 5, 5}, false, false},
		"resnet44": {true, []int{7, 7, 7}, false, false}, "resnet56": {true, []int{9, 9, 9}, false, false},
		"resnet110": {true, []int{18, 18, 18}, false, false},
		"resnet18":  {false, []int{2, 2, 2, 2}, false, false}, "resnet34": {false, []int{3, 4, 6, 3}, false, false},
		"resnet50": {false, []int{3, 4, 6, 3}, true, false}, "resnet101": {false, []int{3, 4, 23, 3}, true, false},
		"resnet152": {false, []int{3, 8, 36, 3}, true, false}, "seresnet18": {false, []int{2, 2, 2, 2}, false, true},
		"seresnet34": {false, []int{3, 4, 6, 3}, false, true}, "seresnet50": {false, []int{3, 4, 6, 3}, true, true},
		"seresnet101": {false, []int{3, 4, 23, 3}, true, true},
	}
	checked := 0
	for _, name := range Names() {
		classes, want := 1000, 0
		if name == "mlp" {
			classes, want = 10, 784*256+256+256*10+10
		} else {
			base, variant := name, ""
			for _, v := range []string{"-nobn-skipinit", "-nobn"} {
				if strings.HasSuffix(name, v) {
					base, variant = strings.TrimSuffix(name, v), v
					break
				}
			}
			a, ok := archs[base]
			if !ok {
				t.Errorf("%s: no formula for this model", name)
				continue
			}
			if a.cifar {
				classes = 10
			}
			want = resnetFormula(a.cifar, a.blocks, a.bottleneck, a.se, variant, 7, classes)
		}
		got, err := CountParameters(b, name, nil, classes, nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != want {
			t.Errorf("%s with %d classes: %d parameters, formula %d", name, classes, got, want)
		}
		checked++
	}
	if checked != len(archs)*3+1 {
		t.Errorf("checked %d models, want %d", checked, len(archs)*3+1)
	}
	// Spot values: the authors' non-BN ResNet-18 is ResNet-18 less its 4,800
	// BN channels' scales and offsets; timm's SE-ResNet-18 adds 90,112 SE
	// parameters (a hidden width of 8 in the first stage, not 64/16 = 4).
	for name, want := range map[string]int{"resnet18-nobn": 11689512 - 2*4800, "seresnet18": 11689512 + 90112, "resnet20": 269722} {
		classes := 1000
		if name == "resnet20" {
			classes = 10
		}
		if got, err := CountParameters(b, name, nil, classes, nil); err != nil || got != want {
			t.Errorf("%s: %d parameters (%v), want %d", name, got, err, want)
		}
	}
}
