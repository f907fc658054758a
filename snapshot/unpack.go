package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/internal/ctxio"
)

// WhiteoutMode says what Unpack does with OCI whiteouts.
type WhiteoutMode int

const (
	// WhiteoutOverlay turns ".wh.NAME" into an overlay whiteout (a 0/0
	// character device NAME) and ".wh..wh..opq" into the xattr
	// trusted.overlay.opaque=y on its directory: the directory becomes one
	// overlayfs lowerdir of a stack.
	WhiteoutOverlay WhiteoutMode = iota
	// WhiteoutApply deletes what the whiteouts name from the directory: the
	// layer is applied on top of the layers already extracted there (native
	// snapshotter, flattened exports).
	WhiteoutApply
)

// UnpackOptions control Unpack.
type UnpackOptions struct {
	Whiteouts WhiteoutMode
	// Devices allows block and character device nodes (root only). Without
	// it they are skipped; fifos are always created.
	Devices bool
	// NoChown keeps the extracting user as the owner of everything
	// (rootless); otherwise owners come from the tar.
	NoChown bool
	// Filter, when set, selects the entries to extract by their clean name
	// relative to the root ("etc/passwd"); for a whiteout, the name of what
	// it deletes ("etc/old"; "etc/.wh..wh..opq" for an opaque directory).
	// Parent directories of a selected entry are created as needed.
	Filter func(name string) bool
	// LinkFrom, when set, may name for a regular file entry a file of an
	// unpacked layer with the same content: the layer's directory and the
	// file's path in it. When that file's type, size, mode, owner and
	// mtime are the entry's, and neither has xattrs, the entry becomes a
	// hard link to it instead of a copy (a COPY --from a stage). The
	// layer's directory must never change (an unpacked layer's does not).
	LinkFrom func(hdr *tar.Header) (dir, rel string)
}

// ErrCorrupt is returned (wrapped) when a layer tar is truncated or malformed.
var ErrCorrupt = errors.New("corrupt or truncated tar")

const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
	copyBufSize    = 1 << 20
)

// Unpack extracts the layer tar read from r into dir (which must exist),
// never creating or changing anything outside dir. Later entries replace
// earlier ones with the same name (a directory over a directory merges;
// anything else is removed first). Owners, modes, xattrs, times and hardlinks
// are kept. A truncated or corrupt stream returns an error wrapping
// ErrCorrupt; what was extracted so far stays (callers extract into a temp
// directory and discard it on error).
func Unpack(ctx context.Context, r io.Reader, dir string, opts UnpackOptions) error {
	root, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("unpacking into %s: %w", dir, err)
	}
	defer root.Close()
	u := &unpacker{root: root, opts: opts, buf: make([]byte, copyBufSize)}
	defer u.closeLinkDirs()
	if opts.Whiteouts == WhiteoutApply {
		u.seen = map[string]bool{}
	}
	defer u.dropParent()
	tail := &tailReader{r: ctxio.Reader(ctx, r)}
	tr := tar.NewReader(tail)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			if !tail.ended() {
				return fmt.Errorf("unpacking layer: %w: no end-of-archive marker", ErrCorrupt)
			}
			break
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return fmt.Errorf("unpacking layer: %w", cerr)
			}
			return fmt.Errorf("unpacking layer: %w: %v", ErrCorrupt, err)
		}
		if err := u.entry(hdr, tr); err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return fmt.Errorf("unpacking layer: %w", cerr)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader) {
				return fmt.Errorf("unpacking layer: %s: %w: %v", hdr.Name, ErrCorrupt, err)
			}
			return fmt.Errorf("unpacking layer: %s: %w", hdr.Name, err)
		}
	}
	return u.finish()
}

type dirTime struct {
	name         string
	atime, mtime time.Time
}

type unpacker struct {
	root *os.File
	opts UnpackOptions
	buf  []byte
	// seen holds the names this layer created (apply mode), which an opaque
	// whiteout in the same layer must keep.
	seen map[string]bool
	// dirTimes are set last: creating entries changes a directory's mtime.
	dirTimes []dirTime
	// a one-entry cache of the last parent directory handle.
	pname string
	pdir  *os.File
	// handles of the directories LinkFrom names
	linkDirs map[string]*os.File
}

// cleanName turns a tar name into a path relative to the root ("" is the
// root itself). Lexical cleaning against "/" removes every ".." that would
// climb above the root; symlinks are handled by in-root resolution.
func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func (u *unpacker) dropParent() {
	if u.pdir != nil {
		u.pdir.Close()
		u.pdir, u.pname = nil, ""
	}
}

// parent returns an O_PATH handle of directory rel resolved inside the root,
// creating missing directories (0755) when create is set. The handle is
// owned by the unpacker's cache: callers must not close it.
func (u *unpacker) parent(rel string, create bool) (*os.File, error) {
	if u.pdir != nil && u.pname == rel {
		return u.pdir, nil
	}
	u.dropParent()
	var (
		f   *os.File
		err error
	)
	if create && rel != "" {
		f, err = pathrs.MkdirAllHandle(u.root, rel, 0o755)
	} else {
		f, err = u.openInRoot(rel)
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		f.Close()
		return nil, fmt.Errorf("%s: %w", rel, unix.ENOTDIR)
	}
	u.pdir, u.pname = f, rel
	return f, nil
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // pax global header (git archive): not a file
	}
	name := cleanName(hdr.Name)
	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("root entry is not a directory")
		}
		// Like containerd (and so BuildKit and docker), the root directory
		// is the snapshot's, 0755 root:root, whatever the layer says: a
		// rootfs tarball made from a mktemp -d directory ("./" 0700) must
		// not make / unreadable to a container's non-root user.
		return nil
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if u.opts.Filter != nil {
		fname := name
		if strings.HasPrefix(base, whiteoutPrefix) && base != opaqueWhiteout {
			fname = path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))
		}
		if !u.opts.Filter(fname) {
			return nil
		}
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(dir, base, hdr)
	}
	pd, err := u.parent(dir, true)
	if err != nil {
		return err
	}
	pfd := int(pd.Fd())
	if u.seen != nil {
		u.seen[name] = true
	}

	if isRegular(hdr) && !isSparse(hdr) {
		if u.opts.LinkFrom != nil && u.linkSame(pfd, base, hdr) {
			return nil
		}
		// the common case, a new file: no stat first, no *os.File
		fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return u.newFile(fd, pfd, base, hdr, r)
		}
		if err != unix.EEXIST {
			return err
		}
	}
	var st unix.Stat_t
	err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	exists := err == nil
	if err != nil && err != unix.ENOENT {
		return err
	}
	isDir := hdr.Typeflag == tar.TypeDir
	if exists && !(isDir && st.Mode&unix.S_IFMT == unix.S_IFDIR) {
		if hdr.Typeflag == tar.TypeLink && cleanName(hdr.Linkname) == name {
			return nil // a link to itself: already there
		}
		u.dropParentIfUnder(name)
		if pd, err = u.parent(dir, true); err != nil {
			return err
		}
		pfd = int(pd.Fd())
		if err := removeAllAt(pfd, base); err != nil {
			return err
		}
		exists = false
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if !exists {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return err
			}
		}
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeCont:
		fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), base)
		if isSparse(hdr) {
			// zeros are skipped with Seek: a few bytes of tar cannot make
			// us fill the disk with a terabyte of holes
			err = copySparse(f, r, u.buf, hdr.Size)
		} else {
			_, err = io.CopyBuffer(writerOnly{f}, r, u.buf)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
	case tar.TypeLink:
		return u.hardlink(pfd, base, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		if mode != unix.S_IFIFO && !u.opts.Devices {
			return nil
		}
		if err := unix.Mknodat(pfd, base, mode|0o600, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	return u.meta(pfd, base, name, hdr)
}

// linkSame makes base in pfd a hard link to the file LinkFrom names for
// hdr when it is what extracting hdr would make (see LinkFrom). The file is
// opened beneath its layer's directory without following any symlink, and
// the inode checked is the one linked.
func (u *unpacker) linkSame(pfd int, base string, hdr *tar.Header) bool {
	if hasXattrs(hdr.PAXRecords) {
		return false
	}
	dir, rel := u.opts.LinkFrom(hdr)
	if dir == "" {
		return false
	}
	d, ok := u.linkDirs[dir]
	if !ok {
		var err error
		if d, err = os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			d = nil
		}
		if u.linkDirs == nil {
			u.linkDirs = map[string]*os.File{}
		}
		u.linkDirs[dir] = d
	}
	if d == nil {
		return false
	}
	fd, err := unix.Openat2(int(d.Fd()), rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != hdr.Size ||
		int64(st.Mode&0o7777) != hdr.Mode&0o7777 || int(st.Uid) != hdr.Uid || int(st.Gid) != hdr.Gid ||
		st.Mtim.Sec != hdr.ModTime.Unix() || st.Mtim.Nsec != int64(hdr.ModTime.Nanosecond()) {
		return false
	}
	if n, err := unix.Listxattr("/proc/self/fd/"+itoa(fd), nil); err != nil || n != 0 {
		return false
	}
	// AT_EMPTY_PATH links the checked inode itself (needs
	// CAP_DAC_READ_SEARCH; without it the file is written as usual)
	return unix.Linkat(fd, "", pfd, base, unix.AT_EMPTY_PATH) == nil
}

func (u *unpacker) closeLinkDirs() {
	for _, d := range u.linkDirs {
		if d != nil {
			d.Close()
		}
	}
}

// isSparse reports a GNU sparse entry (old GNU or PAX sparse formats).
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	_, ok := hdr.PAXRecords["GNU.sparse.major"]
	_, ok2 := hdr.PAXRecords["GNU.sparse.map"]
	_, ok3 := hdr.PAXRecords["GNU.sparse.numblocks"]
	return ok || ok2 || ok3
}

// copySparse copies r to f leaving every all-zero block of the buffer as a
// hole, and sets f's size to size.
func copySparse(f *os.File, r io.Reader, buf []byte, size int64) error {
	var off int64
	const block = 64 << 10
	for {
		n, err := io.ReadFull(r, buf)
		for i := 0; i < n; i += block {
			chunk := buf[i:min(i+block, n)]
			if !allZero(chunk) {
				if _, werr := f.WriteAt(chunk, off); werr != nil {
					return werr
				}
			}
			off += int64(len(chunk))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != size {
		return io.ErrUnexpectedEOF
	}
	return f.Truncate(size)
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// meta applies owner, mode, xattrs and times (directories' times at the end).
func (u *unpacker) meta(pfd int, base, name string, hdr *tar.Header) error {
	symlink := hdr.Typeflag == tar.TypeSymlink
	if !u.opts.NoChown {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if !symlink {
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if err := u.xattrs(procPath(pfd, base), hdr, symlink); err != nil {
		return err
	}
	mtime := hdr.ModTime
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = mtime
	}
	if hdr.Typeflag == tar.TypeDir {
		u.dirTimes = append(u.dirTimes, dirTime{name, atime, mtime})
		return nil
	}
	return setTimes(pfd, base, atime, mtime)
}

func (u *unpacker) xattrs(p string, hdr *tar.Header, symlink bool) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || skipXattr(name) {
			continue
		}
		err := unix.Lsetxattr(p, name, []byte(v), 0)
		if err == nil {
			continue
		}
		// Filesystems without xattrs, user.* on symlinks and names an
		// unprivileged user may not set are dropped, as docker does.
		if err == unix.ENOTSUP || (err == unix.EPERM && (symlink || os.Geteuid() != 0)) {
			continue
		}
		return fmt.Errorf("setting xattr %s: %w", name, err)
	}
	return nil
}

// skipXattr reports xattrs that are never taken from or written into a
// layer: overlayfs' own (they would change how the lower layer is read) and
// the native snapshotter's directory tag.
func skipXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") ||
		strings.HasPrefix(name, "trusted.strata.")
}

func (u *unpacker) hardlink(pfd int, base, linkname string) error {
	target := cleanName(linkname)
	if target == "" {
		return fmt.Errorf("hardlink to the root directory")
	}
	tdir, tbase := path.Split(target)
	td, err := u.openInRoot(strings.TrimSuffix(tdir, "/"))
	if err != nil {
		return fmt.Errorf("hardlink target %s: %w", linkname, err)
	}
	defer td.Close()
	if err := unix.Linkat(int(td.Fd()), tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("hardlink to %s: %w", linkname, err)
	}
	return nil
}

func (u *unpacker) whiteout(dir, base string, hdr *tar.Header) error {
	if base != opaqueWhiteout && strings.HasPrefix(base, whiteoutPrefix+whiteoutPrefix) {
		return nil // aufs metadata (.wh..wh.plnk and the like): not content
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if base != opaqueWhiteout && (target == "" || target == "." || target == "..") {
		return fmt.Errorf("invalid whiteout name %q", base)
	}
	if u.opts.Whiteouts == WhiteoutApply {
		u.dropParent() // deletions may remove a cached directory
		pd, err := u.parent(dir, false)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return nil // nothing to delete
		}
		if err != nil {
			return err
		}
		if base == opaqueWhiteout {
			return u.removeUnseen(int(pd.Fd()), dir)
		}
		return removeAllAt(int(pd.Fd()), target)
	}
	pd, err := u.parent(dir, true)
	if err != nil {
		return err
	}
	pfd := int(pd.Fd())
	if base == opaqueWhiteout {
		return unix.Lsetxattr(procPath(pfd, "."), "trusted.overlay.opaque", []byte("y"), 0)
	}
	if err := removeAllAt(pfd, target); err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
		return err
	}
	// the entry's time, not the clock's: the same layer always unpacks to
	// the same tree
	return setTimes(pfd, target, hdr.ModTime, hdr.ModTime)
}

// removeUnseen empties directory rel (open as dirfd) of everything this
// layer did not create: an opaque whiteout in apply mode.
func (u *unpacker) removeUnseen(dirfd int, rel string) error {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), rel)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(rel, n)
		if !u.seen[p] {
			if err := removeAllAt(fd, n); err != nil {
				return err
			}
			continue
		}
		cfd, err := unix.Openat(fd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOTDIR || err == unix.ELOOP {
			continue
		}
		if err != nil {
			return err
		}
		err = u.removeUnseen(cfd, p)
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}

// openInRoot returns an O_PATH handle of rel resolved inside the root.
func (u *unpacker) openInRoot(rel string) (*os.File, error) {
	if rel == "" {
		fd, err := unix.Openat(int(u.root.Fd()), ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), "."), nil
	}
	return pathrs.OpenatInRoot(u.root, rel)
}

func (u *unpacker) dropParentIfUnder(name string) {
	if u.pdir != nil && (u.pname == name || strings.HasPrefix(u.pname, name+"/")) {
		u.dropParent()
	}
}

// finish sets the directories' times, deepest first.
func (u *unpacker) finish() error {
	u.dropParent()
	for i := len(u.dirTimes) - 1; i >= 0; i-- {
		dt := u.dirTimes[i]
		if dt.name == "" {
			if err := setTimes(int(u.root.Fd()), ".", dt.atime, dt.mtime); err != nil {
				return err
			}
			continue
		}
		dir, base := path.Split(dt.name)
		pd, err := u.openInRoot(strings.TrimSuffix(dir, "/"))
		if err != nil {
			continue // removed by a later entry
		}
		err = setTimes(int(pd.Fd()), base, dt.atime, dt.mtime)
		pd.Close()
		if err != nil && err != unix.ENOENT {
			return fmt.Errorf("setting times of %s: %w", dt.name, err)
		}
	}
	return nil
}

func setTimes(dirfd int, name string, atime, mtime time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if atime.IsZero() {
		ts[0] = unix.NsecToTimespec(0)
	}
	if mtime.IsZero() {
		ts[1] = unix.NsecToTimespec(0)
	}
	return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// removeAllAt removes name (and everything below it) from dirfd without
// following symlinks. A missing name is not an error.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	for {
		names, err := d.Readdirnames(1024)
		for _, n := range names {
			if err := removeAllAt(fd, n); err != nil {
				d.Close()
				return err
			}
		}
		if err == io.EOF || len(names) == 0 {
			break
		}
		if err != nil {
			d.Close()
			return err
		}
	}
	d.Close()
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return err
	}
	return nil
}

// procPath names entry name of directory dirfd through /proc/self/fd, for
// the l*xattr calls that have no *at form. The final component is not
// followed (lsetxattr); the directory is the one the fd pins.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + itoa(dirfd) + "/" + name
}

func itoa(i int) string { return fmt.Sprint(i) }

// tailReader remembers the last block read, so that Unpack can tell an
// archive that ended with its zero block from one cut short at an entry
// boundary (which archive/tar reports as a clean end).
type tailReader struct {
	r    io.Reader
	n    int64
	tail [512]byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n >= len(t.tail) {
		copy(t.tail[:], p[n-len(t.tail):n])
	} else if n > 0 {
		copy(t.tail[:], t.tail[n:])
		copy(t.tail[len(t.tail)-n:], p[:n])
	}
	t.n += int64(n)
	return n, err
}

// ended reports whether the stream was empty or ended with a zero block.
func (t *tailReader) ended() bool {
	if t.n == 0 {
		return true
	}
	return t.n%512 == 0 && t.tail == [512]byte{}
}

// writerOnly hides ReadFrom so io.CopyBuffer uses our big buffer.
type writerOnly struct{ io.Writer }

func isRegular(hdr *tar.Header) bool {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont:
		return true
	}
	return false
}

// newFile fills the regular file just created as fd and sets its metadata
// through fd (as meta does by name).
func (u *unpacker) newFile(fd, pfd int, base string, hdr *tar.Header, r io.Reader) error {
	err := u.fill(fd, r)
	if err == nil && !u.opts.NoChown {
		if err = unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			err = fmt.Errorf("chown: %w", err)
		}
	}
	if err == nil {
		if err = unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
			err = fmt.Errorf("chmod: %w", err)
		}
	}
	if err == nil {
		err = u.xattrs(procPath(pfd, base), hdr, false)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return setTimes(pfd, base, atime, hdr.ModTime)
}

// fill copies r into fd with the unpacker's buffer.
func (u *unpacker) fill(fd int, r io.Reader) error {
	for {
		n, rerr := r.Read(u.buf)
		for b := u.buf[:n]; len(b) > 0; {
			w, err := unix.Write(fd, b)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			b = b[w:]
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
