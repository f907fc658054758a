package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/builder"
	"github.com/strata-dev/strata/snapshot"
)

func init() { register(newPruneCmd) }

func newPruneCmd(g *globals) *cobra.Command {
	var dangling, withCache, layers bool
	var keep, filter string
	cmd := &cobra.Command{
		Use:   "prune [-d] [--cache [--keep-storage SIZE] [--filter until=DURATION]] [--layers]",
		Short: "Remove blobs no image or pin needs, and stale temp files",
		Long: `Remove every blob not reachable from an image in the store or a pin (build
cache, containers), compressed copies of layers no longer needed, and temp files
left by interrupted commands. Waits for running strata commands that write.
With --dangling, images without a name (<none>) go first. With --cache, build
cache entries go first (all of them, or the least recently used beyond
--keep-storage, or those unused for longer than --filter until=DURATION).
With --layers, unpacked layer trees no container uses are removed too (they
are made again from the blobs when next needed).`,
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
			if !withCache && (keep != "" || filter != "") {
				return fmt.Errorf("--keep-storage and --filter go with --cache")
			}
			if withCache {
				o, err := cachePruneOptions(keep, filter, false)
				if err != nil {
					return err
				}
				cres, _, err := builder.PruneCache(cmd.Context(), s, o)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Removed %d build cache entries (%d kept), %d cache mounts\n", cres.Removed, len(cres.Kept), cres.Mounts)
			}
			res, err := s.Prune(cmd.Context())
			if err != nil {
				return err
			}
			// what killed processes left (a killed build's snapshots) always
			// goes; unpacked layers only with --layers
			sn, err := snapshot.New(s, "")
			if err != nil {
				return err
			}
			if layers {
				n, err := sn.Prune(cmd.Context())
				if err != nil {
					return err
				}
				res.Bytes += n
			} else if err := sn.Cleanup(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted %d blobs and %d other files\nTotal reclaimed space: %s\n", res.Blobs, res.Files, humanSize(res.Bytes))
			return nil
		},
	}
	cmd.Flags().BoolVar(&withCache, "cache", false, "also remove build cache entries (see --keep-storage, --filter)")
	cmd.Flags().StringVar(&keep, "keep-storage", "", "with --cache: keep at most this much cache (e.g. 5GB)")
	cmd.Flags().StringVar(&filter, "filter", "", "with --cache: until=DURATION removes entries unused for longer")
	cmd.Flags().BoolVar(&layers, "layers", false, "also remove unpacked layer trees no container uses")
	cmd.Flags().BoolVarP(&dangling, "dangling", "d", false, "also remove images without a name that nothing uses")
	return cmd
}
