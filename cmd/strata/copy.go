package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/registry"
)

func init() {
	register(func(g *globals) *cobra.Command {
		var rf registryFlags
		var platform string
		c := &cobra.Command{
			Use:   "copy [flags] SRC DST",
			Short: "Copy an image or index from one registry repository to another",
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				o, done, err := rf.options(g)
				if err != nil {
					return err
				}
				o.Platform = platform
				res, err := registry.Copy(cmd.Context(), args[0], args[1], o)
				done()
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", res.Ref, res.Digest)
				return nil
			},
		}
		rf.add(c.Flags())
		c.Flags().StringVar(&platform, "platform", "", "copy only this platform's image from a multi-platform image: os/arch[/variant]")
		return c
	})
}
