package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/rootfs"
	"github.com/strata-dev/strata/snapshot"
	"github.com/strata-dev/strata/store"
)

// ErrNotFound is returned (wrapped) when no container has the given name or ID.
var ErrNotFound = errors.New("no such container")

// ErrRunning is returned (wrapped) for an operation that needs a stopped
// container (start, commit, rm without force).
var ErrRunning = errors.New("container is running")

// Manager keeps the containers of one store.
type Manager struct {
	s     *store.Store
	root  string // root/containers
	snaps map[string]snapshot.Snapshotter
}

// Open returns the manager of the containers kept in s.
func Open(s *store.Store) (*Manager, error) {
	root, err := s.Dir("containers")
	if err != nil {
		return nil, fmt.Errorf("opening containers: %w", err)
	}
	return &Manager{s: s, root: root}, nil
}

// IO is where a started container's standard streams go; nil is /dev/null.
type IO struct {
	Stdin          *os.File
	Stdout, Stderr *os.File
	// Ready, when not nil, is told (and closed) once the process is about
	// to start or the start failed: see StartDetached.
	Ready io.WriteCloser
}

func pinName(id string) string { return "container-" + id }

// Create makes a container over image (resolved in the store) with opts,
// prepares its writable snapshot and records it in state "created".
func (m *Manager) Create(ctx context.Context, image string, opts Options) (*Container, error) {
	c, l, err := m.create(ctx, image, opts, false)
	if err != nil {
		return nil, err
	}
	l.release()
	return c, nil
}

// create does Create and returns the container still locked. A transient
// container is Run's: it is reaped if its strata dies before removing it.
func (m *Manager) create(ctx context.Context, image string, opts Options, transient bool) (*Container, *lock, error) {
	switch opts.Network {
	case "", rootfs.NetworkNone:
		opts.Network = rootfs.NetworkNone
	case rootfs.NetworkHost:
	default:
		return nil, nil, fmt.Errorf("invalid --network %q: want none or host", opts.Network)
	}
	if opts.Name != "" && !validName.MatchString(opts.Name) {
		return nil, nil, fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", opts.Name)
	}
	if opts.PidsLimit < 0 || opts.Memory < 0 || opts.CPUs < 0 {
		return nil, nil, errors.New("resource limits must not be negative")
	}
	binds, err := parseBinds(opts.Binds)
	if err != nil {
		return nil, nil, err
	}
	var tmpfs []rootfs.Tmpfs
	for _, t := range opts.Tmpfs {
		tf, err := rootfs.ParseTmpfs(t)
		if err != nil {
			return nil, nil, err
		}
		tmpfs = append(tmpfs, tf)
	}

	release, err := m.s.Hold() // no Prune between resolving the image and pinning it
	if err != nil {
		return nil, nil, err
	}
	defer release()
	rootfs.Trace("resolve")
	img, rec, err := m.s.Image(image)
	rootfs.Trace("resolved")
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, fmt.Errorf("no such image: %s", image)
		}
		return nil, nil, fmt.Errorf("image %s: %w", image, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("image %s: reading config: %w", image, err)
	}
	cfg, argv, err := merge(cf.Config, opts)
	if err != nil {
		return nil, nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, nil, err
	}
	if cfg.Hostname == "" {
		cfg.Hostname = ShortID(id)
	}
	c := &Container{
		ID: id, Name: opts.Name, Image: image, Digest: rec.Digest, ImageID: rec.ID,
		Created: time.Now().UTC(), Config: cfg, Path: argv[0], Args: argv[1:],
		Host: HostConfig{
			Network: opts.Network, Binds: binds, Tmpfs: tmpfs, Memory: opts.Memory,
			PidsLimit: opts.PidsLimit, CPUs: opts.CPUs, AutoRemove: opts.AutoRemove, ReadOnly: opts.ReadOnly,
			NoNewPrivileges: opts.NoNewPrivileges,
		},
		Transient: transient,
		State:     State{Status: Created},
	}
	if transient {
		// Run starts it right away, in this process: its first record says
		// so, which spares start a second write. Should this process die
		// first, the free lock makes it read as exited (or reaped).
		c.State = State{Status: Running, Pid: os.Getpid(), StartedAt: c.Created}
	}
	l, err := m.newRecord(c)
	rootfs.Trace("recorded")
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*Container, *lock, error) {
		m.destroy(context.WithoutCancel(ctx), c)
		l.release()
		return nil, nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return fail(fmt.Errorf("image %s: %w", image, err))
	}
	// The pin keeps the image's blobs for a later commit. A container of
	// `run --rm` is never committed (not while it runs, and it is gone
	// after) and its filesystem lives in the snapshots, which Prune does
	// not touch: it skips the pin and the two fsyncs that cost.
	if !c.unpinned() {
		pins := []v1.Hash{rec.Digest, rec.ID}
		for _, layer := range layers {
			if d, err := layer.Digest(); err == nil {
				pins = append(pins, d)
			}
		}
		if err := m.s.Pin(pinName(id), pins); err != nil {
			return fail(err)
		}
	}
	mounts, name, err := m.prepare(ctx, id, layers)
	rootfs.Trace("prepared")
	if err != nil {
		return fail(fmt.Errorf("preparing the container's filesystem: %w", err))
	}
	if c.unpinned() {
		mounts = volatile(mounts)
	}
	c.Snapshotter, c.mounts = name, mounts
	if !transient {
		if err := m.save(c, true); err != nil {
			return fail(err)
		}
	}
	return c, l, nil
}

// newRecord picks the container's name, makes its directory, takes its lock
// and writes its first record, all under the containers lock so that two
// processes never give out the same name.
func (m *Manager) newRecord(c *Container) (*lock, error) {
	gl, _, err := flock(filepath.Join(m.root, ".lock"), unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer gl.release()
	all, err := m.scan()
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, o := range all {
		if o.reapable() && m.reapOne(context.Background(), o) {
			continue // a dead run --rm's container: gone now, name free
		}
		taken[o.Name] = true
		if o.Name == c.Name && c.Name != "" {
			return nil, fmt.Errorf("the container name %q is already in use by container %s: remove (or rename) that container to reuse the name", c.Name, ShortID(o.ID))
		}
	}
	if c.Name == "" {
		if c.Name, err = randomName(taken); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(m.dir(c.ID), 0o700); err != nil {
		return nil, fmt.Errorf("creating container: %w", err)
	}
	l, ok, err := m.tryLock(c.ID)
	if err == nil && !ok {
		err = errors.New("lock taken")
	}
	if err == nil {
		// A transient record needs no fsync: after a power cut it is reaped.
		err = m.save(c, !c.Transient)
	}
	if err != nil {
		l.release()
		os.RemoveAll(m.dir(c.ID))
		return nil, fmt.Errorf("creating container: %w", err)
	}
	return l, nil
}

// Run creates a container and runs it in the foreground, as `docker run`:
// the result is the process's exit status, or (with a non-nil error) 125
// when strata failed before the process started and 126/127 when the
// command could not be executed. With opts.AutoRemove the container is
// removed when the process ends.
func (m *Manager) Run(ctx context.Context, image string, opts Options, sio IO) (int, error) {
	var pl *launch
	if opts.Network == "" || opts.Network == rootfs.NetworkNone || opts.Network == rootfs.NetworkHost {
		var err error
		if pl, err = prelaunch(opts.Network); err != nil {
			return rootfs.ExitSetup, err
		}
		defer pl.close()
	} // else create refuses the network
	c, l, err := m.create(ctx, image, opts, true)
	if err != nil {
		return rootfs.ExitSetup, err
	}
	defer l.release()
	code, err := m.start(ctx, c, sio, pl)
	rootfs.Trace("started")
	if opts.AutoRemove {
		if rerr := m.destroy(context.WithoutCancel(ctx), c); rerr != nil && err == nil {
			return code, rerr
		}
	}
	rootfs.Trace("destroyed")
	return code, err
}

// Start runs a created or exited container in the foreground and returns
// as Run does.
func (m *Manager) Start(ctx context.Context, ref string, sio IO) (int, error) {
	c, l, err := m.lockRef(ref)
	if err != nil {
		ready(sio.Ready, err)
		return rootfs.ExitSetup, err
	}
	defer l.release()
	pl, err := prelaunch(c.Host.Network)
	if err != nil {
		ready(sio.Ready, err)
		return rootfs.ExitSetup, err
	}
	defer pl.close()
	code, err := m.start(ctx, c, sio, pl)
	if c.Host.AutoRemove {
		if rerr := m.destroy(context.WithoutCancel(ctx), c); rerr != nil && err == nil {
			return code, rerr
		}
	}
	return code, err
}

// lockRef resolves ref and takes the container's lock, failing with
// ErrRunning when another process holds it.
func (m *Manager) lockRef(ref string) (*Container, *lock, error) {
	c, err := m.Get(ref)
	if err != nil {
		return nil, nil, err
	}
	l, ok, err := m.tryLock(c.ID)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, fmt.Errorf("container %s: %w", ref, ErrRunning)
	}
	// Re-read under the lock: the holder we waited out may have changed it.
	if c, err = m.load(c.ID); err != nil {
		l.release()
		return nil, nil, err
	}
	return c, l, nil
}

// start runs c's process (c locked by the caller) and records how it ended.
// pl was made ahead for c's network mode (prelaunch).
func (m *Manager) start(ctx context.Context, c *Container, sio IO, pl *launch) (int, error) {
	// From here the process's fate is decided by signals, which the sandbox
	// forwards: the caller's signal-cancelled context must not kill it, nor
	// stop the bookkeeping after it.
	ctx = context.WithoutCancel(ctx)
	mounts := c.mounts
	if mounts == nil {
		var err error
		if mounts, err = m.mounts(ctx, c); err != nil {
			err = fmt.Errorf("container %s: %w", ShortID(c.ID), err)
			ready(sio.Ready, err)
			return rootfs.ExitSetup, err
		}
	}
	if c.State.Status != Running || c.State.Pid != os.Getpid() {
		c.State = State{Status: Running, Pid: os.Getpid(), StartedAt: time.Now().UTC()}
		if err := m.save(c, false); err != nil {
			ready(sio.Ready, err)
			return rootfs.ExitSetup, err
		}
	}
	ready(sio.Ready, nil)
	<-pl.caught
	spec := rootfs.Spec{
		Rootfs:          mounts,
		ReadOnly:        c.Host.ReadOnly,
		Args:            append([]string{c.Path}, c.Args...),
		Env:             c.Config.Env,
		WorkingDir:      c.Config.WorkingDir,
		User:            c.Config.User,
		Hostname:        c.Config.Hostname,
		Network:         c.Host.Network,
		Binds:           c.Host.Binds,
		Tmpfs:           c.Host.Tmpfs,
		TTY:             c.Config.Tty,
		Signals:         pl.sigs,
		NoNewPrivileges: c.Host.NoNewPrivileges,
		Memory:          c.Host.Memory,
		PidsLimit:       c.Host.PidsLimit,
		CPUs:            c.Host.CPUs,
	}
	// Typed nil *os.File would not read as "nil" through the interfaces.
	if sio.Stdin != nil {
		spec.Stdin = inStream(sio.Stdin, c.Config.Tty)
	}
	if sio.Stdout != nil {
		spec.Stdout = outStream(sio.Stdout, c.Config.Tty)
	}
	if sio.Stderr != nil {
		spec.Stderr = outStream(sio.Stderr, c.Config.Tty)
	}
	code, err := pl.sb.Run(ctx, spec)
	if err != nil && code == 0 {
		code = rootfs.ExitSetup
	}
	c.State.Status, c.State.ExitCode, c.State.Pid = Exited, code, 0
	c.State.FinishedAt = time.Now().UTC()
	if err != nil {
		c.State.Error = err.Error()
	}
	if !c.Host.AutoRemove {
		c.Transient = false
		if serr := m.save(c, false); serr != nil && err == nil {
			return code, serr
		}
	}
	return code, err
}

// unpinned reports whether c runs without a pin: the container of a
// `run --rm`. (A directory without a record, c.ID only, may have one.)
func (c *Container) unpinned() bool { return c.Transient && c.Host.AutoRemove }

// launch is what a foreground start readies while the container is being
// prepared: the sandbox's init (a re-exec of strata, some milliseconds) and
// the catching of the signals the sandbox forwards to the process (a dozen
// round trips through the Go runtime's signal thread, about a millisecond).
type launch struct {
	sb     *rootfs.Sandbox
	sigs   chan os.Signal
	caught chan struct{} // closed once sigs receives the forwarded signals
}

func prelaunch(network string) (*launch, error) {
	sb, err := rootfs.Start(network)
	if err != nil {
		return nil, err
	}
	pl := &launch{sb: sb, sigs: make(chan os.Signal, 16), caught: make(chan struct{})}
	go func() {
		signal.Notify(pl.sigs, rootfs.ForwardedSignals...)
		close(pl.caught)
	}()
	return pl, nil
}

// close stops catching the signals (after the container's removal, so that
// a second Ctrl-C does not cut that short) and ends an unused sandbox.
func (pl *launch) close() {
	<-pl.caught
	signal.Stop(pl.sigs)
	pl.sb.Close()
}

// Get returns the container ref names: a full ID, a name, or a unique ID
// prefix, in that order (as docker resolves them).
func (m *Manager) Get(ref string) (*Container, error) {
	if ref == "" {
		return nil, fmt.Errorf("container %q: %w", ref, ErrNotFound)
	}
	if fullID.MatchString(ref) {
		if c, err := m.load(ref); err == nil {
			return m.reconcile(c), nil
		}
	}
	all, err := m.scan()
	if err != nil {
		return nil, err
	}
	for _, c := range all {
		if c.Name == ref {
			return m.reconcile(c), nil
		}
	}
	var found *Container
	for _, c := range all {
		if strings.HasPrefix(c.ID, ref) {
			if found != nil {
				return nil, fmt.Errorf("container %q: prefix matches several containers", ref)
			}
			found = c
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	return m.reconcile(found), nil
}

// scan reads every container record. Directories without a readable record
// (a create cut short) are skipped.
func (m *Manager) scan() ([]*Container, error) {
	ents, err := os.ReadDir(m.root)
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	var out []*Container
	for _, e := range ents {
		if !e.IsDir() || !fullID.MatchString(e.Name()) {
			continue
		}
		c, err := m.load(e.Name())
		if err != nil {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// reconcile corrects the state of a container whose strata died: "running"
// while nobody holds the lock means exited. The process was killed with
// its strata (the sandbox dies with its parent): exit status 137.
func (m *Manager) reconcile(c *Container) *Container {
	if c.State.Status != Running || m.locked(c.ID) {
		return c
	}
	c.State.Status, c.State.ExitCode, c.State.Pid = Exited, 128+int(unix.SIGKILL), 0
	if c.State.FinishedAt.IsZero() {
		c.State.FinishedAt = time.Now().UTC()
	}
	return c
}

// locked reports whether some process holds c's lock.
func (m *Manager) locked(id string) bool {
	l, ok, err := m.tryLock(id)
	if err != nil {
		return false
	}
	l.release()
	return !ok
}

// List returns the running containers (all with all), newest first. It
// reaps what dead strata processes left: containers of `run --rm` and
// directories of creates cut short.
func (m *Manager) List(ctx context.Context, all bool) ([]*Container, error) {
	if err := m.Reap(ctx); err != nil {
		return nil, err
	}
	cs, err := m.scan()
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, c := range cs {
		c = m.reconcile(c)
		if all || c.State.Status == Running {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Reap removes the containers nobody will ever use again: those whose
// strata died while it ran them with --rm (or before Run started them), and
// directories left by a create cut short; then what the snapshotter's
// Cleanup finds.
func (m *Manager) Reap(ctx context.Context) error {
	gl, _, err := flock(filepath.Join(m.root, ".lock"), unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer gl.release()
	ents, err := os.ReadDir(m.root)
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !fullID.MatchString(e.Name()) {
			continue
		}
		id := e.Name()
		c, err := m.load(id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			continue // unreadable: leave it for a human
		}
		if c == nil {
			c = &Container{ID: id}
		} else if !c.reapable() {
			continue
		}
		l, ok, err := m.tryLock(id)
		if err != nil || !ok {
			continue
		}
		if err := m.destroy(ctx, c); err != nil {
			errs = append(errs, err)
		}
		l.release()
	}
	// And the snapshots' own leftovers: layers half unpacked by a killed
	// strata, snapshots whose Prepare never finished.
	if sn, err := m.snapshotter(""); err == nil {
		if err := sn.Cleanup(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reapable reports whether c is to be removed as soon as nobody holds its
// lock: an auto-removed container that ran, or that Run made.
func (c *Container) reapable() bool {
	return c.Host.AutoRemove && (c.State.Status == Running || c.Transient)
}

// reapOne removes c if nobody holds its lock (the caller holds the
// containers lock) and reports whether it did.
func (m *Manager) reapOne(ctx context.Context, c *Container) bool {
	l, ok, err := m.tryLock(c.ID)
	if err != nil || !ok {
		return false
	}
	defer l.release()
	return m.destroy(ctx, c) == nil
}

// Remove removes a container: its snapshot, pin and record. A running
// container is refused unless force, which kills it first.
func (m *Manager) Remove(ctx context.Context, ref string, force bool) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	l, ok, err := m.tryLock(c.ID)
	if err != nil {
		return err
	}
	if !ok {
		if !force {
			return fmt.Errorf("cannot remove container %s: %w: stop it first or use rm -f", ref, ErrRunning)
		}
		if l, err = m.kill(ctx, c); err != nil {
			return fmt.Errorf("removing container %s: %w", ref, err)
		}
	}
	defer l.release()
	return m.destroy(ctx, c)
}

// Stop stops a running container as docker stop does: SIGTERM to its
// process (through the strata that runs it, which forwards it), then
// SIGKILL after timeout. Stopping a container that is not running is not
// an error.
func (m *Manager) Stop(ctx context.Context, ref string, timeout time.Duration) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	if !m.locked(c.ID) {
		return nil
	}
	m.signal(c, unix.SIGTERM)
	l, err := m.waitUnlocked(ctx, c, timeout)
	if err == nil {
		l.release()
		return nil
	}
	if l, err = m.kill(ctx, c); err != nil {
		return fmt.Errorf("stopping container %s: %w", ref, err)
	}
	l.release()
	return nil
}

// signal sends sig to the strata process that runs c: only to the process
// that holds the lock, and only when it is the one the record names (a
// recorded PID alone may have been reused; the holder may be an rm or a
// commit, which must be waited for instead).
func (m *Manager) signal(c *Container, sig unix.Signal) error {
	c, err := m.load(c.ID)
	if err != nil {
		return err
	}
	if pid := c.State.Pid; c.State.Status == Running && pid > 0 && pid != os.Getpid() && lockHolder(m.lockPath(c.ID)) == pid {
		if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
			return fmt.Errorf("signalling container: %w", err)
		}
	}
	return nil
}

// kill ends the strata process that runs c (the sandbox dies with it) and
// returns c's lock once that process is gone.
func (m *Manager) kill(ctx context.Context, c *Container) (*lock, error) {
	if err := m.signal(c, unix.SIGKILL); err != nil {
		return nil, err
	}
	return m.waitUnlocked(ctx, c, 10*time.Second)
}

// waitUnlocked takes c's lock once its holder lets go, within timeout.
func (m *Manager) waitUnlocked(ctx context.Context, c *Container, timeout time.Duration) (*lock, error) {
	deadline := time.Now().Add(timeout)
	for {
		l, ok, err := m.tryLock(c.ID)
		if err != nil {
			return nil, err
		}
		if ok {
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("container is still running %s after it was signalled", timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// destroy removes c's snapshot, pin and directory (c locked by the caller).
// The record goes last, so that a failure leaves something to retry with rm.
func (m *Manager) destroy(ctx context.Context, c *Container) error {
	if err := m.removeSnapshot(ctx, c); err != nil {
		return fmt.Errorf("removing container %s: %w", ShortID(c.ID), err)
	}
	if !c.unpinned() {
		if err := m.s.Unpin(pinName(c.ID)); err != nil {
			return fmt.Errorf("removing container %s: %w", ShortID(c.ID), err)
		}
	}
	if err := os.RemoveAll(m.dir(c.ID)); err != nil {
		return fmt.Errorf("removing container %s: %w", ShortID(c.ID), err)
	}
	return nil
}

// inStream and outStream are what the sandbox gets of strata's standard
// streams. A file goes as it is (no copying), except a terminal when the
// container has no terminal of its own (-t): as docker does, the process
// then gets a pipe, never the host's terminal, which it could otherwise
// reconfigure or drive through ioctls.
func inStream(f *os.File, tty bool) io.Reader {
	if !tty && isTerminal(f) {
		return struct{ io.Reader }{f}
	}
	return f
}

func outStream(f *os.File, tty bool) io.Writer {
	if !tty && isTerminal(f) {
		return struct{ io.Writer }{f}
	}
	return f
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
