package snapshot

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-dev/strata/store"
)

// TestPutLayerAdopts checks that the layer PutLayer unpacks in the same pass
// is exactly what Prepare would have extracted (tree, owners, modes, times,
// whiteouts), that Prepare then uses it, and that one written in an earlier
// boot is extracted again.
func TestPutLayerAdopts(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	lowers := confLowers(t)
	top := mkTar(t, dir("etc", 0o750), file("etc/.wh.conf", "", 0), file("etc/new", "n", 0o640), symlink("etc/l", "new"), file(".wh.opt", "", 0), dir("d", 0o755), file("d/.wh..wh..opq", "", 0))
	parents := layersFromTars(t, lowers)
	for _, stale := range []bool{false, true} {
		s, err := store.Open(t.TempDir())
		must(t, err)
		sn, err := New(s, "overlay")
		must(t, err)
		l, err := PutLayer(ctx, sn, s, parents, nil, bytes.NewReader(top))
		must(t, err)
		all := append(parents[:len(parents):len(parents)], l)
		ids, err := chainIDs(all)
		must(t, err)
		final := filepath.Join(s.Root(), "snapshots", "layers", ids[len(ids)-1].Hex)
		got := dumpTree(t, filepath.Join(final, "fs"), "", true)
		want := t.TempDir()
		must(t, unpackLayer(ctx, l, want, overlayUnpackOptions()))
		if d := diffLines(dumpTree(t, want, "", true), got); d != "" {
			t.Fatalf("adopted layer differs from its extraction:\n%s", d)
		}
		if stale {
			must(t, os.WriteFile(filepath.Join(final, bootFile), []byte("00000000-0000-0000-0000-000000000000"), 0o644))
			must(t, os.Remove(filepath.Join(final, "fs", "etc", "new"))) // what a power loss could leave
		}
		ms, err := sn.Prepare(ctx, "k", all)
		must(t, err)
		mnt, umount := mountForTest(t, ms)
		got = dumpContent(t, mnt)
		umount()
		wantAll := t.TempDir()
		must(t, ApplyLayers(ctx, all, wantAll, UnpackOptions{}))
		if d := diffLines(dumpContent(t, wantAll), got); d != "" {
			t.Fatalf("stale=%v: tree differs from the applied layers:\n%s", stale, d)
		}
		must(t, sn.Remove(ctx, "k"))
		if b, _ := os.ReadFile(filepath.Join(final, bootFile)); !bytes.Equal(b, bootOnce()) {
			t.Errorf("stale=%v: layer records boot %q, want %q", stale, b, bootOnce())
		}
	}
}
