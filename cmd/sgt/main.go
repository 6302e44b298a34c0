// Command sgt trains classifiers with Softmax Gradient Tampering (the PowerGrad
// Transform) and measures what it does.
//
// Usage:
//
//	sgt <command> [flags]
//
// Run "sgt help" for the list of commands. Exit status: 0 success, 1 a
// failure, 2 bad input (a flag, file or value, named in the one-line
// message), 128+N when stopped by signal N (130 for Ctrl-C, 143 for
// SIGTERM), after saving what is needed to resume.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand of the sgt tool.
type command struct {
	// summary is the one-line description shown by "sgt help".
	summary string
	// run executes the command with its arguments (the words after the
	// command name). ctx is cancelled when the process receives SIGINT,
	// SIGTERM or SIGHUP: a command then stops cleanly and returns an error.
	run func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// commands is the registry of subcommands; each command file adds itself in an init function.
var commands = map[string]command{}

// register adds a subcommand to the registry.
func register(name, summary string, run func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error) {
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

// stopSignals are the signals that stop a command cleanly: Ctrl-C, the
// SIGTERM that Kubernetes and Slurm send before they kill, and a closed
// terminal.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// signalContext returns a context cancelled by the first stop signal, which
// it announces on stderr; a second signal exits the process at once. got
// returns the first signal (nil before one arrived); stop releases the
// signal handling.
func signalContext(stderr io.Writer) (ctx context.Context, got func() os.Signal, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, stopSignals...)
	first := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			first <- s
			fmt.Fprintf(stderr, "\nsgt: %s: stopping after the current step and saving what is needed to resume (send it again to exit at once)\n", signalName(s))
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-ch:
			fmt.Fprintf(stderr, "\nsgt: second %s: exiting at once\n", signalName(s))
			os.Exit(signalStatus(s))
		case <-done:
		}
	}()
	var sig os.Signal
	got = func() os.Signal {
		if sig == nil {
			select {
			case sig = <-first:
			default:
			}
		}
		return sig
	}
	stop = func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
	return ctx, got, stop
}

// signalName names a stop signal for people.
func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "interrupt (Ctrl-C)"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}

// signalStatus is the exit status of a process stopped by s: 128 + its number.
func signalStatus(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

// run dispatches to a subcommand and maps its error to an exit status:
// 0 success, 2 bad input, 128+N after stop signal N, 1 any other failure.
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
	ctx, got, stop := signalContext(stderr)
	defer stop()
	err := cmd.run(ctx, args[1:], stdin, stdout, stderr)
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "sgt %s: %v\n", args[0], err)
	if s := got(); s != nil && errors.Is(err, context.Canceled) {
		return signalStatus(s)
	}
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

// parseFlags parses args into fs and turns a parse failure into a one-line
// usage error (exit status 2) that points to -h; -h prints the usage and
// yields errHelp. Stray positional arguments are rejected unless allowArgs
// is true.
func parseFlags(fs *flag.FlagSet, args []string, allowArgs bool) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage()
			return errHelp
		}
		return usagef("%v (see %s -h)", err, fs.Name())
	}
	if !allowArgs && fs.NArg() > 0 {
		return usagef("unexpected argument %q (see %s -h)", fs.Arg(0), fs.Name())
	}
	return nil
}

// isContextError reports whether err comes from a cancelled context.
func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
