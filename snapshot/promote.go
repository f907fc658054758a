package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

func (o *overlay) CommitRemove(ctx context.Context, key string) (v1.Layer, error) {
	l, err := o.Commit(ctx, key)
	if err != nil {
		return nil, err
	}
	// Keeping the upper directory is an optimisation: on any failure the
	// layer is simply extracted again when it is needed.
	_ = o.promote(ctx, key, l)
	return l, o.Remove(ctx, key)
}

// promote turns the upper directory of key into layers/CHAIN/fs for the
// committed layer l. Run right after Commit, with nothing writing to it.
func (o *overlay) promote(ctx context.Context, key string, l v1.Layer) error {
	diffID, err := l.DiffID()
	if err != nil {
		return err
	}
	unlock, err := o.prepareLock()
	if err != nil {
		return err
	}
	defer unlock()
	dir, m, err := o.readMeta(key)
	if err != nil {
		return err
	}
	chain, err := childChain(m.Chain, diffID)
	if err != nil {
		return err
	}
	layers := filepath.Join(o.root, "layers")
	final := filepath.Join(layers, chain.Hex)
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	unlockChain, err := lockFile(filepath.Join(layers, chain.Hex+".lock"))
	if err != nil {
		return err
	}
	defer unlockChain()
	if exists(final) {
		return nil // an untrusted one is extracted again by the next Prepare
	}
	t, _, err := o.tree(ctx, key)
	if err != nil {
		return err
	}
	upper := filepath.Join(dir, "upper")
	if err := pruneToTree(upper, t); err != nil {
		return fmt.Errorf("dropping what the layer leaves out: %w", err)
	}
	if err := fixToTar(t, o.epoch); err != nil {
		return fmt.Errorf("setting the layer's metadata: %w", err)
	}
	if err := os.Chown(upper, 0, 0); err != nil {
		return err
	}
	if err := os.Chmod(upper, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(layers, ".tmp-"+chain.Hex+"-"+randHex())
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(upper, filepath.Join(tmp, "fs")); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := seal(tmp); err != nil {
		removeTree(tmp)
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		removeTree(tmp)
		return err
	}
	link := filepath.Join(o.root, "l", chain.Hex[:shortLinkLen])
	if err := os.Symlink("../layers/"+chain.Hex+"/fs", link); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
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
		xs, err := listXattrs(c.abs)
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

// listXattrs lists the names of every xattr of p.
func listXattrs(p string) ([]string, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err == unix.ENOTSUP || sz == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	buf := make([]byte, sz)
	n, err := unix.Llistxattr(p, buf)
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
