package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func init() { register(newRmCmd) }

func newRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:                   "rm [OPTIONS] CONTAINER...",
		DisableFlagsInUseLine: true,
		Short:                 "Remove containers (-f: kill running ones first)",
		Args:                  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := containers(g)
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range args {
				if err := m.Remove(cmd.Context(), ref, force); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), ref)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill and remove a running container")
	return cmd
}
