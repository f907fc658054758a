package rootfs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Run runs spec.Args in a new sandbox and waits for it to end.
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
	cfg, err := newInitConfig(&spec)
	if err != nil {
		return ExitSetup, err
	}
	limits, err := limitsOf(&spec)
	if err != nil {
		return ExitSetup, err
	}
	var s starter
	defer s.cleanup()
	if err := s.streams(&spec, cfg); err != nil {
		return ExitSetup, err
	}
	if len(limits) > 0 {
		if s.cg, err = newCgroup(randomHex(16), limits); err != nil {
			return ExitSetup, err
		}
	}
	return s.run(ctx, &spec, cfg)
}

// newInitConfig checks spec and fills in the defaults Run decides on the
// host side.
func newInitConfig(spec *Spec) (*initConfig, error) {
	cfg := &initConfig{
		Rootfs:     spec.Rootfs,
		ReadOnly:   spec.ReadOnly,
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
	switch spec.Network {
	case "", NetworkNone:
		cfg.NewNet = true
	case NetworkHost:
	default:
		return nil, fmt.Errorf("invalid network mode %q: want %q or %q", spec.Network, NetworkNone, NetworkHost)
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

// starter holds what one Run opened on the host side.
type starter struct {
	files  [3]*os.File     // init's stdin, stdout, stderr
	close  []*os.File      // closed once init has started (our copies of its ends)
	final  []io.Closer     // closed when Run returns
	copies []chan struct{} // output copies to wait for
	pty    *pty
	cg     *cgroup
}

func (s *starter) cleanup() {
	for _, f := range s.close {
		f.Close()
	}
	s.close = nil
	for _, c := range s.final {
		c.Close()
	}
	if s.cg != nil {
		_ = s.cg.remove()
	}
}

// streams sets up init's stdio: the caller's files themselves where it gave
// *os.File, else pipes with copying goroutines, or a pty with TTY.
func (s *starter) streams(spec *Spec, cfg *initConfig) error {
	if spec.TTY {
		p, err := openPty()
		if err != nil {
			return err
		}
		s.pty = p
		s.final = append(s.final, p.master)
		s.close = append(s.close, p.slave)
		s.files = [3]*os.File{p.slave, p.slave, p.slave}
		cfg.Console = p.slavePath
		return nil
	}
	var devnull *os.File
	null := func() (*os.File, error) {
		if devnull == nil {
			f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				return nil, err
			}
			devnull = f
			s.close = append(s.close, f)
		}
		return devnull, nil
	}
	var err error
	switch in := spec.Stdin.(type) {
	case nil:
		s.files[0], err = null()
	case *os.File:
		s.files[0] = in
	default:
		r, w, perr := os.Pipe()
		if perr != nil {
			return perr
		}
		s.close = append(s.close, r)
		s.files[0] = r
		// Not waited for: a reader may block for ever (a terminal); the
		// copy ends at its next write once the sandbox is gone.
		go func() { _, _ = io.Copy(w, in); w.Close() }()
	}
	if err != nil {
		return err
	}
	for i, out := range []io.Writer{spec.Stdout, spec.Stderr} {
		switch o := out.(type) {
		case nil:
			s.files[1+i], err = null()
		case *os.File:
			s.files[1+i] = o
		default:
			if i == 1 && spec.Stderr == spec.Stdout {
				s.files[2] = s.files[1] // one pipe keeps the interleaving
				continue
			}
			r, w, perr := os.Pipe()
			if perr != nil {
				return perr
			}
			s.close = append(s.close, w)
			s.files[1+i] = w
			done := make(chan struct{})
			s.copies = append(s.copies, done)
			go func() { _, _ = io.Copy(o, r); r.Close(); close(done) }()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// run starts init, hands it cfg, relays signals and waits.
func (s *starter) run(ctx context.Context, spec *Spec, cfg *initConfig) (int, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return ExitSetup, err
	}
	s.close = append(s.close, cfgR)
	s.final = append(s.final, cfgW)
	stR, stW, err := os.Pipe()
	if err != nil {
		return ExitSetup, err
	}
	s.close = append(s.close, stW)
	s.final = append(s.final, stR)

	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if cfg.NewNet {
		flags |= unix.CLONE_NEWNET
	}
	if err := ctx.Err(); err != nil {
		return exitSignalBase + int(syscall.SIGKILL), err
	}
	tr("starting")
	proc, err := os.StartProcess("/proc/self/exe", []string{initArg0}, &os.ProcAttr{
		Env:   initEnviron(),
		Files: []*os.File{s.files[0], s.files[1], s.files[2], cfgR, stW},
		Sys: &syscall.SysProcAttr{
			Cloneflags: flags,
			Pdeathsig:  syscall.SIGKILL,
		},
	})
	if err != nil {
		return ExitSetup, fmt.Errorf("sandbox: starting init: %w", err)
	}
	for _, f := range s.close {
		f.Close()
	}
	s.close = nil
	tr("started")
	waited := make(chan *os.ProcessState, 1)
	go func() {
		ps, _ := proc.Wait()
		waited <- ps
	}()

	// init reads its config only once it is in the cgroup, so that no
	// process of the container ever runs outside it.
	startErr := func() error {
		if s.cg != nil {
			if err := s.cg.add(proc.Pid); err != nil {
				return err
			}
		}
		return json.NewEncoder(cfgW).Encode(cfg)
	}()
	cfgW.Close()
	if startErr != nil {
		_ = proc.Kill()
		<-waited
		return ExitSetup, fmt.Errorf("sandbox: %w", startErr)
	}

	var detach func()
	var ttyDone <-chan struct{}
	if s.pty != nil {
		ttyDone, detach = s.pty.attach(spec.Stdin, spec.Stdout)
	}
	var ps *os.ProcessState
	var ctxErr error
	for ps == nil {
		select {
		case ps = <-waited:
		case sig := <-spec.Signals:
			_ = proc.Signal(sig)
		case <-ctx.Done():
			ctxErr = ctx.Err()
			_ = proc.Kill()
			ps = <-waited
		}
	}
	tr("waited")
	if ttyDone != nil {
		<-ttyDone
		detach()
	}
	for _, c := range s.copies {
		<-c
	}
	if ctxErr != nil {
		return exitSignalBase + int(syscall.SIGKILL), ctxErr
	}
	if status, _ := io.ReadAll(io.LimitReader(stR, 64<<10)); len(status) > 0 {
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
	ws := ps.Sys().(syscall.WaitStatus)
	return exitStatus(ws), nil
}

// initEnviron is init's environment: the marker IsInit looks for, and the
// trace switch when set. The process's own environment is built by init.
func initEnviron() []string {
	env := []string{initEnv + "=1"}
	if traceOn {
		env = append(env, traceEnv+"=1")
	}
	return env
}
