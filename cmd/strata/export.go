package main

import (
	"io"

	"github.com/spf13/cobra"
)

func init() { register(newExportCmd) }

func newExportCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [flags] IMAGE",
		Short: "Write an image's flattened root filesystem as a tar",
		Long: `Write the root filesystem a container of IMAGE would see (every layer, with
whiteouts applied) as one tar, to stdout or -o FILE (which appears complete or
not at all).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.store()
			if err != nil {
				return err
			}
			if _, err := s.Resolve(args[0]); err != nil {
				return err
			}
			return writeOutput(cmd, output, "export", func(w io.Writer) error {
				return s.Export(cmd.Context(), args[0], w)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE instead of stdout")
	return cmd
}
