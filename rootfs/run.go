package rootfs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Run runs spec.Args in a new sandbox and waits for it to end: Start
// followed by Sandbox.Run.
//
// With a nil error, exitCode is the process's exit status (128+N when it
// was killed by signal N). When the sandbox or the process could not be
// started, exitCode is ExitSetup, ExitNoExec or ExitNotFound and the error
// is one line naming the problem. When ctx is cancelled the whole sandbox is
// killed (SIGKILL) and Run returns 137 and ctx's error.
//
// When Run returns — success, failure or cancellation — nothing it made is
// left: no process, no mount (they all live in the sandbox's namespaces), no
// cgroup, no temp file. If the calling process is SIGKILLed, the sandbox
// dies with it (Pdeathsig) and its mounts with its mount namespace.
func Run(ctx context.Context, spec Spec) (exitCode int, err error) {
	tr("Run")
	if _, err := newNetwork(spec.Network); err != nil {
		return ExitSetup, err
	}
	sb, err := Start(spec.Network)
	if err != nil {
		return ExitSetup, err
	}
	defer sb.Close()
	return sb.Run(ctx, spec)
}

// newNetwork reports whether network mode needs a new network namespace.
func newNetwork(network string) (bool, error) {
	switch network {
	case "", NetworkNone:
		return true, nil
	case NetworkHost:
		return false, nil
	}
	return false, fmt.Errorf("invalid network mode %q: want %q or %q", network, NetworkNone, NetworkHost)
}

// newInitConfig checks spec and fills in the defaults Run decides on the
// host side.
func newInitConfig(spec *Spec) (*initConfig, error) {
	cfg := &initConfig{
		Rootfs:     spec.Rootfs,
		ReadOnly:   spec.ReadOnly,
		Ephemeral:  spec.Ephemeral,
		Args:       spec.Args,
		Env:        spec.Env,
		WorkingDir: spec.WorkingDir,
		User:       spec.User,
		Hostname:   spec.Hostname,
		Hosts:      spec.Hosts,
		ResolvConf: spec.ResolvConf,
		Binds:      spec.Binds,
		Tmpfs:      spec.Tmpfs,
		TTY:        spec.TTY,
		NoNewPrivs: spec.NoNewPrivileges,
	}
	if len(spec.Args) == 0 || spec.Args[0] == "" {
		return nil, errors.New("no command specified")
	}
	if len(spec.Rootfs) == 0 {
		if spec.RootfsDir == "" {
			return nil, errors.New("no root filesystem given")
		}
		dir, err := filepath.Abs(spec.RootfsDir)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("root filesystem: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("root filesystem %s is not a directory", dir)
		}
		cfg.RootfsDir = dir
	}
	if cfg.WorkingDir != "" && !strings.HasPrefix(cfg.WorkingDir, "/") {
		return nil, fmt.Errorf("the working directory %q is invalid, it needs to be an absolute path", cfg.WorkingDir)
	}
	if cfg.Hostname == "" {
		cfg.Hostname = randomHex(6)
	} else if len(cfg.Hostname) > 64 || strings.ContainsAny(cfg.Hostname, "/ \n\t\x00") {
		return nil, fmt.Errorf("invalid hostname %q", cfg.Hostname)
	}
	var err error
	if cfg.NewNet, err = newNetwork(spec.Network); err != nil {
		return nil, err
	}
	for _, b := range spec.Binds {
		if !filepath.IsAbs(b.Source) {
			return nil, fmt.Errorf("bind mount source %q is not an absolute path", b.Source)
		}
		if !strings.HasPrefix(b.Target, "/") || filepath.Clean(b.Target) == "/" {
			return nil, fmt.Errorf("bind mount target %q must be an absolute path other than /", b.Target)
		}
		if _, err := os.Stat(b.Source); err != nil {
			return nil, fmt.Errorf("bind mount source path does not exist: %s", b.Source)
		}
	}
	for _, t := range spec.Tmpfs {
		if !strings.HasPrefix(t.Target, "/") || filepath.Clean(t.Target) == "/" {
			return nil, fmt.Errorf("tmpfs target %q must be an absolute path other than /", t.Target)
		}
	}
	if cfg.Hosts == nil {
		if cfg.NewNet {
			cfg.Hosts = []byte(defaultHosts)
		} else {
			cfg.Hosts = readOptional("/etc/hosts")
		}
	}
	if cfg.ResolvConf == nil {
		cfg.ResolvConf = readOptional("/etc/resolv.conf")
	}
	scratch, err := scratchDir()
	if err != nil {
		return nil, err
	}
	cfg.Scratch = scratch
	return cfg, nil
}

const defaultHosts = `127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
fe00::0	ip6-localnet
ff00::0	ip6-mcastprefix
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
`

func readOptional(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return []byte{}
	}
	return b
}

// scratchDir is the empty host directory every sandbox mounts its private
// tmpfs on, inside its own mount namespace (so one directory serves all
// sandboxes at once and nothing is ever mounted on it in the host's view).
func scratchDir() (string, error) {
	dir := "/run/strata-sandbox"
	if _, err := os.Stat("/run"); err != nil {
		dir = filepath.Join(os.TempDir(), "strata-sandbox")
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	return dir, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// initEnviron is init's environment: the marker IsInit looks for (with
// init's parameters), and the trace switch when set. The process's own environment is built by init.
func initEnviron(arg string) []string {
	// An explicit GOMAXPROCS spares init's runtime from working it out of
	// the cgroup files at start (~0.5ms of every sandbox's start).
	env := []string{initEnv + "=" + arg, "GOMAXPROCS=" + strconv.Itoa(runtime.GOMAXPROCS(0))}
	if traceOn {
		env = append(env, traceEnv+"=1")
	}
	return env
}
