//go:build !amd64

package kernels

// gemmNativeISAs returns no assembly kernel families: only the portable Go
// micro-kernel exists on this architecture.
func gemmNativeISAs() []*gemmISA { return nil }
