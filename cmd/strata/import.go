package main

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/builder"
	"github.com/strata-dev/strata/store"
)

func init() { register(newImportCmd) }

func newImportCmd(g *globals) *cobra.Command {
	var (
		changes  []string
		message  string
		platform string
	)
	cmd := &cobra.Command{
		Use:   "import [flags] FILE|URL|- NAME[:TAG]",
		Short: "Create an image from a root filesystem tarball",
		Long: `Create a one-layer image from a root filesystem tarball (plain tar, gzip, zstd,
xz or bzip2, detected by content), read from FILE, an http(s) URL or stdin (-).
Prints the image ID. Example: tar -C rootfs -c . | strata import - debian:bookworm`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, ref := args[0], args[1]
			if _, err := store.ParseTag(ref); err != nil {
				return err
			}
			opts := store.ImportOptions{Source: src, Message: message, Names: []string{ref}, Config: &v1.Config{}}
			if platform != "" {
				p, err := store.ParsePlatform(platform)
				if err != nil {
					return err
				}
				opts.Platform = p
			}
			if err := builder.ApplyChanges(opts.Config, changes); err != nil {
				return err
			}
			s, err := g.store()
			if err != nil {
				return err
			}
			if err := checkStdin(cmd, src, "import"); err != nil {
				return err
			}
			r, err := store.OpenSource(cmd.Context(), src, cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("importing: %w", err)
			}
			defer r.Close()
			rec, err := s.Import(cmd.Context(), r, opts)
			if err != nil {
				return fmt.Errorf("importing %s: %w", src, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), rec.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&changes, "change", "c", nil, "apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR); repeatable")
	f.StringVarP(&message, "message", "m", "", "history comment (default \"Imported from SOURCE\")")
	f.StringVar(&platform, "platform", "", "platform of the image as os/arch[/variant] (default: this machine's)")
	return cmd
}
