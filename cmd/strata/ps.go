package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/container"
)

func init() { register(newPsCmd) }

func newPsCmd(g *globals) *cobra.Command {
	var all, quiet, noTrunc bool
	cmd := &cobra.Command{
		Use:                   "ps [OPTIONS]",
		DisableFlagsInUseLine: true,
		Short:                 "List containers (running ones; all with -a)",
		Args:                  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := containers(g)
			if err != nil {
				return err
			}
			cs, err := m.List(cmd.Context(), all)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if quiet {
				for _, c := range cs {
					fmt.Fprintln(out, container.ShortID(c.ID))
				}
				return nil
			}
			now := time.Now()
			w := tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
			fmt.Fprintln(w, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tNAMES")
			for _, c := range cs {
				id, command := container.ShortID(c.ID), c.Command(!noTrunc)
				if noTrunc {
					id = c.ID
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", id, c.Image, command,
					container.Ago(now, c.Created), c.StatusText(now), c.Name)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show all containers (default: running ones)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only print container IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate IDs and commands")
	return cmd
}
