package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/builder"
	"github.com/strata-dev/strata/registry"
)

func init() {
	register(func(g *globals) *cobra.Command {
		var (
			rf                           registryFlags
			file, target, network, prog  string
			iidfile                      string
			tags, buildArgs, labels      []string
			secrets, outputs, noCacheFor []string
			cacheTo, cacheFrom, sshs     []string
			noCache, pull, push, quiet   bool
			jobs                         int
		)
		c := &cobra.Command{
			Use:   "build [flags] CONTEXT|-",
			Short: "Build an image from a Dockerfile",
			Long: `Build an image from a Dockerfile with BuildKit's semantics, without a daemon.

CONTEXT is a directory, or - to read a tar archive (the context) or a
Dockerfile (an empty context) from stdin. Steps whose inputs did not change
are taken from the build cache (CACHED). Progress goes to stderr.`,
			Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				s, err := g.store()
				if err != nil {
					return err
				}
				o := builder.Options{
					Store: s, Dockerfile: file, Tags: tags, Target: target, NoCache: noCache,
					NoCacheFilter: noCacheFor, Pull: pull, Network: network, IIDFile: iidfile,
					Push: push, Jobs: jobs, Progress: g.errw, ProgressMode: prog,
				}
				if quiet {
					o.ProgressMode = "quiet"
				}
				if args[0] == "-" {
					o.Stdin = os.Stdin
				} else {
					o.ContextDir = args[0]
				}
				if file == "-" {
					o.Stdin = os.Stdin
				}
				if o.BuildArgs, err = builder.ParseKeyValues(buildArgs, os.LookupEnv); err != nil {
					return fmt.Errorf("--build-arg: %w", err)
				}
				if o.Labels, err = builder.ParseKeyValues(labels, nil); err != nil {
					return fmt.Errorf("--label: %w", err)
				}
				for _, sv := range secrets {
					sec, err := builder.ParseSecret(sv)
					if err != nil {
						return err
					}
					o.Secrets = append(o.Secrets, sec)
				}
				for _, sv := range sshs {
					s, err := builder.ParseSSH(sv)
					if err != nil {
						return err
					}
					o.SSH = append(o.SSH, s)
				}
				for _, cv := range cacheTo {
					c, err := builder.ParseCacheSpec(cv)
					if err != nil {
						return fmt.Errorf("--cache-to: %w", err)
					}
					o.CacheTo = append(o.CacheTo, c)
				}
				for _, cv := range cacheFrom {
					c, err := builder.ParseCacheSpec(cv)
					if err != nil {
						return fmt.Errorf("--cache-from: %w", err)
					}
					o.CacheFrom = append(o.CacheFrom, c)
				}
				for _, ov := range outputs {
					out, err := builder.ParseOutput(ov)
					if err != nil {
						return err
					}
					o.Outputs = append(o.Outputs, out)
				}
				if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
					n, err := strconv.ParseInt(v, 10, 64)
					if err != nil {
						return fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds", v)
					}
					o.Epoch = &n
				}
				// registry transfer lines only in plain progress (they would
				// break the tty view and json events)
				rf.quiet = quiet || prog != "plain"
				rf.toStderr = true
				ro, done, err := rf.options(g)
				if err != nil {
					return err
				}
				defer done()
				o.PullImage = func(ctx context.Context, ref, platform string) (v1.Image, error) {
					ro := ro
					ro.Platform = platform
					res, err := registry.Pull(ctx, s, ref, ro)
					if err != nil {
						return nil, err
					}
					return s.ImageByDigest(res.Record.Digest)
				}
				o.RemoteImage = func(ctx context.Context, ref string) (v1.Image, error) {
					return registry.RemoteImage(ctx, ref, ro)
				}
				o.PushImage = func(ctx context.Context, _ v1.Image, ref string) error {
					_, err := registry.Push(ctx, s, ref, ref, ro)
					return err
				}
				res, err := builder.Build(cmd.Context(), o)
				if err != nil {
					return err
				}
				if quiet {
					fmt.Fprintln(cmd.OutOrStdout(), res.ID)
				} else {
					fmt.Fprintf(g.errw, "Successfully built %s\n", res.ID.Hex[:12])
					for _, t := range res.Tags {
						fmt.Fprintf(g.errw, "Successfully tagged %s\n", t)
					}
				}
				return nil
			},
		}
		f := c.Flags()
		f.StringVarP(&file, "file", "f", "", "the Dockerfile (default CONTEXT/Dockerfile; - for stdin)")
		f.StringArrayVarP(&tags, "tag", "t", nil, "name the image NAME[:TAG] (repeatable)")
		f.StringArrayVar(&buildArgs, "build-arg", nil, "set a build argument KEY=VALUE (KEY alone: from the environment)")
		f.StringVar(&target, "target", "", "build this stage (default: the last)")
		f.BoolVar(&noCache, "no-cache", false, "run every step, ignoring the build cache")
		f.StringArrayVar(&noCacheFor, "no-cache-filter", nil, "ignore the cache for this stage (repeatable)")
		f.BoolVar(&pull, "pull", false, "always pull FROM images from their registry")
		f.StringVar(&network, "network", "", "network of RUN steps: host (default) or none")
		f.StringArrayVar(&secrets, "secret", nil, "secret for RUN --mount=type=secret: id=ID,src=PATH or id=ID,env=VAR")
		f.StringArrayVar(&sshs, "ssh", nil, "SSH agent for RUN --mount=type=ssh: default|ID[=SOCKET|KEY[,KEY]] (default: $SSH_AUTH_SOCK)")
		f.StringArrayVar(&labels, "label", nil, "set an image label KEY=VALUE (repeatable)")
		f.StringArrayVarP(&outputs, "output", "o", nil, "type=oci|docker,dest=FILE[,name=N][,compression=gzip|zstd|uncompressed], type=tar,dest=FILE or type=local,dest=DIR (repeatable)")
		f.StringVar(&prog, "progress", "auto", "progress output: auto, plain, tty, json or quiet")
		f.StringVar(&iidfile, "iidfile", "", "write the image ID to this file")
		f.StringArrayVar(&cacheTo, "cache-to", nil, "export the build cache: type=registry,ref=REF[,mode=min|max] or type=local,dest=DIR")
		f.StringArrayVar(&cacheFrom, "cache-from", nil, "use a build cache: type=registry,ref=REF or type=local,src=DIR")
		f.BoolVar(&push, "push", false, "push the image to its registry after the build")
		f.BoolVarP(&quiet, "quiet", "q", false, "print only the image ID")
		f.IntVar(&jobs, "build-jobs", 2, "stages built at once")
		f.IntVarP(&rf.jobs, "jobs", "j", registry.DefaultJobs, "blobs transferred at once when pulling or pushing")
		f.StringSliceVar(&rf.insecure, "insecure-registry", nil, "registry (HOST[:PORT]) that may use plain HTTP (repeatable)")
		f.StringSliceVar(&rf.tlsCA, "tls-ca", nil, "PEM file of an extra certificate authority to trust (repeatable)")
		return c
	})
}
