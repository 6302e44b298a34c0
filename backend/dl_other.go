//go:build !(linux || darwin)

package backend

import (
	"errors"
	"unsafe"
)

// errNoPJRTSymbol is returned by readPJRTVersion for a library that is not a
// PJRT plugin.
var errNoPJRTSymbol = errors.New("it does not export GetPjrtApi, so it is not a PJRT plugin")

// errNoDlopen is what this platform's dlopen and readPJRTVersion return.
var errNoDlopen = errors.New("loading PJRT plugins by path is only supported on Linux and macOS")

func dlopen(string, bool) (unsafe.Pointer, error) { return nil, errNoDlopen }

func readPJRTVersion(string) (structSize, major, minor int, err error) {
	return 0, 0, 0, errNoDlopen
}
