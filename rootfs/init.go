package rootfs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The sandbox re-executes the strata binary (/proc/self/exe) as the
// container's init with this variable set and argv[0] initArg0; the init
// reads its initConfig as JSON from fd configFD and reports a failure to
// start the process as one "CODE MESSAGE" line on fd statusFD.
const (
	initEnv  = "_STRATA_SANDBOX_INIT"
	initArg0 = "strata-init"
	configFD = 3
	// initEnv's value is "newnet:SCRATCH" or "hostnet:SCRATCH".
	argNewNet  = "newnet"
	argHostNet = "hostnet"
	statusFD   = 4
)

// initConfig is what Run hands to init: the Spec without its streams, plus
// what Run decided on the host side.
type initConfig struct {
	Rootfs     []Mount `json:",omitempty"`
	RootfsDir  string  `json:",omitempty"`
	ReadOnly   bool    `json:",omitempty"`
	Ephemeral  bool    `json:",omitempty"`
	Args       []string
	Env        []string `json:",omitempty"`
	WorkingDir string   `json:",omitempty"`
	User       string   `json:",omitempty"`
	Hostname   string
	NewNet     bool    `json:",omitempty"`
	Hosts      []byte  `json:",omitempty"`
	ResolvConf []byte  `json:",omitempty"`
	Binds      []Bind  `json:",omitempty"`
	Tmpfs      []Tmpfs `json:",omitempty"`
	TTY        bool    `json:",omitempty"`
	NoNewPrivs bool    `json:",omitempty"`
	// Cgroups are the sandbox's cgroup directories, shown read-only under
	// /sys/fs/cgroup.
	Cgroups []cgroupView `json:",omitempty"`
	// Winsize is the initial size of the TTY's terminal.
	Winsize *unix.Winsize `json:",omitempty"`
	// Scratch is an empty host directory on which init mounts its private
	// tmpfs (the container root's mount point and the /etc files).
	Scratch string
	// trees are the detached mount trees of the idmapped binds, in order,
	// received with the stdio.
	trees []int
}

// IsInit reports whether this process was started by the sandbox as a
// container's init (the strata binary re-executed inside new namespaces).
// Call it first thing in main (and in TestMain of tests that call Run).
func IsInit() bool {
	return len(os.Args) > 0 && os.Args[0] == initArg0 && os.Getenv(initEnv) != ""
}

// InitMain runs the container init and exits the process; it never returns.
func InitMain() {
	// Capabilities, the bounding set and fork are per thread: everything
	// below runs on this one.
	runtime.LockOSThread()
	if traceOn {
		traceBuf = new(strings.Builder)
	}
	tr("init start")
	// Not dumpable: the container's processes (without CAP_SYS_PTRACE) cannot
	// reach init through /proc/1: not its exe (the host's strata binary, the
	// runc CVE-2019-5736 path), fds (the status pipe), environ or memory.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// ps shows PID 1 as strata-init rather than "exe" (/proc/self/exe).
	name := []byte(initArg0 + "\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
	code, err := initMain()
	status := os.NewFile(statusFD, "status")
	if err != nil {
		fmt.Fprintf(status, "%d %s\n", code, strings.ReplaceAll(err.Error(), "\n", " "))
	} else {
		// The process has ended: end the rest of the container now (as the
		// kernel would once init exits), then tell Run the status, which
		// can go on while the kernel tears down the namespaces.
		killAll()
		fmt.Fprintf(status, "%d\n", code)
	}
	os.Exit(code)
}

// killAll kills every other process of the sandbox's PID namespace (kill(-1)
// from its PID 1 reaches only those) and reaps them.
func killAll() {
	if err := unix.Kill(-1, unix.SIGKILL); err == unix.ESRCH {
		return // none left
	}
	for {
		if _, err := unix.Wait4(-1, nil, 0, nil); err != nil && err != unix.EINTR {
			return // ECHILD: all reaped
		}
	}
}

func initMain() (int, error) {
	// Descriptors the caller's caller leaked to strata (not close-on-exec)
	// must not reach the container: only 0-2 do.
	syscall.CloseOnExec(configFD)
	syscall.CloseOnExec(statusFD)
	if err := unix.CloseRange(statusFD+1, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		// Before Linux 5.11: one by one.
		ents, rerr := os.ReadDir("/proc/self/fd")
		if rerr != nil {
			return ExitSetup, fmt.Errorf("sandbox: marking descriptors close-on-exec: %w", err)
		}
		for _, e := range ents {
			if fd, err := strconv.Atoi(e.Name()); err == nil && fd > statusFD {
				syscall.CloseOnExec(fd)
			}
		}
	}
	sigs, sigsReady := notifySignals()
	net, scratch, ok := strings.Cut(os.Getenv(initEnv), ":")
	if !ok {
		return ExitSetup, errors.New("sandbox: init started without its arguments")
	}
	stageErr := stageSystem(scratch, net == argNewNet)
	tr("staged")
	cfg, err := readConfig()
	if err != nil {
		return ExitSetup, fmt.Errorf("sandbox: reading the init config: %w", err)
	}
	if stageErr != nil {
		return ExitSetup, fmt.Errorf("sandbox: %w", stageErr)
	}
	traceFlush()
	tr("config read")
	if err := setupRoot(cfg); err != nil {
		return ExitSetup, fmt.Errorf("sandbox: %w", err)
	}
	tr("root set up")
	if !cfg.TTY {
		unix.Close(configFD)
	}
	p, code, err := prepareProcess(cfg)
	if err != nil {
		return code, err
	}
	// The filter goes on while init still has CAP_SYS_ADMIN, which lets it
	// without no_new_privs (as runc does); what init does after it (drop
	// capabilities, fork, wait) the filter allows.
	if err := installSeccomp(); err != nil {
		return ExitSetup, fmt.Errorf("sandbox: %w", err)
	}
	if err := dropCaps(DefaultCaps, cfg.NoNewPrivs); err != nil {
		return ExitSetup, fmt.Errorf("sandbox: %w", err)
	}
	tr("caps dropped")
	unix.Umask(0o022)
	<-sigsReady
	tr("sigs ready")
	return supervise(p, sigs)
}

// maxTrees bounds the idmapped binds of one container.
const maxTrees = 64

// readConfig receives the process's stdin, stdout and stderr, then the
// idmapped binds' trees (SCM_RIGHTS with the first byte), makes the stdio
// init's fds 0-2, and decodes the config that follows up to EOF.
func readConfig() (*initConfig, error) {
	first := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace((3+maxTrees)*4))
	n, oobn, flags, _, err := unix.Recvmsg(configFD, first, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if flags&unix.MSG_CTRUNC != 0 {
		return nil, fmt.Errorf("more than %d idmapped binds", maxTrees)
	}
	if n == 0 {
		return nil, io.ErrUnexpectedEOF // closed unused
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		rights, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return nil, err
		}
		fds = append(fds, rights...)
	}
	if len(fds) < 3 {
		return nil, fmt.Errorf("got %d stdio descriptors, want 3", len(fds))
	}
	for i, fd := range fds[:3] {
		if err := unix.Dup3(fd, i, 0); err != nil {
			return nil, err
		}
	}
	for _, fd := range fds[:3] {
		unix.Close(fd)
	}
	// The connection stays open: with TTY, init sends the terminal's master
	// back on it (sendMaster).
	f := os.NewFile(configFD, "config")
	var cfg initConfig
	if err := json.NewDecoder(io.MultiReader(bytes.NewReader(first), f)).Decode(&cfg); err != nil {
		return nil, err
	}
	cfg.trees = fds[3:]
	return &cfg, nil
}

// sendMaster passes the terminal's master to Run (SCM_RIGHTS) and closes
// init's copies of it and of the config connection.
func sendMaster(master *os.File) error {
	defer master.Close()
	defer unix.Close(configFD)
	return unix.Sendmsg(configFD, []byte{0}, unix.UnixRights(int(master.Fd())), nil, 0)
}
