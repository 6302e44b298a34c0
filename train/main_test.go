package train

import (
	"os"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/sgt-dev/sgt/backend"
)

func TestMain(m *testing.M) {
	// Never let GoMLX try to download an XLA plugin during tests.
	os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	os.Exit(m.Run())
}

var (
	testBackendOnce sync.Once
	testBackendVal  backends.Backend
	testBackendErr  error
)

// testBackend returns the default backend, shared by the tests.
func testBackend(t testing.TB) backends.Backend {
	t.Helper()
	testBackendOnce.Do(func() { testBackendVal, _, testBackendErr = backend.New("") })
	if testBackendErr != nil {
		t.Fatalf("backend: %v", testBackendErr)
	}
	return testBackendVal
}
