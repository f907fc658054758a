// Package fsutil holds the small file operations several packages need.
package fsutil

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// CopyFile copies the regular file src to dst, which must not exist yet,
// created with the permission bits perm. It clones the data where the
// filesystem can (FICLONE), and copies it otherwise.
func CopyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm.Perm())
	if err != nil {
		return err
	}
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) != nil {
		_, err = io.Copy(out, in)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
