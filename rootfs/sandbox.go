package rootfs

import (
	"bufio"
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
	proc    initProc
	conn    *os.File // our end of the config socket (SCM_RIGHTS + JSON)
	status  *os.File // read end of init's status pipe
	waited  chan syscall.WaitStatus
	// line is init's status line (see InitMain), "" when the pipe ended
	// without one; read in the background once Run has sent the config.
	line chan string

	started  chan struct{} // closed once init is created (or failed to be)
	startErr error

	mu     sync.Mutex
	used   bool
	reaped bool // init waited for
	told   bool // init reported how the process ended: it is on its way out
	closed bool
}

// initProc is the init process: its pid, and a pidfd (-1 without one) so
// that a signal can never reach another process that reused the pid.
type initProc struct {
	pid   int
	pidfd int
}

func (p initProc) signal(sig syscall.Signal) error {
	if p.pidfd >= 0 {
		return unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	}
	return syscall.Kill(p.pid, sig)
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
	sb := &Sandbox{network: network, newNet: newNet, started: make(chan struct{}), waited: make(chan syscall.WaitStatus, 1), line: make(chan string, 1)}
	if p, ok := takePrestarted(); ok {
		if p.newNet == newNet {
			tr("prestarted")
			sb.proc = initProc{pid: p.pid, pidfd: p.pidfd}
			sb.conn = os.NewFile(uintptr(p.conn), "config")
			sb.status = os.NewFile(uintptr(p.status), "status")
			go sb.reap()
			close(sb.started)
			return sb, nil
		}
		p.discard()
	}
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
	// syscall.ForkExec rather than os.StartProcess: the os package probes
	// the kernel's pidfd support with a fork of its own first (~0.3ms on the
	// way to every sandbox's first start).
	pidfd := -1
	// init's stdio are /dev/null until Run passes the process's own.
	pid, err := syscall.ForkExec("/proc/self/exe", []string{initArg0}, &syscall.ProcAttr{
		Env:   initEnviron(net + ":" + scratch),
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd(), child.Fd(), stW.Fd()},
		Sys: &syscall.SysProcAttr{
			Cloneflags: flags,
			Pdeathsig:  syscall.SIGKILL,
			PidFD:      &pidfd,
		},
	})
	if err != nil {
		conn.Close()
		stR.Close()
		return fmt.Errorf("sandbox: starting init: %w", err)
	}
	tr("started")
	sb.proc, sb.conn, sb.status = initProc{pid: pid, pidfd: pidfd}, conn, stR
	go sb.reap()
	return nil
}

// reap waits for init to end and sends its status on sb.waited.
func (sb *Sandbox) reap() {
	sb.waited <- wait4(sb.proc.pid)
}

func wait4(pid int) syscall.WaitStatus {
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			return ws
		}
	}
}

// prestarted is an init prestart.c started before the Go runtime did.
type prestarted struct {
	pid, pidfd, conn, status int
	newNet                   bool
}

// discard kills an init Start cannot use and reaps it in the background.
// ReleasePrestart (at exit) waits for it.
func (p prestarted) discard() {
	_ = initProc{pid: p.pid, pidfd: p.pidfd}.signal(syscall.SIGKILL)
	unix.Close(p.conn)
	unix.Close(p.status)
	done := make(chan struct{})
	go func() {
		wait4(p.pid)
		if p.pidfd >= 0 {
			unix.Close(p.pidfd)
		}
		close(done)
	}()
	discardedMu.Lock()
	discarded = append(discarded, done)
	discardedMu.Unlock()
}

var (
	discardedMu sync.Mutex
	discarded   []chan struct{}
)

// ReleasePrestart ends an init prestart.c started that no Start adopted
// (the run failed before it started its container, say) and waits for the
// ones Start discarded, so that strata leaves no child behind to be reaped
// by the machine's init (which, in some containers, never does). Call it
// before the process exits.
func ReleasePrestart() {
	if p, ok := takePrestarted(); ok {
		p.discard()
	}
	discardedMu.Lock()
	defer discardedMu.Unlock()
	for _, d := range discarded {
		<-d
	}
	discarded = nil
}

// readLine reads init's status line: up to the first newline, or all there
// is when the pipe ends first (init died before writing one).
func (sb *Sandbox) readLine() {
	line, _ := bufio.NewReader(io.LimitReader(sb.status, 64<<10)).ReadString('\n')
	sb.line <- strings.TrimSuffix(line, "\n")
}

// Close ends an unused sandbox (killing its init) and releases what Start
// opened. It returns once init is gone: after Run, once the kernel has
// torn down the sandbox's namespaces.
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
	if !sb.reaped {
		if !sb.told {
			_ = sb.proc.signal(syscall.SIGKILL)
		}
		<-sb.waited
		sb.reaped = true
	}
	if sb.proc.pidfd >= 0 {
		unix.Close(sb.proc.pidfd)
	}
	sb.conn.Close()
	sb.status.Close()
	return nil
}

// Run runs spec in the sandbox and waits for it to end, as the package's
// Run does, except that it may return while init, its process ended and
// every other process of the container killed, is still on its way out (the
// kernel tearing down its namespaces takes a millisecond or two): the
// caller can clean up meanwhile, then Close, which waits for init to be gone.
func (sb *Sandbox) Run(ctx context.Context, spec Spec) (exitCode int, err error) {
	sb.mu.Lock()
	if sb.used || sb.closed {
		sb.mu.Unlock()
		return ExitSetup, errors.New("sandbox: already used")
	}
	sb.used = true
	sb.mu.Unlock()

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
		if err := cg.add(sb.proc.pid); err != nil {
			return ExitSetup, fmt.Errorf("sandbox: %w", err)
		}
		cfg.Cgroups = cg.views
	}
	tr("sending")
	if err := sb.send(cfg, s.files); err != nil {
		// init died before reading its config: its status says why.
		_ = sb.proc.signal(syscall.SIGKILL)
		<-sb.waited
		sb.mu.Lock()
		sb.reaped = true
		sb.mu.Unlock()
		if msg, _ := io.ReadAll(io.LimitReader(sb.status, 64<<10)); len(msg) > 0 {
			_, m, _ := strings.Cut(strings.TrimSpace(string(msg)), " ")
			return ExitSetup, errors.New(m)
		}
		return ExitSetup, fmt.Errorf("sandbox: starting init: %w", err)
	}
	go sb.readLine()
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

// send hands init the process's stdio and the idmapped binds' trees
// (SCM_RIGHTS with the first byte) and its config (JSON up to EOF).
func (sb *Sandbox) send(cfg *initConfig, files [3]*os.File) error {
	// first: binds that cannot be idmapped here become plain ones
	cfg.Binds = append([]Bind(nil), cfg.Binds...)
	trees, err := idmappedTrees(cfg.Binds)
	if err != nil {
		return err
	}
	defer closeAll(trees) // init has its own copies once sent
	if len(trees) > maxTrees {
		return fmt.Errorf("more than %d idmapped binds", maxTrees)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	fds := []int{int(files[0].Fd()), int(files[1].Fd()), int(files[2].Fd())}
	for _, t := range trees {
		fds = append(fds, int(t.Fd()))
	}
	rights := unix.UnixRights(fds...)
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
	var (
		ws            syscall.WaitStatus
		reaped, gotLn bool
		line          string
		ctxErr        error
	)
	// The process has ended once init has told how (a status line) or is
	// gone (then its line, if any, is there to read).
	for !gotLn || (line == "" && !reaped) {
		select {
		case ws = <-sb.waited:
			reaped = true
			if !gotLn {
				line, gotLn = <-sb.line, true
			}
		case line = <-sb.line:
			gotLn = true
		case sig := <-spec.Signals:
			if sig, ok := sig.(syscall.Signal); ok {
				_ = sb.proc.signal(sig)
			}
		case <-ctx.Done():
			ctxErr = ctx.Err()
			_ = sb.proc.signal(syscall.SIGKILL)
			ws, reaped = <-sb.waited, true
			if !gotLn {
				line, gotLn = <-sb.line, true
			}
		}
	}
	sb.mu.Lock()
	sb.reaped = reaped
	sb.told = line != ""
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
	if line != "" {
		// "CODE" when the process ended, "CODE MESSAGE" when init failed.
		codeStr, msg, hasMsg := strings.Cut(line, " ")
		code, err := strconv.Atoi(codeStr)
		if err != nil {
			return ExitSetup, fmt.Errorf("sandbox: init said %q", line)
		}
		if hasMsg {
			return code, errors.New(msg)
		}
		return code, nil
	}
	return exitStatus(ws), nil
}
