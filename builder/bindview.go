package builder

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/internal/fsutil"
)

// contextBindSource is what RUN --mount=type=bind (without from=) shows at
// its target: the context's source path as BuildKit shows it, without what
// .dockerignore leaves out. BuildKit never receives those files (a .env or
// a key kept out of the build); binding the context directory itself showed
// them. When nothing below the source is left out the directory is bound as
// it is; otherwise a view of hard links (copies across file systems) is
// made, which the read-only bind keeps from being written through.
func (st *stage) contextBindSource(src string) (string, error) {
	b := st.b
	p, files, err := b.bctx.bindFiles(src)
	if err != nil || files == nil {
		return p, err
	}
	dir, err := b.tempDir("bind-view-")
	if err != nil {
		return "", err
	}
	view := filepath.Join(dir, "src")
	if err := writeView(view, files); err != nil {
		return "", fmt.Errorf("--mount=type=bind,source=%s: %w", src, err)
	}
	return view, nil
}

// owner is the owner of the context's root directory. A bind of the
// context shows it as root (BuildKit's context belongs to root whoever
// sends it): in a RUN as root, git then trusts a repository the CI user
// checked out.
func (c *buildContext) owner() ([2]uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(c.root, &st); err != nil {
		return [2]uint32{}, fmt.Errorf("build context: %w", err)
	}
	return [2]uint32{st.Uid, st.Gid}, nil
}

// bindFiles returns the host path of the context's source src and, when
// .dockerignore leaves out something below it, the files to show instead
// (nil when the path can be bound as it is). An ignored source itself does
// not exist.
func (c *buildContext) bindFiles(src string) (string, []srcFile, error) {
	files, err := walkSource(c.root, src, c.ignore, nil)
	if err != nil {
		return "", nil, fmt.Errorf("--mount=type=bind,source=/%s: %w", src, err)
	}
	p := files[0].abs
	if c.ignore == nil || !files[0].fi.IsDir() {
		return p, nil, nil
	}
	all, err := walkSource(c.root, src, nil, nil)
	if err != nil {
		return "", nil, err
	}
	if len(all) == len(files) {
		return p, nil, nil
	}
	return p, files, nil
}

// writeView recreates files (parents first, as walkSource lists them) under
// dst: directories with their mode, owner and times, regular files as hard
// links (copied when the context is on another file system), symlinks.
// Other special files are left out.
func writeView(dst string, files []srcFile) error {
	var dirs []dirTime
	for _, f := range files {
		p := filepath.Join(dst, filepath.FromSlash(f.rel))
		m := f.fi.Mode()
		h := &tar.Header{Mode: modeBits(m), ModTime: f.fi.ModTime()}
		if st, ok := f.fi.Sys().(*syscall.Stat_t); ok {
			h.Uid, h.Gid = int(st.Uid), int(st.Gid)
		}
		switch {
		case m.IsDir():
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			h.Typeflag = tar.TypeDir
			dirs = append(dirs, dirTime{p, h}) // children first: times last
			continue
		case m.IsRegular():
			err := os.Link(f.abs, p)
			if err == nil {
				continue // the same inode: owner, mode and times included
			}
			if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EPERM) {
				return err
			}
			if err := fsutil.CopyFile(f.abs, p, 0o600); err != nil {
				return err
			}
			h.Typeflag = tar.TypeReg
		case m&os.ModeSymlink != 0:
			if err := os.Symlink(f.link, p); err != nil {
				return err
			}
			h.Typeflag = tar.TypeSymlink
		default:
			continue
		}
		if err := applyMeta(p, h); err != nil {
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
