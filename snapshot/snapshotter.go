package snapshot

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/pgzip"
	"github.com/strata-dev/strata/store"
	"golang.org/x/sys/unix"
)

// Snapshotter gives containers writable filesystems over stacks of layers
// and turns what they changed into layers. Keys are chosen by the caller
// (a container ID, a build step); they name active snapshots only.
type Snapshotter interface {
	// Kind is "overlay" or "native".
	Kind() string
	// Prepare creates the active snapshot key over parents (bottom layer
	// first) and returns the mounts that make its root filesystem; it
	// mounts nothing itself (see MountAll). Each parent layer is unpacked
	// once and shared. It fails with ErrExists if key is already active.
	Prepare(ctx context.Context, key string, parents []v1.Layer) ([]Mount, error)
	// Mounts returns the mounts of an existing active snapshot again.
	Mounts(ctx context.Context, key string) ([]Mount, error)
	// Diff writes what the active snapshot changed as an uncompressed OCI
	// layer tar (see the package comment for its exact form).
	Diff(ctx context.Context, key string, w io.Writer) error
	// Commit stores Diff in the store, hashing it while it is written, and
	// returns the layer (digest == diffID). The snapshot stays active.
	Commit(ctx context.Context, key string) (v1.Layer, error)
	// CommitRemove is Commit then Remove. Where it can (overlay), the
	// snapshot's upper directory becomes the unpacked form of the new layer
	// (made exactly what extracting the layer would give: times truncated
	// or clamped, mountpoints and overlay bookkeeping dropped), so that a
	// snapshot over it needs no second extraction (builds: one per RUN).
	CommitRemove(ctx context.Context, key string) (v1.Layer, error)
	// CommitRemoveAsync is CommitRemove returning as soon as the layer's
	// digest is known and (overlay) the upper directory has become its
	// unpacked form: a big diff is hashed first and its blob written in
	// the background, from that directory, and checked against the same
	// digest. The next snapshot may use the layer at once; reading its
	// content waits for the blob (see Pending).
	CommitRemoveAsync(ctx context.Context, key string) (Pending, error)
	// Changes lists what the active snapshot changed, sorted by path, like
	// `docker diff`.
	Changes(ctx context.Context, key string) ([]Change, error)
	// Remove deletes the active snapshot. Unknown keys are not an error.
	Remove(ctx context.Context, key string) error
	// List returns the keys of the active snapshots, sorted.
	List(ctx context.Context) ([]string, error)
	// Cleanup removes what crashed processes left: half-unpacked layers and
	// snapshots whose Prepare never finished.
	Cleanup(ctx context.Context) error
	// Prune does what Cleanup does and removes every unpacked layer that no
	// active snapshot uses; it returns the bytes freed.
	Prune(ctx context.Context) (int64, error)
}

// ErrExists is returned (wrapped) by Prepare when the key is already active.
var ErrExists = errors.New("snapshot already exists")

// ErrNotExist is returned (wrapped) for an unknown key.
var ErrNotExist = errors.New("no such snapshot")

// ChangeKind is how a path changed.
type ChangeKind int

const (
	ChangeModify ChangeKind = iota
	ChangeAdd
	ChangeDelete
)

// String is the letter `docker diff` prints: A, C or D.
func (k ChangeKind) String() string {
	switch k {
	case ChangeAdd:
		return "A"
	case ChangeDelete:
		return "D"
	default:
		return "C"
	}
}

// Change is one changed path ("/etc/passwd").
type Change struct {
	Kind ChangeKind
	Path string
}

func (c Change) String() string { return c.Kind.String() + " " + c.Path }

// Option configures a Snapshotter.
type Option func(*base)

// WithSourceDateEpoch clamps the times written by Diff and Commit to t
// (reproducible builds). Without it the SOURCE_DATE_EPOCH environment
// variable is used when set.
func WithSourceDateEpoch(t time.Time) Option {
	return func(b *base) { b.epoch = &t }
}

// WithProcessOwned ties every snapshot this snapshotter prepares to the
// process: it holds a lock on the snapshot until Remove, and once the
// process is gone (a build killed mid-step) the next Cleanup, which every
// strata command runs when it can, removes the snapshot. For snapshots
// nothing outlives the process that made them (build steps).
func WithProcessOwned() Option {
	return func(b *base) { b.owned = true }
}

// WithSystemMountpoints makes Diff and Commit keep the empty /proc, /dev and
// /sys directories made as the sandbox's mountpoints (MakeSystemMountpoints)
// where the lower layers lack them, as BuildKit's RUN layers have them.
// Without it they are left out like the other SandboxMountpoints.
func WithSystemMountpoints() Option {
	return func(b *base) { b.keepSys = true }
}

// New returns a snapshotter over the store. kind is "overlay", "native" or
// "": the STRATA_SNAPSHOTTER environment variable when set, else overlay
// when it can be created on the store's filesystem, else native.
func New(s *store.Store, kind string, opts ...Option) (Snapshotter, error) {
	if kind == "" {
		kind = os.Getenv("STRATA_SNAPSHOTTER")
	}
	root, err := s.Dir("snapshots")
	if err != nil {
		return nil, fmt.Errorf("opening snapshots: %w", err)
	}
	b := &base{s: s, root: root}
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds", v)
		}
		t := time.Unix(sec, 0)
		b.epoch = &t
	}
	for _, o := range opts {
		o(b)
	}
	for _, d := range []string{"layers", "native", "active", "l"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("opening snapshots: %w", err)
		}
		if d != "l" {
			spread(filepath.Join(root, d))
		}
	}
	b.tidy()
	switch kind {
	case "":
		if OverlaySupported(root) == nil {
			return &overlay{base: b}, nil
		}
		return &native{b}, nil
	case "overlay":
		if err := OverlaySupported(root); err != nil {
			return nil, fmt.Errorf("overlay snapshotter unavailable on %s: %w", root, err)
		}
		return &overlay{base: b}, nil
	case "native":
		return &native{b}, nil
	}
	return nil, fmt.Errorf("unknown snapshotter %q (want overlay or native)", kind)
}

var probe struct {
	sync.Mutex
	res map[string]error
}

// OverlaySupported reports (once per directory and process) why an overlay
// cannot be created with its upper directory under dir, or nil.
func OverlaySupported(dir string) error {
	probe.Lock()
	defer probe.Unlock()
	if err, ok := probe.res[dir]; ok {
		return err
	}
	if probe.res == nil {
		probe.res = map[string]error{}
	}
	var err error
	if strings.Contains(dir, ":") {
		// Mount options separate overlay layers with ':'. (A ',' only
		// matters to the classic mount(2) fallback, whose probe fails then.)
		err = fmt.Errorf("path %q holds a ':'", dir)
	} else {
		err = overlayWorks(dir)
	}
	probe.res[dir] = err
	return err
}

// base is the state both snapshotters share: ROOT/snapshots holds
//
//	layers/HEX/fs       a layer unpacked alone with overlay whiteouts (HEX = chain ID)
//	l/HEX[:12]          symlink to ../layers/HEX/fs (short lowerdir names)
//	native/HEX/fs       the flattened tree of the chain HEX (native)
//	HEX.lock            held while that directory is being built
//	.tmp-HEX-*          a directory being built (removed by Cleanup)
//	gc.lock             shared by Prepare, exclusive for Cleanup and Prune
//	active/KEY/         an active snapshot: meta.json, upper+work or rootfs
type base struct {
	s     *store.Store
	root  string
	epoch *time.Time
	// keepSys keeps empty /proc, /dev and /sys mountpoints in diffs.
	keepSys bool
	// owned: snapshots are held by this process (WithProcessOwned); owners
	// holds the locked owner file of each.
	owned  bool
	mu     sync.Mutex
	owners map[string]*os.File
}

// meta is an active snapshot's record (active/KEY/meta.json). It is written
// last by Prepare: a directory without it is a Prepare that never finished.
type meta struct {
	Kind string `json:"kind"`
	// Lowers are the lower directories, top first.
	Lowers []string `json:"lowers"`
	// Chain is the chain ID of the parent layers ("" without parents).
	Chain string `json:"chain,omitempty"`
	// Owned: the snapshot lives as long as the process holding ownerFile.
	Owned bool `json:"owned,omitempty"`
}

// ownerFile is the file a process-owned snapshot's maker keeps locked.
const ownerFile = "owner.lock"

// topChain is the chain ID of the whole stack, "" for no layers.
func topChain(layers []v1.Layer) (string, error) {
	ids, err := chainIDs(layers)
	if err != nil || len(ids) == 0 {
		return "", err
	}
	return ids[len(ids)-1].String(), nil
}

// childChain is the chain ID of diffID on top of the chain parent ("" for
// none).
func childChain(parent string, diffID v1.Hash) (v1.Hash, error) {
	if parent == "" {
		return diffID, nil
	}
	p, err := v1.NewHash(parent)
	if err != nil {
		return v1.Hash{}, err
	}
	sum := sha256.Sum256([]byte(p.String() + " " + diffID.String()))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}, nil
}

// validKey reports whether key matches ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$.
// A loop, not a regexp: compiling one costs every strata process (and every
// container init) a third of a millisecond at start-up.
func validKey(key string) bool {
	if len(key) == 0 || len(key) > 128 {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func (b *base) activeDir(key string) (string, error) {
	if !validKey(key) {
		return "", fmt.Errorf("invalid snapshot key %q", key)
	}
	return filepath.Join(b.root, "active", key), nil
}

func (b *base) readMeta(key string) (string, *meta, error) {
	dir, err := b.activeDir(key)
	if err != nil {
		return "", nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("snapshot %s: %w", key, ErrNotExist)
	}
	if err != nil {
		return "", nil, fmt.Errorf("snapshot %s: %w", key, err)
	}
	var m meta
	if err := json.Unmarshal(data, &m); err != nil {
		return "", nil, fmt.Errorf("snapshot %s: reading meta.json: %w", key, err)
	}
	return dir, &m, nil
}

// newActive creates active/KEY (empty), failing with ErrExists.
func (b *base) newActive(key string) (string, error) {
	dir, err := b.activeDir(key)
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("snapshot %s: %w", key, ErrExists)
		}
		return "", err
	}
	if b.owned {
		f, err := os.OpenFile(filepath.Join(dir, ownerFile), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err == nil {
			if err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
				f.Close()
			}
		}
		if err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("snapshot %s: locking: %w", key, err)
		}
		b.mu.Lock()
		if b.owners == nil {
			b.owners = map[string]*os.File{}
		}
		b.owners[key] = f
		b.mu.Unlock()
	}
	return dir, nil
}

// ownerGone reports whether the process that made the owned snapshot in
// dir is gone (its lock on the owner file is free).
func ownerGone(dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, ownerFile), os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}

func writeMeta(dir string, m *meta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".meta.json.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "meta.json"))
}

func (b *base) Remove(ctx context.Context, key string) error {
	dir, err := b.activeDir(key)
	if err != nil {
		return err
	}
	// meta.json goes first: a half-removed snapshot is no longer listed.
	if err := os.Remove(filepath.Join(dir, "meta.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing snapshot %s: %w", key, err)
	}
	if err := removeTree(dir); err != nil {
		return fmt.Errorf("removing snapshot %s: %w", key, err)
	}
	b.mu.Lock()
	if f := b.owners[key]; f != nil {
		f.Close()
		delete(b.owners, key)
	}
	b.mu.Unlock()
	return nil
}

// removeTree removes dir without following symlinks and without crossing
// into mounts (a mount below dir makes it fail with EBUSY instead).
func removeTree(dir string) error {
	parent, err := os.Open(filepath.Dir(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer parent.Close()
	return removeAllAt(int(parent.Fd()), filepath.Base(dir))
}

func (b *base) List(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(b.root, "active"))
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(b.root, "active", e.Name(), "meta.json")); err == nil {
			keys = append(keys, e.Name())
		}
	}
	return keys, nil
}

// tidy runs Cleanup when no Prepare is running anywhere (never waiting), so
// what a killed strata left behind goes away with the next strata command.
func (b *base) tidy() {
	unlock, err := flock(filepath.Join(b.root, "gc.lock"), unix.LOCK_EX|unix.LOCK_NB)
	if err != nil {
		return
	}
	defer unlock()
	_, _ = b.cleanup(context.Background(), false)
}

// prepareLock is held (shared) by every Prepare; Cleanup and Prune hold it
// exclusively, so they never see a Prepare half done.
func (b *base) prepareLock() (func(), error) {
	return flock(filepath.Join(b.root, "gc.lock"), unix.LOCK_SH)
}

func (b *base) Cleanup(ctx context.Context) error {
	unlock, err := flock(filepath.Join(b.root, "gc.lock"), unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = b.cleanup(ctx, false)
	return err
}

// Prune removes what Cleanup removes and every unpacked layer no active
// snapshot uses (they are unpacked again when needed). It returns the
// number of bytes freed.
func (b *base) Prune(ctx context.Context) (int64, error) {
	unlock, err := flock(filepath.Join(b.root, "gc.lock"), unix.LOCK_EX)
	if err != nil {
		return 0, err
	}
	defer unlock()
	return b.cleanup(ctx, true)
}

// cleanup runs under the exclusive gc.lock: no Prepare is running.
func (b *base) cleanup(ctx context.Context, unused bool) (int64, error) {
	var errs []error
	var freed int64
	remove := func(p string) {
		freed += diskUsage(p)
		if err := removeTree(p); err != nil {
			errs = append(errs, err)
		}
	}
	used := map[string]bool{}
	ents, err := os.ReadDir(filepath.Join(b.root, "active"))
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		d := filepath.Join(b.root, "active", e.Name())
		_, m, err := b.readMeta(e.Name())
		if errors.Is(err, ErrNotExist) {
			remove(d) // a Prepare (or Remove) that died
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m.Owned && ownerGone(d) {
			remove(d) // its build was killed
			continue
		}
		for _, l := range m.Lowers {
			used[filepath.Dir(l)] = true
		}
	}
	for _, sub := range []string{"layers", "native"} {
		dir := filepath.Join(b.root, sub)
		ents, err := os.ReadDir(dir)
		if err != nil {
			return freed, err
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			switch {
			case strings.HasPrefix(e.Name(), ".tmp-"):
				remove(p)
			case unused && e.IsDir() && !used[p]:
				remove(p)
				os.Remove(p + ".lock")
			}
		}
	}
	// overlay probes of dead processes (a live probe lasts milliseconds)
	probes, _ := filepath.Glob(filepath.Join(b.root, ".probe-*"))
	for _, p := range probes {
		if fi, err := os.Lstat(p); err == nil && time.Since(fi.ModTime()) > time.Minute {
			remove(p)
		}
	}
	if unused {
		links, _ := os.ReadDir(filepath.Join(b.root, "l"))
		for _, e := range links {
			p := filepath.Join(b.root, "l", e.Name())
			if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
				os.Remove(p)
			}
		}
	}
	return freed, errors.Join(errs...)
}

// diskUsage is the space the files under p take.
func diskUsage(p string) int64 {
	var n int64
	filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
		var st unix.Stat_t
		if err == nil && unix.Lstat(path, &st) == nil {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// Commit streams Diff into the store: the tar writer writes through a big
// buffer straight into the store's hashing writer.
func commit(ctx context.Context, s *store.Store, key string, diff func(context.Context, string, io.Writer) error) (v1.Layer, error) {
	l, err := storeBlob(s, v1.Hash{}, -1, func(w io.Writer) error { return diff(ctx, key, w) })
	if err != nil {
		return nil, fmt.Errorf("committing %s: %w", key, err)
	}
	return l, nil
}

// chainIDs returns the chain ID of each prefix of layers.
func chainIDs(layers []v1.Layer) ([]v1.Hash, error) {
	out := make([]v1.Hash, len(layers))
	var prev v1.Hash
	for i, l := range layers {
		d, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("layer %d: diffID: %w", i, err)
		}
		if i == 0 {
			prev = d
		} else {
			sum := sha256.Sum256([]byte(prev.String() + " " + d.String()))
			prev = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		}
		out[i] = prev
	}
	return out, nil
}

// ensureDir makes sub/HEX/fs with build unless it exists: built in a temp
// directory, sealed (see durable.go) and renamed into place under HEX.lock,
// so concurrent processes build it once and a crash never leaves half of it.
func (b *base) ensureDir(ctx context.Context, sub string, id v1.Hash, build func(fs string) error) (string, error) {
	dir := filepath.Join(b.root, sub)
	final := filepath.Join(dir, id.Hex)
	if ready(final) {
		return filepath.Join(final, "fs"), nil
	}
	unlock, err := lockFile(filepath.Join(dir, id.Hex+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if ready(final) {
		return filepath.Join(final, "fs"), nil
	}
	if err := discardStale(dir, final, id.Hex); err != nil {
		return "", fmt.Errorf("removing an unpacked layer of an earlier boot: %w", err)
	}
	// Under the lock, temp directories of this chain are a dead process's.
	stale, _ := filepath.Glob(filepath.Join(dir, ".tmp-"+id.Hex+"-*"))
	for _, p := range stale {
		removeTree(p)
	}
	tmp := filepath.Join(dir, ".tmp-"+id.Hex+"-"+randHex())
	if err := os.MkdirAll(filepath.Join(tmp, "fs"), 0o755); err != nil {
		return "", err
	}
	if err := build(filepath.Join(tmp, "fs")); err != nil {
		removeTree(tmp)
		return "", err
	}
	if err := seal(tmp); err != nil {
		removeTree(tmp)
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		removeTree(tmp)
		if ready(final) {
			return filepath.Join(final, "fs"), nil
		}
		return "", err
	}
	return filepath.Join(final, "fs"), nil
}

func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

func randHex() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func lockFile(p string) (func(), error) {
	return flock(p, unix.LOCK_EX)
}

func flock(p string, how int) (func(), error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}

// unpackLayer extracts a layer's uncompressed tar into dir.
// gzip is decompressed with pgzip (read-ahead and CRC on other cores); the
// uncompressed stream is hashed while it is extracted and must match the
// layer's diffID, so a layer directory never holds content other than what
// its chain ID names.
func unpackLayer(ctx context.Context, l v1.Layer, dir string, opts UnpackOptions) error {
	want, err := l.DiffID()
	if err != nil {
		return err
	}
	rc, err := uncompressed(l)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	tee := io.TeeReader(rc, h)
	if err := Unpack(ctx, tee, dir, opts); err != nil {
		return err
	}
	// the tar may end before the stream (padding to a record size)
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return fmt.Errorf("reading layer %s: %w", want, err)
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if want.Algorithm == "sha256" && got != want {
		return fmt.Errorf("layer %s: content has diffID %s: %w", want, got, store.ErrDigestMismatch)
	}
	return nil
}

// uncompressed opens l's uncompressed tar stream.
func uncompressed(l v1.Layer) (io.ReadCloser, error) {
	rc, err := l.Compressed()
	if err != nil {
		return l.Uncompressed()
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := pgzip.NewReader(br)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		return &gzipReadCloser{zr, rc}, nil
	}
	rc.Close()
	return l.Uncompressed()
}

type gzipReadCloser struct {
	*pgzip.Reader
	c io.Closer
}

func (g *gzipReadCloser) Close() error {
	g.Reader.Close()
	return g.c.Close()
}

// ApplyLayers extracts layers (bottom first) into dir, applying whiteouts:
// the flattened root filesystem of an image (type=local outputs, export).
func ApplyLayers(ctx context.Context, layers []v1.Layer, dir string, opts UnpackOptions) error {
	opts.Whiteouts = WhiteoutApply
	for i, l := range layers {
		if err := unpackLayer(ctx, l, dir, opts); err != nil {
			d, _ := l.DiffID()
			return fmt.Errorf("applying layer %d (%s): %w", i+1, d, err)
		}
	}
	return nil
}

// UnpackImage writes img's flattened root filesystem into dir.
func UnpackImage(ctx context.Context, img v1.Image, dir string, opts UnpackOptions) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("unpacking image: %w", err)
	}
	return ApplyLayers(ctx, layers, dir, opts)
}

func defaultUnpackOptions() UnpackOptions {
	root := os.Geteuid() == 0
	return UnpackOptions{Devices: root, NoChown: !root}
}
