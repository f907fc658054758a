package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/store"
)

// rtree is a layer as a map from clean name to entry, written sorted (the
// form builder's COPY layers have).
type rtree map[string]ent

func (r rtree) tar(t testing.TB) []byte {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	var ents []ent
	for _, n := range names {
		ents = append(ents, r[n])
	}
	return mkTar(t, ents...)
}

func (r rtree) clone() rtree {
	out := rtree{}
	for k, v := range r {
		out[k] = v
	}
	return out
}

func (r rtree) pick(rng *rand.Rand, typ byte) (string, bool) {
	var names []string
	for n, e := range r {
		if e.hdr.Typeflag == typ {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "", false
	}
	sort.Strings(names)
	return names[rng.Intn(len(names))], true
}

func (r rtree) removeTree(name string) {
	for n := range r {
		if n == name || strings.HasPrefix(n, name+"/") {
			delete(r, n)
		}
	}
}

func rtime(rng *rand.Rand) time.Time {
	t := time.Unix(1600000000+rng.Int63n(1e8), 0)
	if rng.Intn(4) == 0 {
		t = t.Add(time.Duration(rng.Intn(1e9))) // a PAX time
	}
	return t
}

func rentry(rng *rand.Rand, name string, typ byte) ent {
	h := tar.Header{Name: name, Typeflag: typ, Mode: []int64{0o644, 0o600, 0o755, 0o4755, 0o1777}[rng.Intn(5)],
		Uid: rng.Intn(3) * 1000, Gid: rng.Intn(3) * 1000, ModTime: rtime(rng)}
	e := ent{hdr: h}
	switch typ {
	case tar.TypeDir:
		e.hdr.Name += "/"
	case tar.TypeReg:
		e.body = strings.Repeat(fmt.Sprintf("%s %d\n", name, rng.Intn(100)), 1+rng.Intn(3))
		if rng.Intn(10) == 0 {
			e.body = strings.Repeat("x", 70000+rng.Intn(3)) // bigger than a compare buffer
		}
		e.hdr.Size = int64(len(e.body))
		if rng.Intn(8) == 0 {
			e.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.k": fmt.Sprint(rng.Intn(2))}
		}
	case tar.TypeSymlink:
		e.hdr.Linkname = fmt.Sprintf("target%d", rng.Intn(3))
		e.hdr.Mode = 0o777
	}
	return e
}

func randomTree(rng *rand.Rand) rtree {
	r := rtree{}
	for d := 0; d < 4; d++ {
		top := fmt.Sprintf("d%d", d)
		r[top] = rentry(rng, top, tar.TypeDir)
		for s := 0; s < 3; s++ {
			sub := fmt.Sprintf("%s/s%d", top, s)
			r[sub] = rentry(rng, sub, tar.TypeDir)
			for f := 0; f < 4; f++ {
				n := fmt.Sprintf("%s/f%d", sub, f)
				r[n] = rentry(rng, n, tar.TypeReg)
			}
			r[sub+"/l"] = rentry(rng, sub+"/l", tar.TypeSymlink)
			r[sub+"/h"] = ent{hdr: tar.Header{Name: sub + "/h", Typeflag: tar.TypeLink, Linkname: sub + "/f0"}}
		}
		r[top+"/p"] = rentry(rng, top+"/p", tar.TypeFifo)
	}
	r["top"] = rentry(rng, "top", tar.TypeReg)
	return r
}

// mutate changes a few entries of r and describes what it did.
func mutate(rng *rand.Rand, r rtree, n int) string {
	var log []string
	for i := 0; i < n; i++ {
		op := rng.Intn(14)
		switch op {
		case 0, 1: // edit a file
			if f, ok := r.pick(rng, tar.TypeReg); ok {
				e := r[f]
				e.body += "edited\n"
				e.hdr.Size = int64(len(e.body))
				e.hdr.ModTime = rtime(rng)
				r[f] = e
				log = append(log, "edit "+f)
			}
		case 2: // mode only
			for _, typ := range []byte{tar.TypeReg, tar.TypeDir} {
				if f, ok := r.pick(rng, typ); ok {
					e := r[f]
					e.hdr.Mode ^= 0o050
					r[f] = e
					log = append(log, "chmod "+f)
				}
			}
		case 3: // times only
			for _, typ := range []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink} {
				if f, ok := r.pick(rng, typ); ok {
					e := r[f]
					e.hdr.ModTime = rtime(rng)
					r[f] = e
					log = append(log, "touch "+f)
				}
			}
		case 4: // owner only
			if f, ok := r.pick(rng, tar.TypeReg); ok {
				e := r[f]
				e.hdr.Uid += 7
				r[f] = e
				log = append(log, "chown "+f)
			}
		case 5: // delete a file
			if f, ok := r.pick(rng, tar.TypeReg); ok {
				delete(r, f)
				log = append(log, "rm "+f)
			}
		case 6: // delete a directory
			if f, ok := r.pick(rng, tar.TypeDir); ok {
				r.removeTree(f)
				log = append(log, "rm -r "+f)
			}
		case 7: // add files (and a directory)
			if f, ok := r.pick(rng, tar.TypeDir); ok {
				n := fmt.Sprintf("%s/new%d", f, i)
				r[n] = rentry(rng, n, tar.TypeReg)
				nd := fmt.Sprintf("%s/newdir%d", f, i)
				r[nd] = rentry(rng, nd, tar.TypeDir)
				r[nd+"/x"] = rentry(rng, nd+"/x", tar.TypeReg)
				log = append(log, "add "+n+" "+nd+"/x")
			}
		case 8: // a directory becomes a file
			if f, ok := r.pick(rng, tar.TypeDir); ok {
				r.removeTree(f)
				r[f] = rentry(rng, f, tar.TypeReg)
				log = append(log, "dir->file "+f)
			}
		case 9: // a file becomes a directory
			if f, ok := r.pick(rng, tar.TypeReg); ok {
				r[f] = rentry(rng, f, tar.TypeDir)
				r[f+"/y"] = rentry(rng, f+"/y", tar.TypeReg)
				log = append(log, "file->dir "+f)
			}
		case 10: // a symlink's target
			if f, ok := r.pick(rng, tar.TypeSymlink); ok {
				e := r[f]
				e.hdr.Linkname += "x"
				r[f] = e
				log = append(log, "relink "+f)
			}
		case 11: // a file becomes a symlink
			if f, ok := r.pick(rng, tar.TypeReg); ok {
				r[f] = rentry(rng, f, tar.TypeSymlink)
				log = append(log, "file->symlink "+f)
			}
		case 12: // a file becomes a hard link to an earlier one
			if f, ok := r.pick(rng, tar.TypeReg); ok {
				if g, ok := r.pick(rng, tar.TypeReg); ok && g < f {
					r[f] = ent{hdr: tar.Header{Name: f, Typeflag: tar.TypeLink, Linkname: g}}
					log = append(log, "link "+f+" => "+g)
				}
			}
		case 13: // a hard link becomes a file
			if f, ok := r.pick(rng, tar.TypeLink); ok {
				r[f] = rentry(rng, f, tar.TypeReg)
				log = append(log, "unlink "+f)
			}
		}
	}
	// a hard link whose target went becomes a file of its own
	for n, e := range r {
		if e.hdr.Typeflag == tar.TypeLink {
			if t, ok := r[e.hdr.Linkname]; !ok || t.hdr.Typeflag != tar.TypeReg {
				r[n] = rentry(rng, n, tar.TypeReg)
				log = append(log, "(unlink "+n+")")
			}
		}
	}
	return strings.Join(log, "\n")
}

// dumpExact is dumpTree with nanosecond modification times.
func dumpExact(t testing.TB, root string) []string {
	t.Helper()
	out := dumpTree(t, root, "", false)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, fmt.Sprintf("%s mtime=%d.%09d", rel, st.Mtim.Sec, st.Mtim.Nsec))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func layerDir(t testing.TB, s *store.Store, layers []v1.Layer) string {
	t.Helper()
	ids, err := chainIDs(layers)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(s.Root(), "snapshots", "layers", ids[len(ids)-1].Hex)
}

// TestPutLayerPatches checks that a layer made by patching the previous
// layer's directory is exactly the layer extracted afresh (tree, owners,
// modes, nanosecond times, xattrs) over random edits: content, mode, owner
// and time changes, files and directories added and removed, types
// replaced. The previous directory is taken over; a snapshot over the
// previous layer still gets it (extracted again).
func TestPutLayerPatches(t *testing.T) {
	requireRoot(t)
	if err := OverlaySupported(t.TempDir()); err != nil {
		t.Skipf("overlay unavailable: %v", err)
	}
	ctx := context.Background()
	patched := 0
	for seed := 1; seed <= 40; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(seed)))
			s, err := store.Open(t.TempDir())
			must(t, err)
			sn, err := New(s, "overlay")
			must(t, err)
			var parents []v1.Layer
			if seed%2 == 0 {
				parents = layersFromTars(t, confLowers(t)[:1])
			}
			prevTree := randomTree(rng)
			nextTree := prevTree.clone()
			log := mutate(rng, nextTree, 1+rng.Intn(4))
			prevTar, nextTar := prevTree.tar(t), nextTree.tar(t)

			l0 := putLayer(t, sn, s, parents, nil, prevTar)
			prevDir := layerDir(t, s, append(parents[:len(parents):len(parents)], l0))
			if !ready(prevDir) {
				t.Fatal("the previous layer was not unpacked")
			}
			_, derr := diffLayers(ctx, bytes.NewReader(prevTar), mustDigest(t, l0), bytes.NewReader(nextTar))
			if derr != nil && !errors.Is(derr, errNoPatch) {
				t.Fatal(derr)
			}
			l1 := putLayer(t, sn, s, parents, l0, nextTar)
			all := append(parents[:len(parents):len(parents)], l1)
			final := layerDir(t, s, all)
			if derr == nil {
				patched++
				if exists(prevDir) {
					t.Errorf("the previous directory was not taken over\nops:\n%s", log)
				}
				if !ready(final) {
					t.Fatalf("the patched layer is not in place\nops:\n%s", log)
				}
				want := t.TempDir()
				must(t, unpackLayer(ctx, l1, want, overlayUnpackOptions()))
				if d := diffLines(dumpExact(t, want), dumpExact(t, filepath.Join(final, "fs"))); d != "" {
					t.Fatalf("patched layer differs from its extraction:\n%s\nops:\n%s", d, log)
				}
			} else if !exists(prevDir) {
				t.Errorf("not patchable (%v), yet the previous directory went", derr)
			}
			// whatever happened, snapshots see the layers' content
			for _, layers := range [][]v1.Layer{all, append(parents[:len(parents):len(parents)], l0)} {
				if d := diffLines(appliedTree(t, layers), preparedTree(t, sn, layers)); d != "" {
					t.Fatalf("snapshot differs from the applied layers:\n%s\nops:\n%s", d, log)
				}
			}
		})
	}
	if patched < 30 {
		t.Errorf("only %d of 40 layers could be patched", patched)
	}
}

func mustDigest(t testing.TB, l v1.Layer) v1.Hash {
	t.Helper()
	d, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func appliedTree(t *testing.T, layers []v1.Layer) []string {
	t.Helper()
	dir := t.TempDir()
	must(t, ApplyLayers(context.Background(), layers, dir, UnpackOptions{Devices: true}))
	return dumpTree(t, dir, "", true)
}

// TestPutLayerPatchInUse checks that the previous layer's directory is left
// alone while a snapshot uses it: the new layer is then left for Prepare.
func TestPutLayerPatchInUse(t *testing.T) {
	requireRoot(t)
	if err := OverlaySupported(t.TempDir()); err != nil {
		t.Skipf("overlay unavailable: %v", err)
	}
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	sn, err := New(s, "overlay")
	must(t, err)
	rng := rand.New(rand.NewSource(1))
	prevTree := randomTree(rng)
	nextTree := prevTree.clone()
	mutate(rng, nextTree, 3)
	l0 := putLayer(t, sn, s, nil, nil, prevTree.tar(t))
	prevDir := layerDir(t, s, []v1.Layer{l0})
	before := dumpExact(t, filepath.Join(prevDir, "fs"))
	_, err = sn.Prepare(ctx, "user", []v1.Layer{l0})
	must(t, err)
	l1 := putLayer(t, sn, s, nil, l0, nextTree.tar(t))
	if d := diffLines(before, dumpExact(t, filepath.Join(prevDir, "fs"))); d != "" {
		t.Fatalf("a directory in use changed:\n%s", d)
	}
	if exists(layerDir(t, s, []v1.Layer{l1})) {
		t.Errorf("the new layer was unpacked although its previous one is in use")
	}
	must(t, sn.Remove(ctx, "user"))
	if d := diffLines(appliedTree(t, []v1.Layer{l1}), preparedTree(t, sn, []v1.Layer{l1})); d != "" {
		t.Fatalf("snapshot differs from the applied layer:\n%s", d)
	}
}

// TestDiffLayersRefuses lists layers a patch does not handle.
func TestDiffLayersRefuses(t *testing.T) {
	ctx := context.Background()
	base := []ent{dir("a", 0o755), file("a/f", "1", 0o644)}
	xdir := dir("a", 0o755)
	xdir.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.k": "v"}
	cases := map[string]struct{ prev, next []ent }{
		"link to a later":  {base, []ent{dir("a", 0o755), hardlink("a/e", "a/f"), file("a/f", "1", 0o644)}},
		"link to nothing":  {base, append(base[:2:2], hardlink("a/h", "a/x"))},
		"whiteout":         {base, append(base[:2:2], file("a/.wh.g", "", 0))},
		"implicit parent":  {base, []ent{file("a/f", "2", 0o644)}},
		"unsorted":         {base, []ent{dir("a", 0o755), file("a/g", "1", 0o644), file("a/f", "1", 0o644)}},
		"root entry":       {base, append([]ent{dir("./", 0o755)}, base...)},
		"xattr dir change": {[]ent{xdir, file("a/f", "1", 0o644)}, []ent{dir("a", 0o700), file("a/f", "1", 0o644)}},
		"most entries":     {base, []ent{dir("a", 0o700), file("a/f", "2", 0o644)}},
	}
	for name, c := range cases {
		prev := mkTar(t, c.prev...)
		d, err := diffLayers(ctx, bytes.NewReader(prev), sha(prev), bytes.NewReader(mkTar(t, c.next...)))
		if !errors.Is(err, errNoPatch) {
			t.Errorf("%s: got %v, %v; want errNoPatch", name, d, err)
		}
	}
	// the previous blob must have its diffID
	prev := mkTar(t, base...)
	next := mkTar(t, append(base, file("a/g", "2", 0o644))...)
	if _, err := diffLayers(ctx, bytes.NewReader(prev), sha(prev), bytes.NewReader(next)); err != nil {
		t.Fatalf("a patchable pair: %v", err)
	}
	if _, err := diffLayers(ctx, bytes.NewReader(prev), sha(next), bytes.NewReader(next)); !errors.Is(err, errNoPatch) {
		t.Errorf("a previous blob with another digest: got %v, want errNoPatch", err)
	}
}

func sha(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h
}

// TestDiffLayersOps checks the operations of a small patch: the changed
// entries with the directories above them, removals once per subtree.
func TestDiffLayersOps(t *testing.T) {
	prevEnts := []ent{dir("a", 0o755), dir("a/b", 0o755), file("a/b/f", "1", 0o644), file("a/b/g", "1", 0o644),
		dir("a/c", 0o755), file("a/c/x", "x", 0o644), dir("d", 0o755), file("d/1", "1", 0o644), file("d/2", "2", 0o644),
		file("d/3", "3", 0o644), file("d/4", "4", 0o644), file("d/5", "5", 0o644), file("d/6", "6", 0o644)}
	nextEnts := []ent{dir("a", 0o755), dir("a/b", 0o755), file("a/b/f", "2", 0o644), file("a/b/g", "1", 0o644),
		dir("d", 0o755), file("d/1", "1", 0o644), file("d/2", "2", 0o644), file("d/3", "3", 0o644), file("d/4", "4", 0o644),
		file("d/5", "5", 0o644), file("d/6", "6", 0o644), file("d/7", "7", 0o644)}
	prev, next := mkTar(t, prevEnts...), mkTar(t, nextEnts...)
	d, err := diffLayers(context.Background(), bytes.NewReader(prev), sha(prev), bytes.NewReader(next))
	must(t, err)
	var got []string
	tr := newRawTar(bytes.NewReader(next))
	at := map[int64]string{}
	for {
		e, err := tr.next()
		if err != nil {
			break
		}
		at[e.start] = e.name
	}
	for _, op := range d.ops {
		if op.del != "" {
			got = append(got, "rm "+op.del)
		} else {
			got = append(got, "x "+at[op.start])
		}
	}
	want := []string{"x a", "x a/b", "x a/b/f", "rm a/c", "x d", "x d/7"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ops %q, want %q", got, want)
	}
	if d.entries != 12 || d.changed != 3 {
		t.Errorf("entries %d changed %d, want 12 and 3", d.entries, d.changed)
	}
}

// TestPutLayerPatchConcurrent runs several PutLayers from the same previous
// layer at once (as parallel builds would): at most one takes the previous
// directory over, and every layer's unpacked form, however it was made, is
// its fresh extraction.
func TestPutLayerPatchConcurrent(t *testing.T) {
	requireRoot(t)
	if err := OverlaySupported(t.TempDir()); err != nil {
		t.Skipf("overlay unavailable: %v", err)
	}
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	sn, err := New(s, "overlay")
	must(t, err)
	rng := rand.New(rand.NewSource(7))
	prevTree := randomTree(rng)
	l0 := putLayer(t, sn, s, nil, nil, prevTree.tar(t))
	var tars [][]byte
	for i := 0; i < 4; i++ {
		next := prevTree.clone()
		mutate(rng, next, 2)
		tars = append(tars, next.tar(t))
	}
	layers := make([]v1.Layer, len(tars))
	errs := make(chan error, len(tars))
	for i, b := range tars {
		go func() {
			l, wait, err := PutLayer(ctx, sn, s, nil, bytes.NewReader(b), PutOptions{Prev: l0})
			if wait != nil {
				wait()
			}
			layers[i] = l
			errs <- err
		}()
	}
	for range tars {
		must(t, <-errs)
	}
	for i, l := range layers {
		dir := layerDir(t, s, []v1.Layer{l})
		if ready(dir) {
			want := t.TempDir()
			must(t, unpackLayer(ctx, l, want, overlayUnpackOptions()))
			if d := diffLines(dumpExact(t, want), dumpExact(t, filepath.Join(dir, "fs"))); d != "" {
				t.Errorf("layer %d differs from its extraction:\n%s", i, d)
			}
		}
		if d := diffLines(appliedTree(t, []v1.Layer{l}), preparedTree(t, sn, []v1.Layer{l})); d != "" {
			t.Errorf("layer %d: snapshot differs from the applied layer:\n%s", i, d)
		}
	}
	if d := diffLines(appliedTree(t, []v1.Layer{l0}), preparedTree(t, sn, []v1.Layer{l0})); d != "" {
		t.Errorf("previous layer: snapshot differs from the applied layer:\n%s", d)
	}
}
