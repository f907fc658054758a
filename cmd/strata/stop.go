package main

import (
	"time"

	"github.com/spf13/cobra"
)

func init() { register(newStopCmd) }

func newStopCmd(g *globals) *cobra.Command {
	var seconds int
	cmd := &cobra.Command{
		Use:                   "stop [OPTIONS] CONTAINER...",
		DisableFlagsInUseLine: true,
		Short:                 "Stop running containers (SIGTERM, then SIGKILL after a grace period)",
		Args:                  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := containers(g)
			if err != nil {
				return err
			}
			timeout := time.Duration(seconds) * time.Second
			return eachContainer(cmd, args, func(ref string) error { return m.Stop(cmd.Context(), ref, timeout) })
		},
	}
	cmd.Flags().IntVarP(&seconds, "time", "t", 10, "seconds to wait for the container to stop before killing it")
	return cmd
}
