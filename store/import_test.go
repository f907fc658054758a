package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// rootfsTar is a small root filesystem of every entry type.
func rootfsTar(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./bin/sh", Typeflag: tar.TypeReg, Mode: 0o755, Size: 5},
		{Name: "./bin/ash", Typeflag: tar.TypeLink, Linkname: "./bin/sh"},
		{Name: "./bin/ls", Typeflag: tar.TypeSymlink, Linkname: "/bin/sh"},
		{Name: "./dev/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "./tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		{Name: "./etc/shadow", Typeflag: tar.TypeReg, Mode: 0o640, Gid: 42, Size: 3},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func compressWith(t testing.TB, algo string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch algo {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "zstd":
		w, _ = zstd.NewWriter(&buf)
	case "xz":
		w, _ = xz.NewWriter(&buf)
	default:
		return b
	}
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func hostileTar(t testing.TB, h *tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "ok", Typeflag: tar.TypeReg, Mode: 0o644})
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

func TestImport(t *testing.T) {
	plain := rootfsTar(t)
	gz := compressWith(t, "gzip", plain)
	badCRC := append([]byte(nil), gz...)
	badCRC[len(badCRC)-8] ^= 0xff // the CRC32 in the gzip trailer
	badData := append([]byte(nil), gz...)
	badData[len(badData)/2] ^= 0xff
	var big bytes.Buffer
	tw := tar.NewWriter(&big)
	tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4096})
	tw.Write(make([]byte, 4096))
	tw.Close()
	for _, tc := range []struct {
		name  string
		input []byte
		err   string
	}{
		{name: "plain", input: plain},
		{name: "gzip", input: gz},
		{name: "zstd", input: compressWith(t, "zstd", plain)},
		{name: "xz", input: compressWith(t, "xz", plain)},
		{name: "with padding", input: append(append([]byte(nil), plain...), make([]byte, 10240)...)},
		{name: "truncated mid-entry", input: big.Bytes()[:512+1000], err: "truncated tar archive (after 1 entries)"},
		{name: "no end marker", input: plain[:len(plain)-1024], err: "truncated tar archive (no end-of-archive marker after 9 entries)"},
		{name: "truncated gzip", input: gz[:len(gz)/2], err: "corrupt gzip data: unexpected end of data (truncated?)"},
		{name: "gzip checksum", input: badCRC, err: "corrupt gzip data: gzip: invalid checksum"},
		{name: "corrupt gzip data", input: badData, err: "corrupt "},
		{name: "not a tar", input: []byte("hello world, this is not a tar archive at all\n"), err: "not a tar archive"},
		{name: "garbage block", input: bytes.Repeat([]byte{'x'}, 2048), err: "not a tar archive"},
		{name: "empty", input: nil, err: "empty input, not a tar archive"},
		{name: "dotdot", input: hostileTar(t, &tar.Header{Name: "../etc/passwd", Typeflag: tar.TypeReg}),
			err: `tar entry "../etc/passwd" escapes the root`},
		{name: "dotdot inside", input: hostileTar(t, &tar.Header{Name: "a/../../x", Typeflag: tar.TypeDir}),
			err: `tar entry "a/../../x" escapes the root`},
		{name: "absolute dotdot", input: hostileTar(t, &tar.Header{Name: "/../x", Typeflag: tar.TypeReg}),
			err: `tar entry "/../x" escapes the root`},
		{name: "hardlink out", input: hostileTar(t, &tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}),
			err: `tar entry "l": hardlink target "../../etc/shadow" escapes the root`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", "1000")
			s := openTemp(t)
			rec, err := s.Import(context.Background(), bytes.NewReader(tc.input), ImportOptions{Source: "in.tar", Names: []string{"imp"}})
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %s", err, tc.err)
				}
				if !errors.Is(err, ErrBadArchive) {
					t.Errorf("not ErrBadArchive: %v", err)
				}
				// Nothing stored, nothing tagged, no temp file left.
				for _, d := range []string{"blobs/sha256", "ingest"} {
					if ents, _ := os.ReadDir(filepath.Join(s.Root(), d)); len(ents) != 0 {
						t.Errorf("%s not empty after a failed import: %d entries", d, len(ents))
					}
				}
				if recs, _ := s.Images(); len(recs) != 0 {
					t.Error("an image was recorded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			img, _, err := s.Image("imp")
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(img, validate.Fast); err != nil { // validate reads layers as gzip
				t.Fatalf("validate: %v", err)
			}
			cf, _ := img.ConfigFile()
			m, _ := img.Manifest()
			if m.MediaType != types.OCIManifestSchema1 || m.Layers[0].MediaType != types.OCIUncompressedLayer {
				t.Errorf("media types %s %s", m.MediaType, m.Layers[0].MediaType)
			}
			// The layer is the decompressed input, byte for byte.
			want := plain
			if tc.name == "with padding" {
				want = tc.input
			}
			if m.Layers[0].Digest.String() != sha(want) || cf.RootFS.DiffIDs[0] != m.Layers[0].Digest {
				t.Errorf("layer %s, want %s", m.Layers[0].Digest, sha(want))
			}
			if cf.Created.Unix() != 1000 || len(cf.History) != 1 || cf.History[0].Comment != "Imported from in.tar" ||
				cf.History[0].Created.Unix() != 1000 || cf.OS != "linux" || cf.Architecture == "" {
				t.Errorf("config %+v", cf)
			}
			if rec.ID.String() != cf.RootFS.DiffIDs[0].String() && rec.ID != mustConfigName(t, img) {
				t.Errorf("record ID %s", rec.ID)
			}
		})
	}
}

func mustConfigName(t *testing.T, img v1.Image) v1.Hash {
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestImportOptions(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	s := openTemp(t)
	opts := ImportOptions{
		Message:  "my base",
		Platform: v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
		Config:   &v1.Config{Cmd: []string{"/bin/sh"}, Env: []string{"A=b"}},
		Names:    []string{"x:1", "y"},
	}
	rec, err := s.Import(context.Background(), bytes.NewReader(rootfsTar(t)), opts)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(rec.Names)
	if strings.Join(rec.Names, ",") != "docker.io/library/x:1,docker.io/library/y:latest" {
		t.Errorf("names %v", rec.Names)
	}
	img, _, _ := s.Image("x:1")
	cf, _ := img.ConfigFile()
	if cf.Architecture != "arm64" || cf.Variant != "v8" || cf.History[0].Comment != "my base" ||
		cf.Config.Cmd[0] != "/bin/sh" || cf.Config.Env[0] != "A=b" {
		t.Errorf("config %+v", cf)
	}
	// Same input, same time: same image ID.
	rec2, err := s.Import(context.Background(), bytes.NewReader(rootfsTar(t)), opts)
	if err != nil || rec2.ID != rec.ID {
		t.Errorf("not reproducible: %s vs %s (%v)", rec2.ID, rec.ID, err)
	}
	if _, err := s.Import(context.Background(), bytes.NewReader(rootfsTar(t)), ImportOptions{Names: []string{"Bad"}}); err == nil ||
		err.Error() != `invalid reference "Bad": must be NAME[:TAG] in lower case` {
		t.Errorf("bad name: %v", err)
	}
}

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64": "linux/amd64", "linux/arm/v7": "linux/arm/v7", "Linux/ARM64": "linux/arm64",
		"linux": "", "linux/": "", "/amd64": "", "a/b/c/d": "", "linux/arm/": "",
	} {
		p, err := ParsePlatform(in)
		if want == "" {
			if err == nil {
				t.Errorf("%q accepted", in)
			}
			continue
		}
		if err != nil || p.String() != want {
			t.Errorf("%q: %v %v", in, p, err)
		}
	}
}
