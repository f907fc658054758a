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
			return eachContainer(cmd, args, func(ref string) error { return m.Remove(cmd.Context(), ref, force) })
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill and remove a running container")
	return cmd
}

// eachContainer does f for every reference, printing those it succeeded
// for (as docker rm and stop do) and returning every failure.
func eachContainer(cmd *cobra.Command, refs []string, f func(ref string) error) error {
	var errs []error
	for _, ref := range refs {
		if err := f(ref); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(cmd.OutOrStdout(), ref)
	}
	return errors.Join(errs...)
}
