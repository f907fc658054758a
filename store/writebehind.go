package store

import "golang.org/x/sys/unix"

// WriteBehind asks the kernel to start writing the blob's bytes written so
// far to disk without waiting (sync_file_range SYNC_FILE_RANGE_WRITE), so
// that Commit's fsync has little left to do: big writers (layer commits)
// call it every few MiB and overlap disk writes with producing the blob.
// It is only a hint; durability still comes from Commit.
func (w *Writer) WriteBehind() error {
	return unix.SyncFileRange(int(w.f.Fd()), 0, w.n, unix.SYNC_FILE_RANGE_WRITE)
}
