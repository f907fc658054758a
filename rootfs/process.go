package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// process is the container's process as init starts it.
type process struct {
	path       string // resolved Args[0]
	args, env  []string
	dir        string
	user       execUser
	tty        bool
	hostname   string
	commandArg string // Args[0] as given, for messages
}

// prepareProcess resolves, inside the container's root, what init needs to
// start the process: the user, the environment, the working directory
// (created when missing) and the executable. It returns docker's exit code
// with an error.
func prepareProcess(cfg *initConfig) (*process, int, error) {
	if len(cfg.Args) == 0 || cfg.Args[0] == "" {
		return nil, ExitSetup, errors.New("no command given")
	}
	passwd, err := readEtc("/etc/passwd", parsePasswd)
	if err != nil {
		return nil, ExitSetup, err
	}
	groups, err := readEtc("/etc/group", parseGroup)
	if err != nil {
		return nil, ExitSetup, err
	}
	u, err := resolveUser(cfg.User, passwd, groups)
	if err != nil {
		return nil, ExitSetup, err
	}
	p := &process{
		args:       cfg.Args,
		env:        processEnv(cfg.Env, cfg.Hostname, u.Home, cfg.TTY),
		dir:        cfg.WorkingDir,
		user:       u,
		tty:        cfg.TTY,
		commandArg: cfg.Args[0],
	}
	if p.dir == "" {
		p.dir = "/"
	}
	if fi, err := os.Stat(p.dir); err != nil {
		if err := os.MkdirAll(p.dir, 0o755); err != nil {
			return nil, ExitSetup, fmt.Errorf("creating working directory %s: %w", p.dir, err)
		}
	} else if !fi.IsDir() {
		return nil, ExitSetup, fmt.Errorf("working directory %s is not a directory", p.dir)
	}
	if cfg.ReadOnly {
		if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return nil, ExitSetup, fmt.Errorf("sandbox: remounting the root read-only: %w", err)
		}
	}
	path, code, err := lookPath(cfg.Args[0], p.env, p.dir)
	if err != nil {
		return nil, code, err
	}
	p.path = path
	return p, 0, nil
}

func readEtc[T any](path string, parse func(io.Reader) ([]T, error)) ([]T, error) {
	// An image's file is hostile input: a FIFO would block init for ever,
	// a huge file exhaust its memory.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading %s: not a regular file", path)
	}
	out, err := parse(io.LimitReader(f, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return out, nil
}

// lookPath finds file as execvp would with env's PATH, giving docker's exit
// code and runc's message when it cannot be found.
func lookPath(file string, env []string, dir string) (string, int, error) {
	if strings.Contains(file, "/") {
		p := file
		if !strings.HasPrefix(p, "/") {
			p = dir + "/" + p
		}
		if _, err := os.Stat(p); err != nil {
			code := ExitNoExec
			if errors.Is(err, os.ErrNotExist) {
				code = ExitNotFound
			}
			return "", code, fmt.Errorf("exec: %q: stat %s: %v", file, file, errors.Unwrap(err))
		}
		return file, 0, nil
	}
	pathEnv := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, d := range strings.Split(pathEnv, ":") {
		if d == "" {
			d = "."
		}
		p := d + "/" + file
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, 0, nil
		}
	}
	return "", ExitNotFound, fmt.Errorf("exec: %q: executable file not found in $PATH", file)
}

// initSignals are the signals init relays to the process, plus SIGCHLD.
var initSignals = append([]os.Signal{syscall.SIGCHLD, syscall.SIGPWR}, ForwardedSignals...)

// notifySignals subscribes to initSignals in the background: the runtime
// enables each signal through a round trip to its signal thread (~50µs a
// signal), time better spent while the root is being set up. The channel
// is sent on once the subscription is complete.
func notifySignals() (sigs chan os.Signal, ready chan struct{}) {
	sigs = make(chan os.Signal, 64)
	ready = make(chan struct{})
	go func() {
		signal.Notify(sigs, initSignals...)
		close(ready)
	}()
	return sigs, ready
}

// supervise starts the process, relays signals to it, reaps every child
// (orphans of the container are re-parented to init, PID 1) and returns the
// process's exit status once it ends. Returning ends init, and with it
// (PID 1 of the namespace) every other process of the container.
func supervise(p *process, sigs <-chan os.Signal) (int, error) {
	groups := make([]uint32, len(p.user.Groups))
	for i, g := range p.user.Groups {
		groups[i] = uint32(g)
	}
	attr := &syscall.ProcAttr{
		Dir:   p.dir,
		Env:   p.env,
		Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Setctty:    p.tty,
			Ctty:       0,
			Credential: &syscall.Credential{Uid: uint32(p.user.UID), Gid: uint32(p.user.GID), Groups: groups},
		},
	}
	tr("forking")
	pid, err := syscall.ForkExec(p.path, p.args, attr)
	tr("forked")
	if err != nil {
		code := ExitNoExec
		if errors.Is(err, syscall.ENOENT) {
			code = ExitNotFound
		}
		return code, fmt.Errorf("exec: %q: %v", p.commandArg, err)
	}
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			_ = syscall.Kill(pid, sig.(syscall.Signal))
			continue
		}
		for {
			var ws syscall.WaitStatus
			wpid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || wpid <= 0 {
				break
			}
			if wpid == pid {
				tr("reaped")
				return exitStatus(ws), nil
			}
		}
	}
	return ExitSetup, errors.New("sandbox: init lost its signal channel")
}

func exitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return exitSignalBase + int(ws.Signal())
	}
	return ws.ExitStatus()
}
