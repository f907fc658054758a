package main

import (
	"bufio"

	"github.com/spf13/cobra"
)

func init() { register(newDiffCmd) }

func newDiffCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                   "diff CONTAINER",
		DisableFlagsInUseLine: true,
		Short:                 "List the files a container added (A), changed (C) or deleted (D)",
		Args:                  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := containers(g)
			if err != nil {
				return err
			}
			changes, err := m.Changes(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			for _, ch := range changes {
				w.WriteString(ch.String())
				w.WriteByte('\n')
			}
			return w.Flush()
		},
	}
}
