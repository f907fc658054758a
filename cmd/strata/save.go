package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/store"
)

func init() { register(newSaveCmd) }

func newSaveCmd(g *globals) *cobra.Command {
	var output, format, compression string
	cmd := &cobra.Command{
		Use:   "save [flags] IMAGE...",
		Short: "Write images to a tar archive (docker load format, or an OCI layout)",
		Long: `Write images to a tar archive: --format docker (the default) loads with 'docker
load'; --format oci is an OCI image layout. Local layers are compressed
(--compression gzip, the default, or zstd; each layer once, then cached).
Writes to stdout unless -o is given (and refuses to write to a terminal); -o FILE
appears complete or not at all.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != store.FormatDocker && format != store.FormatOCI {
				return fmt.Errorf("invalid --format %q: want docker or oci", format)
			}
			if compression != store.Gzip && compression != store.Zstd {
				return fmt.Errorf("invalid --compression %q: want gzip or zstd", compression)
			}
			s, err := g.store()
			if err != nil {
				return err
			}
			return writeOutput(cmd, output, "save", func(w io.Writer) error {
				return s.Save(cmd.Context(), w, args, store.SaveOptions{Format: format, Compression: compression})
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE instead of stdout")
	cmd.Flags().StringVar(&format, "format", store.FormatDocker, "archive format: docker or oci")
	cmd.Flags().StringVar(&compression, "compression", store.Gzip, "compression of local layers: gzip or zstd")
	return cmd
}

// writeOutput runs write into FILE (atomically: temp file, then rename) or,
// without -o, into stdout, which must not be a terminal.
func writeOutput(cmd *cobra.Command, output, what string, write func(io.Writer) error) error {
	if output == "" || output == "-" {
		if stdoutIsTerminal() && cmd.OutOrStdout() == os.Stdout {
			return errors.New(what + ": refusing to write an archive to a terminal; use -o FILE or redirect stdout")
		}
		return write(cmd.OutOrStdout())
	}
	f, err := store.CreateAtomic(output)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer f.Abort()
	if err := write(f); err != nil {
		return err
	}
	return f.Commit()
}

func stdoutIsTerminal() bool {
	_, err := unix.IoctlGetTermios(int(os.Stdout.Fd()), unix.TCGETS)
	return err == nil
}

// checkStdin refuses to read an archive from a terminal (it would wait for
// a tar typed by hand).
func checkStdin(cmd *cobra.Command, src, what string) error {
	if src != "-" || cmd.InOrStdin() != os.Stdin {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS); err == nil {
		return errors.New(what + ": refusing to read an archive from a terminal; give a FILE or pipe one in")
	}
	return nil
}
