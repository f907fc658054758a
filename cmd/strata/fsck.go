package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { register(newFsckCmd) }

func newFsckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "fsck",
		Short: "Check the store: re-hash every blob and check every reference",
		Long: `Re-hash every blob and check that every image's manifest, config and layers
exist with the right sizes, that configs match their layers, and that the
compressed-layer cache and pins are consistent. Lists each problem on stdout and
exits 1 if there is any.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.store()
			if err != nil {
				return err
			}
			rep, err := s.Fsck(cmd.Context())
			if err != nil {
				return fmt.Errorf("fsck: %w", err)
			}
			out := cmd.OutOrStdout()
			for _, p := range rep.Problems {
				fmt.Fprintln(out, p)
			}
			if len(rep.Problems) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("fsck: %d problems in %s", len(rep.Problems), s.Root())}
			}
			fmt.Fprintf(out, "%d blobs, %d image entries: no problems\n", rep.Blobs, rep.Images)
			return nil
		},
	}
}
