//go:build !unix

package main

// peakRSSBytes returns 0: the peak resident set size is not available here.
func peakRSSBytes() int64 { return 0 }
