package snapshot

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
)

// Unpacked layers are derived data: they can always be extracted again from
// the store. So instead of a syncfs of the whole filesystem per unpacked
// layer (seconds for a layer of many small files), a layer directory records
// the boot it was written in (bootFile, written before the directory is
// renamed into place). A process crash loses nothing the kernel already has,
// so within that boot the directory is complete; after a reboot (where a
// power loss may have left files empty or short) a directory that was never
// synced is treated as absent and extracted again under its lock. Without a
// boot ID the directory is synced as before and carries no bootFile.
const bootFile = "boot"

var bootOnce = sync.OnceValue(func() []byte {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return nil
	}
	b = bytes.TrimSpace(b)
	if len(b) < 16 {
		return nil
	}
	return b
})

// seal makes the temp layer directory tmp safe to rename into place: it
// records the current boot, or syncs the filesystem when the boot is unknown.
func seal(tmp string) error {
	if id := bootOnce(); id != nil {
		return os.WriteFile(filepath.Join(tmp, bootFile), id, 0o644)
	}
	return syncFS(tmp)
}

// ready reports whether the layer directory final exists and can be
// trusted: synced (no bootFile) or written in this boot.
func ready(final string) bool {
	if _, err := os.Stat(final); err != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(final, bootFile))
	if os.IsNotExist(err) {
		return true
	}
	if err != nil {
		return false
	}
	id := bootOnce()
	return id != nil && bytes.Equal(b, id)
}

// exists reports whether final exists at all (trusted or not).
func exists(final string) bool {
	_, err := os.Lstat(final)
	return err == nil
}

// discardStale moves an untrusted layer directory aside and removes it; the
// caller holds the chain's lock. No snapshot of this boot uses it: every
// Prepare of this boot went through ready under the same lock.
func discardStale(dir, final, hex string) error {
	if !exists(final) {
		return nil
	}
	aside := filepath.Join(dir, ".tmp-"+hex+"-stale-"+randHex())
	if err := os.Rename(final, aside); err != nil {
		return err
	}
	return removeTree(aside)
}
