package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/container"
)

func init() { register(newRunCmd) }

func newRunCmd(g *globals) *cobra.Command {
	var f containerFlags
	var detach bool
	cmd := &cobra.Command{
		Use:                   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		DisableFlagsInUseLine: true,
		Short:                 "Run a command in a new container",
		Long: "Run a command in a new container. The exit status is the command's; 125 when strata\n" +
			"fails before the command starts, 126 when it cannot be executed, 127 when it is not found.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			image, opts, err := f.options(cmd, args)
			if err != nil {
				return &exitError{125, err}
			}
			m, err := containers(g)
			if err != nil {
				return &exitError{125, err}
			}
			if detach {
				c, err := m.Create(cmd.Context(), image, opts)
				if err != nil {
					return &exitError{125, err}
				}
				if _, err := m.StartDetached(cmd.Context(), c.ID, startWorker(g)); err != nil {
					return &exitError{125, err}
				}
				fmt.Fprintln(cmd.OutOrStdout(), c.ID)
				return nil
			}
			code, err := m.Run(cmd.Context(), image, opts, stdio(opts.Stdin))
			return exitStatus(code, err)
		},
	}
	f.add(cmd.Flags())
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "run the container in the background and print its ID")
	cmd.SetFlagErrorFunc(flagError125)
	return cmd
}

// stdio is the terminal's streams; without -i the process's stdin is empty.
func stdio(stdin bool) container.IO {
	sio := container.IO{Stdout: os.Stdout, Stderr: os.Stderr}
	if stdin {
		sio.Stdin = os.Stdin
	}
	return sio
}

// exitStatus turns a container's exit (code, err) into the CLI's result.
func exitStatus(code int, err error) error {
	if err != nil {
		return &exitError{code, err}
	}
	if code != 0 {
		return &exitError{code, nil}
	}
	return nil
}
