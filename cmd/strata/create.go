package main

import (
	"fmt"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-dev/strata/container"
)

func init() { register(newCreateCmd) }

// containerFlags are the flags `strata create` and `strata run` share.
type containerFlags struct {
	opts         container.Options
	entrypoint   string
	memory       string
	securityOpts []string
}

func (f *containerFlags) add(fs *pflag.FlagSet) {
	// Flags end at the image: everything after it is the command.
	fs.SetInterspersed(false)
	fs.StringArrayVarP(&f.opts.Env, "env", "e", nil, "set an environment variable (K=V, or K to pass strata's own)")
	fs.StringVarP(&f.opts.WorkingDir, "workdir", "w", "", "working directory inside the container")
	fs.StringVarP(&f.opts.User, "user", "u", "", "user (name|uid[:group|gid])")
	fs.StringVar(&f.opts.Network, "network", "none", "network: none (loopback only) or host")
	fs.StringArrayVarP(&f.opts.Binds, "volume", "v", nil, "bind mount a host path: HOST:CONTAINER[:ro]")
	fs.StringArrayVar(&f.opts.Tmpfs, "tmpfs", nil, "mount a tmpfs: CONTAINER[:size=SIZE,mode=MODE]")
	fs.StringVar(&f.opts.Name, "name", "", "assign a name to the container")
	fs.StringVar(&f.opts.Hostname, "hostname", "", "container host name (default: the short ID)")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "overwrite the image's ENTRYPOINT")
	fs.StringVarP(&f.memory, "memory", "m", "", "memory limit (bytes, or with a k, m or g suffix)")
	fs.Int64Var(&f.opts.PidsLimit, "pids-limit", 0, "limit on the number of processes (0: none)")
	fs.Float64Var(&f.opts.CPUs, "cpus", 0, "number of CPUs (e.g. 1.5)")
	fs.BoolVarP(&f.opts.Stdin, "interactive", "i", false, "keep stdin open")
	fs.BoolVarP(&f.opts.TTY, "tty", "t", false, "allocate a terminal")
	fs.BoolVar(&f.opts.ReadOnly, "read-only", false, "mount the container's root filesystem read-only")
	fs.StringArrayVar(&f.securityOpts, "security-opt", nil, "security option: no-new-privileges (setuid no longer raises privileges)")
	fs.BoolVar(&f.opts.AutoRemove, "rm", false, "remove the container when it exits")
}

// options finishes translating the flags; args are IMAGE [CMD...].
func (f *containerFlags) options(cmd *cobra.Command, args []string) (string, container.Options, error) {
	o := f.opts
	o.Cmd = args[1:]
	if cmd.Flags().Changed("entrypoint") {
		o.Entrypoint = []string{f.entrypoint}
	}
	for _, so := range f.securityOpts {
		switch so {
		case "no-new-privileges", "no-new-privileges:true", "no-new-privileges=true":
			o.NoNewPrivileges = true
		case "no-new-privileges:false", "no-new-privileges=false":
			o.NoNewPrivileges = false
		default:
			return "", o, fmt.Errorf("invalid --security-opt %q: strata knows no-new-privileges", so)
		}
	}
	if f.memory != "" {
		n, err := units.RAMInBytes(f.memory)
		if err != nil || n <= 0 {
			return "", o, fmt.Errorf("invalid --memory %q: want a positive number of bytes, with an optional k, m or g suffix", f.memory)
		}
		o.Memory = n
	}
	return args[0], o, nil
}

func newCreateCmd(g *globals) *cobra.Command {
	var f containerFlags
	cmd := &cobra.Command{
		Use:                   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		DisableFlagsInUseLine: true,
		Short:                 "Create a container over an image (start it with 'strata start')",
		Args:                  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			image, opts, err := f.options(cmd, args)
			if err != nil {
				return &exitError{125, err}
			}
			m, err := containers(g)
			if err != nil {
				return &exitError{125, err}
			}
			c, err := m.Create(cmd.Context(), image, opts)
			if err != nil {
				return &exitError{125, err}
			}
			fmt.Fprintln(cmd.OutOrStdout(), c.ID)
			return nil
		},
	}
	f.add(cmd.Flags())
	cmd.SetFlagErrorFunc(flagError125)
	return cmd
}

// containers opens the container manager over the store.
func containers(g *globals) (*container.Manager, error) {
	s, err := g.store()
	if err != nil {
		return nil, err
	}
	return container.Open(s)
}

// flagError125 makes a bad flag of run or create exit 125, as docker does.
func flagError125(c *cobra.Command, err error) error {
	return &exitError{125, fmt.Errorf("%s: %w (see '%s --help')", c.CommandPath(), err, c.CommandPath())}
}
