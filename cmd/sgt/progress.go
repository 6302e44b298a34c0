package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

// terminalWidth reports whether w is a terminal that takes ANSI escapes
// (not TERM=dumb), and its width (0 when unknown).
func terminalWidth(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || os.Getenv("TERM") == "dumb" {
		return false, 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return true, 0
	}
	return true, width
}
