package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/store"
)

func init() { register(newInspectCmd) }

// inspectOptions are inspect's flags. With --remote the image is described
// from its registry (store.Inspect works for any v1.Image) instead of the
// local store.
type inspectOptions struct {
	remote   bool
	platform string
	rf       *registryFlags // --tls-ca, --insecure-registry (push.go)
}

func newInspectCmd(g *globals) *cobra.Command {
	o := inspectOptions{rf: &registryFlags{}}
	cmd := &cobra.Command{
		Use:   "inspect [flags] IMAGE...",
		Short: "Show images' manifest and config as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out []*store.Inspection
			for _, ref := range args {
				in, err := inspectOne(cmd, g, o, ref)
				if err != nil {
					return fmt.Errorf("inspect %s: %w", ref, err)
				}
				out = append(out, in)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "    ")
			return enc.Encode(out)
		},
	}
	cmd.Flags().BoolVar(&o.remote, "remote", false, "describe the image in its registry instead of the local store")
	cmd.Flags().StringVar(&o.platform, "platform", "", "with --remote: the platform to describe from a multi-platform image")
	o.rf.addTLS(cmd.Flags())
	return cmd
}

// inspectOne describes one image, from the registry or the local store.
func inspectOne(cmd *cobra.Command, g *globals, o inspectOptions, ref string) (*store.Inspection, error) {
	if o.remote {
		return inspectRemote(cmd, g, o.rf, o.platform, ref)
	}
	s, err := g.store()
	if err != nil {
		return nil, err
	}
	return s.Inspect(ref)
}
