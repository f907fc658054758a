package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestReferenceNormalisation(t *testing.T) {
	for _, tc := range []struct {
		in, full, familiar, repo, tag, err string
	}{
		{in: "bbase", full: "docker.io/library/bbase:latest", familiar: "bbase:latest", repo: "bbase", tag: "latest"},
		{in: "bbase:1.0", full: "docker.io/library/bbase:1.0", familiar: "bbase:1.0", repo: "bbase", tag: "1.0"},
		{in: "docker.io/library/bbase", full: "docker.io/library/bbase:latest", familiar: "bbase:latest", repo: "bbase", tag: "latest"},
		{in: "index.docker.io/library/bbase:x", full: "docker.io/library/bbase:x", familiar: "bbase:x", repo: "bbase", tag: "x"},
		{in: "user/app", full: "docker.io/user/app:latest", familiar: "user/app:latest", repo: "user/app", tag: "latest"},
		{in: "localhost:5000/a/b:t", full: "localhost:5000/a/b:t", familiar: "localhost:5000/a/b:t", repo: "localhost:5000/a/b", tag: "t"},
		{in: "host:5000/repo", full: "host:5000/repo:latest", familiar: "host:5000/repo:latest", repo: "host:5000/repo", tag: "latest"},
		{in: "bbase@sha256:" + strings.Repeat("a", 64), full: "docker.io/library/bbase@sha256:" + strings.Repeat("a", 64),
			familiar: "bbase@sha256:" + strings.Repeat("a", 64), repo: "bbase", tag: "sha256:" + strings.Repeat("a", 64)},
		{in: "BBase", err: `invalid reference "BBase": must be NAME[:TAG] or NAME@DIGEST in lower case`},
		{in: "a b", err: `invalid reference "a b": must be NAME[:TAG] or NAME@DIGEST in lower case`},
		{in: "x:", err: `invalid reference "x:": must be NAME[:TAG] or NAME@DIGEST in lower case`},
		{in: "", err: `invalid reference "": must be NAME[:TAG] or NAME@DIGEST in lower case`},
	} {
		r, err := ParseReference(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: err = %v, want %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		full := FullName(r)
		repo, tag := SplitName(full)
		if full != tc.full || Familiar(full) != tc.familiar || repo != tc.repo || tag != tc.tag {
			t.Errorf("%q: full %q familiar %q split %q %q; want %q %q %q %q", tc.in, full, Familiar(full), repo, tag,
				tc.full, tc.familiar, tc.repo, tc.tag)
		}
	}
}

// twoImages stores images a (named a, a:2) and b (named b), distinct.
func twoImages(t *testing.T) (*Store, Record, Record) {
	t.Helper()
	ctx := context.Background()
	s := openTemp(t)
	ra, err := s.WriteImage(ctx, localImage(t, s, 1, "a"), "a", "a:2")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := s.WriteImage(ctx, localImage(t, s, 2, "b"), "b")
	if err != nil {
		t.Fatal(err)
	}
	return s, ra, rb
}

func TestResolve(t *testing.T) {
	s, ra, rb := twoImages(t)
	for _, tc := range []struct {
		ref  string
		want v1.Hash
		err  string
	}{
		{ref: "a", want: ra.Digest},
		{ref: "a:latest", want: ra.Digest},
		{ref: "docker.io/library/a:2", want: ra.Digest},
		{ref: "b", want: rb.Digest},
		{ref: ra.ID.String(), want: ra.Digest},
		{ref: ra.ID.Hex[:12], want: ra.Digest},
		{ref: "sha256:" + rb.ID.Hex[:8], want: rb.Digest},
		{ref: ra.Digest.String(), want: ra.Digest},
		{ref: "a@" + ra.Digest.String(), want: ra.Digest},
		{ref: "c", err: "image c: not found"},
		{ref: "a:3", err: "image a:3: not found"},
		{ref: "sha256:" + strings.Repeat("0", 64), err: "image sha256:" + strings.Repeat("0", 64) + ": not found"},
		{ref: "Upper", err: `invalid reference "Upper": must be NAME[:TAG] or NAME@DIGEST in lower case`},
	} {
		rec, err := s.Resolve(tc.ref)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: err = %v, want %s", tc.ref, err, tc.err)
			}
			if strings.HasSuffix(tc.err, "not found") && !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: not ErrNotFound", tc.ref)
			}
			continue
		}
		if err != nil || rec.Digest != tc.want {
			t.Errorf("%s: got %s, %v; want %s", tc.ref, rec.Digest, err, tc.want)
		}
	}
}

func names(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	recs, err := s.Images()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, r := range recs {
		var ns []string
		for _, n := range r.Names {
			ns = append(ns, Familiar(n))
		}
		if ns == nil {
			ns = []string{"<none>"}
		}
		out[r.ID.Hex[:4]] = ns
	}
	return out
}

func TestTagMoveLeavesNone(t *testing.T) {
	s, ra, rb := twoImages(t)
	a, b := ra.ID.Hex[:4], rb.ID.Hex[:4]
	steps := []struct {
		src, dst string
		want     map[string][]string
	}{
		{"a", "c", map[string][]string{a: {"a:2", "a:latest", "c:latest"}, b: {"b:latest"}}},
		{"a", "b", map[string][]string{a: {"a:2", "a:latest", "b:latest", "c:latest"}, b: {"<none>"}}},
		{rb.ID.Hex[:8], "b:old", map[string][]string{a: {"a:2", "a:latest", "b:latest", "c:latest"}, b: {"b:old"}}},
		{"a", "a", map[string][]string{a: {"a:2", "a:latest", "b:latest", "c:latest"}, b: {"b:old"}}},
	}
	for _, st := range steps {
		if err := s.Tag(st.src, st.dst); err != nil {
			t.Fatalf("tag %s %s: %v", st.src, st.dst, err)
		}
		if got := names(t, s); !reflect.DeepEqual(got, st.want) {
			t.Fatalf("after tag %s %s: %v, want %v", st.src, st.dst, got, st.want)
		}
	}
	if err := s.Tag("nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("tag of unknown image: %v", err)
	}
	if err := s.Tag("a", "X"); err == nil || !strings.Contains(err.Error(), `invalid reference "X"`) {
		t.Errorf("tag to invalid name: %v", err)
	}
}

func TestRemoveRules(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ref      func(ra, rb Record) string
		force    bool
		untagged []string
		deleted  bool
		err      string
		left     int // images left
	}{
		{name: "one of several names", ref: func(ra, _ Record) string { return "a:2" },
			untagged: []string{"docker.io/library/a:2"}, left: 2},
		{name: "last name deletes", ref: func(_, _ Record) string { return "b" },
			untagged: []string{"docker.io/library/b:latest"}, deleted: true, left: 1},
		{name: "by ID with several names refused", ref: func(ra, _ Record) string { return ra.ID.Hex[:12] },
			err: "unable to remove", left: 2},
		{name: "by ID with force", ref: func(ra, _ Record) string { return ra.ID.Hex[:12] }, force: true,
			untagged: []string{"docker.io/library/a:2", "docker.io/library/a:latest"}, deleted: true, left: 1},
		{name: "by ID with one name", ref: func(_, rb Record) string { return rb.ID.String() },
			untagged: []string{"docker.io/library/b:latest"}, deleted: true, left: 1},
		{name: "unknown", ref: func(_, _ Record) string { return "zzz" }, err: "image zzz: not found", left: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ra, rb := twoImages(t)
			res, err := s.Remove(tc.ref(ra, rb), tc.force)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %s", err, tc.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			sort.Strings(res.Untagged)
			if !reflect.DeepEqual(res.Untagged, tc.untagged) || (len(res.Deleted) > 0) != tc.deleted {
				t.Errorf("result %+v", res)
			}
			recs, _ := s.Images()
			if len(recs) != tc.left {
				t.Errorf("%d images left, want %d", len(recs), tc.left)
			}
		})
	}
}

func TestPruneKeepsPinned(t *testing.T) {
	ctx := context.Background()
	s, ra, rb := twoImages(t)
	// A pinned manifest keeps its config and layers; a pinned plain blob stays.
	imgB, err := s.ImageByDigest(rb.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompressedImage(ctx, imgB, Gzip); err != nil {
		t.Fatal(err)
	}
	loose, _ := s.PutBytes([]byte("cache entry"))
	gone, _ := s.PutBytes([]byte("nobody wants me"))
	if err := s.Pin("container/x", []v1.Hash{rb.Digest}); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin("cache", []v1.Hash{loose}); err != nil {
		t.Fatal(err)
	}
	// Stale temp files of crashed writers, and one being written now.
	os.WriteFile(filepath.Join(s.Root(), ".tmp-index.json-123"), []byte("{"), 0o644)
	os.WriteFile(filepath.Join(s.Root(), "ingest", "blob-stale"), []byte("half"), 0o644)
	w, err := s.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("in flight"))
	if _, err := s.Remove("b", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove("a:2", false); err != nil {
		t.Fatal(err)
	}
	res, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blobs != 1 || res.Files != 2 { // the compressors removed their lock files
		t.Errorf("prune removed %d blobs, %d files; want 1 blob (the loose one) and 2 temp files", res.Blobs, res.Files)
	}
	if s.HasBlob(gone) || !s.HasBlob(loose) {
		t.Error("prune kept the unpinned blob or dropped the pinned one")
	}
	for _, rec := range []Record{ra, rb} {
		img, err := s.ImageByDigest(rec.Digest)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest()
		for _, l := range append(m.Layers, m.Config) {
			if !s.HasBlob(l.Digest) {
				t.Errorf("image %s lost blob %s", rec.ID, l.Digest)
			}
			if IsUncompressed(l.MediaType) {
				if _, err := s.CompressedBlob(l.Digest, Gzip); rec.Digest == rb.Digest && err != nil {
					t.Errorf("pinned image lost its compressed layer: %v", err)
				}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "ingest", "blob-stale")); !os.IsNotExist(err) {
		t.Error("stale ingest file kept")
	}
	if _, err := os.Stat(w.f.Name()); err != nil {
		t.Error("prune removed a blob being written")
	}
	if h, err := w.Commit(v1.Hash{}, -1); err != nil || !s.HasBlob(h) {
		t.Errorf("commit after prune: %v", err)
	}
	// Unpinned, b goes, with its compressed copies.
	if err := s.Unpin("container/x"); err != nil {
		t.Fatal(err)
	}
	res, err = s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blobs != 2+2+1+1+1 { // b's 2 layers, 2 gzip copies, config, manifest; the in-flight blob
		t.Errorf("second prune removed %d blobs, want 7", res.Blobs)
	}
	if rep, err := s.Fsck(ctx); err != nil || len(rep.Problems) != 0 {
		t.Errorf("fsck after prune: %v %v", rep.Problems, err)
	}
}

func TestFsckFindsDamage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, s *Store, m *v1.Manifest)
		want   []string
	}{
		{name: "clean", damage: func(*testing.T, *Store, *v1.Manifest) {}},
		{name: "flipped byte", damage: func(t *testing.T, s *Store, m *v1.Manifest) {
			p := s.BlobPath(m.Layers[0].Digest)
			b, _ := os.ReadFile(p)
			b[100] ^= 1
			os.Chmod(p, 0o644)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"blob %L0: content hashes to sha256:"}},
		{name: "missing layer", damage: func(t *testing.T, s *Store, m *v1.Manifest) {
			os.Remove(s.BlobPath(m.Layers[1].Digest))
		}, want: []string{"image x:latest: layer %L1 is missing"}},
		{name: "missing config", damage: func(t *testing.T, s *Store, m *v1.Manifest) {
			os.Remove(s.BlobPath(m.Config.Digest))
		}, want: []string{"image x:latest: config %C is missing"}},
		{name: "truncated layer", damage: func(t *testing.T, s *Store, m *v1.Manifest) {
			os.Truncate(s.BlobPath(m.Layers[0].Digest), 10)
		}, want: []string{"blob %L0: content hashes to", "image x:latest: layer %L0: size 10, manifest says"}},
		{name: "bad pin", damage: func(t *testing.T, s *Store, m *v1.Manifest) {
			s.Pin("p", []v1.Hash{{Algorithm: "sha256", Hex: strings.Repeat("1", 64)}})
		}, want: []string{"pin p: blob sha256:1111"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t)
			rec, err := s.WriteImage(ctx, localImage(t, s, 2, "f"), "x")
			if err != nil {
				t.Fatal(err)
			}
			img, _ := s.ImageByDigest(rec.Digest)
			if _, err := s.CompressedImage(ctx, img, Gzip); err != nil {
				t.Fatal(err)
			}
			m, _ := img.Manifest()
			tc.damage(t, s, m)
			rep, err := s.Fsck(ctx)
			if err != nil {
				t.Fatal(err)
			}
			r := strings.NewReplacer("%L0", m.Layers[0].Digest.String(), "%L1", m.Layers[1].Digest.String(),
				"%H0", m.Layers[0].Digest.Hex, "%H1", m.Layers[1].Digest.Hex, "%C", m.Config.Digest.String())
			if len(rep.Problems) != len(tc.want) {
				t.Fatalf("problems %q, want %d like %q", rep.Problems, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(rep.Problems[i], r.Replace(w)) {
					t.Errorf("problem %d = %q, want prefix %q", i, rep.Problems[i], r.Replace(w))
				}
			}
		})
	}
}

// TestIndexCrashSafety: a writer killed before the rename leaves only a temp
// file; the index stays the last complete one, and names move only after
// every blob is durable.
func TestIndexCrashSafety(t *testing.T) {
	ctx := context.Background()
	s, ra, _ := twoImages(t)
	before, _ := os.ReadFile(filepath.Join(s.Root(), "index.json"))
	os.WriteFile(filepath.Join(s.Root(), ".tmp-index.json-999"), []byte(`{"manifests":[{"digest":"garbage`), 0o644)
	if got, _ := os.ReadFile(filepath.Join(s.Root(), "index.json")); !bytes.Equal(got, before) {
		t.Fatal("index changed")
	}
	if _, err := s.Resolve("a"); err != nil {
		t.Fatal(err)
	}
	// An image whose blobs cannot be stored is not named.
	img := localImage(t, s, 1, "broken")
	m, _ := img.Manifest()
	os.Remove(s.BlobPath(m.Layers[0].Digest))
	if _, err := s.WriteImage(ctx, img, "a"); err == nil {
		t.Fatal("WriteImage with a missing layer succeeded")
	}
	if rec, err := s.Resolve("a"); err != nil || rec.Digest != ra.Digest {
		t.Fatalf("name moved to a broken image: %v %v", rec.Digest, err)
	}
	// A writer that is abandoned leaves nothing visible.
	w, _ := s.NewWriter()
	w.Write([]byte("partial"))
	d := w.Digest()
	w.Close()
	if s.HasBlob(d) {
		t.Fatal("uncommitted blob visible")
	}
	// A commit that fails verification stores nothing.
	w, _ = s.NewWriter()
	w.Write([]byte("content"))
	if _, err := w.Commit(v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("2", 64)}, -1); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("commit with the wrong digest: %v", err)
	}
	if s.HasBlob(w.Digest()) {
		t.Fatal("mismatched blob stored")
	}
	if rep, err := s.Fsck(ctx); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("fsck: %v %v", rep.Problems, err)
	}
}

func TestSourceDateEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	got, err := SourceDateEpoch()
	if err != nil || !got.Equal(time.Unix(1700000000, 0)) || got.Location() != time.UTC {
		t.Fatalf("got %v, %v", got, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "soon")
	if _, err := SourceDateEpoch(); err == nil || err.Error() != `invalid SOURCE_DATE_EPOCH "soon": want seconds since 1970` {
		t.Fatalf("err = %v", err)
	}
}
