// Command sgt trains classifiers with Softmax Gradient Tampering (the PowerGrad
// Transform) and measures what it does.
//
// Usage:
//
//	sgt <command> [flags]
//
// Run "sgt help" for the list of commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand of the sgt tool.
type command struct {
	// summary is the one-line description shown by "sgt help".
	summary string
	// run executes the command with its arguments (the words after the command name).
	run func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// commands is the registry of subcommands; each command file adds itself in an init function.
var commands = map[string]command{}

// register adds a subcommand to the registry.
func register(name, summary string, run func(args []string, stdin io.Reader, stdout, stderr io.Writer) error) {
	commands[name] = command{summary: summary, run: run}
}

// usageError marks errors caused by bad input (flags, files, values); they exit with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usage error with a formatted message.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and maps its error to an exit status:
// 0 success, 2 bad input, 1 any other failure.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sgt: unknown command %q (run \"sgt help\" for the list)\n", args[0])
		return 2
	}
	err := cmd.run(args[1:], stdin, stdout, stderr)
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "sgt %s: %v\n", args[0], err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "sgt: Softmax Gradient Tampering (PowerGrad Transform) toolkit")
	fmt.Fprintln(w, "\nUsage: sgt <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun \"sgt <command> -h\" for the flags of a command.")
}

// errHelp is returned by parseFlags when the user asked for -h; run treats it as success.
var errHelp = flag.ErrHelp

// newFlagSet returns a flag set for a subcommand that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sgt "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args into fs and turns a parse failure into a usage error
// (exit status 2); -h yields errHelp. Stray positional arguments are rejected
// unless allowArgs is true.
func parseFlags(fs *flag.FlagSet, args []string, allowArgs bool) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err}
	}
	if !allowArgs && fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}
