package models

import (
	"os"
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

func TestParameterCounts(t *testing.T) {
	b := goBackend(t)
	tests := []struct {
		name    string
		input   []int
		classes int
		want    int
	}{
		{"mlp", []int{28, 28, 1}, 10, 203530},
		{"resnet20", []int{32, 32, 3}, 10, 269722},
		{"resnet56", []int{32, 32, 3}, 10, 853018},
		{"resnet110", []int{32, 32, 3}, 10, 1727962},
		{"resnet18", []int{224, 224, 3}, 1000, 11689512},
		{"resnet50", []int{224, 224, 3}, 1000, 25557032},
		{"resnet101", []int{224, 224, 3}, 1000, 44549160},
		{"seresnet50", []int{224, 224, 3}, 1000, 28088024},
	}
	for _, tc := range tests {
		got, err := CountParameters(b, tc.name, tc.input, tc.classes, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s with %d classes: %d parameters, want %d", tc.name, tc.classes, got, tc.want)
		}
	}
}
