package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The overlay probe (probeOverlay) creates and tears down an overlay
// superblock: a few milliseconds, and 100+ ms when the teardown waits for an
// RCU grace period on a busy machine. Every strata process that opens a
// snapshotter would pay it (`strata run --rm IMG true` among them), so a
// successful probe is remembered in dir/.overlay-ok, valid for the same
// kernel and the same filesystem (device and type). A failure is never
// remembered: it is retried by the next process. Losing the file only costs
// one probe, so it is written without fsync.
const probeCacheName = ".overlay-ok"

// overlayWorks is probeOverlay, remembered across processes.
func overlayWorks(dir string) error {
	key, err := probeKey(dir)
	if err != nil {
		return probeOverlay(dir)
	}
	cache := filepath.Join(dir, probeCacheName)
	if b, err := os.ReadFile(cache); err == nil && string(b) == key {
		return nil
	}
	if err := probeOverlay(dir); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", cache, os.Getpid())
	if os.WriteFile(tmp, []byte(key), 0o600) == nil {
		if os.Rename(tmp, cache) != nil {
			os.Remove(tmp)
		}
	}
	return nil
}

// probeKey names what an overlay probe's result depends on: the kernel
// release and dir's filesystem.
func probeKey(dir string) (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "", err
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return "", err
	}
	release := strings.TrimRight(string(u.Release[:]), "\x00")
	return fmt.Sprintf("kernel %s\nfs %x dev %d\n", release, fs.Type, st.Dev), nil
}
