package store

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheckTar: CheckTar never panics, passes accepted input through byte
// for byte, and accepts only archives archive/tar reads to the end with no
// entry escaping the root.
func FuzzCheckTar(f *testing.F) {
	f.Add(rootfsTar(f))
	f.Add(hostileTar(f, &tar.Header{Name: "../x", Typeflag: tar.TypeReg}))
	f.Add([]byte("not a tar"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := io.ReadAll(CheckTar(bytes.NewReader(in)))
		if err != nil {
			return
		}
		if !bytes.Equal(out, in) {
			t.Fatal("accepted input changed on the way through")
		}
		tr := tar.NewReader(bytes.NewReader(in))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("accepted, but archive/tar says %v", err)
			}
			if escapes(h.Name) {
				t.Fatalf("accepted escaping entry %q", h.Name)
			}
		}
	})
}

// FuzzLoad: Load never panics and a rejected archive leaves nothing behind.
func FuzzLoad(f *testing.F) {
	f.Add(rootfsTar(f))
	f.Add([]byte("junk"))
	f.Add(tarOf(f, map[string]string{"index.json": `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2}]}`,
		"oci-layout": `{"imageLayoutVersion":"1.0.0"}`}, "oci-layout", "index.json"))
	f.Add(tarOf(f, map[string]string{"manifest.json": `[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l.tar"]}]`, "c.json": `{"rootfs":{"type":"layers","diff_ids":[]}}`, "l.tar": ""},
		"c.json", "l.tar", "manifest.json"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := openTemp(t)
		if _, err := s.Load(context.Background(), bytes.NewReader(in)); err == nil {
			return
		}
		for _, d := range []string{"blobs/sha256", "ingest"} {
			if ents, _ := os.ReadDir(filepath.Join(s.Root(), d)); len(ents) != 0 {
				t.Fatalf("rejected archive left %d files in %s", len(ents), d)
			}
		}
	})
}
