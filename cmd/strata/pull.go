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
			Use:   "pull [flags] REF",
			Short: "Pull an image from a registry into the local store",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				o, done, err := rf.options(g)
				if err != nil {
					return err
				}
				o.Platform = platform
				s, err := g.store()
				if err != nil {
					return err
				}
				res, err := registry.Pull(cmd.Context(), s, args[0], o)
				done()
				if err != nil {
					return err
				}
				if res.Platform != "" {
					g.debugf("selected %s from index %s", res.Platform, res.Index)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Digest: %s\n", res.Digest)
				fmt.Fprintf(cmd.OutOrStdout(), "ID: %s\n", res.Record.ID)
				return nil
			},
		}
		rf.add(c.Flags())
		c.Flags().StringVar(&platform, "platform", "", "platform to pull from a multi-platform image: os/arch[/variant] (default: this machine's)")
		return c
	})
}
