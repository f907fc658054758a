package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/store"
)

// version is set by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

// globals holds the flags every command shares.
type globals struct {
	root  string
	debug bool
	st    *store.Store
	out   io.Writer
	errw  io.Writer
}

// store opens the local store on first use.
func (g *globals) store() (*store.Store, error) {
	if g.st != nil {
		return g.st, nil
	}
	s, err := store.Open(g.root)
	if err != nil {
		return nil, err
	}
	g.st = s
	return s, nil
}

func (g *globals) debugf(format string, args ...any) {
	if g.debug {
		fmt.Fprintf(g.errw, "debug: "+format+"\n", args...)
	}
}

// commands registers constructors of subcommands; each command's file adds
// itself from init so that commands live in files of their own.
var commands []func(*globals) *cobra.Command

func register(f func(*globals) *cobra.Command) { commands = append(commands, f) }

func defaultRoot() string {
	if r := os.Getenv("STRATA_ROOT"); r != "" {
		return r
	}
	if os.Geteuid() == 0 {
		return "/var/lib/strata"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "strata")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "strata")
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "strata",
		Short:         "Build, run, push and pull container images, without a daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetOut(g.out)
	root.SetErr(g.errw)
	root.PersistentFlags().StringVar(&g.root, "root", defaultRoot(), "directory of the local store (env STRATA_ROOT)")
	root.PersistentFlags().BoolVar(&g.debug, "debug", false, "print debug information")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%s: %w (see '%s --help')", c.CommandPath(), err, c.CommandPath())
	})
	for _, f := range commands {
		root.AddCommand(f(g))
	}
	return root
}

// exitError carries a specific exit status (e.g. a container's) up to main.
type exitError struct {
	code int
	err  error // nil: exit silently
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// execute runs the CLI and turns any error into one line on stderr and an
// exit status; it never lets a panic's stack trace reach the user.
func execute(ctx context.Context, args []string) (code int) {
	g := &globals{out: os.Stdout, errw: os.Stderr}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "strata: internal error: %v\n", r)
			code = 2
		}
	}()
	cmd := newRootCmd(g)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(os.Stderr, "strata: %s\n", oneLine(ee.err.Error()))
		}
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "strata: %s\n", oneLine(err.Error()))
	return 1
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
