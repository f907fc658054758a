package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { register(newPruneCmd) }

func newPruneCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove blobs no image or pin needs, and stale temp files",
		Long: `Remove every blob not reachable from an image in the store or a pin (build
cache, containers), compressed copies of layers no longer needed, and temp files
left by interrupted commands. Waits for running strata commands that write.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.store()
			if err != nil {
				return err
			}
			res, err := s.Prune(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted %d blobs and %d other files\nTotal reclaimed space: %s\n", res.Blobs, res.Files, humanSize(res.Bytes))
			return nil
		},
	}
}
