//go:build amd64

package kernels

import "unsafe"

// prefetchRows prefetches lines consecutive cache lines from base +
// offs[i] + dist for i < n (prefetch_amd64.s).
//
//go:noescape
func prefetchRows(base unsafe.Pointer, offs *int, n, dist, lines int)
