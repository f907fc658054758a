package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-dev/strata/rootfs"
)

// Options are `strata create` / `strata run`'s flags.
type Options struct {
	Name     string
	Hostname string
	// Cmd (the arguments after the image) replaces the image's CMD.
	Cmd []string
	// Entrypoint, when not nil, replaces the image's ENTRYPOINT (and drops
	// its CMD, as docker does); an empty slice clears it.
	Entrypoint []string
	Env        []string // K=V, or K to take K from strata's environment
	WorkingDir string
	User       string
	Network    string   // "none" (default) or "host"
	Binds      []string // HOST:CTR[:ro|rw]
	Tmpfs      []string // CTR[:size=..,mode=..]
	Memory     int64    // bytes, 0: no limit
	PidsLimit  int64    // 0: no limit
	CPUs       float64  // 0: no limit
	ReadOnly   bool     // --read-only: the root filesystem is mounted read-only
	// NoNewPrivileges: --security-opt no-new-privileges
	NoNewPrivileges bool
	TTY             bool
	Stdin           bool // -i: keep stdin open
	AutoRemove      bool // --rm
}

// merge returns the image config with opts applied, and the process argv,
// following docker: ENTRYPOINT + CMD, CMD replaced by args, and an
// --entrypoint that resets the image's CMD.
func merge(img v1.Config, opts Options) (v1.Config, []string, error) {
	cfg := img
	for _, kv := range opts.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "" || strings.ContainsAny(k, " \x00") {
			return cfg, nil, fmt.Errorf("invalid environment variable: %q", kv)
		}
	}
	cfg.Env = mergeEnv(img.Env, opts.Env)
	if opts.Entrypoint != nil {
		cfg.Entrypoint = opts.Entrypoint
		if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
			cfg.Entrypoint = nil
		}
		cfg.Cmd = nil
	}
	if len(opts.Cmd) > 0 {
		cfg.Cmd = opts.Cmd
	}
	if opts.WorkingDir != "" {
		if !filepath.IsAbs(opts.WorkingDir) {
			return cfg, nil, fmt.Errorf("the working directory %q is invalid: it needs to be an absolute path", opts.WorkingDir)
		}
		cfg.WorkingDir = opts.WorkingDir
	}
	if opts.User != "" {
		cfg.User = opts.User
	}
	cfg.Hostname = opts.Hostname
	cfg.Tty = opts.TTY
	cfg.OpenStdin = opts.Stdin
	cfg.AttachStdin = opts.Stdin
	argv := append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	if len(argv) == 0 {
		return cfg, nil, errors.New("no command specified")
	}
	return cfg, argv, nil
}

// mergeEnv applies -e values over the image's environment: K=V sets K, a
// bare K takes K from strata's own environment (and is dropped when unset
// there), as docker does. Order: the image's variables first, new ones after.
func mergeEnv(base, set []string) []string {
	out := append([]string{}, base...)
	idx := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		idx[k] = i
	}
	for _, kv := range set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			hv, found := os.LookupEnv(k)
			if !found {
				continue
			}
			v = hv
		}
		kv = k + "=" + v
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// parseBinds parses -v values (rootfs.ParseBind) and checks that each host
// path exists: strata has no named volumes and, unlike docker, does not
// create a missing host directory.
func parseBinds(specs []string) ([]rootfs.Bind, error) {
	var out []rootfs.Bind
	for _, spec := range specs {
		b, err := rootfs.ParseBind(spec)
		if err != nil {
			return nil, err
		}
		if b.Target == "/" {
			return nil, fmt.Errorf("invalid volume %q: cannot mount over /", spec)
		}
		if _, err := os.Stat(b.Source); err != nil {
			return nil, fmt.Errorf("invalid volume %q: host path %s does not exist", spec, b.Source)
		}
		b.Source = filepath.Clean(b.Source)
		out = append(out, b)
	}
	return out, nil
}
