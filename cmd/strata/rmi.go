package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/store"
)

func init() { register(newRmiCmd) }

func newRmiCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rmi [flags] IMAGE...",
		Short: "Remove images (their blobs go at the next prune)",
		Long: `Remove images by name, ID or digest. A name is untagged; an image left without
names is deleted. An image referred to by ID that has several names is only
removed with --force. Space is given back by 'strata prune'.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.store()
			if err != nil {
				return err
			}
			var failed error
			for _, ref := range args {
				res, err := s.Remove(ref, force)
				if err != nil {
					if failed != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "strata: %s\n", oneLine(failed.Error()))
					}
					failed = fmt.Errorf("rmi: %w", err)
					continue
				}
				for _, n := range res.Untagged {
					fmt.Fprintf(cmd.OutOrStdout(), "Untagged: %s\n", store.Familiar(n))
				}
				for _, h := range res.Deleted {
					fmt.Fprintf(cmd.OutOrStdout(), "Deleted: %s\n", h)
				}
			}
			return failed
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove an image referred to by ID even if it has several names")
	return cmd
}
