package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { register(newPruneCmd) }

func newPruneCmd(g *globals) *cobra.Command {
	var dangling bool
	cmd := &cobra.Command{
		Use:   "prune [flags]",
		Short: "Remove blobs no image or pin needs, and stale temp files",
		Long: `Remove every blob not reachable from an image in the store or a pin (build
cache, containers), compressed copies of layers no longer needed, and temp files
left by interrupted commands. Waits for running strata commands that write.
With --dangling, images without a name (<none>) go first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.store()
			if err != nil {
				return err
			}
			if dangling {
				ids, err := s.RemoveDangling()
				if err != nil {
					return err
				}
				for _, id := range ids {
					fmt.Fprintf(cmd.OutOrStdout(), "Deleted: %s\n", id)
				}
			}
			res, err := s.Prune(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted %d blobs and %d other files\nTotal reclaimed space: %s\n", res.Blobs, res.Files, humanSize(res.Bytes))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&dangling, "dangling", "d", false, "also remove images without a name that nothing uses")
	return cmd
}
