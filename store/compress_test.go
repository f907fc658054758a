package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/klauspost/compress/zstd"
)

// tarOf builds a small deterministic layer tar: name -> content.
func tarOf(t testing.TB, files map[string]string, order ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range order {
		c := files[n]
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openTemp(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// localImage stores n one-file layers and returns an OCI image of them.
func localImage(t testing.TB, s *Store, n int, seed string) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i := 0; i < n; i++ {
		// Big enough to span several pgzip blocks.
		content := bytes.Repeat([]byte(fmt.Sprintf("%s layer %d\n", seed, i)), 200000)
		l, err := s.PutLayer(context.Background(), bytes.NewReader(tarOf(t, map[string]string{"f": string(content)}, "f")))
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.AppendLayers(img, l)
		if err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func sha(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

func blobCount(t *testing.T, s *Store) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Root(), "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestCompressedImage(t *testing.T) {
	for _, tc := range []struct {
		algo    string
		layerMT types.MediaType
		unzip   func(io.Reader) (io.Reader, error)
	}{
		{"", types.OCILayer, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
		{"gzip", types.OCILayer, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
		{"zstd", types.OCILayerZStd, func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) }},
	} {
		t.Run("algo="+tc.algo, func(t *testing.T) {
			ctx := context.Background()
			s := openTemp(t)
			img := localImage(t, s, 3, "x")
			rec, err := s.WriteImage(ctx, img, "x")
			if err != nil {
				t.Fatal(err)
			}
			stored, err := s.ImageByDigest(rec.Digest)
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.CompressedImage(ctx, stored, tc.algo)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(c, validateOpts(tc.algo)...); err != nil {
				t.Fatalf("validate: %v", err)
			}
			m, err := c.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
				t.Errorf("media types %s / %s", m.MediaType, m.Config.MediaType)
			}
			id, _ := c.ConfigName()
			if id != rec.ID {
				t.Errorf("image ID changed: %s, want %s", id, rec.ID)
			}
			orig, _ := stored.Manifest()
			for i, d := range m.Layers {
				if d.MediaType != tc.layerMT {
					t.Errorf("layer %d media type %s, want %s", i, d.MediaType, tc.layerMT)
				}
				blob, err := os.ReadFile(s.BlobPath(d.Digest))
				if err != nil {
					t.Fatalf("layer %d: blob not stored: %v", i, err)
				}
				if sha(blob) != d.Digest.String() || int64(len(blob)) != d.Size {
					t.Errorf("layer %d: descriptor %s/%d does not match blob %s/%d", i, d.Digest, d.Size, sha(blob), len(blob))
				}
				zr, err := tc.unzip(bytes.NewReader(blob))
				if err != nil {
					t.Fatal(err)
				}
				plain, err := io.ReadAll(zr)
				if err != nil {
					t.Fatal(err)
				}
				if sha(plain) != orig.Layers[i].Digest.String() {
					t.Errorf("layer %d decompresses to %s, want %s", i, sha(plain), orig.Layers[i].Digest)
				}
				if h, err := s.CompressedBlob(orig.Layers[i].Digest, tc.algo); err != nil || h != d.Digest {
					t.Errorf("layer %d: CompressedBlob = %s, %v; want %s", i, h, err, d.Digest)
				}
			}
			// The second time nothing is compressed again and the bytes are the same.
			n := blobCount(t, s)
			c2, err := s.CompressedImage(ctx, stored, tc.algo)
			if err != nil {
				t.Fatal(err)
			}
			d1, _ := c.Digest()
			d2, _ := c2.Digest()
			if d1 != d2 || blobCount(t, s) != n {
				t.Errorf("second call: digest %s (was %s), blobs %d (were %d)", d2, d1, blobCount(t, s), n)
			}
			// Another store compresses the same layers to the same bytes.
			s2 := openTemp(t)
			c3, err := s2.CompressedImage(ctx, localImage(t, s2, 3, "x"), tc.algo)
			if err != nil {
				t.Fatal(err)
			}
			m3, _ := c3.Manifest()
			for i := range m.Layers {
				if m3.Layers[i].Digest != m.Layers[i].Digest {
					t.Errorf("layer %d: not deterministic: %s vs %s", i, m3.Layers[i].Digest, m.Layers[i].Digest)
				}
			}
		})
	}
}

// validateOpts: validate reads layers through gzip only; zstd layers are
// checked by decompressing them in the test itself.
func validateOpts(algo string) []validate.Option {
	if algo == "zstd" {
		return []validate.Option{validate.Fast}
	}
	return nil
}

func TestCompressedImageUnchangedWhenCompressed(t *testing.T) {
	s := openTemp(t)
	img, err := random.Image(1000, 2)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CompressedImage(context.Background(), img, "gzip")
	if err != nil {
		t.Fatal(err)
	}
	if c != img {
		t.Fatal("an image without uncompressed layers must be returned as it is")
	}
}

func TestCompressedImageDockerManifest(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	img := mutate.MediaType(localImage(t, s, 1, "d"), types.DockerManifestSchema2)
	img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	for _, tc := range []struct {
		algo         string
		manifest     types.MediaType
		config, leaf types.MediaType
	}{
		{"gzip", types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer},
		{"zstd", types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayerZStd},
	} {
		c, err := s.CompressedImage(ctx, img, tc.algo)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := c.Manifest()
		if m.MediaType != tc.manifest || m.Config.MediaType != tc.config || m.Layers[0].MediaType != tc.leaf {
			t.Errorf("%s: got %s %s %s", tc.algo, m.MediaType, m.Config.MediaType, m.Layers[0].MediaType)
		}
		if err := validate.Image(c, validateOpts(tc.algo)...); err != nil {
			t.Errorf("%s: validate: %v", tc.algo, err)
		}
	}
}

func TestCompressedImageConcurrent(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	img := localImage(t, s, 2, "c")
	var wg sync.WaitGroup
	digests := make([]v1.Hash, 4)
	for i := range digests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.CompressedImage(ctx, img, "gzip")
			if err != nil {
				t.Error(err)
				return
			}
			digests[i], _ = c.Digest()
		}()
	}
	wg.Wait()
	for _, d := range digests[1:] {
		if d != digests[0] {
			t.Fatalf("digests differ: %v", digests)
		}
	}
	if n := blobCount(t, s); n != 4 { // 2 uncompressed + 2 gzip
		t.Errorf("%d blobs, want 4", n)
	}
}

func TestCompressedImageBadAlgo(t *testing.T) {
	s := openTemp(t)
	_, err := s.CompressedImage(context.Background(), empty.Image, "lz4")
	if err == nil || err.Error() != `unknown compression "lz4" (want gzip or zstd)` {
		t.Fatalf("err = %v", err)
	}
}

func TestPins(t *testing.T) {
	s := openTemp(t)
	a, _ := v1.NewHash("sha256:" + hex.EncodeToString(make([]byte, 32)))
	b, _ := v1.NewHash(sha([]byte("b")))
	names := []string{"cache", "container/abc", "../escape", ".hidden", "a%b", "x y"}
	for _, n := range names {
		if err := s.Pin(n, []v1.Hash{b, a, b}); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root(), "pins"))
	if len(ents) != len(names) {
		t.Fatalf("%d files in pins/, want %d", len(ents), len(names))
	}
	pins, err := s.Pins()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		got := pins[n]
		if len(got) != 2 || got[0] != a || got[1] != b {
			t.Errorf("pin %q = %v", n, got)
		}
	}
	if err := s.Pin("cache", []v1.Hash{b}); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin("../escape"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin("never-pinned"); err != nil {
		t.Fatal(err)
	}
	pins, _ = s.Pins()
	if _, ok := pins["../escape"]; ok || len(pins["cache"]) != 1 || len(pins) != len(names)-1 {
		t.Errorf("after repin/unpin: %v", pins)
	}
	if err := s.Pin("", nil); err == nil {
		t.Error("empty pin name accepted")
	}
}

// The compressed bytes of a layer are fixed: whatever the machine, the
// number of cores or how many layers and blocks are compressed at once, the
// same layer gives the same blob (and so the same digest in every registry).
// A change here changes every pushed digest: only on purpose.
func TestCompressGolden(t *testing.T) {
	r := mrand.New(mrand.NewSource(1))
	var in bytes.Buffer
	for in.Len() < 7<<19 { // 3.5 MiB: several pgzip blocks
		b := make([]byte, 1000+r.Intn(60000))
		if r.Intn(2) == 0 {
			r.Read(b)
		} else {
			for i := range b {
				b[i] = "strata layer\n"[i%13]
			}
		}
		in.Write(b)
	}
	d, _, err := v1.SHA256(bytes.NewReader(in.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for algo, want := range map[string]string{
		Gzip: "sha256:abc77ee9e1e51cd65e282a436c337165591742bd9773393c59ba04a81420c338",
		Zstd: "sha256:6fe755bd4861cd05117d92df2395841101b819715d6563f0bbb27d6ce429ea55",
	} {
		var out bytes.Buffer
		if err := compress(context.Background(), &out, bytes.NewReader(in.Bytes()), d, algo); err != nil {
			t.Fatal(err)
		}
		if got := sha(out.Bytes()); got != want {
			t.Errorf("%s of the golden input: %s (%d bytes), want %s", algo, got, out.Len(), want)
		}
	}
}
