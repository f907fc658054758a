// Command sandboxrun runs one command in a rootfs.Run sandbox over a root
// directory. It exists for the sandbox's tests and benchmarks, which need the
// sandbox without an image store; strata run is the user's command.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/strata-dev/strata/rootfs"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if rootfs.IsInit() {
		rootfs.InitMain()
		return
	}
	var spec rootfs.Spec
	var env, binds, discards, tmpfs list
	interactive := flag.Bool("i", false, "keep stdin open")
	flag.StringVar(&spec.RootfsDir, "rootfs", "", "root directory")
	flag.StringVar(&spec.User, "u", "", "user")
	flag.StringVar(&spec.WorkingDir, "w", "", "working directory")
	flag.StringVar(&spec.Hostname, "hostname", "", "hostname")
	flag.StringVar(&spec.Network, "network", "", "none or host")
	flag.BoolVar(&spec.TTY, "t", false, "allocate a terminal")
	flag.BoolVar(&spec.ReadOnly, "read-only", false, "read-only root")
	flag.BoolVar(&spec.NoNewPrivileges, "no-new-privs", false, "set no_new_privs")
	flag.Int64Var(&spec.Memory, "memory", 0, "memory limit in bytes")
	flag.Int64Var(&spec.PidsLimit, "pids-limit", 0, "pids limit")
	flag.Float64Var(&spec.CPUs, "cpus", 0, "CPUs")
	flag.Var(&env, "e", "KEY=VALUE")
	flag.Var(&binds, "v", "HOST:CTR[:ro]")
	flag.Var(&discards, "discard", "HOST:CTR, writable with writes discarded")
	flag.Var(&tmpfs, "tmpfs", "CTR[:size=..,mode=..]")
	flag.Parse()
	spec.Args, spec.Env = flag.Args(), env
	for _, b := range binds {
		bind, err := rootfs.ParseBind(b)
		if err != nil {
			fail(rootfs.ExitSetup, err)
		}
		spec.Binds = append(spec.Binds, bind)
	}
	for _, b := range discards {
		bind, err := rootfs.ParseBind(b)
		if err != nil {
			fail(rootfs.ExitSetup, err)
		}
		bind.Discard = true
		spec.Binds = append(spec.Binds, bind)
	}
	for _, t := range tmpfs {
		tm, err := rootfs.ParseTmpfs(t)
		if err != nil {
			fail(rootfs.ExitSetup, err)
		}
		spec.Tmpfs = append(spec.Tmpfs, tm)
	}
	if *interactive || spec.TTY {
		spec.Stdin = os.Stdin
	}
	spec.Stdout, spec.Stderr = os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, rootfs.ForwardedSignals...)
	spec.Signals = sigs
	code, err := rootfs.Run(context.Background(), spec)
	if err != nil {
		fail(code, err)
	}
	os.Exit(code)
}

func fail(code int, err error) {
	fmt.Fprintf(os.Stderr, "sandboxrun: %v\n", err)
	os.Exit(code)
}
