package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/rootfs"
	"github.com/strata-dev/strata/snapshot"
)

// runArgs turns a RUN into the process's argv (BuildKit's dispatchRun):
// shell form through the image's SHELL, heredocs run by the shell or, with
// a shebang, as a script file.
func (st *stage) runArgs(c *instructions.RunCommand) (args []string, script *instructions.ShellInlineFile, err error) {
	args = c.CmdLine
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, nil, fmt.Errorf("parsing produced an invalid run command: %v", args)
		}
		if h := parser.MustParseHeredoc(args[0]); h != nil {
			f := c.Files[0]
			data := f.Data
			if f.Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(f.Data, "#!") {
				// run by the shell as a file (so its shebang counts)
				f.Data = data
				script = &f
				args = []string{scriptPath(script)}
			} else {
				args = []string{data}
			}
		} else {
			full := args[0]
			for _, f := range c.Files {
				full += "\n" + f.Data + f.Name
			}
			args = []string{full}
		}
	}
	if c.PrependShell {
		args = st.withShell(args)
	}
	return args, script, nil
}

// scriptPath is where a RUN heredoc with a shebang is mounted, as in
// BuildKit.
func scriptPath(f *instructions.ShellInlineFile) string {
	return path.Join("/dev/pipes", f.Name)
}

// runMount is a RUN --mount made ready for the sandbox.
type runMount struct {
	bind   *rootfs.Bind
	tmpfs  *rootfs.Tmpfs
	env    string // KEY=VALUE of a secret exposed as an environment variable
	unlock func()
}

func (st *stage) run(ctx context.Context, c *instructions.RunCommand) error {
	b := st.b
	args, script, err := st.runArgs(c)
	if err != nil {
		return err
	}
	cfg := st.img.Config
	network := instructions.GetNetwork(c)
	if network == "" || network == "default" {
		network = b.opts.Network
	}
	if network == "" {
		network = rootfs.NetworkHost
	}
	if network != rootfs.NetworkHost && network != rootfs.NetworkNone {
		return fmt.Errorf("RUN --network=%s is not supported (host or none)", network)
	}
	mounts := instructions.GetMounts(c)
	key := cache.NewKey("run").Add(st.key, b.plat.String(), cfg.WorkingDir, cfg.User, network).
		AddList(args).AddList(st.env.List())
	if script != nil {
		key.Add("script", script.Name, script.Data)
	}
	for _, m := range mounts {
		id, err := st.mountIdentity(m)
		if err != nil {
			return err
		}
		key.Add("mount", string(m.Type), m.Target, m.From, m.Source, m.CacheID, string(m.CacheSharing),
			strconv.FormatBool(m.ReadOnly), optUint(m.Mode), optUint(m.UID), optUint(m.GID), id)
	}
	// names of the build args in scope, never their values
	var names []string
	for _, a := range st.args {
		names = append(names, a.Key)
	}
	hist := "RUN "
	if len(names) > 0 {
		hist += "|" + strconv.Itoa(len(names)) + " " + strings.Join(names, " ") + " "
	}
	hist += strings.Join(args, " ") + " # buildkit"
	name := st.prefix() + "RUN " + strings.Join(c.CmdLine, " ")
	if len(c.Files) > 0 {
		name += " (" + summarize(c.Files[0].Data) + ")"
	}
	return st.layerStep(ctx, name, key.Sum(), hist, func(v *vertex) (v1.Layer, error) {
		return st.execRun(ctx, v, args, script, network, mounts)
	})
}

func summarize(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + "..."
	}
	return s
}

func optUint(p *uint64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatUint(*p, 10)
}

// mountIdentity is what a bind mount's content contributes to the RUN key.
func (st *stage) mountIdentity(m *instructions.Mount) (string, error) {
	if m.Type != instructions.MountTypeBind {
		return "", nil
	}
	if m.From != "" {
		return st.fromIdentity(m.From), nil
	}
	files, err := walkSource(st.b.bctx.root, strings.TrimPrefix(path.Clean("/"+m.Source), "/"), st.b.bctx.ignore, nil)
	if err != nil {
		return "", fmt.Errorf("--mount=type=bind,source=%s: %w", m.Source, err)
	}
	k := cache.NewKey("bind")
	for _, f := range files {
		if f.fi.Mode().IsRegular() {
			if f.sum, err = st.b.bctx.hasher.Sum(f.abs, f.fi); err != nil {
				return "", err
			}
		}
		k.Add(f.rel, strconv.FormatUint(uint64(f.fi.Mode()), 8), f.link, f.sum)
	}
	return k.Sum(), nil
}

func (b *builder) snapshotter() (snapshot.Snapshotter, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.snap != nil {
		return b.snap, nil
	}
	// RUN layers keep the /proc, /dev and /sys mountpoints the base lacked,
	// as BuildKit's do.
	opts := []snapshot.Option{snapshot.WithSystemMountpoints(), snapshot.WithProcessOwned()}
	if b.epoch != nil {
		opts = append(opts, snapshot.WithSourceDateEpoch(*b.epoch))
	}
	sn, err := snapshot.New(b.s, "", opts...)
	if err != nil {
		return nil, err
	}
	b.snap = sn
	return sn, nil
}

func randomKey() string {
	var r [8]byte
	rand.Read(r[:])
	return "build-" + hex.EncodeToString(r[:])
}

// runHosts is a RUN's /etc/hosts, BuildKit's: its host name resolves
// (sudo, hostname -f and JVMs look it up), whatever the network.
const runHosts = "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"

// runEnv is a RUN's environment: the stage's (ENV and the build args in
// scope) and, as in BuildKit and docker, the proxy build args given with
// --build-arg (HTTP_PROXY...) even where no ARG declares them. Those are
// kept out of the cache key and the history, so a build behind a proxy
// and one without share their cache.
func (st *stage) runEnv() []string {
	env := st.env.List()
	var proxies []string
	for k, v := range st.b.opts.BuildArgs {
		if _, declared := st.env.Get(k); proxyArgs[k] && !declared {
			proxies = append(proxies, k+"="+v)
		}
	}
	sort.Strings(proxies)
	return append(env, proxies...)
}

// execRun runs the command in the sandbox over the stage's layers and
// returns the layer of what it changed. The snapshot and every temporary
// mount source are removed whatever happens.
func (st *stage) execRun(ctx context.Context, v *vertex, args []string, script *instructions.ShellInlineFile, network string, mounts []*instructions.Mount) (v1.Layer, error) {
	b := st.b
	sn, err := b.snapshotter()
	if err != nil {
		return nil, err
	}
	cfg := st.img.Config
	spec := rootfs.Spec{
		Args:       args,
		Env:        st.runEnv(),
		WorkingDir: cfg.WorkingDir,
		User:       cfg.User,
		Hostname:   "buildkitsandbox",
		Hosts:      []byte(runHosts),
		Network:    network,
		Stdout:     v,
		Stderr:     v,
	}
	if script != nil {
		dir, err := b.tempDir("script-")
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, "script")
		if err := os.WriteFile(p, []byte(script.Data), 0o755); err != nil {
			return nil, err
		}
		spec.Binds = append(spec.Binds, rootfs.Bind{Source: p, Target: scriptPath(script), ReadOnly: true})
	}
	var unlocks []func()
	defer func() {
		for _, u := range unlocks {
			u()
		}
	}()
	nssh := 0
	for _, m := range mounts {
		var rm runMount
		if m.Type == instructions.MountTypeSSH {
			rm, err = st.prepareSSH(m, nssh)
			nssh++
		} else {
			rm, err = st.prepareMount(ctx, m)
		}
		if err != nil {
			return nil, err
		}
		if rm.unlock != nil {
			unlocks = append(unlocks, rm.unlock)
		}
		if rm.bind != nil {
			spec.Binds = append(spec.Binds, *rm.bind)
		}
		if rm.tmpfs != nil {
			spec.Tmpfs = append(spec.Tmpfs, *rm.tmpfs)
		}
		if rm.env != "" {
			spec.Env = append(spec.Env, rm.env)
		}
	}
	var stubs []string
	if len(spec.Binds)+len(spec.Tmpfs) > 0 {
		if stubs, err = st.mountStubs(spec); err != nil {
			return nil, err
		}
	}
	key := randomKey()
	ms, err := sn.Prepare(ctx, key, st.layers)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		// Deleting a failed step's snapshot is off the critical path;
		// Build waits for it before returning.
		b.background(func() {
			if err := sn.Remove(context.WithoutCancel(ctx), key); err != nil {
				b.prog.warn("removing snapshot " + key + ": " + err.Error())
			}
		})
	}()
	spec.Rootfs = ms
	spec.Ephemeral = true // the upper is committed right after: no sync at unmount
	if err := snapshot.MakeSystemMountpoints(ms); err != nil {
		return nil, err
	}
	code, err := rootfs.Run(ctx, spec)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("process %q could not be started: %w", strings.Join(args, " "), err)
	}
	if code != 0 {
		return nil, &ExitError{Cmd: strings.Join(args, " "), Code: code}
	}
	removeStubs(ms, stubs)
	// The upper directory becomes the unpacked layer (overlay), so the next
	// RUN over this layer needs no extraction, and a big layer's blob is
	// written while the next step runs (Build waits for it).
	l, err := sn.CommitRemoveAsync(b.buildCtx, key)
	if err != nil {
		return nil, err
	}
	committed = true
	return l, nil
}

// mountStubs lists the paths the sandbox will create as mount points for
// RUN's mounts (those missing from the image), deepest first. Like
// BuildKit, strata removes them again when still empty, so a mount never
// leaves a trace in the layer.
func (st *stage) mountStubs(spec rootfs.Spec) ([]string, error) {
	view, err := st.fsView()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	var targets []string
	for _, b := range spec.Binds {
		targets = append(targets, b.Target)
	}
	for _, t := range spec.Tmpfs {
		targets = append(targets, t.Target)
	}
	for _, t := range targets {
		for p := cleanName(t); p != ""; p = parentOf(p) {
			if rp, err := view.resolve(p, false); err == nil {
				if _, ok := view.get(rp); ok {
					break
				}
			}
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out, nil
}

// removeStubs deletes empty mount stubs from the snapshot's writable
// directory (the overlay upperdir, or the native snapshot's root).
func removeStubs(ms []snapshot.Mount, stubs []string) {
	if len(stubs) == 0 || len(ms) == 0 {
		return
	}
	root := ms[0].WritableDir()
	if root == "" {
		return
	}
	for _, s := range stubs {
		p, err := securejoin.SecureJoin(root, s)
		if err != nil {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if fi.Mode().IsRegular() && fi.Size() == 0 {
			os.Remove(p)
		} else if fi.IsDir() {
			os.Remove(p) // fails when not empty: kept
		}
	}
}

// ExitError is a RUN whose process exited non-zero.
type ExitError struct {
	Cmd  string
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("process %q did not complete successfully: exit code: %d", e.Cmd, e.Code)
}

// mountOwner is a mount's uid= and gid= (default 0).
func mountOwner(m *instructions.Mount) (uid, gid int) {
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	return uid, gid
}

// newCacheDir makes a cache mount's directory: a copy of base when there is
// one, else empty with m's mode and owner. A rename puts it in place, so a
// concurrent build sees either none or a whole one.
func newCacheDir(dir, base string, m *instructions.Mount) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".new-")
	if err != nil {
		return err
	}
	if base != "" {
		os.Remove(tmp)
		if out, err := exec.Command("cp", "-a", base, tmp).CombinedOutput(); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("seeding it from %s: %v: %s", m.From, err, strings.TrimSpace(string(out)))
		}
	} else {
		mode := os.FileMode(0o755)
		if m.Mode != nil {
			mode = tarMode(int64(*m.Mode))
		}
		uid, gid := mountOwner(m)
		os.Chmod(tmp, mode)
		os.Chown(tmp, uid, gid)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp) // another build made it first
	}
	return nil
}

// fromIdentity names what a mount's from=NAME (a stage or an image) holds,
// for the RUN's key and a cache mount's identity.
func (st *stage) fromIdentity(from string) string {
	if dep := st.b.stageRef(from, st.index); dep != nil {
		return "stage:" + dep.key
	}
	return "image:" + from
}

// fromPath returns where src of from= (a stage or an image) is on disk,
// made ready there.
func (st *stage) fromPath(ctx context.Context, from, src string) (string, error) {
	cs, err := st.copySource(ctx, from)
	if err != nil {
		return "", err
	}
	if err := cs.materialize(st.b, []string{src}); err != nil {
		return "", err
	}
	return securejoin.SecureJoin(cs.root, src)
}

// cacheSeed returns the directory a new cache mount with from= starts as a
// copy of: m.From's src, made ready on disk.
func (st *stage) cacheSeed(ctx context.Context, m *instructions.Mount, src string) (string, error) {
	base, err := st.fromPath(ctx, m.From, src)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("--mount=type=cache,from=%s,source=%s: not a directory", m.From, m.Source)
	}
	return base, nil
}

// prepareMount makes a RUN --mount's source ready.
func (st *stage) prepareMount(ctx context.Context, m *instructions.Mount) (runMount, error) {
	b := st.b
	target := m.Target
	if target != "" && !path.IsAbs(target) {
		target = path.Join(st.img.Config.WorkingDir, target)
	}
	switch m.Type {
	case instructions.MountTypeTmpfs:
		return runMount{tmpfs: &rootfs.Tmpfs{Target: target, Size: m.SizeLimit}}, nil
	case instructions.MountTypeCache:
		id := m.CacheID
		if id == "" {
			id = target
		}
		// from=STAGE|IMAGE[,source=PATH]: the cache starts as a copy of that
		// path, and a different base is a different cache.
		src := strings.TrimPrefix(path.Clean("/"+m.Source), "/")
		if m.From != "" {
			id += "\x00from " + st.fromIdentity(m.From) + "\x00/" + src
		}
		// uid=, gid= or mode= give the cache a base too (BuildKit makes it
		// with a mkdir): the same id with other permissions is another cache.
		if m.UID != nil || m.GID != nil || m.Mode != nil {
			uid, gid := mountOwner(m)
			mode := uint64(0o755)
			if m.Mode != nil {
				mode = *m.Mode
			}
			id += fmt.Sprintf("\x00perms %d:%d %o", uid, gid, mode)
		}
		cdir, err := b.s.Dir("cache")
		if err != nil {
			return runMount{}, err
		}
		dir := filepath.Join(cdir, "mounts", cache.ContextID(id))
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			var base string
			if m.From != "" {
				// only a new cache needs its base (materialized on demand)
				if base, err = st.cacheSeed(ctx, m, src); err != nil {
					return runMount{}, err
				}
			}
			if err := newCacheDir(dir, base, m); err != nil {
				return runMount{}, fmt.Errorf("cache mount %s: %w", target, err)
			}
		}
		rm := runMount{bind: &rootfs.Bind{Source: dir, Target: target, ReadOnly: m.ReadOnly}}
		switch m.CacheSharing {
		case instructions.MountSharingLocked, instructions.MountSharingPrivate:
			f, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
			if err != nil {
				return runMount{}, err
			}
			how := unix.LOCK_EX
			if m.CacheSharing == instructions.MountSharingPrivate {
				how |= unix.LOCK_NB
			}
			if err := unix.Flock(int(f.Fd()), how); err != nil {
				f.Close()
				if m.CacheSharing == instructions.MountSharingPrivate && errors.Is(err, unix.EWOULDBLOCK) {
					// private: the shared directory is in use; this RUN gets
					// a fresh one of its own (discarded afterwards)
					tmp, err := b.tempDir("cache-private-")
					if err != nil {
						return runMount{}, err
					}
					rm.bind.Source = tmp
					return rm, nil
				}
				return runMount{}, err
			}
			rm.unlock = func() { f.Close() }
		}
		return rm, nil
	case instructions.MountTypeSecret:
		id := m.CacheID
		if id == "" {
			id = path.Base(m.Target)
		}
		if target == "" {
			target = "/run/secrets/" + id
		}
		var sec *Secret
		for i := range b.opts.Secrets {
			if b.opts.Secrets[i].ID == id {
				sec = &b.opts.Secrets[i]
			}
		}
		if sec == nil {
			if m.Required {
				return runMount{}, fmt.Errorf("secret %s: not provided (--secret id=%s,src=PATH)", id, id)
			}
			return runMount{}, nil
		}
		var data []byte
		var err error
		if sec.Src != "" {
			data, err = os.ReadFile(sec.Src)
			if err != nil {
				return runMount{}, fmt.Errorf("secret %s: %w", id, err)
			}
		} else {
			val, ok := os.LookupEnv(sec.Env)
			if !ok {
				return runMount{}, fmt.Errorf("secret %s: environment variable %s is not set", id, sec.Env)
			}
			data = []byte(val)
		}
		dir, err := b.tempDir("secret-")
		if err != nil {
			return runMount{}, err
		}
		p := filepath.Join(dir, "secret")
		mode := os.FileMode(0o400)
		if m.Mode != nil {
			mode = os.FileMode(*m.Mode) & 0o7777
		}
		var envVar string
		if m.Env != nil && *m.Env != "" {
			// env=VAR: the secret is the variable's value in RUN's process
			// only (never in the config, the history or the cache key)
			envVar = *m.Env + "=" + string(data)
			if m.Target == "" {
				return runMount{env: envVar}, nil
			}
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			return runMount{}, err
		}
		os.Chmod(p, mode)
		uid, gid := mountOwner(m)
		os.Chown(p, uid, gid)
		return runMount{bind: &rootfs.Bind{Source: p, Target: target, ReadOnly: true}, env: envVar}, nil
	case instructions.MountTypeBind:
		src := strings.TrimPrefix(path.Clean("/"+m.Source), "/")
		var p string
		var owner [2]uint32 // shown as root: the context's owner
		if m.From == "" {
			var err error
			if p, err = st.contextBindSource(src); err != nil {
				return runMount{}, err
			}
			if owner, err = b.bctx.owner(); err != nil {
				return runMount{}, err
			}
		} else {
			var err error
			if p, err = st.fromPath(ctx, m.From, src); err != nil {
				return runMount{}, err
			}
			if _, err := os.Stat(p); err != nil {
				return runMount{}, fmt.Errorf("--mount=type=bind,source=%s: %w", m.Source, err)
			}
		}
		if !m.ReadOnly {
			// writes to a rw bind are discarded: give the container a copy
			dir, err := b.tempDir("bind-")
			if err != nil {
				return runMount{}, err
			}
			cp := filepath.Join(dir, "src")
			if out, err := exec.Command("cp", "-a", p, cp).CombinedOutput(); err != nil {
				return runMount{}, fmt.Errorf("copying bind source: %v: %s", err, out)
			}
			p = cp
		}
		return runMount{bind: &rootfs.Bind{Source: p, Target: target, ReadOnly: m.ReadOnly, RootUID: owner[0], RootGID: owner[1]}}, nil
	}
	return runMount{}, fmt.Errorf("unknown mount type %q", m.Type)
}
