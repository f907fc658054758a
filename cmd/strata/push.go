package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/registry"
	"github.com/strata-dev/strata/store"
)

// registryFlags are the flags every registry command shares.
type registryFlags struct {
	jobs     int
	insecure []string
	tlsCA    []string
	quiet    bool
	// toStderr sends the progress lines to stderr (a build's stdout is
	// for the image ID alone).
	toStderr bool
}

func (f *registryFlags) add(fs *pflag.FlagSet) {
	fs.IntVarP(&f.jobs, "jobs", "j", registry.DefaultJobs, "blobs transferred at once")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "print no progress")
	f.addTLS(fs)
}

// addTLS adds only the flags that say how to reach a registry (for
// commands that move no blobs, such as inspect --remote).
func (f *registryFlags) addTLS(fs *pflag.FlagSet) {
	fs.StringSliceVar(&f.insecure, "insecure-registry", nil, "registry (HOST[:PORT]) that may use plain HTTP or an unverified certificate (repeatable; env STRATA_INSECURE_REGISTRIES)")
	fs.StringSliceVar(&f.tlsCA, "tls-ca", nil, "PEM file of an extra certificate authority to trust (repeatable)")
}

// options turns the flags into registry.Options; progress goes to stdout as
// docker's does (bars on a terminal, a line per blob otherwise; lines on
// stderr with toStderr), errors alone to stderr. Call done when finished.
func (f *registryFlags) options(g *globals) (o registry.Options, done func(), err error) {
	if f.jobs < 1 {
		return o, nil, fmt.Errorf("--jobs must be at least 1")
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// Transfers stream, but compressing layers for a push keeps ~40 MiB
		// of blocks live (store's compressJobs) and leaves as much garbage
		// again per block; a soft limit above the live set keeps the heap
		// from doubling it: peak RSS ~60 MiB instead of ~90.
		debug.SetMemoryLimit(48 << 20)
	}
	o = registry.Options{
		Jobs:      f.jobs,
		Insecure:  f.insecure,
		TLSCA:     f.tlsCA,
		CertsDir:  os.Getenv("STRATA_CERTS_D"),
		UserAgent: "strata/" + version,
	}
	if env := os.Getenv("STRATA_INSECURE_REGISTRIES"); env != "" {
		o.Insecure = append(o.Insecure, strings.Split(env, ",")...)
	}
	if g.debug {
		o.Debugf = g.debugf
	}
	done = func() {}
	switch {
	case f.quiet:
	case f.toStderr:
		o.Progress = registry.LineProgress(g.errw)
	default:
		if isTerminal(os.Stdout) && !g.debug {
			b := registry.BarProgress(g.out)
			o.Progress, done = b, func() { b.Close() }
		} else {
			o.Progress = registry.LineProgress(g.out)
		}
	}
	return o, done, nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func init() {
	register(func(g *globals) *cobra.Command {
		var rf registryFlags
		var index []string
		var compression string
		c := &cobra.Command{
			Use:   "push [flags] IMAGE [DEST]",
			Short: "Push a local image to a registry",
			Long: `Push the local image IMAGE to a registry, as DEST (default: IMAGE's own name).

With --index IMAGE2,IMAGE3 the images IMAGE, IMAGE2... (one per platform)
are pushed together as one OCI image index named DEST.`,
			Args: cobra.RangeArgs(1, 2),
			RunE: func(cmd *cobra.Command, args []string) error {
				o, done, err := rf.options(g)
				if err != nil {
					return err
				}
				o.Compression = compression
				s, err := g.store()
				if err != nil {
					return err
				}
				dst := ""
				if len(args) == 2 {
					dst = args[1]
				}
				var res *registry.PushResult
				if len(index) > 0 {
					if dst == "" {
						done()
						return fmt.Errorf("push: --index needs a DEST")
					}
					res, err = registry.PushIndex(cmd.Context(), s, append([]string{args[0]}, index...), dst, o)
				} else {
					res, err = registry.Push(cmd.Context(), s, args[0], dst, o)
				}
				done()
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", res.Ref, res.Digest)
				return nil
			},
		}
		rf.add(c.Flags())
		c.Flags().StringSliceVar(&index, "index", nil, "more local images to push with IMAGE as one multi-platform index")
		c.Flags().StringVar(&compression, "compression", "gzip", "layer compression: gzip or zstd")
		return c
	})
}

// inspectRemote is `strata inspect --remote REF`: the image as the registry
// describes it, in the same form as a local one.
func inspectRemote(cmd *cobra.Command, g *globals, rf *registryFlags, platform, ref string) (*store.Inspection, error) {
	rf.jobs, rf.quiet = registry.DefaultJobs, true
	o, _, err := rf.options(g)
	if err != nil {
		return nil, err
	}
	o.Platform = platform
	return registry.InspectRemote(cmd.Context(), ref, o)
}
