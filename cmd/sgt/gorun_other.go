//go:build !linux

package main

import "time"

// goRunBuildTime returns 0: only Linux tells (see gorun_linux.go).
func goRunBuildTime() time.Duration { return 0 }
