package snapshot

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

func (o *overlay) CommitRemove(ctx context.Context, key string) (v1.Layer, error) {
	p, err := o.commitRemove(ctx, key, false)
	if p == nil {
		return nil, err
	}
	return p.layer, err
}

func (o *overlay) CommitRemoveAsync(ctx context.Context, key string) (Pending, error) {
	p, err := o.commitRemove(ctx, key, true)
	if p == nil {
		return nil, err
	}
	return p, err
}

// commitRemove reads the upper directory's tree once and stores it, keeps
// the upper directory as the layer's unpacked form and removes the
// snapshot. With async and a big enough diff it only hashes the tree,
// promotes the directory, and stores the blob in the background from the
// promoted directory (the same tree, checked against the same digest),
// holding the shared gc.lock so that no Prune removes the directory first.
func (o *overlay) commitRemove(ctx context.Context, key string, async bool) (*pendingLayer, error) {
	dir, err := o.activeDir(key)
	if err != nil {
		return nil, err
	}
	t, _, err := o.tree(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("committing %s: %w", key, err)
	}
	write := func(w io.Writer) error { return writeTree(ctx, t, w, o.epoch) }
	// keep promotes the upper directory for the stored layer l and removes
	// the snapshot. Keeping the directory is an optimisation: on any
	// failure the layer is simply extracted again when it is needed.
	keep := func(l v1.Layer) (*pendingLayer, error) {
		if unlock, err := o.prepareLock(); err == nil {
			h, _ := l.DiffID()
			_, _ = o.promote(ctx, key, t, h)
			unlock()
		}
		p, err := stored(l)
		if err != nil {
			return nil, err
		}
		return p, o.Remove(ctx, key)
	}
	storeNow := func(want v1.Hash, size int64) (*pendingLayer, error) {
		l, err := storeBlob(o.s, want, size, write)
		if err != nil {
			return nil, fmt.Errorf("committing %s: %w", key, err)
		}
		return keep(l)
	}
	if !async || dataBytes(t) < asyncMinBytes {
		return storeNow(v1.Hash{}, -1)
	}
	diffID, size, err := hashTree(ctx, t, o.epoch)
	if err != nil {
		return nil, fmt.Errorf("committing %s: %w", key, err)
	}
	if o.s.HasBlob(diffID) { // an identical layer is stored already
		l, err := o.s.Layer(diffID)
		if err != nil {
			return nil, err
		}
		return keep(l)
	}
	unlock, err := o.prepareLock()
	if err != nil {
		return nil, err
	}
	fs, err := o.promote(ctx, key, t, diffID)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("committing %s: %w", key, err)
	}
	if fs == "" { // the chain's directory exists: the upper stays where it is
		unlock()
		return storeNow(diffID, size)
	}
	rebase(t, filepath.Join(dir, "upper"), fs)
	if err := o.Remove(ctx, key); err != nil {
		unlock()
		return nil, err
	}
	p := &pendingLayer{h: diffID, size: size, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer unlock()
		if testHookStore != nil {
			testHookStore(fs)
		}
		l, err := storeBlob(o.s, diffID, size, write)
		if err != nil {
			p.err = fmt.Errorf("storing layer %s: %w", diffID, err)
			return
		}
		p.layer = l
	}()
	return p, nil
}

// testHookStore, when set (tests), runs before a background store reads the
// promoted directory fs.
var testHookStore func(fs string)

// promote turns the upper directory of key, whose diff tree is t, into
// layers/CHAIN/fs for the layer diffID and returns that fs directory, or
// "" when the chain's directory exists already (the upper is left as it
// is). The caller holds the shared gc.lock; nothing writes to the upper.
func (o *overlay) promote(ctx context.Context, key string, t *node, diffID v1.Hash) (string, error) {
	dir, m, err := o.readMeta(key)
	if err != nil {
		return "", err
	}
	chain, err := childChain(m.Chain, diffID)
	if err != nil {
		return "", err
	}
	layers := filepath.Join(o.root, "layers")
	final := filepath.Join(layers, chain.Hex)
	if _, err := os.Stat(final); err == nil {
		return "", nil
	}
	unlockChain, err := lockFile(filepath.Join(layers, chain.Hex+".lock"))
	if err != nil {
		return "", err
	}
	defer unlockChain()
	if exists(final) {
		return "", nil // an untrusted one is extracted again by the next Prepare
	}
	upper := filepath.Join(dir, "upper")
	if err := pruneToTree(upper, t); err != nil {
		return "", fmt.Errorf("dropping what the layer leaves out: %w", err)
	}
	if err := fixToTar(t, o.epoch); err != nil {
		return "", fmt.Errorf("setting the layer's metadata: %w", err)
	}
	if err := os.Chown(upper, 0, 0); err != nil {
		return "", err
	}
	if err := os.Chmod(upper, 0o755); err != nil {
		return "", err
	}
	tmp := filepath.Join(layers, ".tmp-"+chain.Hex+"-"+randHex())
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(upper, filepath.Join(tmp, "fs")); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := seal(tmp); err != nil {
		removeTree(tmp)
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		removeTree(tmp)
		return "", err
	}
	if err := o.linkShort(chain); err != nil {
		return "", err
	}
	return filepath.Join(final, "fs"), nil
}

// pruneToTree removes from dir every entry the diff tree t left out (the
// sandbox's mountpoints).
func pruneToTree(dir string, t *node) error {
	names, err := readNames(dir)
	if err != nil {
		return err
	}
	keep := map[string]*node{}
	for _, c := range t.children {
		keep[c.name] = c
	}
	for _, name := range names {
		c, ok := keep[name]
		if !ok {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return err
			}
			continue
		}
		if c.isDir() {
			if err := pruneToTree(filepath.Join(dir, name), c); err != nil {
				return err
			}
		}
	}
	return nil
}

// fixToTar gives every entry of t the metadata extracting its tar entry
// gives: times as written (truncated to seconds, clamped to epoch; atime =
// mtime), no xattrs a layer does not carry, opaque markers as Unpack sets
// them. Children first: a directory's times are set after its content.
func fixToTar(t *node, epoch *time.Time) error {
	for _, c := range t.children {
		if c.whiteout {
			continue
		}
		if c.isDir() {
			if err := fixToTar(c, epoch); err != nil {
				return err
			}
		}
		xs, err := c.xattrNames()
		if err != nil {
			return err
		}
		for _, x := range xs {
			if skipXattr(x) && !(c.opaque && x == "trusted.overlay.opaque") {
				if err := unix.Lremovexattr(c.abs, x); err != nil && err != unix.ENODATA {
					return fmt.Errorf("%s: removing %s: %w", c.rel, x, err)
				}
			}
		}
		if c.opaque {
			if err := unix.Lsetxattr(c.abs, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
				return err
			}
		}
		mtime := time.Unix(c.st.Mtim.Sec, 0)
		if epoch != nil && mtime.After(*epoch) {
			mtime = *epoch
		}
		ts := unix.NsecToTimespec(mtime.UnixNano())
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, c.abs, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%s: %w", path.Clean(c.rel), err)
		}
	}
	return nil
}

// listXattrs lists the names of every xattr of p (none where the
// filesystem has no xattrs).
func listXattrs(p string) ([]string, error) {
	var small [1024]byte
	buf := small[:]
	n, err := unix.Llistxattr(p, buf)
	if err == unix.ERANGE {
		sz, err2 := unix.Llistxattr(p, nil)
		if err2 != nil {
			return nil, err2
		}
		buf = make([]byte, sz)
		n, err = unix.Llistxattr(p, buf)
	}
	if err == unix.ENOTSUP || err == nil && n == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, x := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if x != "" {
			out = append(out, x)
		}
	}
	return out, nil
}
