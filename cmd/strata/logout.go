package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/registry"
)

func init() {
	register(func(g *globals) *cobra.Command {
		return &cobra.Command{
			Use:   "logout [REGISTRY]",
			Short: "Remove a registry's credentials from docker's config.json (default Docker Hub)",
			Args:  cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				reg := "docker.io"
				if len(args) == 1 {
					reg = args[0]
				}
				err := registry.Logout(reg, registry.Options{})
				if errors.Is(err, registry.ErrNotLoggedIn) {
					fmt.Fprintf(cmd.OutOrStdout(), "Not logged in to %s\n", reg)
					return nil
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Removing login credentials for %s\n", reg)
				return nil
			},
		}
	})
}
