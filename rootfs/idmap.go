package rootfs

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Idmapped binds.
//
// A bind with RootUID or RootGID shows its source through an idmapped
// mount (Linux 5.12+): files owned by RootUID appear owned by root, root's
// appear owned by RootUID, every other owner as it is (and likewise for
// groups). The mapping is a user namespace's: Run makes one with a helper
// process (the strata binary re-executed, which only waits), attaches it to
// a detached copy of the source's mount tree (open_tree, mount_setattr) and
// hands that tree to init with the process's stdio; init moves it into
// place (move_mount). Nothing on the host changes.

const (
	usernsArg0 = "strata-userns"
	usernsEnv  = "_STRATA_USERNS_HELPER"
)

// A user namespace helper only waits for its stdin to close: Run holds it
// while it opens the namespace. Checked in init so that any binary built
// with this package (strata, tests) can serve.
func init() {
	if len(os.Args) == 1 && os.Args[0] == usernsArg0 && os.Getenv(usernsEnv) == "1" {
		var b [1]byte
		os.Stdin.Read(b[:])
		os.Exit(0)
	}
}

// idmapped reports whether the bind is shown through an idmapped mount.
func (b *Bind) idmapped() bool { return b.RootUID != 0 || b.RootGID != 0 }

// swapRoot maps id to 0 and 0 to id, every other id to itself.
func swapRoot(id uint32) []syscall.SysProcIDMap {
	const maxID = 1<<32 - 2 // (uid_t)-1 is never an id
	if id == 0 {
		return []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: maxID + 1}}
	}
	// a line "inside outside count" of a namespace's map: a file owned by
	// inside on disk appears owned by outside through the mount
	m := []syscall.SysProcIDMap{{ContainerID: int(id), HostID: 0, Size: 1}, {ContainerID: 0, HostID: int(id), Size: 1}}
	if id > 1 {
		m = append(m, syscall.SysProcIDMap{ContainerID: 1, HostID: 1, Size: int(id) - 1})
	}
	if id < maxID {
		m = append(m, syscall.SysProcIDMap{ContainerID: int(id) + 1, HostID: int(id) + 1, Size: maxID - int(id)})
	}
	return m
}

// shownID is how an owner id of the source appears through the bind.
func shownID(id, root uint32) uint32 {
	switch {
	case root == 0:
		return id
	case id == root:
		return 0
	case id == 0:
		return root
	}
	return id
}

// newUserns returns a user namespace with swapRoot's maps of uid and gid.
func newUserns(uid, gid uint32) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	pid, err := syscall.ForkExec("/proc/self/exe", []string{usernsArg0}, &syscall.ProcAttr{
		Env:   []string{usernsEnv + "=1"},
		Files: []uintptr{r.Fd()},
		Sys: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			UidMappings: swapRoot(uid),
			GidMappings: swapRoot(gid),
			Pdeathsig:   syscall.SIGKILL,
		},
	})
	r.Close()
	if err != nil {
		return nil, fmt.Errorf("making a user namespace: %w", err)
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", pid))
	w.Close() // the helper exits
	wait4(pid)
	if err != nil {
		return nil, fmt.Errorf("making a user namespace: %w", err)
	}
	return ns, nil
}

// idmappedTree returns a detached copy of the mount tree at b.Source shown
// through swapRoot's maps of b.RootUID and b.RootGID, read-only when ro.
func idmappedTree(b *Bind, ro bool) (*os.File, error) {
	ns, err := newUserns(b.RootUID, b.RootGID)
	if err != nil {
		// user namespaces disabled (user.max_user_namespaces=0)
		return nil, fmt.Errorf("%w: %v", errNoIdmap, err)
	}
	defer ns.Close()
	fd, err := unix.OpenTree(unix.AT_FDCWD, b.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err == unix.ENOSYS {
		return nil, fmt.Errorf("bind mount %s: %w: %v", b.Source, errNoIdmap, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bind mount %s: %w", b.Source, err)
	}
	tree := os.NewFile(uintptr(fd), b.Source)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	if ro {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		tree.Close()
		if err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP || err == unix.EPERM {
			return nil, fmt.Errorf("bind mount %s: %w: %v", b.Source, errNoIdmap, err)
		}
		return nil, fmt.Errorf("bind mount %s: idmapping it: %w", b.Source, err)
	}
	return tree, nil
}

// idmappedTrees makes the detached trees of binds' idmapped ones, in order.
// Where the kernel or the source's file system cannot idmap a mount (NFS,
// 9p, FUSE, Linux before 5.12), the bind shows the host's owners instead:
// its RootUID and RootGID are cleared, before init's config is written.
func idmappedTrees(binds []Bind) ([]*os.File, error) {
	var trees []*os.File
	for i := range binds {
		b := &binds[i]
		if !b.idmapped() {
			continue
		}
		// a Discard bind's tree is its overlay's lower: read-only too
		t, err := idmappedTree(b, b.ReadOnly || b.Discard)
		if errors.Is(err, errNoIdmap) {
			b.RootUID, b.RootGID = 0, 0
			continue
		}
		if err != nil {
			closeAll(trees)
			return nil, err
		}
		trees = append(trees, t)
	}
	return trees, nil
}

// errNoIdmap says a mount cannot be idmapped here.
var errNoIdmap = errors.New("idmapped mounts are not supported")

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// attachTree moves the detached tree fd onto target (init's side).
func attachTree(fd int, target string) error {
	return unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
}
