// Command strata is a daemonless container image tool: it builds images from
// Dockerfiles, runs containers, and pushes and pulls images to registries.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-dev/strata/rootfs"
)

func main() {
	// The sandbox re-executes this binary as the container's init; that path
	// must run before anything else touches the process (threads, signals).
	if rootfs.IsInit() {
		rootfs.InitMain()
		return
	}
	rootfs.Trace("main")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:])
	rootfs.ReleasePrestart()
	rootfs.Trace("executed")
	stop()
	rootfs.Trace("exit")
	os.Exit(code)
}
