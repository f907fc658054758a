package snapshot

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-dev/strata/store"
	"golang.org/x/sys/unix"
)

// TestSpread checks that the directories holding snapshots and unpacked layers
// carry FS_TOPDIR_FL where the file system knows it, and that the flag is not
// put on anything else.
func TestSpread(t *testing.T) {
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	if err := os.Mkdir(probe, 0o700); err != nil {
		t.Fatal(err)
	}
	spread(probe)
	if flags, err := dirFlags(probe); err != nil || flags&fsTopdirFlag == 0 {
		t.Skipf("%s does not keep FS_TOPDIR_FL (flags %#x, %v)", dir, flags, err)
	}

	for _, kind := range kinds(t) {
		t.Run(kind, func(t *testing.T) {
			s, err := store.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := New(s, kind); err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(s.Root(), "snapshots")
			want := map[string]bool{"layers": true, "native": true, "active": true, "l": false}
			for d, top := range want {
				flags, err := dirFlags(filepath.Join(root, d))
				if err != nil {
					t.Fatal(err)
				}
				if got := flags&fsTopdirFlag != 0; got != top {
					t.Errorf("%s: FS_TOPDIR_FL is %v, want %v", d, got, top)
				}
			}
		})
	}
}

func dirFlags(dir string) (uint32, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
}
