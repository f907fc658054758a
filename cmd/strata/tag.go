package main

import (
	"github.com/spf13/cobra"
)

func init() { register(newTagCmd) }

func newTagCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE TARGET_IMAGE[:TAG]",
		Short: "Give an image another name",
		Long:  "Give an image another name. A name another image had moves; that image stays, as <none> if it has no name left.",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.store()
			if err != nil {
				return err
			}
			return s.Tag(args[0], args[1])
		},
	}
}
