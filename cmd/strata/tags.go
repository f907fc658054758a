package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/registry"
)

func init() {
	register(func(g *globals) *cobra.Command {
		var rf registryFlags
		c := &cobra.Command{
			Use:   "tags [flags] REPO",
			Short: "List the tags of a registry repository",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				rf.quiet = true
				o, _, err := rf.options(g)
				if err != nil {
					return err
				}
				tags, err := registry.Tags(cmd.Context(), args[0], o)
				if err != nil {
					return err
				}
				for _, t := range tags {
					fmt.Fprintln(cmd.OutOrStdout(), t)
				}
				return nil
			},
		}
		rf.add(c.Flags())
		return c
	})
}
