package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/store"
)

func init() { register(newImagesCmd) }

// imageJSON is one line of `strata images --format json`.
type imageJSON struct {
	Repository string `json:"Repository"`
	Tag        string `json:"Tag"`
	ID         string `json:"ID"`
	Digest     string `json:"Digest"`
	CreatedAt  string `json:"CreatedAt,omitempty"`
	Size       int64  `json:"Size"`
}

func newImagesCmd(g *globals) *cobra.Command {
	var (
		format                  string
		quiet, noTrunc, digests bool
	)
	cmd := &cobra.Command{
		Use:   "images [flags] [REPOSITORY[:TAG]]",
		Short: "List the images in the local store",
		Long: `List the images in the local store, newest first: one row per name, <none> for
an image without one. With REPOSITORY, only its images (with :TAG, only that tag).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("invalid --format %q: want table or json", format)
			}
			s, err := g.store()
			if err != nil {
				return err
			}
			recs, err := s.Images()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				if recs, err = store.FilterImages(recs, args[0]); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			id := func(r store.Record) string {
				if noTrunc {
					return r.ID.String()
				}
				return shortID(r.ID.Hex)
			}
			switch {
			case quiet:
				for _, r := range recs {
					for range imageRows(r) {
						fmt.Fprintln(out, id(r))
					}
				}
				return nil
			case format == "json":
				enc := json.NewEncoder(out)
				for _, r := range recs {
					for _, row := range imageRows(r) {
						j := imageJSON{Repository: row[0], Tag: row[1], ID: r.ID.String(), Digest: r.Digest.String(), Size: r.Size}
						if !r.Created.IsZero() {
							j.CreatedAt = r.Created.UTC().Format(time.RFC3339)
						}
						if err := enc.Encode(j); err != nil {
							return err
						}
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
			if digests {
				fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
			} else {
				fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
			}
			for _, r := range recs {
				for _, row := range imageRows(r) {
					if digests {
						fmt.Fprintf(tw, "%s\t%s\t%s\t", row[0], row[1], r.Digest)
					} else {
						fmt.Fprintf(tw, "%s\t%s\t", row[0], row[1])
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", id(r), since(r.Created), humanSize(r.Size))
				}
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "table", "output format: table or json (one object per line)")
	f.BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	f.BoolVar(&noTrunc, "no-trunc", false, "show full image IDs")
	f.BoolVar(&digests, "digests", false, "show manifest digests")
	return cmd
}

// imageRows is one (repository, tag) pair per name, <none> for none.
func imageRows(r store.Record) [][2]string {
	if len(r.Names) == 0 {
		return [][2]string{{"<none>", "<none>"}}
	}
	var rows [][2]string
	for _, n := range r.Names {
		repo, tag := store.SplitName(n)
		if len(tag) > 7 && tag[:7] == "sha256:" {
			tag = "<none>"
		}
		rows = append(rows, [2]string{repo, tag})
	}
	return rows
}

func shortID(hex string) string {
	if len(hex) > 12 {
		return hex[:12]
	}
	return hex
}

// since is docker's "3 hours ago".
func since(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	d := time.Since(t)
	if d < 0 {
		return "Less than a second from now"
	}
	return units.HumanDuration(d) + " ago"
}

// humanSize is docker's size: decimal units, 3 significant digits.
func humanSize(n int64) string {
	return units.HumanSizeWithPrecision(float64(n), 3)
}
