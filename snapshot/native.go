package snapshot

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/internal/fsutil"
)

// native copies the flattened lower tree (native/CHAIN/fs) into
// active/KEY/rootfs and diffs by comparing the two trees.
type native struct{ *base }

// origTag marks the directories a native snapshot started with; its value
// is the directory's inode number, so a directory deleted and recreated (or
// copied with its xattrs) under the same name is seen as new.
const origTag = "trusted.strata.orig"

func (n *native) Kind() string { return "native" }

func (n *native) Prepare(ctx context.Context, key string, parents []v1.Layer) ([]Mount, error) {
	unlock, err := n.prepareLock()
	if err != nil {
		return nil, fmt.Errorf("preparing %s: %w", key, err)
	}
	defer unlock()
	dir, err := n.newActive(key)
	if err != nil {
		return nil, fmt.Errorf("preparing %s: %w", key, err)
	}
	fail := func(err error) ([]Mount, error) {
		n.Remove(ctx, key)
		return nil, fmt.Errorf("preparing %s: %w", key, err)
	}
	lower, err := n.flattened(ctx, parents)
	if err != nil {
		return fail(err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := copyTree(ctx, lower, rootfs, copyContainer); err != nil {
		return fail(fmt.Errorf("copying the lower tree: %w", err))
	}
	if err := writeMeta(dir, &meta{Kind: "native", Lowers: []string{lower}, Owned: n.owned}); err != nil {
		return fail(err)
	}
	return n.mounts(dir), nil
}

// flattened returns the flattened tree of layers, building it from the
// longest prefix already built.
func (n *native) flattened(ctx context.Context, layers []v1.Layer) (string, error) {
	if len(layers) == 0 {
		empty := filepath.Join(n.root, "empty")
		return empty, os.MkdirAll(empty, 0o755)
	}
	ids, err := chainIDs(layers)
	if err != nil {
		return "", err
	}
	return n.ensureDir(ctx, "native", ids[len(ids)-1], func(fs string) error {
		start := 0
		for i := len(ids) - 2; i >= 0; i-- {
			prev := filepath.Join(n.root, "native", ids[i].Hex, "fs")
			if _, err := os.Stat(prev); err == nil {
				// files are shared with the prefix's tree: both are
				// immutable, and Unpack replaces files, never edits them
				if err := copyTree(ctx, prev, fs, copyShared); err != nil {
					return err
				}
				start = i + 1
				break
			}
		}
		opts := defaultUnpackOptions()
		opts.Whiteouts = WhiteoutApply
		for i := start; i < len(layers); i++ {
			if err := unpackLayer(ctx, layers[i], fs, opts); err != nil {
				d, _ := layers[i].DiffID()
				return fmt.Errorf("applying layer %s: %w", d, err)
			}
		}
		return nil
	})
}

func (n *native) mounts(dir string) []Mount {
	return []Mount{{Type: "bind", Source: filepath.Join(dir, "rootfs"), Options: []string{"rbind", "rw"}}}
}

func (n *native) Mounts(ctx context.Context, key string) ([]Mount, error) {
	dir, _, err := n.readMeta(key)
	if err != nil {
		return nil, err
	}
	return n.mounts(dir), nil
}

func (n *native) tree(ctx context.Context, key string) (*node, lowerView, error) {
	dir, m, err := n.readMeta(key)
	if err != nil {
		return nil, nil, err
	}
	if len(m.Lowers) != 1 {
		return nil, nil, fmt.Errorf("snapshot %s: not a native snapshot", key)
	}
	lower := m.Lowers[0]
	root, err := lstatNode(filepath.Join(dir, "rootfs"), "", "")
	if err != nil {
		return nil, nil, err
	}
	if _, err := compareDir(ctx, root, lower); err != nil {
		return nil, nil, fmt.Errorf("reading changes of %s: %w", key, err)
	}
	lv := dirLower(lower)
	excludeMountpoints(root, lv, n.keepSys)
	dropIdleOpaque(root, lv)
	return root, lv, nil
}

func (n *native) Diff(ctx context.Context, key string, w io.Writer) error {
	t, _, err := n.tree(ctx, key)
	if err != nil {
		return err
	}
	return writeTree(ctx, t, w, n.epoch)
}

func (n *native) Commit(ctx context.Context, key string) (v1.Layer, error) {
	return commit(ctx, n.s, key, n.Diff)
}

func (n *native) CommitRemove(ctx context.Context, key string) (v1.Layer, error) {
	l, err := n.Commit(ctx, key)
	if err != nil {
		return nil, err
	}
	return l, n.Remove(ctx, key)
}

// CommitRemoveAsync stores the blob before it returns: a native snapshot's
// directory is not kept as the layer.
func (n *native) CommitRemoveAsync(ctx context.Context, key string) (Pending, error) {
	l, err := n.CommitRemove(ctx, key)
	if l == nil {
		return nil, err
	}
	p, serr := stored(l)
	if serr != nil {
		return nil, serr
	}
	return p, err
}

func (n *native) Changes(ctx context.Context, key string) ([]Change, error) {
	t, lv, err := n.tree(ctx, key)
	if err != nil {
		return nil, err
	}
	return changes(t, lv), nil
}

// compareDir fills dir.children with what differs between the upper
// directory dir.abs and the lower directory lower, as overlayfs would have
// recorded it in an upperdir, and reports whether anything differs.
func compareDir(ctx context.Context, dir *node, lower string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	upNames, err := readNames(dir.abs)
	if err != nil {
		return false, err
	}
	lowNames, err := readNames(lower)
	if err != nil {
		return false, err
	}
	inUpper := make(map[string]bool, len(upNames))
	changed := false
	for _, name := range upNames {
		inUpper[name] = true
		c, err := lstatNode(filepath.Join(dir.abs, name), path.Join(dir.rel, name), name)
		if err != nil {
			return false, err
		}
		if c.socket() {
			continue
		}
		lp := filepath.Join(lower, name)
		var lst unix.Stat_t
		lerr := unix.Lstat(lp, &lst)
		switch {
		case lerr != nil:
			// new: everything below it is new too
			if err := addAll(ctx, c); err != nil {
				return false, err
			}
		case c.isDir() && (!hasOrigTag(c) || lst.Mode&unix.S_IFMT != unix.S_IFDIR):
			// deleted (or replaced) and recreated: overlayfs makes it opaque
			c.opaque = true
			if err := addAll(ctx, c); err != nil {
				return false, err
			}
		case c.isDir() && lst.Mode&unix.S_IFMT == unix.S_IFDIR:
			sub, err := compareDir(ctx, c, lp)
			if err != nil {
				return false, err
			}
			same, err := unchanged(c, lp, &lst)
			if err != nil {
				return false, err
			}
			if !sub && same {
				continue
			}
		default:
			same, err := unchanged(c, lp, &lst)
			if err != nil {
				return false, err
			}
			if same {
				continue
			}
		}
		dir.children = append(dir.children, c)
		changed = true
	}
	for _, name := range lowNames {
		if !inUpper[name] {
			dir.children = append(dir.children, &node{name: name, rel: path.Join(dir.rel, name), whiteout: true})
			changed = true
		}
	}
	sortChildren(dir)
	return changed, nil
}

// addAll fills the subtree of a new directory.
func addAll(ctx context.Context, n *node) error {
	if !n.isDir() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	names, err := readNames(n.abs)
	if err != nil {
		return err
	}
	for _, name := range names {
		c, err := lstatNode(filepath.Join(n.abs, name), path.Join(n.rel, name), name)
		if err != nil {
			return err
		}
		if c.socket() {
			continue
		}
		if err := addAll(ctx, c); err != nil {
			return err
		}
		n.children = append(n.children, c)
	}
	sortChildren(n)
	return nil
}

func hasOrigTag(n *node) bool {
	v, err := getXattr(n.abs, origTag)
	return err == nil && v == strconv.FormatUint(n.st.Ino, 10)
}

// copyMode is how copyTree treats regular files.
type copyMode int

const (
	// copyContainer: each path gets its own copy (hardlinks broken, as an
	// overlayfs copy-up does) and each directory gets origTag.
	copyContainer copyMode = iota
	// copyShared: files are hardlinked to the source's (for immutable trees).
	copyShared
)

// copyTree copies the tree src to dst (which must not exist, or be an empty
// directory) keeping types, owners, modes, xattrs and times. Copied files
// are reflinked where the filesystem can, else copied in the kernel
// (copy_file_range).
func copyTree(ctx context.Context, src, dst string, mode copyMode) error {
	c := &copier{tag: mode == copyContainer, share: mode == copyShared, root: dst}
	if err := c.copy(ctx, src, dst); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, d.path, []unix.Timespec{d.st.Atim, d.st.Mtim}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

type copiedDir struct {
	path string
	st   unix.Stat_t
}

type copier struct {
	dirs  []copiedDir
	tag   bool
	share bool
	root  string // may exist already (an empty directory)
}

func (c *copier) copy(ctx context.Context, src, dst string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := unix.Mkdir(dst, 0o700); err != nil && !(err == unix.EEXIST && dst == c.root) {
			return &os.PathError{Op: "mkdir", Path: dst, Err: err}
		}
		if err := c.attrs(src, dst, &st); err != nil {
			return err
		}
		if c.tag {
			var nst unix.Stat_t
			if err := unix.Lstat(dst, &nst); err != nil {
				return err
			}
			if err := unix.Lsetxattr(dst, origTag, []byte(strconv.FormatUint(nst.Ino, 10)), 0); err != nil {
				return fmt.Errorf("tagging %s: %w", dst, err)
			}
		}
		c.dirs = append(c.dirs, copiedDir{dst, st})
		names, err := readNames(src)
		if err != nil {
			return err
		}
		for _, name := range names {
			if err := c.copy(ctx, filepath.Join(src, name), filepath.Join(dst, name)); err != nil {
				return err
			}
		}
		return nil
	case unix.S_IFREG:
		if c.share {
			return unix.Link(src, dst)
		}
		if err := fsutil.CopyFile(src, dst, 0o600); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := unix.Symlink(target, dst); err != nil {
			return err
		}
	default:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	}
	if err := c.attrs(src, dst, &st); err != nil {
		return err
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
}

// attrs copies owner, mode and xattrs (in that order: chown clears setuid
// bits and security.capability).
func (c *copier) attrs(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil && os.Geteuid() == 0 {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return err
		}
	}
	xs, err := readXattrs(src)
	if err != nil {
		return err
	}
	for k, v := range xs {
		if err := unix.Lsetxattr(dst, k, []byte(v), 0); err != nil && err != unix.ENOTSUP {
			return fmt.Errorf("setting xattr %s on %s: %w", k, dst, err)
		}
	}
	return nil
}
