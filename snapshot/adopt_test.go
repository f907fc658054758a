package snapshot

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

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
		l := putLayer(t, sn, s, parents, nil, top)
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

// putLayer is PutLayer, waiting for its background extraction.
func putLayer(t *testing.T, sn Snapshotter, s *store.Store, parents []v1.Layer, prev v1.Layer, tarball []byte) v1.Layer {
	t.Helper()
	l, wait, err := PutLayer(context.Background(), sn, s, parents, bytes.NewReader(tarball), PutOptions{Prev: prev})
	must(t, err)
	if wait != nil {
		wait()
	}
	return l
}

// TestPutLayerPrepareWaits checks that PutLayer returns with the layer
// locked until its background extraction is in place (so a Prepare waits
// for it), that a Prepare then uses that directory rather than extracting
// the layer a second time, and that nothing is left in the layers
// directory but the layer.
func TestPutLayerPrepareWaits(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	sn, err := New(s, "overlay")
	must(t, err)
	top := mkTar(t, dir("d", 0o755), file("d/f", "x", 0o644))
	arrived, gate := make(chan struct{}), make(chan struct{})
	var extracted unix.Stat_t
	beforeAdopt = func(tmp string) {
		if err := unix.Stat(filepath.Join(tmp, "fs"), &extracted); err != nil {
			t.Error(err)
		}
		close(arrived)
		<-gate
	}
	defer func() { beforeAdopt = nil }()
	l, wait, err := PutLayer(ctx, sn, s, nil, bytes.NewReader(top), PutOptions{})
	must(t, err)
	if wait == nil {
		t.Fatal("PutLayer extracted in the foreground")
	}
	ids, err := chainIDs([]v1.Layer{l})
	must(t, err)
	layers := filepath.Join(s.Root(), "snapshots", "layers")
	// extracted and not yet in place, the layer is locked: a Prepare waits
	<-arrived
	if unlock, err := flock(filepath.Join(layers, ids[0].Hex+".lock"), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		unlock()
		t.Fatal("the layer's lock is free while it is being extracted")
	}
	close(gate)
	_, err = sn.Prepare(ctx, "k", []v1.Layer{l})
	must(t, err)
	wait()
	var used unix.Stat_t
	must(t, unix.Stat(filepath.Join(layers, ids[0].Hex, "fs"), &used))
	if used.Ino != extracted.Ino {
		t.Errorf("Prepare extracted the layer again (inode %d, the background extraction's %d)", used.Ino, extracted.Ino)
	}
	ents, err := os.ReadDir(layers)
	must(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{ids[0].Hex, ids[0].Hex + ".lock"}; !slices.Equal(names, want) {
		t.Errorf("layers holds %q, want %q", names, want)
	}
	must(t, sn.Remove(ctx, "k"))
}
