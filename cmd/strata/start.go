package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/container"
)

func init() { register(newStartCmd) }

func newStartCmd(g *globals) *cobra.Command {
	var attach, interactive bool
	cmd := &cobra.Command{
		Use:                   "start [OPTIONS] CONTAINER",
		DisableFlagsInUseLine: true,
		Short:                 "Start a created or stopped container",
		Long: "Start a container. With -a strata stays attached to its output and exits with its\n" +
			"status; without it the container runs in the background and start prints its name.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := containers(g)
			if err != nil {
				return err
			}
			if !attach && !interactive {
				if _, err := m.StartDetached(cmd.Context(), args[0], startWorker(g)); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), args[0])
				return nil
			}
			sio := stdio(interactive)
			sio.Ready = container.ReadyPipe()
			code, err := m.Start(cmd.Context(), args[0], sio)
			return exitStatus(code, err)
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "attach stdout and stderr and exit with the container's status")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "attach stdin too")
	return cmd
}

// startWorker is the command line of the strata that runs a detached
// container: `strata start --attach ID`, against the same store.
func startWorker(g *globals) func(id string) []string {
	return func(id string) []string {
		exe, err := os.Executable()
		if err != nil {
			exe = "/proc/self/exe"
		}
		return []string{exe, "--root", g.root, "start", "--attach", id}
	}
}
