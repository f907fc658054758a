package main

import (
	"io"

	"github.com/spf13/cobra"
)

func init() { register(newLogsCmd) }

func newLogsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                   "logs CONTAINER",
		DisableFlagsInUseLine: true,
		Short:                 "Print the output of a container started in the background",
		Args:                  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := containers(g)
			if err != nil {
				return err
			}
			f, err := m.Logs(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(cmd.OutOrStdout(), f)
			return err
		},
	}
}
