package rootfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/internal/fsutil"
	"github.com/strata-dev/strata/snapshot"
)

// Docker's masked and read-only paths (moby oci/defaults.go).
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// devices are the nodes of the container's /dev (all 0666 root:root).
var devices = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
	{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

var devLinks = [][2]string{
	{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
	{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	{"pts/ptmx", "ptmx"},
}

const (
	msNoSUIDDevExec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
)

// stageSystem prepares, while init waits for its config, the part of the
// container's filesystem view that does not depend on the Spec: it makes
// the mount namespace private, mounts init's scratch tmpfs on scratch, and
// under it a fresh /proc, /dev and /sys (docker's masked and read-only paths
// applied), which setupRoot later moves into the container's root. It also
// brings the loopback interface up in a new network namespace.
func stageSystem(scratch string, newNet bool) error {
	// Nothing done here may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", scratch, "tmpfs", msNoSUIDDevExec, "mode=0700,size=4m"); err != nil {
		return fmt.Errorf("mounting scratch tmpfs on %s: %w", scratch, err)
	}
	for _, d := range []string{"root", "proc", "dev", "sys"} {
		if err := os.Mkdir(scratch+"/"+d, 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("proc", scratch+"/proc", "proc", msNoSUIDDevExec, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	if err := mountDev(scratch + "/dev"); err != nil {
		return err
	}
	if err := mountSys(scratch+"/sys", newNet); err != nil {
		return err
	}
	if err := maskPaths(scratch); err != nil {
		return err
	}
	if newNet {
		return loopbackUp()
	}
	return nil
}

// setupRoot builds the container's filesystem view on the staged scratch
// and pivots into it; on return the process's root and working directory
// are the container's root.
func setupRoot(cfg *initConfig) error {
	scratch := cfg.Scratch
	root := scratch + "/root"
	if len(cfg.Rootfs) > 0 {
		// Mountpoints the image lacks come from a layer on init's tmpfs
		// rather than being made in the container's writable layer.
		ms, err := snapshot.WithMountpoints(cfg.Rootfs, scratch+"/mountpoints")
		if err != nil {
			return err
		}
		if err := mountRootfs(ms, root, cfg.Ephemeral); err != nil {
			return err
		}
	} else if err := unix.Mount(cfg.RootfsDir, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding root directory %s: %w", cfg.RootfsDir, err)
	}
	for _, d := range []string{"proc", "dev", "sys"} {
		if err := mkdirMountpoint(root + "/" + d); err != nil {
			return err
		}
		if err := unix.Mount(scratch+"/"+d, root+"/"+d, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving /%s into the root: %w", d, err)
		}
	}
	if cfg.TTY {
		master, slave, err := openContainerPty(root+"/dev/pts", cfg.Winsize)
		if err != nil {
			return err
		}
		console := root + "/dev/console"
		if err := os.WriteFile(console, nil, 0o600); err != nil {
			master.Close()
			return err
		}
		if err := unix.Mount(slave, console, "", unix.MS_BIND, ""); err != nil {
			master.Close()
			return fmt.Errorf("binding /dev/console: %w", err)
		}
		if err := sendMaster(master); err != nil {
			return fmt.Errorf("passing the terminal: %w", err)
		}
	}
	if len(cfg.Cgroups) > 0 {
		if err := mountCgroups(root+"/sys/fs/cgroup", cfg.Cgroups); err != nil {
			return err
		}
	}
	if err := mountEtcFiles(cfg, scratch, root); err != nil {
		return err
	}
	trees := cfg.trees
	for i, b := range cfg.Binds {
		tree := -1
		if b.idmapped() {
			if len(trees) == 0 {
				return fmt.Errorf("bind mount %s: no idmapped tree received", b.Source)
			}
			tree, trees = trees[0], trees[1:]
		}
		if err := mountBind(root, fmt.Sprintf("%s/discard%d", scratch, i), b, tree); err != nil {
			return err
		}
	}
	for _, t := range cfg.Tmpfs {
		if err := mountTmpfs(root, t); err != nil {
			return err
		}
	}
	if err := pivotRoot(root); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("setting the hostname: %w", err)
	}
	return nil
}

// mountCgroups shows the sandbox's cgroup directories read-only on dir
// (the read-only sysfs's /sys/fs/cgroup): a tmpfs holding one bind per
// hierarchy, or the unified one's directory itself on a pure v2 machine.
func mountCgroups(dir string, views []cgroupView) error {
	roBind := func(src, dst string) error {
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("showing cgroup %s: %w", src, err)
		}
		if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|msNoSUIDDevExec, ""); err != nil {
			return fmt.Errorf("showing cgroup %s: %w", src, err)
		}
		return nil
	}
	if len(views) == 1 && views[0].Name == "" {
		return roBind(views[0].Dir, dir)
	}
	if err := unix.Mount("cgroup", dir, "tmpfs", msNoSUIDDevExec, "mode=755,size=64k"); err != nil {
		return fmt.Errorf("mounting /sys/fs/cgroup: %w", err)
	}
	for _, v := range views {
		if v.Name == "" || strings.Contains(v.Name, "/") {
			continue
		}
		if err := os.Mkdir(dir+"/"+v.Name, 0o755); err != nil {
			return err
		}
		if err := roBind(v.Dir, dir+"/"+v.Name); err != nil {
			return err
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY|msNoSUIDDevExec, "mode=755,size=64k"); err != nil {
		return fmt.Errorf("remounting /sys/fs/cgroup read-only: %w", err)
	}
	return nil
}

// mountRootfs mounts ms on root; with ephemeral, overlays are volatile
// (when the kernel knows the option, Linux 5.10 and later).
func mountRootfs(ms []snapshot.Mount, root string, ephemeral bool) error {
	if ephemeral {
		vol := make([]snapshot.Mount, len(ms))
		changed := false
		for i, m := range ms {
			vol[i] = m
			if m.Type == "overlay" && !slices.Contains(m.Options, "volatile") {
				vol[i].Options = append(slices.Clip(m.Options), "volatile")
				changed = true
			}
		}
		if changed {
			if err := snapshot.MountAll(vol, root); err == nil {
				return nil
			}
		}
	}
	return snapshot.MountAll(ms, root)
}

// mountDev mounts a minimal /dev on dev: a tmpfs with the usual nodes and
// links, a private devpts instance, shm and mqueue.
func mountDev(dev string) error {
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	for _, d := range devices {
		if err := unix.Mknod(dev+"/"+d.name, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", d.name, err)
		}
	}
	for _, l := range devLinks {
		if err := os.Symlink(l[0], dev+"/"+l[1]); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", l[1], err)
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := os.Mkdir(dev+"/"+d, 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return fmt.Errorf("mounting /dev/pts: %w", err)
	}
	if err := unix.Mount("shm", dev+"/shm", "tmpfs", msNoSUIDDevExec, "mode=1777,size=65536k"); err != nil {
		return fmt.Errorf("mounting /dev/shm: %w", err)
	}
	if err := unix.Mount("mqueue", dev+"/mqueue", "mqueue", msNoSUIDDevExec, ""); err != nil {
		return fmt.Errorf("mounting /dev/mqueue: %w", err)
	}
	return nil
}

// mountSys mounts a read-only /sys on sys: a new sysfs in a new network
// namespace, else (sysfs shows the namespace that mounts it) the host's,
// with every file system mounted below it (cgroups, securityfs, bpf...)
// read-only too: remounting only the top would leave the host's cgroup
// hierarchies writable to a --network host container or a build's RUN.
func mountSys(sys string, newNet bool) error {
	if newNet {
		if err := unix.Mount("sysfs", sys, "sysfs", msNoSUIDDevExec|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("mounting /sys: %w", err)
		}
		return nil
	}
	if err := unix.Mount("/sys", sys, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding /sys: %w", err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
	err := unix.MountSetattr(unix.AT_FDCWD, sys, unix.AT_RECURSIVE, &attr)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("making /sys read-only: %w", err)
	}
	// before Linux 5.12: each mount on its own, top first
	mps, err := mountsUnder(sys)
	if err != nil {
		return err
	}
	for _, mp := range mps {
		if err := unix.Mount("", mp, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|msNoSUIDDevExec, ""); err != nil {
			return fmt.Errorf("remounting %s read-only: %w", strings.TrimPrefix(mp, sys), err)
		}
	}
	return nil
}

// mountsUnder lists dir and the mount points below it (mountinfo order:
// parents before children).
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mkdirMountpoint makes sure dir (in the container's root, whose own
// symlinks were already resolved by the caller) is a directory.
func mkdirMountpoint(dir string) error {
	fi, err := os.Lstat(dir)
	if err == nil {
		if fi.IsDir() {
			return nil
		}
		return fmt.Errorf("%s is not a directory in the image", filepath.Base(dir))
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("creating mount point: %w", err)
	}
	return nil
}

// mountEtcFiles writes /etc/hosts, /etc/hostname and /etc/resolv.conf to
// the scratch tmpfs and binds them over the image's (creating empty files
// as mount points where the image has none).
func mountEtcFiles(cfg *initConfig, scratch, root string) error {
	files := []struct {
		name string
		data []byte
	}{
		{"hosts", cfg.Hosts},
		{"hostname", []byte(cfg.Hostname + "\n")},
		{"resolv.conf", cfg.ResolvConf},
	}
	for _, f := range files {
		src := scratch + "/" + f.name
		if err := os.WriteFile(src, f.data, 0o644); err != nil {
			return err
		}
		target, err := securejoin.SecureJoin(root, "/etc/"+f.name)
		if err != nil {
			return err
		}
		if err := makeMountpoint(target, false); err != nil {
			return fmt.Errorf("/etc/%s: %w", f.name, err)
		}
		if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding /etc/%s: %w", f.name, err)
		}
	}
	return nil
}

// makeMountpoint creates target as an empty directory or file (with its
// parents) unless it exists.
func makeMountpoint(target string, dir bool) error {
	if _, err := os.Stat(target); err == nil {
		return nil
	}
	if dir {
		return os.MkdirAll(target, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// mountBind binds b.Source on b.Target in root; a Discard bind is an
// overlay whose upper directory lives on a tmpfs at discard, outside root.
// An idmapped bind's source is tree, its detached mount tree (see idmap.go;
// -1 for others).
func mountBind(root, discard string, b Bind, tree int) error {
	fi, err := os.Stat(b.Source)
	if err != nil {
		return fmt.Errorf("bind mount %s: %w", b.Source, err)
	}
	target, err := securejoin.SecureJoin(root, b.Target)
	if err != nil {
		return fmt.Errorf("bind mount target %s: %w", b.Target, err)
	}
	if err := makeMountpoint(target, fi.IsDir()); err != nil {
		return fmt.Errorf("bind mount target %s: %w", b.Target, err)
	}
	if b.Discard && !b.ReadOnly {
		if err := mountDiscard(b, fi, target, discard, tree); err != nil {
			return fmt.Errorf("bind mount %s on %s: %w", b.Source, b.Target, err)
		}
		return nil
	}
	if tree >= 0 { // read-only already when it should be
		if err := attachTree(tree, target); err != nil {
			return fmt.Errorf("bind mount %s on %s: %w", b.Source, b.Target, err)
		}
		return nil
	}
	if err := unix.Mount(b.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", b.Source, b.Target, err)
	}
	if b.ReadOnly {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("remounting %s read-only: %w", b.Target, err)
		}
	}
	return nil
}

// mountDiscard makes target a writable view of b.Source whose writes go to
// a tmpfs on dir: an overlay for a directory (its lower is a bind of the
// source, or its idmapped tree, at a path of ours, so any name works), a
// copy for a file.
func mountDiscard(b Bind, fi os.FileInfo, target, dir string, tree int) error {
	source := b.Source
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		return fmt.Errorf("mounting its tmpfs: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	uid, gid := int(shownID(st.Uid, b.RootUID)), int(shownID(st.Gid, b.RootGID))
	if !fi.IsDir() {
		copyPath := dir + "/file"
		if err := fsutil.CopyFile(source, copyPath, fi.Mode()); err != nil {
			return err
		}
		if err := os.Lchown(copyPath, uid, gid); err != nil {
			return err
		}
		return unix.Mount(copyPath, target, "", unix.MS_BIND, "")
	}
	lower, upper, work := dir+"/lower", dir+"/upper", dir+"/work"
	for _, d := range []string{lower, upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	// The merged root takes the upper directory's owner and mode.
	if err := os.Chmod(upper, fi.Mode()&os.ModePerm|fi.Mode()&(os.ModeSetgid|os.ModeSticky)); err != nil {
		return err
	}
	if err := os.Lchown(upper, uid, gid); err != nil {
		return err
	}
	if tree >= 0 {
		if err := attachTree(tree, lower); err != nil {
			return err
		}
	} else {
		if err := unix.Mount(source, lower, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		if err := unix.Mount("", lower, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return err
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting its overlay: %w", err)
	}
	return nil
}

func mountTmpfs(root string, t Tmpfs) error {
	target, err := securejoin.SecureJoin(root, t.Target)
	if err != nil {
		return fmt.Errorf("tmpfs target %s: %w", t.Target, err)
	}
	if err := makeMountpoint(target, true); err != nil {
		return fmt.Errorf("tmpfs target %s: %w", t.Target, err)
	}
	mode := uint32(0o1777)
	if t.Mode != 0 {
		mode = unixMode(t.Mode)
	}
	data := fmt.Sprintf("mode=%o", mode)
	if t.Size > 0 {
		data += fmt.Sprintf(",size=%d", t.Size)
	}
	if err := unix.Mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		return fmt.Errorf("mounting tmpfs on %s: %w", t.Target, err)
	}
	return nil
}

func unixMode(m os.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// maskPaths hides docker's masked paths (a /dev/null or an empty read-only
// tmpfs over them) and makes its read-only paths read-only.
func maskPaths(root string) error {
	for _, p := range maskedPaths {
		target := root + p
		fi, err := os.Lstat(target)
		if err != nil {
			continue // not on this kernel
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", target, "tmpfs", unix.MS_RDONLY|msNoSUIDDevExec, "size=0")
		} else {
			err = unix.Mount(root+"/dev/null", target, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("masking %s: %w", p, err)
		}
	}
	for _, p := range readonlyPaths {
		target := root + p
		if _, err := os.Lstat(target); err != nil {
			continue
		}
		if err := unix.Mount(target, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", p, err)
		}
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|msNoSUIDDevExec, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", p, err)
		}
	}
	return nil
}

// pivotRoot makes root the process's root and detaches the old one (the
// host's), as runc does with pivot_root(".", ".").
func pivotRoot(root string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldroot)
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return err
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making the old root a slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	return unix.Chdir("/")
}

// loopbackUp brings lo up in the new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}
