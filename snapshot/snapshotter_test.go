package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/strata-dev/strata/store"
)

// TestDeepStack mounts 150 layers, far more than one mount option string
// can name with absolute paths, with the new mount API and with the
// classic mount(2) fallback, and checks every layer is visible.
func TestDeepStack(t *testing.T) {
	requireRoot(t)
	if err := OverlaySupported(t.TempDir()); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	const n = 150
	var tars [][]byte
	for i := 0; i < n; i++ {
		tars = append(tars, mkTar(t, dir("layers", 0o755), file(fmt.Sprintf("layers/%03d", i), fmt.Sprint(i), 0o644)))
	}
	s, err := store.Open(t.TempDir())
	must(t, err)
	sn, err := New(s, "overlay")
	must(t, err)
	ms, err := sn.Prepare(ctx, "deep", layersFromTars(t, tars))
	must(t, err)
	if l := len(strings.Join(ms[0].Options, ",")); l < os.Getpagesize() {
		t.Fatalf("options are only %d bytes: the test needs more than a page", l)
	}
	check := func(t *testing.T, mnt string) {
		ents, err := os.ReadDir(filepath.Join(mnt, "layers"))
		must(t, err)
		if len(ents) != n {
			t.Fatalf("%d entries in the merged /layers, want %d", len(ents), n)
		}
	}
	t.Run("fsopen", func(t *testing.T) {
		mnt, umount := mountForTest(t, ms)
		check(t, mnt)
		umount()
	})
	t.Run("legacy", func(t *testing.T) {
		mnt := t.TempDir()
		wd, _ := os.Getwd()
		must(t, mountOverlayLegacy(ms[0].Options, mnt))
		t.Cleanup(func() { unmount(t, mnt) })
		if now, _ := os.Getwd(); now != wd {
			t.Errorf("working directory changed to %s", now)
		}
		check(t, mnt)
	})
	must(t, sn.Remove(ctx, "deep"))
}

// TestConcurrentPrepare prepares the same layers from many snapshotters at
// once (each takes its own file locks, as separate processes would): every
// layer is unpacked exactly once and every snapshot sees the same tree.
func TestConcurrentPrepare(t *testing.T) {
	ks := kinds(t)
	ctx := context.Background()
	for _, kind := range ks {
		t.Run(kind, func(t *testing.T) {
			s, err := store.Open(t.TempDir())
			must(t, err)
			lowers := confLowers(t)
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sn, err := New(s, kind)
					if err != nil {
						errs[i] = err
						return
					}
					_, errs[i] = sn.Prepare(ctx, fmt.Sprintf("k%d", i), layersFromTars(t, lowers))
				}()
			}
			wg.Wait()
			must(t, errors.Join(errs...))
			sub := map[string]string{"overlay": "layers", "native": "native"}[kind]
			ents, err := os.ReadDir(filepath.Join(s.Root(), "snapshots", sub))
			must(t, err)
			var dirs []string
			for _, e := range ents {
				if e.IsDir() {
					dirs = append(dirs, e.Name())
				}
			}
			want := map[string]int{"overlay": 2, "native": 1}[kind]
			if len(dirs) != want {
				t.Fatalf("%s holds %v, want %d layer directories and no temp dirs", sub, dirs, want)
			}
			sn, _ := New(s, kind)
			keys, err := sn.List(ctx)
			must(t, err)
			if len(keys) != 8 {
				t.Fatalf("keys %v", keys)
			}
			for _, k := range keys {
				must(t, sn.Remove(ctx, k))
			}
		})
	}
}

// TestPrune keeps the layers of active snapshots and removes the others.
func TestPrune(t *testing.T) {
	ks := kinds(t)
	ctx := context.Background()
	for _, kind := range ks {
		t.Run(kind, func(t *testing.T) {
			s, err := store.Open(t.TempDir())
			must(t, err)
			sn, err := New(s, kind)
			must(t, err)
			all := layersFromTars(t, confLowers(t))
			_, err = sn.Prepare(ctx, "a", all[:1])
			must(t, err)
			_, err = sn.Prepare(ctx, "b", all)
			must(t, err)
			count := func() int {
				sub := map[string]string{"overlay": "layers", "native": "native"}[kind]
				ents, _ := os.ReadDir(filepath.Join(s.Root(), "snapshots", sub))
				n := 0
				for _, e := range ents {
					if e.IsDir() {
						n++
					}
				}
				return n
			}
			before := count()
			freed, err := sn.Prune(ctx)
			must(t, err)
			if freed != 0 || count() != before {
				t.Fatalf("Prune with every layer in use freed %d bytes, %d→%d layer dirs", freed, before, count())
			}
			must(t, sn.Remove(ctx, "b"))
			freed, err = sn.Prune(ctx)
			must(t, err)
			if freed <= 0 || count() != 1 {
				t.Fatalf("Prune freed %d bytes and left %d layer dirs, want >0 and 1", freed, count())
			}
			ms, err := sn.Mounts(ctx, "a")
			must(t, err)
			mnt, umount := mountForTest(t, ms)
			if _, err := os.Stat(filepath.Join(mnt, "etc/conf")); err != nil {
				t.Fatalf("the kept snapshot lost its layer: %v", err)
			}
			umount()
			must(t, sn.Remove(ctx, "a"))
		})
	}
}

// TestCleanup removes what a crashed process left and nothing else.
func TestCleanup(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	sn, err := New(s, "native")
	must(t, err)
	_, err = sn.Prepare(ctx, "live", layersFromTars(t, confLowers(t)[:1]))
	must(t, err)
	root := filepath.Join(s.Root(), "snapshots")
	// a crash in the middle of an unpack and of a Prepare
	stale := filepath.Join(root, "layers", ".tmp-"+strings.Repeat("a", 64)+"-123456")
	must(t, os.MkdirAll(filepath.Join(stale, "fs/etc"), 0o755))
	half := filepath.Join(root, "active", "half")
	must(t, os.MkdirAll(filepath.Join(half, "rootfs/etc"), 0o755))
	must(t, sn.Cleanup(ctx))
	for p, want := range map[string]bool{stale: false, half: false, filepath.Join(root, "active", "live"): true} {
		_, err := os.Stat(p)
		if (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", p, err == nil, want)
		}
	}
	keys, _ := sn.List(ctx)
	if strings.Join(keys, ",") != "live" {
		t.Errorf("keys %v, want [live]", keys)
	}
}

func TestPrepareErrors(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	sn, err := New(s, "native")
	must(t, err)
	if _, err := sn.Prepare(ctx, "../evil", nil); err == nil || !strings.Contains(err.Error(), "invalid snapshot key") {
		t.Errorf("bad key: %v", err)
	}
	_, err = sn.Prepare(ctx, "k", nil)
	must(t, err)
	if _, err := sn.Prepare(ctx, "k", nil); !errors.Is(err, ErrExists) {
		t.Errorf("second Prepare: %v, want ErrExists", err)
	}
	if _, err := sn.Mounts(ctx, "nope"); !errors.Is(err, ErrNotExist) {
		t.Errorf("Mounts of unknown key: %v, want ErrNotExist", err)
	}
	// a corrupt layer fails Prepare and leaves nothing behind
	bad := layersFromTars(t, [][]byte{mkTar(t, file("a", "xxxx", 0o644))[:600]})
	if _, err := sn.Prepare(ctx, "bad", bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupt layer: %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "snapshots", "active", "bad")); !os.IsNotExist(err) {
		t.Errorf("failed Prepare left its directory: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root(), "snapshots", "native"))
	for _, e := range ents {
		if e.IsDir() {
			t.Errorf("failed Prepare left %s", e.Name())
		}
	}
	if _, err := New(s, "zfs"); err == nil {
		t.Error("unknown kind accepted")
	}
}

// TestPrepareChains prepares a stack, then stacks that share its prefix
// (the native snapshotter builds them from the cached prefix): each sees
// exactly the flattened layers.
func TestPrepareChains(t *testing.T) {
	ks := kinds(t)
	ctx := context.Background()
	lowers := confLowers(t)
	third := mkTar(t, dir("etc", 0o755), file("etc/.wh.conf", "", 0), file("etc/third", "3", 0o600), file(".wh.opt", "", 0))
	for _, kind := range ks {
		t.Run(kind, func(t *testing.T) {
			s, err := store.Open(t.TempDir())
			must(t, err)
			sn, err := New(s, kind)
			must(t, err)
			all := layersFromTars(t, append(lowers, third))
			for i, n := range []int{1, 3, 2, 3} {
				key := fmt.Sprintf("k%d", i)
				ms, err := sn.Prepare(ctx, key, all[:n])
				must(t, err)
				mnt, umount := mountForTest(t, ms)
				got := dumpContent(t, mnt)
				umount()
				want := t.TempDir()
				must(t, ApplyLayers(ctx, all[:n], want, UnpackOptions{}))
				if d := diffLines(dumpContent(t, want), got); d != "" {
					t.Fatalf("%d layers: tree differs from the applied layers:\n%s", n, d)
				}
				must(t, sn.Remove(ctx, key))
			}
		})
	}
}

var _ v1.Layer

func TestMountAllBind(t *testing.T) {
	requireRoot(t)
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644))
	for _, ro := range []bool{false, true} {
		opts := []string{"rbind", "rw"}
		if ro {
			opts = []string{"rbind", "ro"}
		}
		mnt, umount := mountForTest(t, []Mount{{Type: "bind", Source: src, Options: opts}})
		b, err := os.ReadFile(filepath.Join(mnt, "f"))
		must(t, err)
		err = os.WriteFile(filepath.Join(mnt, "g"), nil, 0o644)
		if string(b) != "x" || (err != nil) != ro {
			t.Errorf("ro=%v: read %q, write error %v", ro, b, err)
		}
		umount()
	}
	if err := MountAll([]Mount{{Type: "nfs"}}, t.TempDir()); err == nil || !strings.Contains(err.Error(), `unsupported mount type "nfs"`) {
		t.Errorf("unknown type: %v", err)
	}
}

// TestPrepareAfterCrash: a temp directory left by a process killed while
// unpacking the same layer is removed by the next Prepare, which unpacks
// the layer completely.
func TestPrepareAfterCrash(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	sn, err := New(s, "native")
	must(t, err)
	layers := layersFromTars(t, confLowers(t)[:1])
	ids, err := chainIDs(layers)
	must(t, err)
	stale := filepath.Join(s.Root(), "snapshots", "native", ".tmp-"+ids[0].Hex+"-dead")
	must(t, os.MkdirAll(filepath.Join(stale, "fs/etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(stale, "fs/etc/conf"), []byte("half"), 0o644))
	ms, err := sn.Prepare(ctx, "k", layers)
	must(t, err)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp directory still there: %v", err)
	}
	mnt, umount := mountForTest(t, ms)
	b, err := os.ReadFile(filepath.Join(mnt, "etc/conf"))
	umount()
	must(t, err)
	if string(b) != "a=1\n" {
		t.Errorf("etc/conf = %q", b)
	}
	must(t, sn.Remove(ctx, "k"))
}

// TestCommitRemove: the layer CommitRemove keeps (overlay: the upper
// directory, promoted) gives exactly the tree, times included, that
// extracting the committed layer gives.
// CommitRemoveAsync (with every diff big enough to be stored in the
// background) must give the same layer, stored intact.
func TestCommitRemove(t *testing.T) {
	ks := kinds(t)
	ctx := context.Background()
	defer func(n int64) { asyncMinBytes = n }(asyncMinBytes)
	asyncMinBytes = 0
	for _, kind := range ks {
		var digests []v1.Hash
		for _, async := range []bool{false, true} {
			for _, epoch := range []bool{false, true} {
				t.Run(fmt.Sprint(kind, "/async=", async, "/epoch=", epoch), func(t *testing.T) {
					var opts []Option
					if epoch {
						opts = append(opts, WithSourceDateEpoch(confEpoch))
					}
					s, err := store.Open(t.TempDir())
					must(t, err)
					sn, err := New(s, kind, opts...)
					must(t, err)
					lowers := layersFromTars(t, confLowers(t))
					ms, err := sn.Prepare(ctx, "c", lowers)
					must(t, err)
					mnt, umount := mountForTest(t, ms)
					mixedChanges(t, mnt)
					umount()
					var l v1.Layer
					if async {
						p, err := sn.CommitRemoveAsync(ctx, "c")
						must(t, err)
						must(t, p.Stored())
						l = p
					} else {
						l, err = sn.CommitRemove(ctx, "c")
						must(t, err)
					}
					d, _ := l.Digest()
					size, _ := l.Size()
					if got, err := s.BlobSize(d); err != nil || got != size {
						t.Fatalf("blob %s: size %d, %v; layer size %d", d, got, err, size)
					}
					rc, err := l.Uncompressed()
					must(t, err)
					h := sha256.New()
					io.Copy(h, rc)
					rc.Close()
					if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
						t.Fatalf("stored blob hashes to %s, layer says %s", got, d.Hex)
					}
					if epoch { // the same times every run
						digests = append(digests, d)
					}
					if keys, _ := sn.List(ctx); len(keys) != 0 {
						t.Fatalf("keys left: %v", keys)
					}
					all := append(append([]v1.Layer{}, lowers...), l)
					if kind == "overlay" {
						ids, _ := chainIDs(all)
						if _, err := os.Stat(filepath.Join(s.Root(), "snapshots", "layers", ids[len(ids)-1].Hex, "fs")); err != nil {
							t.Fatalf("upper directory not kept as the layer: %v", err)
						}
					}
					ms, err = sn.Prepare(ctx, "next", all)
					must(t, err)
					mnt, umount = mountForTest(t, ms)
					got := dumpTree(t, mnt, "", true)
					umount()
					must(t, sn.Remove(ctx, "next"))

					// the same layers extracted in a fresh store
					s2, err := store.Open(t.TempDir())
					must(t, err)
					sn2, err := New(s2, kind)
					must(t, err)
					ms, err = sn2.Prepare(ctx, "ref", all)
					must(t, err)
					mnt, umount = mountForTest(t, ms)
					want := dumpTree(t, mnt, "", true)
					umount()
					if d := diffLines(want, got); d != "" {
						t.Fatalf("kept layer differs from the extracted one:\n%s", d)
					}
					if len(want) < 20 {
						t.Fatalf("suspiciously small tree: %v", want)
					}
				})
			}
		}
		if len(digests) == 2 && digests[0] != digests[1] {
			t.Errorf("%s: CommitRemove and CommitRemoveAsync give different layers: %v", kind, digests)
		}
	}
}

// mixedChanges makes one of each kind of change on the conformance lowers.
func mixedChanges(t *testing.T, root string) {
	p := func(rel string) string { return filepath.Join(root, rel) }
	must(t, os.WriteFile(p("new.txt"), []byte("new"), 0o644))
	must(t, os.MkdirAll(p("a/b/c"), 0o755))
	must(t, os.WriteFile(p("a/b/c/f"), []byte("deep"), 0o600))
	f, err := os.OpenFile(p("etc/conf"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	f.WriteString("b=2\n")
	must(t, f.Close())
	must(t, os.Remove(p("etc/old")))
	must(t, os.RemoveAll(p("usr/share/doc")))
	must(t, os.RemoveAll(p("var/lib")))
	must(t, os.Mkdir(p("var/lib"), 0o750))
	must(t, os.WriteFile(p("var/lib/new"), []byte("n"), 0o644))
	must(t, os.Remove(p("bin")))
	must(t, os.Mkdir(p("bin"), 0o755))
	must(t, os.WriteFile(p("h1"), []byte("hard"), 0o640))
	must(t, os.Link(p("h1"), p("h2")))
	must(t, os.Symlink("/etc/conf", p("s")))
	must(t, unix.Lsetxattr(p("new.txt"), "user.note", []byte("hi"), 0))
	must(t, os.Chmod(p("opt"), 0o777|os.ModeSticky))
	must(t, os.Chown(p("lone/only"), 1000, 1001))
	must(t, unix.Mkfifo(p("fifo"), 0o644))
	must(t, os.WriteFile(p("etc/hosts"), nil, 0o644))
	must(t, os.Mkdir(p("proc"), 0o555))
}

// lyingLayer serves content under another layer's diffID.
type lyingLayer struct {
	v1.Layer
	diffID v1.Hash
}

func (l lyingLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

func TestPrepareVerifiesDiffID(t *testing.T) {
	ks := kinds(t)
	ctx := context.Background()
	tars := confLowers(t)
	good := layersFromTars(t, tars)
	for _, kind := range ks {
		t.Run(kind, func(t *testing.T) {
			s, err := store.Open(t.TempDir())
			must(t, err)
			sn, err := New(s, kind)
			must(t, err)
			d, _ := good[0].DiffID()
			liar := lyingLayer{good[1], d}
			_, err = sn.Prepare(ctx, "k", []v1.Layer{liar})
			if !errors.Is(err, store.ErrDigestMismatch) {
				t.Fatalf("Prepare of a layer whose content does not match its diffID: %v", err)
			}
			for _, sub := range []string{"layers", "native"} {
				ents, _ := os.ReadDir(filepath.Join(s.Root(), "snapshots", sub))
				for _, e := range ents {
					if e.IsDir() {
						t.Errorf("%s/%s left", sub, e.Name())
					}
				}
			}
			// gzip-compressed layers (as pulled) unpack through pgzip
			var gz []v1.Layer
			for _, b := range tars {
				l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithCompressedCaching)
				must(t, err)
				mt, _ := l.MediaType()
				rc, _ := l.Compressed()
				magic := make([]byte, 2)
				io.ReadFull(rc, magic)
				rc.Close()
				if magic[0] != 0x1f || magic[1] != 0x8b {
					t.Fatalf("test layer is not gzip (%s)", mt)
				}
				gz = append(gz, l)
			}
			ms, err := sn.Prepare(ctx, "gz", gz)
			must(t, err)
			mnt, umount := mountForTest(t, ms)
			b, err := os.ReadFile(filepath.Join(mnt, "etc/added"))
			umount()
			must(t, err)
			if string(b) != "2" {
				t.Fatalf("etc/added = %q", b)
			}
			must(t, sn.Remove(ctx, "gz"))
		})
	}
}

func TestValidKey(t *testing.T) {
	long := strings.Repeat("a", 128)
	for key, want := range map[string]bool{
		"a": true, "0abc": true, "abc_d.e-f": true, long: true, long + "a": false,
		"": false, "_a": false, ".a": false, "-a": false, "a/b": false, "a b": false, "../x": false, "é": false,
	} {
		if got := validKey(key); got != want {
			t.Errorf("validKey(%q) = %v, want %v", key, got, want)
		}
	}
}

// TestCommitRemoveAsyncChanged: a kept layer directory that changes before
// its blob is written in the background gives an error and no blob.
func TestCommitRemoveAsyncChanged(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	defer func(n int64) { asyncMinBytes = n }(asyncMinBytes)
	asyncMinBytes = 0
	defer func() { testHookStore = nil }()
	s, err := store.Open(t.TempDir())
	must(t, err)
	sn, err := New(s, "overlay")
	must(t, err)
	ms, err := sn.Prepare(ctx, "c", layersFromTars(t, confLowers(t)))
	must(t, err)
	mnt, umount := mountForTest(t, ms)
	must(t, os.WriteFile(filepath.Join(mnt, "big"), bytes.Repeat([]byte("x"), 1<<20), 0o644))
	umount()
	testHookStore = func(fs string) {
		must(t, os.WriteFile(filepath.Join(fs, "big"), bytes.Repeat([]byte("y"), 1<<20), 0o644))
	}
	p, err := sn.CommitRemoveAsync(ctx, "c")
	must(t, err)
	err = p.Stored()
	if !errors.Is(err, store.ErrDigestMismatch) {
		t.Fatalf("Stored() = %v, want a digest mismatch", err)
	}
	d, _ := p.Digest()
	if s.HasBlob(d) {
		t.Fatalf("blob %s stored although its content changed", d)
	}
	if _, err := p.Uncompressed(); !errors.Is(err, store.ErrDigestMismatch) {
		t.Fatalf("Uncompressed() error = %v", err)
	}
}

// TestProcessOwned: Cleanup keeps a process-owned snapshot while its maker
// holds it and removes it once the maker is gone (its lock released).
func TestProcessOwned(t *testing.T) {
	ctx := context.Background()
	for _, kind := range kinds(t) {
		t.Run(kind, func(t *testing.T) {
			s, err := store.Open(t.TempDir())
			must(t, err)
			sn, err := New(s, kind, WithProcessOwned())
			must(t, err)
			plain, err := New(s, kind)
			must(t, err)
			lowers := layersFromTars(t, confLowers(t))
			for _, k := range []string{"alive", "dead"} {
				_, err := sn.Prepare(ctx, k, lowers)
				must(t, err)
			}
			_, err = plain.Prepare(ctx, "container", lowers)
			must(t, err)
			b := baseOf(sn)
			b.mu.Lock()
			b.owners["dead"].Close() // as if its process had been killed
			delete(b.owners, "dead")
			b.mu.Unlock()
			must(t, plain.Cleanup(ctx))
			keys, err := sn.List(ctx)
			must(t, err)
			if got := strings.Join(keys, " "); got != "alive container" {
				t.Fatalf("after Cleanup: %q, want \"alive container\"", got)
			}
			must(t, sn.Remove(ctx, "alive"))
			must(t, plain.Remove(ctx, "container"))
		})
	}
}

func baseOf(sn Snapshotter) *base {
	switch s := sn.(type) {
	case *overlay:
		return s.base
	case *native:
		return s.base
	}
	panic("unknown snapshotter")
}
