package rootfs

import (
	"io"
	"os"
	"syscall"

	"github.com/strata-dev/strata/snapshot"
)

// Mount is one filesystem mount making up a container's root, as a
// snapshotter's Prepare returns them. Run applies them in order on the
// container's root inside the sandbox's own mount namespace
// (snapshot.MountAll), so a killed strata never leaves one on the host.
type Mount = snapshot.Mount

// Network modes of Spec.Network.
const (
	NetworkNone = "none" // a new network namespace with only loopback up (the default)
	NetworkHost = "host" // the host's network namespace
)

// Bind is a host path bind-mounted into the container (docker -v HOST:CTR[:ro]).
// The target is created (as an empty directory or file, like the source)
// when it does not exist in the container. Symlinks in Target resolve inside
// the container's root.
type Bind struct {
	Source   string // absolute host path: a directory or a file
	Target   string // absolute path in the container
	ReadOnly bool
	// Discard makes a writable bind whose writes never reach Source: they
	// land on a tmpfs private to the sandbox (an overlay on a directory, a
	// copy of a file) and vanish with it, as BuildKit's
	// RUN --mount=type=bind,rw. Ignored with ReadOnly.
	Discard bool `json:",omitempty"`
	// RootUID and RootGID, when not 0, are shown as root through the bind
	// and root as them; other owners are shown as they are (an idmapped
	// mount, see idmap.go). A build's context belongs to root this way, as
	// in BuildKit, whoever owns it on the host. Where the kernel or the
	// source's file system cannot idmap (NFS, 9p, FUSE, before Linux
	// 5.12), the bind shows the host's owners.
	RootUID uint32 `json:",omitempty"`
	RootGID uint32 `json:",omitempty"`
}

// Tmpfs is a fresh tmpfs mounted in the container (docker --tmpfs, and
// RUN --mount=type=tmpfs).
type Tmpfs struct {
	Target string      // absolute path in the container
	Size   int64       // bytes; 0 means the kernel default (half of RAM)
	Mode   os.FileMode // permission bits of the root; 0 means 01777
}

// Spec describes one process to run in a new sandbox.
//
// Exactly one of Rootfs and RootfsDir gives the root filesystem. Args, Env,
// WorkingDir and User are the final values: callers merge the image config
// (ENV, CMD, ENTRYPOINT, WORKDIR, USER) in before calling Run.
type Spec struct {
	// Rootfs are mounted, in order, on the container's root inside the
	// sandbox's mount namespace (what a snapshotter's Prepare returns).
	Rootfs []Mount
	// RootfsDir is an already prepared root directory, bind-mounted as the
	// container's root. Used when Rootfs is empty.
	RootfsDir string
	// ReadOnly mounts the root filesystem read-only (docker --read-only).
	ReadOnly bool
	// Ephemeral says the root's writable layer is thrown away, or committed,
	// right after the run (run --rm, a build step): overlay roots are then
	// mounted "volatile", so that the end of the sandbox does not sync the
	// whole filesystem under the upper directory (~10ms on a busy disk,
	// paid by every run otherwise). A crash of the machine during the run
	// may lose such a layer's writes; its workdir keeps overlay's
	// work/incompat/volatile marker, so it cannot be mounted again as is.
	Ephemeral bool

	// Args is the command and its arguments; Args[0] is looked up in the
	// container's PATH unless it contains a slash.
	Args []string
	// Env is the process environment (KEY=VALUE). PATH defaults to
	// DefaultPath, HOSTNAME to Hostname and HOME to the user's home from the
	// image's /etc/passwd ("/" when none); TERM=xterm is added with TTY.
	Env []string
	// WorkingDir is the process's directory, created (root-owned, 0755)
	// when missing. Default "/".
	WorkingDir string
	// User is "", NAME, UID, NAME:GROUP or UID:GID, resolved in the image's
	// /etc/passwd and /etc/group. Supplementary groups are the primary group
	// and the groups listing the user, unless a group is given explicitly.
	User string
	// Hostname of the container's UTS namespace and /etc/hostname. Default
	// a random 12-hex-digit name, as docker does.
	Hostname string

	// Network is NetworkNone (default, also for "") or NetworkHost.
	Network string
	// Hosts and ResolvConf are the contents of /etc/hosts and
	// /etc/resolv.conf. When nil, Hosts is a localhost table naming Hostname
	// (the host's /etc/hosts with NetworkHost) and ResolvConf is the host's
	// /etc/resolv.conf. These files, and /etc/hostname, are bind-mounted from
	// a tmpfs private to the sandbox: writes to them never reach the rootfs.
	Hosts, ResolvConf []byte

	// Binds and Tmpfs are extra mounts, applied in order after /proc, /dev,
	// /sys and the /etc files (so a bind can replace those files).
	Binds []Bind
	Tmpfs []Tmpfs

	// NoNewPrivileges sets no_new_privs on the process (docker
	// --security-opt no-new-privileges): setuid and file capabilities no
	// longer raise privileges. Off by default, as in docker and BuildKit:
	// an image's sudo or su works for its non-root users. Capabilities are
	// bounded and the seccomp filter applies either way.
	NoNewPrivileges bool

	// TTY runs the process on a new pseudo-terminal (docker -t), allocated in
	// the container's own devpts (/dev/pts/0, also /dev/console): its stdin,
	// stdout and stderr are the terminal, it is a session leader with the
	// terminal as its controlling tty, and Stdout receives everything (Stderr
	// is unused). When Stdin is a terminal it is put in raw mode while the
	// process runs and its window size is followed (SIGWINCH).
	TTY bool
	// Stdin, Stdout and Stderr of the process; nil means /dev/null. Pass
	// *os.File values where possible (no copying goroutine). Run does not
	// wait for a non-*os.File Stdin to reach EOF.
	Stdin          io.Reader
	Stdout, Stderr io.Writer

	// Signals received on this channel are forwarded to the process (through
	// init). A CLI running a container in the foreground passes the channel
	// of NotifyForwarded (or its own signal.Notify on ForwardedSignals) and
	// a context that the same signals do not cancel (context.WithoutCancel),
	// so that SIGTERM reaches the process instead of killing the sandbox.
	Signals <-chan os.Signal

	// Resource limits through cgroups (v2 where the unified hierarchy has the
	// controller, else v1), in a cgroup of the sandbox's own, made only when
	// a limit is set and removed when Run returns; 0 means unlimited.
	Memory    int64   // bytes (docker --memory)
	PidsLimit int64   // docker --pids-limit
	CPUs      float64 // docker --cpus
}

// DefaultPath is the PATH a container gets when its environment has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ForwardedSignals are the signals a foreground CLI should relay to the
// container through Spec.Signals.
var ForwardedSignals = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGALRM,
	syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU,
}

// Exit codes Run returns with a non-nil error, as docker uses them.
const (
	ExitSetup      = 125 // the sandbox could not be set up (bad spec, mount failure, unknown user)
	ExitNoExec     = 126 // the command exists but cannot be executed
	ExitNotFound   = 127 // the command was not found
	exitSignalBase = 128 // + signal number, when the process was killed
)

// SandboxPaths are the paths the sandbox may create in a container's root
// as mount points when the image lacks them (empty directories for /proc,
// /sys and /dev, empty files for the /etc ones, and /etc itself). They hold
// no data of the container: a differ should leave an empty file or empty
// directory at one of these paths out of a committed layer. Bind and tmpfs
// targets are created too, but those the caller asked for.
var SandboxPaths = []string{"/proc", "/sys", "/dev", "/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}
