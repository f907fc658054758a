package builder

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// extractTar unpacks a tar stream into dir, keeping owners and modes, and
// never writing outside dir: every parent path is resolved inside dir
// (symlinks from the archive included) and nothing is followed at the leaf.
// keep, when not nil, selects the entries (by clean name) to unpack.
// Whiteouts (.wh.NAME, .wh..wh..opq) remove what earlier layers unpacked.
func extractTar(r io.Reader, dir string, keep func(name string) bool) error {
	tr := tar.NewReader(r)
	var dirs []dirTime
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading archive: %w", err)
		}
		name := cleanName(h.Name)
		if name == "" {
			continue
		}
		if keep != nil && !keep(name) {
			continue
		}
		pdir, base := path.Split(name)
		parent, err := securejoin.SecureJoin(dir, pdir)
		if err != nil {
			return err
		}
		if strings.HasPrefix(base, ".wh.") {
			if base == ".wh..wh..opq" {
				ents, _ := os.ReadDir(parent)
				for _, e := range ents {
					os.RemoveAll(filepath.Join(parent, e.Name()))
				}
			} else {
				os.RemoveAll(filepath.Join(parent, strings.TrimPrefix(base, ".wh.")))
			}
			continue
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		target := filepath.Join(parent, base)
		if fi, err := os.Lstat(target); err == nil && !(fi.IsDir() && h.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
		mode := os.FileMode(h.Mode & 0o777)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, 0o700); err != nil && !os.IsExist(err) {
				return err
			}
			dirs = append(dirs, dirTime{target, h})
			continue
		case tar.TypeReg, tar.TypeRegA:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src, err := securejoin.SecureJoin(dir, cleanName(h.Linkname))
			if err != nil {
				return err
			}
			if err := os.Link(src, target); err != nil {
				return fmt.Errorf("hard link %s: %w", name, err)
			}
			continue
		case tar.TypeFifo:
			if err := unix.Mkfifo(target, uint32(mode)); err != nil {
				return err
			}
		case tar.TypeChar, tar.TypeBlock:
			m := uint32(unix.S_IFCHR)
			if h.Typeflag == tar.TypeBlock {
				m = unix.S_IFBLK
			}
			if err := unix.Mknod(target, m|uint32(mode), int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))); err != nil {
				return err
			}
		default:
			continue
		}
		if err := applyMeta(target, h); err != nil {
			return err
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := applyMeta(dirs[i].p, dirs[i].h); err != nil {
			return err
		}
	}
	return nil
}

// dirTime is a directory whose metadata (applyMeta) is set once what is in
// it is written.
type dirTime struct {
	p string
	h *tar.Header
}

func applyMeta(p string, h *tar.Header) error {
	if os.Geteuid() == 0 {
		if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
			return err
		}
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := os.Chmod(p, tarMode(h.Mode)); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// tarMode converts tar permission bits (with setuid/setgid/sticky) to an
// os.FileMode.
func tarMode(m int64) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode
}

// modeBits converts an os.FileMode's permission bits to tar's.
func modeBits(m os.FileMode) int64 {
	b := int64(m.Perm())
	if m&os.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// extractLayers unpacks, in order, the parts of layers under any of the
// prefixes (clean paths without leading slash; "" means everything) into dir.
func extractLayers(layers []v1.Layer, prefixes []string, dir string) error {
	keep := func(name string) bool {
		for _, p := range prefixes {
			if p == "" || name == p || strings.HasPrefix(name, p+"/") || strings.HasPrefix(p, name+"/") {
				return true
			}
		}
		return false
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		err = extractTar(rc, dir, keep)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
