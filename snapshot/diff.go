package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A diff is computed in two steps: a snapshotter builds a tree of nodes (what
// changed, with the file that holds each new state), and writeTree turns any
// such tree into tar bytes. Both snapshotters share writeTree, which is why
// they produce the same bytes for the same change.

// node is one entry of a diff tree.
type node struct {
	name     string // base name in the filesystem ("" for the root)
	rel      string // path below the root ("" for the root)
	abs      string // where the new state is read from (not for whiteouts)
	whiteout bool   // name was deleted
	opaque   bool   // directory hides everything below it in the lower layers
	st       unix.Stat_t
	children []*node
	// xattrs names every xattr abs had when first listed (xattrsListed):
	// a commit reads them up to three times (diff, tar, promotion).
	xattrs       []string
	xattrsListed bool
}

// xattrNames lists the names of n's xattrs, once.
func (n *node) xattrNames() ([]string, error) {
	if !n.xattrsListed {
		xs, err := listXattrs(n.abs)
		if err != nil {
			return nil, err
		}
		n.xattrs, n.xattrsListed = xs, true
	}
	return n.xattrs, nil
}

// keptXattrs returns the xattrs of n a layer keeps (see skipXattr). The
// names are listed once: what a promotion changes afterwards (overlay's
// own xattrs) is never kept.
func (n *node) keptXattrs() (map[string]string, error) {
	names, err := n.xattrNames()
	if err != nil {
		return nil, fmt.Errorf("listing xattrs: %w", err)
	}
	return xattrValues(n.abs, names)
}

// socket reports a unix socket: a layer cannot carry one, and like docker
// diffs leave them out (a daemon's leftover socket must not fail a commit).
func (n *node) socket() bool { return n.st.Mode&unix.S_IFMT == unix.S_IFSOCK }

func (n *node) isDir() bool { return !n.whiteout && n.st.Mode&unix.S_IFMT == unix.S_IFDIR }

// tarName is the name of n's entry inside its directory.
func (n *node) tarName() string {
	if n.whiteout {
		return whiteoutPrefix + n.name
	}
	return n.name
}

func sortChildren(n *node) {
	sort.Slice(n.children, func(i, j int) bool { return n.children[i].tarName() < n.children[j].tarName() })
}

func (n *node) child(name string) *node {
	for _, c := range n.children {
		if c.name == name && !c.whiteout {
			return c
		}
	}
	return nil
}

func lstatNode(abs, rel, name string) (*node, error) {
	n := &node{name: name, rel: rel, abs: abs}
	if err := unix.Lstat(abs, &n.st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: abs, Err: err}
	}
	return n, nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

func isOverlayWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func isOpaque(abs string) bool {
	for _, x := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		buf := make([]byte, 8)
		n, err := unix.Lgetxattr(abs, x, buf)
		if err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}

// upperTree reads an overlay upperdir: every entry in it is a change.
func upperTree(ctx context.Context, upper string) (*node, error) {
	root, err := lstatNode(upper, "", "")
	if err != nil {
		return nil, err
	}
	return root, walkUpper(ctx, root)
}

func walkUpper(ctx context.Context, dir *node) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	names, err := readNames(dir.abs)
	if err != nil {
		return err
	}
	for _, name := range names {
		c, err := lstatNode(filepath.Join(dir.abs, name), path.Join(dir.rel, name), name)
		if err != nil {
			return err
		}
		if c.socket() {
			continue
		}
		switch {
		case isOverlayWhiteout(&c.st):
			c.whiteout = true
		case c.isDir():
			c.opaque = isOpaque(c.abs)
			if err := walkUpper(ctx, c); err != nil {
				return err
			}
		}
		dir.children = append(dir.children, c)
	}
	sortChildren(dir)
	return nil
}

// SandboxMountpoints are the paths the sandbox mounts over. When the image
// lacks one, the sandbox creates an empty file or directory to mount on;
// diffs leave such a path out when it is still an empty regular file or an
// empty directory and the lower layers do not have it (and /etc too, when it
// is not in the lower layers, or differs from the lower /etc only in its
// times, and holds nothing else).
var SandboxMountpoints = []string{"etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "sys", "dev"}

func excludeMountpoints(root *node, lv lowerView, keepSys bool) {
	for _, p := range SandboxMountpoints {
		if keepSys && !strings.Contains(p, "/") {
			continue // proc, sys, dev (WithSystemMountpoints)
		}
		dir, base := path.Split(p)
		parent := root
		if dir != "" {
			parent = root.child(strings.TrimSuffix(dir, "/"))
		}
		if parent == nil {
			continue
		}
		c := parent.child(base)
		if c == nil || lv.exists(p) {
			continue
		}
		empty := (c.st.Mode&unix.S_IFMT == unix.S_IFREG && c.st.Size == 0) || (c.isDir() && len(c.children) == 0)
		if empty {
			parent.remove(c)
		}
	}
	// Creating the mountpoints changed /etc's mtime (and, in overlay, copied
	// it up): left with nothing else, /etc is no change of the user's.
	if etc := root.child("etc"); etc != nil && etc.isDir() && len(etc.children) == 0 && !etc.opaque {
		if lp, ok := lv.lookup("etc"); !ok || sameAsLower(etc, lp) {
			root.remove(etc)
		}
	}
}

// sameAsLower is unchanged for the lower entry at lp, false when it cannot
// be read.
func sameAsLower(n *node, lp string) bool {
	var l unix.Stat_t
	if unix.Lstat(lp, &l) != nil {
		return false
	}
	same, err := unchanged(n, lp, &l)
	return err == nil && same
}

// unchanged reports whether the entry n, which a container's copy holds at
// the path of the lower entry lp (whose lstat is l), is no change, with the
// rules of BuildKit's overlay differ (its sameDirent, after containerd's
// continuity): the same type, mode, owner and device; for a non-directory
// the same size and mtime and, when both mtimes lack nanoseconds (as
// everything extracted from a tar does, and a copy-up keeps them), the same
// content or symlink target. Directories' times are not compared: a child's
// change shows in the child. Unlike BuildKit, every xattr is compared, not
// only security.capability. So an overlayfs copy-up without a change (chown
// to the same owner, the source of a new hardlink) is not in the layer.
func unchanged(n *node, lp string, l *unix.Stat_t) (bool, error) {
	u := &n.st
	if u.Mode != l.Mode || u.Uid != l.Uid || u.Gid != l.Gid {
		return false, nil
	}
	if u.Mode&unix.S_IFMT != unix.S_IFDIR {
		if u.Rdev != l.Rdev || u.Size != l.Size || u.Mtim.Sec != l.Mtim.Sec || u.Mtim.Nsec != l.Mtim.Nsec {
			return false, nil
		}
		if u.Mtim.Nsec == 0 {
			same, err := sameContent(n.abs, lp, u)
			if err != nil || !same {
				return false, err
			}
		}
	}
	ux, err := n.keptXattrs()
	if err != nil {
		return false, err
	}
	lx, err := readXattrs(lp)
	if err != nil {
		return false, err
	}
	if len(ux) != len(lx) {
		return false, nil
	}
	for k, v := range ux {
		if w, ok := lx[k]; !ok || w != v {
			return false, nil
		}
	}
	return true, nil
}

// sameContent compares the symlink targets or the data of two entries of
// the type and size st gives.
func sameContent(a, b string, st *unix.Stat_t) (bool, error) {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		ta, err1 := os.Readlink(a)
		tb, err2 := os.Readlink(b)
		if err1 != nil || err2 != nil {
			return false, errors.Join(err1, err2)
		}
		return ta == tb, nil
	case unix.S_IFREG:
		if st.Size == 0 {
			return true, nil
		}
		fa, err := os.Open(a)
		if err != nil {
			return false, err
		}
		defer fa.Close()
		fb, err := os.Open(b)
		if err != nil {
			return false, err
		}
		defer fb.Close()
		// st.Size bytes of each: both files have that size
		ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
		for left := st.Size; left > 0; {
			n := int(min(left, int64(len(ba))))
			if _, err := io.ReadFull(fa, ba[:n]); err != nil {
				return false, err
			}
			if _, err := io.ReadFull(fb, bb[:n]); err != nil {
				return false, err
			}
			if !bytes.Equal(ba[:n], bb[:n]) {
				return false, nil
			}
			left -= int64(n)
		}
	}
	return true, nil
}

// pruneUnchanged removes from the upper tree dir what overlayfs copied up
// without a change (see unchanged), and directories left with nothing
// below them that are unchanged themselves. Opaque directories are kept
// whole: they hide the lower one.
func pruneUnchanged(ctx context.Context, dir *node, lv lowerView) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	kept := dir.children[:0]
	for _, c := range dir.children {
		if c.whiteout || c.opaque {
			kept = append(kept, c)
			continue
		}
		lp, ok := lv.lookup(c.rel)
		if !ok {
			kept = append(kept, c)
			continue
		}
		var l unix.Stat_t
		if err := unix.Lstat(lp, &l); err != nil {
			return err
		}
		if c.isDir() && l.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := pruneUnchanged(ctx, c, lv); err != nil {
				return err
			}
			if len(c.children) > 0 {
				kept = append(kept, c)
				continue
			}
		}
		same, err := unchanged(c, lp, &l)
		if err != nil {
			return fmt.Errorf("comparing %s: %w", c.rel, err)
		}
		if !same {
			kept = append(kept, c)
		}
	}
	dir.children = kept
	return nil
}

func (n *node) remove(c *node) {
	for i, x := range n.children {
		if x == c {
			n.children = append(n.children[:i], n.children[i+1:]...)
			return
		}
	}
}

// lowerView answers questions about the read-only lower filesystem.
type lowerView interface {
	exists(rel string) bool
	// lookup returns where rel is in the lower filesystem.
	lookup(rel string) (string, bool)
	// names lists the entries of directory rel (nil if it is not one).
	names(rel string) []string
}

// overlayLower is a stack of overlay-form layer directories, top first.
type overlayLower []string

func (v overlayLower) lookup(rel string) (string, bool) {
	comps := strings.Split(rel, "/")
	for _, l := range v {
		cur := l
		stop := false
		for i, c := range comps {
			cur = filepath.Join(cur, c)
			var st unix.Stat_t
			if err := unix.Lstat(cur, &st); err != nil {
				break
			}
			if isOverlayWhiteout(&st) {
				return "", false
			}
			if i == len(comps)-1 {
				return cur, true
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return "", false
			}
			if isOpaque(cur) {
				stop = true
			}
		}
		if stop {
			return "", false
		}
	}
	return "", false
}

func (v overlayLower) exists(rel string) bool {
	_, ok := v.lookup(rel)
	return ok
}

func (v overlayLower) names(rel string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range v {
		ns, err := readNames(filepath.Join(l, rel))
		if err != nil {
			continue
		}
		for _, n := range ns {
			if !seen[n] {
				seen[n] = true
				if v.exists(path.Join(rel, n)) {
					out = append(out, n)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// dirLower is a flattened tree (native).
type dirLower string

func (d dirLower) exists(rel string) bool {
	_, ok := d.lookup(rel)
	return ok
}

func (d dirLower) lookup(rel string) (string, bool) {
	p := filepath.Join(string(d), rel)
	var st unix.Stat_t
	return p, unix.Lstat(p, &st) == nil
}

func (d dirLower) names(rel string) []string {
	ns, _ := readNames(filepath.Join(string(d), rel))
	return ns
}

// changes lists a diff tree as `docker diff` does, sorted by path.
func changes(root *node, lv lowerView) []Change {
	var out []Change
	var walk func(n *node)
	walk = func(n *node) {
		for _, c := range n.children {
			p := "/" + c.rel
			if c.whiteout {
				out = append(out, Change{ChangeDelete, p})
				continue
			}
			if lv.exists(c.rel) {
				out = append(out, Change{ChangeModify, p})
			} else {
				out = append(out, Change{ChangeAdd, p})
			}
			if c.opaque {
				for _, name := range lv.names(c.rel) {
					if c.child(name) == nil {
						out = append(out, Change{ChangeDelete, "/" + path.Join(c.rel, name)})
					}
				}
			}
			if c.isDir() {
				walk(c)
			}
		}
	}
	walk(root)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// treeWriter writes a diff tree as a tar stream.
type treeWriter struct {
	tw    *tar.Writer
	bp    bufferProvider // file data is read straight into the sink's buffers
	epoch *time.Time
	links map[[2]uint64]string
}

// writeTree writes the tree rooted at root (the root itself is not an
// entry). Reading files and writing w overlap (see pipelinedWriter).
func writeTree(ctx context.Context, root *node, w io.Writer, epoch *time.Time) error {
	bp, ok := w.(bufferProvider)
	if !ok {
		pw := newPipelinedWriter(w)
		err := writeTree(ctx, root, pw, epoch)
		if cerr := pw.Close(); err == nil {
			err = cerr
		}
		return err
	}
	t := &treeWriter{tw: tar.NewWriter(w), bp: bp, epoch: epoch, links: map[[2]uint64]string{}}
	if err := t.children(ctx, root); err != nil {
		return err
	}
	return t.tw.Close()
}

func (t *treeWriter) children(ctx context.Context, n *node) error {
	for _, c := range n.children {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := t.entry(ctx, c); err != nil {
			return fmt.Errorf("writing %s: %w", c.rel, err)
		}
	}
	return nil
}

func whiteoutHeader(name string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
}

func (t *treeWriter) entry(ctx context.Context, n *node) error {
	if n.whiteout {
		dir := path.Dir(n.rel)
		name := whiteoutPrefix + n.name
		if dir != "." {
			name = dir + "/" + name
		}
		return t.tw.WriteHeader(whiteoutHeader(name))
	}
	hdr, err := t.header(n)
	if err != nil {
		return err
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	switch {
	case n.isDir():
		if n.opaque {
			if err := t.tw.WriteHeader(whiteoutHeader(n.rel + "/" + opaqueWhiteout)); err != nil {
				return err
			}
		}
		return t.children(ctx, n)
	case hdr.Typeflag == tar.TypeReg && hdr.Size > 0:
		// a bare descriptor: an os.File costs more syscalls than the
		// read of a small file
		fd, err := unix.Open(n.abs, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: n.abs, Err: err}
		}
		defer unix.Close(fd)
		m, err := t.copyFile(fd, hdr.Size)
		if err != nil {
			return err
		}
		if m != hdr.Size {
			return fmt.Errorf("file changed while being read (%d of %d bytes)", m, hdr.Size)
		}
	}
	return nil
}

// copyFile writes up to size bytes of the file fd into the tar stream.
func (t *treeWriter) copyFile(fd int, size int64) (int64, error) {
	var m int64
	for m < size {
		buf := t.bp.Buffer()
		if int64(len(buf)) > size-m {
			buf = buf[:size-m]
		}
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return m, err
		}
		if n == 0 {
			break
		}
		if _, werr := t.tw.Write(buf[:n]); werr != nil {
			return m, werr
		}
		m += int64(n)
	}
	return m, nil
}

func (t *treeWriter) header(n *node) (*tar.Header, error) {
	st := &n.st
	mtime := time.Unix(st.Mtim.Sec, 0)
	if t.epoch != nil && mtime.After(*t.epoch) {
		mtime = *t.epoch
	}
	hdr := &tar.Header{
		Name:    n.rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: mtime,
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
		if st.Nlink > 1 {
			k := [2]uint64{st.Dev, st.Ino}
			if first, ok := t.links[k]; ok {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = first
				hdr.Size = 0
			} else {
				t.links[k] = n.rel
			}
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(n.abs)
		if err != nil {
			return nil, err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		return nil, fmt.Errorf("sockets cannot be stored in a layer")
	}
	xs, err := n.keptXattrs()
	if err != nil {
		return nil, err
	}
	for k, v := range xs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = v
	}
	return hdr, nil
}

// readXattrs returns the xattrs a layer keeps (see skipXattr).
func readXattrs(p string) (map[string]string, error) {
	names, err := listXattrs(p)
	if err != nil {
		return nil, fmt.Errorf("listing xattrs: %w", err)
	}
	return xattrValues(p, names)
}

// xattrValues reads the xattrs of p named in names that a layer keeps; one
// removed since it was listed is left out.
func xattrValues(p string, names []string) (map[string]string, error) {
	var out map[string]string
	for _, name := range names {
		if skipXattr(name) {
			continue
		}
		val, err := getXattr(p, name)
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s: %w", name, err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = val
	}
	return out, nil
}

func getXattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if err == unix.ERANGE {
			sz, err := unix.Lgetxattr(p, name, nil)
			if err != nil {
				return "", err
			}
			buf = make([]byte, sz)
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

// readerOnly hides WriteTo so io.CopyBuffer uses our big buffer.
type readerOnly struct{ io.Reader }
