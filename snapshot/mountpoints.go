package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// WithMountpoints returns mounts with the sandbox's missing mountpoints
// supplied from outside the container's writable layer: when the filesystem
// of an overlay (its upper directory and lower layers) lacks some of
// SandboxMountpoints, they are made as empty directories and files in dir
// (which must not exist; the sandbox puts it on its private tmpfs) and dir
// is stacked as the top lower layer. The mountpoints then never reach the
// upper directory: the sandbox creates and the diff and removal of the
// container delete nothing there. A missing /etc comes as a directory of
// mode 0755 owned by root; when the image has one, dir's /etc copies its
// mode, owner, times and xattrs, so that the merged /etc looks as the
// image's does (and is copied up as such when the container writes there).
//
// Mounts other than one overlay are returned as they are, as are paths whose
// parent is not a directory in the image: the sandbox then makes what is
// missing in the container's filesystem itself, as before.
func WithMountpoints(mounts []Mount, dir string) ([]Mount, error) {
	if len(mounts) != 1 || mounts[0].Type != "overlay" || strings.ContainsAny(dir, ":,") {
		return mounts, nil
	}
	m := mounts[0]
	if lowers, _ := overlayOptions(m.Options); len(lowers) == 0 {
		return mounts, nil
	}
	stack := m.stack()
	var missing []string
	etc, etcFound := stack.lookup("etc")
	etcDir := false
	if etcFound {
		var st unix.Stat_t
		etcDir = unix.Lstat(etc, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
	}
	for _, p := range SandboxMountpoints {
		if strings.HasPrefix(p, "etc/") && etcFound && !etcDir {
			continue // /etc is not a directory: left to the sandbox
		}
		if !stack.exists(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return mounts, nil
	}
	if err := makeMountpoints(dir, missing, etc, etcDir); err != nil {
		return nil, fmt.Errorf("mountpoints layer: %w", err)
	}
	out := Mount{Type: m.Type, Source: m.Source}
	added := false
	for _, o := range m.Options {
		if v, ok := strings.CutPrefix(o, "lowerdir="); ok && !added {
			o = "lowerdir=" + dir + ":" + v
			added = true
		}
		out.Options = append(out.Options, o)
	}
	return []Mount{out}, nil
}

// makeMountpoints makes dir holding the paths missing (directories for
// proc, sys and dev, empty files for those under etc).
func makeMountpoints(dir string, missing []string, etc string, etcDir bool) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	var needEtc bool
	for _, p := range missing {
		if strings.HasPrefix(p, "etc/") {
			needEtc = true
		}
	}
	if needEtc {
		if err := os.Mkdir(filepath.Join(dir, "etc"), 0o755); err != nil {
			return err
		}
	}
	for _, p := range missing {
		abs := filepath.Join(dir, p)
		if strings.HasPrefix(p, "etc/") {
			fd, err := unix.Open(abs, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			if err != nil {
				return err
			}
			unix.Close(fd)
			continue
		}
		if err := os.Mkdir(abs, 0o755); err != nil {
			return err
		}
	}
	if needEtc && etcDir {
		return copyDirAttrs(etc, filepath.Join(dir, "etc"))
	}
	return nil
}

// copyDirAttrs gives directory dst the owner, mode, xattrs (other than
// overlay's own) and times of directory src.
func copyDirAttrs(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	xattrs, err := readXattrs(src) // without overlay's own
	if err != nil {
		return err
	}
	for k, v := range xattrs {
		if err := unix.Lsetxattr(dst, k, []byte(v), 0); err != nil {
			return fmt.Errorf("/etc xattr %s: %w", k, err)
		}
	}
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// WritableDir is the directory that takes m's writes: an overlay's
// upperdir, or a bind's source ("" for other mounts).
func (m Mount) WritableDir() string {
	switch m.Type {
	case "overlay":
		for _, o := range m.Options {
			if v, ok := strings.CutPrefix(o, "upperdir="); ok {
				return v
			}
		}
	case "bind", "rbind":
		return m.Source
	}
	return ""
}

// stack is m's filesystem as overlay-form directories, top first: its
// writable directory, then an overlay's lower layers.
func (m Mount) stack() overlayLower {
	var s overlayLower
	if w := m.WritableDir(); w != "" {
		s = append(s, w)
	}
	if m.Type == "overlay" {
		lowers, _ := overlayOptions(m.Options)
		s = append(s, lowers...)
	}
	return s
}

// systemMountpoints are the directories the sandbox mounts its /proc, /dev
// and /sys on.
var systemMountpoints = []string{"proc", "dev", "sys"}

// MakeSystemMountpoints makes, in the writable layer of mounts (an overlay's
// upper directory, or a bound directory), the /proc, /dev and /sys
// directories the container's filesystem lacks, mode 0755, as runc makes
// them for BuildKit's RUN: with WithSystemMountpoints, the layer committed
// afterwards has them.
func MakeSystemMountpoints(mounts []Mount) error {
	if len(mounts) != 1 || mounts[0].WritableDir() == "" {
		return nil
	}
	top, stack := mounts[0].WritableDir(), mounts[0].stack()
	for _, d := range systemMountpoints {
		if _, ok := stack.lookup(d); ok {
			continue
		}
		if err := os.Mkdir(filepath.Join(top, d), 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("making the /%s mountpoint: %w", d, err)
		}
	}
	return nil
}
