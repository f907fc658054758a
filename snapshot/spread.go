package snapshot

import (
	"os"

	"golang.org/x/sys/unix"
)

// fsTopdirFlag is FS_TOPDIR_FL (linux/fs.h, chattr +T), which x/sys/unix
// does not define.
const fsTopdirFlag = 0x00020000

// spread marks dir as the top of directory hierarchies (chattr +T), so that
// ext4's Orlov allocator places each new subdirectory in a block group of its
// own, as it does for directories in the file system's root. Each snapshot and
// each unpacked layer is an independent tree, and this keeps a new one out of
// the block groups that a removed one has just freed: on ext4 without a
// journal, every inode allocation skips the inodes freed there in the last
// ~30 s one by one (recently_deleted in fs/ext4/ialloc.c), which made creating
// 2,000 files after a prune take 1.5 s instead of 0.05 s. On file systems that
// do not know the flag this does nothing.
func spread(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsTopdirFlag != 0 {
		return
	}
	_ = unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFlag))
}
