//go:build !amd64

package kernels

import "unsafe"

// prefetchRows is a no-op where there is no prefetch instruction.
func prefetchRows(base unsafe.Pointer, offs *int, n, dist, lines int) {}
