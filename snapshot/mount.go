package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is one filesystem to mount, containerd style. Type "overlay" carries
// lowerdir= (colon-separated, top layer first), upperdir= and workdir= among
// its Options; type "bind" has Source and, optionally, the option "ro".
type Mount struct {
	Type    string
	Source  string
	Options []string
}

// MountAll mounts mounts on target, in order. The sandbox calls it inside
// its private mount namespace (never on the host's), after which the mounts
// die with the namespace. Overlay lowerdir lists of any length work: on
// kernels with the new mount API (fsopen, Linux >= 6.8 for "lowerdir+") each
// layer is passed on its own; older kernels get the classic mount(2) data
// string, shortened when needed by changing into the layers' common parent
// directory and naming layers relative to it. The fallback changes the
// process's working directory for the duration of the call, so call MountAll
// from one thread (the sandbox init) only.
func MountAll(mounts []Mount, target string) error {
	for _, m := range mounts {
		if err := m.mount(target); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.Type, target, err)
		}
	}
	return nil
}

func (m Mount) mount(target string) error {
	switch m.Type {
	case "bind", "rbind":
		if err := unix.Mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		for _, o := range m.Options {
			if o == "ro" {
				return unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
			}
		}
		return nil
	case "overlay":
		err := mountOverlayFsopen(m.Options, target)
		if errors.Is(err, errNoNewAPI) {
			return mountOverlayLegacy(m.Options, target)
		}
		return err
	default:
		return fmt.Errorf("unsupported mount type %q", m.Type)
	}
}

var errNoNewAPI = errors.New("new mount API unavailable")

// overlayOptions splits Options into the lower layers (top first) and the rest.
func overlayOptions(opts []string) (lowers []string, rest []string) {
	for _, o := range opts {
		if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
			lowers = append(lowers, strings.Split(v, ":")...)
			continue
		}
		rest = append(rest, o)
	}
	return lowers, rest
}

// overlayContext creates (but does not attach) an overlay filesystem with
// the new mount API and returns the fsopen fd; the caller closes it.
func overlayContext(opts []string) (int, error) {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err == unix.ENOSYS {
		return -1, errNoNewAPI
	}
	if err != nil {
		return -1, fmt.Errorf("fsopen overlay: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		msg := fsLog(fd)
		unix.Close(fd)
		if msg != "" {
			return -1, fmt.Errorf("%s: %w (%s)", what, err, msg)
		}
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	lowers, rest := overlayOptions(opts)
	for i, l := range lowers {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			if i == 0 && err == unix.EINVAL {
				unix.Close(fd)
				return -1, errNoNewAPI // kernel before 6.8: no "lowerdir+"
			}
			return fail("lowerdir "+l, err)
		}
	}
	for _, o := range rest {
		k, v, hasValue := strings.Cut(o, "=")
		if hasValue {
			err = unix.FsconfigSetString(fd, k, v)
		} else {
			err = unix.FsconfigSetFlag(fd, k)
		}
		if err != nil {
			return fail("option "+o, err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fail("creating overlay", err)
	}
	return fd, nil
}

func mountOverlayFsopen(opts []string, target string) error {
	fd, err := overlayContext(opts)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// fsLog drains the kernel's messages about a failed fsconfig.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 16 {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	return strings.Join(msgs, "; ")
}

func mountOverlayLegacy(opts []string, target string) error {
	data := strings.Join(opts, ",")
	if len(data) < os.Getpagesize()-1 {
		return unix.Mount("overlay", target, "overlay", 0, data)
	}
	lowers, rest := overlayOptions(opts)
	if len(lowers) == 0 {
		return fmt.Errorf("overlay options too long and no lowerdir")
	}
	if dir, short, ok := shortLowers(lowers); ok {
		return mountRelative(dir, short, rest, target)
	}
	common := filepath.Dir(lowers[0])
	for _, l := range lowers[1:] {
		for !strings.HasPrefix(l, common+"/") && common != "/" {
			common = filepath.Dir(common)
		}
	}
	rel := make([]string, len(lowers))
	for i, l := range lowers {
		rel[i] = strings.TrimPrefix(l, common+"/")
	}
	return mountRelative(common, rel, rest, target)
}

// mountRelative mounts an overlay whose lowerdirs are named relative to dir.
func mountRelative(dir string, rel, rest []string, target string) error {
	lowers := rel
	data := strings.Join(append([]string{"lowerdir=" + strings.Join(rel, ":")}, rest...), ",")
	if len(data) >= os.Getpagesize()-1 {
		return fmt.Errorf("overlay of %d layers: mount options too long for this kernel (%d bytes)", len(lowers), len(data))
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := os.Chdir(dir); err != nil {
		return err
	}
	defer os.Chdir(wd)
	return unix.Mount("overlay", abs, "overlay", 0, data)
}

// shortLinkLen is the length of the names in ROOT/snapshots/l: symlinks to
// layers/CHAIN/fs (as Docker's l/ directory), so that a classic mount(2)
// data string can name ~300 layers.
const shortLinkLen = 12

// shortLowers maps lowerdirs of the form X/layers/HEX/fs to the names of
// their links in X/l, when every one of them has its link.
func shortLowers(lowers []string) (dir string, short []string, ok bool) {
	for _, l := range lowers {
		fs := filepath.Dir(l)
		hex := filepath.Base(fs)
		layers := filepath.Dir(fs)
		if filepath.Base(l) != "fs" || filepath.Base(layers) != "layers" || len(hex) != 64 {
			return "", nil, false
		}
		x := filepath.Join(filepath.Dir(layers), "l")
		if dir == "" {
			dir = x
		} else if x != dir {
			return "", nil, false
		}
		name := hex[:shortLinkLen]
		if t, err := os.Readlink(filepath.Join(dir, name)); err != nil || t != "../layers/"+hex+"/fs" {
			return "", nil, false
		}
		short = append(short, name)
	}
	return dir, short, true
}

// probeOverlay reports whether an overlay with upper and work directories
// under dir can be created. It uses a detached filesystem context (never
// attached anywhere), so nothing is left mounted even if strata dies here.
// overlayWorks (probecache.go) remembers its success.
func probeOverlay(dir string) error {
	tmp, err := os.MkdirTemp(dir, ".probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, d := range []string{"lower", "upper", "work"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o700); err != nil {
			return err
		}
	}
	fd, err := overlayContext(overlayMountOptions([]string{filepath.Join(tmp, "lower")}, filepath.Join(tmp, "upper"), filepath.Join(tmp, "work")))
	if errors.Is(err, errNoNewAPI) {
		mnt := filepath.Join(tmp, "mnt")
		if err := os.Mkdir(mnt, 0o700); err != nil {
			return err
		}
		data := strings.Join(overlayMountOptions([]string{filepath.Join(tmp, "lower")}, filepath.Join(tmp, "upper"), filepath.Join(tmp, "work")), ",")
		if err := unix.Mount("overlay", mnt, "overlay", 0, data); err != nil {
			return err
		}
		return unix.Unmount(mnt, unix.MNT_DETACH)
	}
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

// overlayMountOptions are the options of a container's overlay: the upper
// directory must describe every change by itself (no redirects, no
// metacopy-only files, no index), so that Diff never needs the lower layers.
func overlayMountOptions(lowers []string, upper, work string) []string {
	return []string{
		"lowerdir=" + strings.Join(lowers, ":"),
		"upperdir=" + upper,
		"workdir=" + work,
		"redirect_dir=off",
		"index=off",
		"metacopy=off",
	}
}
