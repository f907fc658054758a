package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/builder"
	"github.com/strata-dev/strata/cache"
)

// strata builder prune: docker's "docker builder prune" for the build cache.
func init() {
	register(func(g *globals) *cobra.Command {
		var keep, filter string
		var all bool
		prune := &cobra.Command{
			Use:   "prune [--keep-storage SIZE] [--filter until=DURATION] [--all]",
			Short: "Remove build cache entries (least recently used first) and the layers only they kept",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				o, err := cachePruneOptions(keep, filter, all)
				if err != nil {
					return err
				}
				s, err := g.store()
				if err != nil {
					return err
				}
				cres, sres, err := builder.PruneCache(cmd.Context(), s, o)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Removed %d cache entries (%d kept), %d cache mounts\nTotal reclaimed space: %s\n",
					cres.Removed, len(cres.Kept), cres.Mounts, units.HumanSize(float64(sres.Bytes)))
				return nil
			},
		}
		prune.Flags().StringVar(&keep, "keep-storage", "", "keep at most this much cache (e.g. 5GB)")
		prune.Flags().StringVar(&filter, "filter", "", "until=DURATION: remove entries unused for longer")
		prune.Flags().BoolVarP(&all, "all", "a", false, "remove every entry and cache mount (default without --keep-storage/--filter)")
		c := &cobra.Command{Use: "builder", Short: "Manage the build cache"}
		c.AddCommand(prune)
		return c
	})
}

// cachePruneOptions translates the cache-pruning flags shared by
// "strata builder prune" and "strata prune --cache".
func cachePruneOptions(keep, filter string, all bool) (cache.PruneOptions, error) {
	o := cache.PruneOptions{All: all}
	if keep != "" {
		n, err := units.RAMInBytes(keep)
		if err != nil || n < 0 {
			return o, fmt.Errorf("--keep-storage %q: want a size like 2GB", keep)
		}
		o.KeepBytes = n
		if n == 0 {
			o.All = true
		}
	}
	if filter != "" {
		v, ok := strings.CutPrefix(filter, "until=")
		d, err := time.ParseDuration(v)
		if !ok || err != nil {
			return o, fmt.Errorf("--filter %q: want until=DURATION (e.g. until=24h)", filter)
		}
		o.Until = d
	}
	if keep == "" && filter == "" {
		o.All = true
	}
	return o, nil
}
