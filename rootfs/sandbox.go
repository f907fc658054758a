package rootfs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Sandbox is a sandbox whose init already runs, in its new namespaces,
// waiting for the Spec of its one process. Starting it ahead of Run overlaps
// the start of init (a re-exec of the strata binary, a few milliseconds)
// with the caller's own preparation of the image and snapshot:
//
//	sb, err := rootfs.Start(network) // first thing
//	defer sb.Close()
//	... prepare mounts ...
//	code, err := sb.Run(ctx, spec)
//
// A Sandbox runs at most one Spec. Close kills an unused one; it is a no-op
// after Run. Like Run, Start's init dies with the calling process (its
// Pdeathsig is tied to the calling thread: do not call Start from a
// goroutine that locked its OS thread and may exit).
type Sandbox struct {
	network string
	newNet  bool
	proc    *os.Process
	conn    *os.File // our end of the config socket (SCM_RIGHTS + JSON)
	status  *os.File // read end of init's status pipe
	waited  chan *os.ProcessState

	started  chan struct{} // closed once init is created (or failed to be)
	startErr error

	mu     sync.Mutex
	used   bool
	ps     *os.ProcessState
	closed bool
}

// Start starts a sandbox's init with network mode network (see
// Spec.Network); the Spec given to Run must have the same mode. The init
// process is created in the background (creating namespaces takes a
// while): Start returns at once, and an error in starting init is Run's.
func Start(network string) (*Sandbox, error) {
	newNet, err := newNetwork(network)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("running a container needs root (rootless sandboxes are not supported)")
	}
	sb := &Sandbox{network: network, newNet: newNet, started: make(chan struct{}), waited: make(chan *os.ProcessState, 1)}
	go func() {
		defer close(sb.started)
		sb.startErr = sb.start()
	}()
	return sb, nil
}

// start creates init. Its Pdeathsig is tied to the thread that forks it:
// this goroutine's, which is never locked, so the thread never exits early.
func (sb *Sandbox) start() error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	conn, child := os.NewFile(uintptr(fds[0]), "config"), os.NewFile(uintptr(fds[1]), "config")
	defer child.Close()
	stR, stW, err := os.Pipe()
	if err != nil {
		conn.Close()
		return fmt.Errorf("sandbox: %w", err)
	}
	defer stW.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		conn.Close()
		stR.Close()
		return fmt.Errorf("sandbox: %w", err)
	}
	defer null.Close()
	scratch, err := scratchDir()
	if err != nil {
		conn.Close()
		stR.Close()
		return fmt.Errorf("sandbox: %w", err)
	}
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	net := argHostNet
	if sb.newNet {
		flags |= unix.CLONE_NEWNET
		net = argNewNet
	}
	tr("starting")
	// init's stdio are /dev/null until Run passes the process's own.
	proc, err := os.StartProcess("/proc/self/exe", []string{initArg0}, &os.ProcAttr{
		Env:   initEnviron(net + ":" + scratch),
		Files: []*os.File{null, null, null, child, stW},
		Sys: &syscall.SysProcAttr{
			Cloneflags: flags,
			Pdeathsig:  syscall.SIGKILL,
		},
	})
	if err != nil {
		conn.Close()
		stR.Close()
		return fmt.Errorf("sandbox: starting init: %w", err)
	}
	tr("started")
	sb.proc, sb.conn, sb.status = proc, conn, stR
	go func() {
		ps, _ := proc.Wait()
		sb.waited <- ps
	}()
	return nil
}

// Close ends an unused sandbox (killing its init) and releases what Start
// opened. It returns once init is gone.
func (sb *Sandbox) Close() error {
	<-sb.started
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.closed {
		return nil
	}
	sb.closed = true
	if sb.startErr != nil {
		return nil
	}
	if sb.ps == nil {
		_ = sb.proc.Kill()
		sb.ps = <-sb.waited
	}
	sb.conn.Close()
	sb.status.Close()
	return nil
}

// Run runs spec in the sandbox and waits for it to end, as the package's
// Run does; the sandbox is closed when it returns.
func (sb *Sandbox) Run(ctx context.Context, spec Spec) (exitCode int, err error) {
	sb.mu.Lock()
	if sb.used || sb.closed {
		sb.mu.Unlock()
		return ExitSetup, errors.New("sandbox: already used")
	}
	sb.used = true
	sb.mu.Unlock()
	defer sb.Close()

	<-sb.started
	if sb.startErr != nil {
		return ExitSetup, sb.startErr
	}
	if newNet, err := newNetwork(spec.Network); err != nil {
		return ExitSetup, err
	} else if newNet != sb.newNet {
		return ExitSetup, fmt.Errorf("sandbox: started for network %q, spec wants %q", sb.network, spec.Network)
	}
	cfg, err := newInitConfig(&spec)
	if err != nil {
		return ExitSetup, err
	}
	limits, err := limitsOf(&spec)
	if err != nil {
		return ExitSetup, err
	}
	var s stdio
	defer s.close()
	if err := s.open(&spec, cfg); err != nil {
		return ExitSetup, fmt.Errorf("sandbox: %w", err)
	}
	var cg *cgroup
	if len(limits) > 0 {
		if cg, err = newCgroup(randomHex(16), limits); err != nil {
			return ExitSetup, err
		}
		defer func() {
			sb.Close() // init (and so the container) gone before its cgroup
			if rerr := cg.remove(); rerr != nil && err == nil {
				err = rerr
			}
		}()
		// init reads its config only once it is in the cgroup: no process
		// of the container ever runs outside it.
		if err := cg.add(sb.proc.Pid); err != nil {
			return ExitSetup, fmt.Errorf("sandbox: %w", err)
		}
		cfg.Cgroups = cg.views
	}
	tr("sending")
	if err := sb.send(cfg, s.files); err != nil {
		// init died before reading its config: its status says why.
		_ = sb.proc.Kill()
		ps := <-sb.waited
		sb.mu.Lock()
		sb.ps = ps
		sb.mu.Unlock()
		if msg, _ := io.ReadAll(io.LimitReader(sb.status, 64<<10)); len(msg) > 0 {
			_, m, _ := strings.Cut(strings.TrimSpace(string(msg)), " ")
			return ExitSetup, errors.New(m)
		}
		return ExitSetup, fmt.Errorf("sandbox: starting init: %w", err)
	}
	s.closeChildEnds()
	if spec.TTY {
		// Without a terminal, init failed before making it: its status
		// says why.
		if master, fd, err := sb.recvMaster(); err == nil {
			s.pty = &pty{master: master, masterFD: fd}
			s.ours = append(s.ours, master)
		}
	}
	return sb.wait(ctx, &spec, &s)
}

// send hands init the process's stdio (SCM_RIGHTS with the first byte) and
// its config (JSON up to EOF).
func (sb *Sandbox) send(cfg *initConfig, files [3]*os.File) error {
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	rights := unix.UnixRights(int(files[0].Fd()), int(files[1].Fd()), int(files[2].Fd()))
	raw, err := sb.conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), []byte{'{'}, rights, nil, 0)
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	if _, err := sb.conn.Write(b[1:]); err != nil {
		return err
	}
	return unix.Shutdown(int(sb.conn.Fd()), unix.SHUT_WR)
}

// recvMaster receives the terminal's master from init.
func (sb *Sandbox) recvMaster() (*os.File, int, error) {
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sb.conn.Fd()), make([]byte, 1), oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, 0, err
	}
	if n == 0 {
		return nil, 0, io.ErrUnexpectedEOF
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, 0, fmt.Errorf("no terminal from init: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, 0, fmt.Errorf("no terminal from init: %v", err)
	}
	// Non-blocking: os.File then reads it through the poller.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, 0, err
	}
	return os.NewFile(uintptr(fds[0]), "ptmx"), fds[0], nil
}

// wait relays signals and the terminal until init ends, and turns how it
// ended into Run's result.
func (sb *Sandbox) wait(ctx context.Context, spec *Spec, s *stdio) (int, error) {
	var detach func()
	var ttyDone <-chan struct{}
	if s.pty != nil {
		ttyDone, detach = s.pty.attach(spec.Stdin, spec.Stdout)
	}
	var ps *os.ProcessState
	var ctxErr error
	for ps == nil {
		select {
		case ps = <-sb.waited:
		case sig := <-spec.Signals:
			_ = sb.proc.Signal(sig)
		case <-ctx.Done():
			ctxErr = ctx.Err()
			_ = sb.proc.Kill()
			ps = <-sb.waited
		}
	}
	sb.mu.Lock()
	sb.ps = ps
	sb.mu.Unlock()
	tr("waited")
	if ttyDone != nil {
		<-ttyDone
		detach()
	}
	s.waitCopies()
	if ctxErr != nil {
		return exitSignalBase + int(syscall.SIGKILL), ctxErr
	}
	if status, _ := io.ReadAll(io.LimitReader(sb.status, 64<<10)); len(status) > 0 {
		codeStr, msg, _ := strings.Cut(strings.TrimRight(string(status), "\n"), " ")
		code, err := strconv.Atoi(codeStr)
		if err != nil {
			code = ExitSetup
		}
		return code, errors.New(msg)
	}
	if ps == nil {
		return ExitSetup, errors.New("sandbox: lost init")
	}
	return exitStatus(ps.Sys().(syscall.WaitStatus)), nil
}
