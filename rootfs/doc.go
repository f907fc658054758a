// Package rootfs is the sandbox a container's process runs in: namespaces, pivot_root, /proc /dev /sys, capabilities, PID-1 init and cgroups.
//
// Run (or Start, then Sandbox.Run) re-executes the strata binary
// (/proc/self/exe) as the container's init in new mount, PID, UTS and IPC
// namespaces, and a new network namespace unless the network is "host".
// The calling binary must call IsInit first thing in main (and tests that
// call Run, in TestMain) and hand over to InitMain when it reports true.
//
// Prestart: for `strata run` (in the foreground), a C constructor
// (prestart.c, built with cgo) starts init before the Go runtime of strata
// itself has started, so that init's start-up (an exec of this binary and
// its Go runtime, a few milliseconds) overlaps strata's instead of following
// it; Start adopts that init when its network mode is the one asked for and
// kills it otherwise. Without cgo, Start always starts init itself.
//
// Init's life:
//
//  1. Staging, before its Spec is known: mounts are made private; a tmpfs
//     on a fixed empty directory (/run/strata-sandbox, in init's own mount
//     namespace only) holds a fresh /proc (docker's masked and read-only
//     paths applied), a minimal /dev (device nodes, a private devpts
//     instance, shm, mqueue) and a read-only /sys; loopback is brought up.
//  2. Run sends the process's stdin, stdout and stderr (SCM_RIGHTS) and the
//     Spec (JSON) over a socket; Run first puts init in the sandbox's cgroup
//     when limits are set, so nothing of the container runs outside it.
//  3. The root filesystem is mounted (snapshot.MountAll, or a bind of a
//     directory; mountpoints the image lacks come from a layer on the tmpfs,
//     snapshot.WithMountpoints), the staged /proc, /dev and /sys are moved into it, the
//     terminal (TTY) is allocated in the container's devpts and its master
//     passed back to Run, /etc/hosts, /etc/hostname and /etc/resolv.conf are
//     bound in from the tmpfs (never written into the image), binds and
//     tmpfs mounts follow, then pivot_root detaches the host's tree.
//  4. The user (the image's /etc/passwd and /etc/group), environment and
//     working directory are resolved, capabilities are cut to docker's
//     default set (bounding set included, ambient cleared, no_new_privs),
//     and init forks the process, relays signals to it and reaps every
//     orphan. When the process ends, init kills and reaps whatever is left
//     in the PID namespace, writes the exit status on its status pipe and
//     exits with it; Run returns on the status line, while the kernel tears
//     down the namespaces (their mounts with them), and Close waits for that.
//
// Nothing is ever mounted in the host's mount namespace, so a SIGKILLed
// strata (its init has Pdeathsig SIGKILL) leaves no mount and no process.
package rootfs
