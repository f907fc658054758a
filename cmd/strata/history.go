package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func init() { register(newHistoryCmd) }

func newHistoryCmd(g *globals) *cobra.Command {
	var noTrunc, quiet bool
	cmd := &cobra.Command{
		Use:   "history [flags] IMAGE",
		Short: "Show the history of an image, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.store()
			if err != nil {
				return err
			}
			rows, err := s.History(args[0])
			if err != nil {
				return fmt.Errorf("history %s: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			if quiet {
				for _, r := range rows {
					fmt.Fprintln(out, historyID(r.ID, noTrunc))
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT")
			for _, r := range rows {
				by := strings.Join(strings.Fields(r.CreatedBy), " ")
				if noTrunc {
					by = r.CreatedBy
				} else if n := []rune(by); len(n) > 45 {
					by = string(n[:44]) + "…"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", historyID(r.ID, noTrunc), since(r.Created), by, humanSize(r.Size), r.Comment)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate IDs and CREATED BY")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	return cmd
}

func historyID(id string, noTrunc bool) string {
	if noTrunc || !strings.HasPrefix(id, "sha256:") {
		return id
	}
	return shortID(strings.TrimPrefix(id, "sha256:"))
}
