package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-dev/strata/store"
)

// planOf makes the plan of "COPY ctx /dst" with every regular file hashed,
// as the build does before its cache lookup.
func planOf(t *testing.T, ctx string) *copyPlan {
	t.Helper()
	files, err := walkSource(ctx, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan := newCopyPlan(newView(nil), time.Unix(1700000000, 0))
	for i := range files {
		f := &files[i]
		if f.fi.Mode().IsRegular() {
			b, err := os.ReadFile(f.abs)
			if err != nil {
				t.Fatal(err)
			}
			s := sha256.Sum256(b)
			f.sum = hex.EncodeToString(s[:])
		}
		if err := plan.add(joinRel("dst", f.rel), *f); err != nil {
			t.Fatal(err)
		}
	}
	return plan
}

func layerBytes(t *testing.T, plan *copyPlan) []byte {
	t.Helper()
	var out []byte
	_, err := plan.writeLayer(context.Background(), func(_ context.Context, r io.Reader) (v1.Layer, error) {
		var err error
		out, err = io.ReadAll(r)
		return nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCopyReusesPreviousLayer checks that a COPY takes the content of files
// from the layer it produced before only where that content has the
// file's digest, and that the layer is byte for byte the one written from
// the context alone.
func TestCopyReusesPreviousLayer(t *testing.T) {
	ctx := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(ctx, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// planOf after settle: every entry has one fixed time, so that files
	// rewritten (and directories changed) a second later do not change
	// the layer
	settled := func() *copyPlan {
		err := filepath.Walk(ctx, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Chtimes(p, fixedTime, fixedTime)
		})
		if err != nil {
			t.Fatal(err)
		}
		return planOf(t, ctx)
	}
	for _, n := range []string{"a/1", "a/2", "a/3", "b/1", "b/2", "c"} {
		write(n, "content of "+n)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000) // several compare buffers
	write("a/big", string(big))
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	prevTar := layerBytes(t, settled())
	prev, err := s.PutLayer(context.Background(), bytes.NewReader(prevTar))
	if err != nil {
		t.Fatal(err)
	}

	// edits: same size, other content (the previous entry must not be
	// used); a file added; a file removed; the rest unchanged
	write("a/2", "CONTENT OF a/2")
	write("a/25", "new file")
	if err := os.Remove(filepath.Join(ctx, "b/1")); err != nil {
		t.Fatal(err)
	}
	want := layerBytes(t, settled())

	plan := settled()
	plan.prev = prev
	// what must come from the previous layer can no longer be read from
	// the context
	for _, n := range []string{"a/1", "a/3", "a/big", "b/2", "c"} {
		if err := os.Remove(filepath.Join(ctx, n)); err != nil {
			t.Fatal(err)
		}
	}
	got := layerBytes(t, plan)
	if !bytes.Equal(got, want) {
		t.Fatalf("layer differs from the one written from the context:\n got  %v\n want %v", listing(t, got), listing(t, want))
	}

	// a damaged previous layer (content not matching the digests) is not
	// used: the files are read from the context
	for _, n := range []string{"a/1", "a/3", "b/2", "c"} {
		write(n, "content of "+n)
	}
	write("a/big", string(big))
	damaged := bytes.ReplaceAll(prevTar, []byte("content of a/1"), []byte("CONTENT of a/1"))
	dl, err := s.PutLayer(context.Background(), bytes.NewReader(damaged))
	if err != nil {
		t.Fatal(err)
	}
	plan = settled()
	plan.prev = dl
	if got := layerBytes(t, plan); !bytes.Equal(got, want) {
		t.Fatalf("with a damaged previous layer:\n got  %v\n want %v", listing(t, got), listing(t, want))
	}
}

var fixedTime = time.Unix(1700000000, 0)

func listing(t *testing.T, b []byte) []string {
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err != nil {
			return out
		}
		body, _ := io.ReadAll(tr)
		if len(body) > 20 {
			body = body[:20]
		}
		out = append(out, path.Clean(h.Name)+" "+string(body))
	}
}
