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
			Use:   "delete [flags] REF",
			Short: "Delete an image (manifest) from a registry",
			Long:  "Delete the manifest REF names from its registry. A tag is resolved to its digest first; every tag pointing at that manifest goes with it.",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				rf.quiet = true
				o, _, err := rf.options(g)
				if err != nil {
					return err
				}
				d, err := registry.Delete(cmd.Context(), args[0], o)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted: %s\n", d)
				return nil
			},
		}
		rf.add(c.Flags())
		return c
	})
}
