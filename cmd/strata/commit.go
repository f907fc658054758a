package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/builder"
	"github.com/strata-dev/strata/container"
)

func init() { register(newCommitCmd) }

func newCommitCmd(g *globals) *cobra.Command {
	o := container.CommitOptions{Apply: builder.ApplyChanges}
	cmd := &cobra.Command{
		Use:                   "commit [OPTIONS] CONTAINER NAME[:TAG]",
		DisableFlagsInUseLine: true,
		Short:                 "Make a new image from a container's changes",
		Args:                  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := containers(g)
			if err != nil {
				return err
			}
			rec, err := m.Commit(cmd.Context(), args[0], args[1], o)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), rec.ID)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&o.Changes, "change", "c", nil, "apply a Dockerfile instruction to the image's config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, ...)")
	cmd.Flags().StringVarP(&o.Message, "message", "m", "", "commit message (the new layer's history comment)")
	cmd.Flags().StringVarP(&o.Author, "author", "a", "", "author (e.g. \"Jane Doe <jane@example.com>\")")
	return cmd
}
