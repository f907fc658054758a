package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/store"
)

func init() { register(newLoadCmd) }

func newLoadCmd(g *globals) *cobra.Command {
	var (
		input string
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "load [flags]",
		Short: "Load images from a tar archive (docker save format or OCI layout)",
		Long: `Load images from a tar archive made by 'strata save' or 'docker save' (either
format, told apart by content, optionally gzip/zstd/xz compressed), from stdin
or -i FILE. Every blob is checked against its digest; a bad archive changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.store()
			if err != nil {
				return err
			}
			src := input
			if src == "" {
				src = "-"
			}
			if err := checkStdin(cmd, src, "load"); err != nil {
				return err
			}
			r, err := store.OpenSource(cmd.Context(), src, cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("load: %w", err)
			}
			defer r.Close()
			imgs, err := s.Load(cmd.Context(), r)
			if err != nil {
				return fmt.Errorf("load %s: %w", src, err)
			}
			if quiet {
				return nil
			}
			for _, im := range imgs {
				if len(im.Names) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "Loaded image ID: %s\n", im.ID)
				}
				for _, n := range im.Names {
					fmt.Fprintf(cmd.OutOrStdout(), "Loaded image: %s\n", store.Familiar(n))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "read from FILE (or http(s) URL) instead of stdin")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing")
	return cmd
}
