package store

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// ent is a compact tar entry for tests: "d name mode", "f name mode content",
// "l name target" (symlink), "h name target" (hardlink).
func layerTar(t *testing.T, ents ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		f := strings.SplitN(e, " ", 4)
		h := &tar.Header{Name: f[1], Uid: 1, Gid: 2}
		switch f[0] {
		case "d":
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case "f":
			h.Typeflag, h.Mode = tar.TypeReg, 0o644
			if len(f) > 2 {
				h.Size = int64(len(f[2]))
			}
		case "l":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f[2]
		case "h":
			h.Typeflag, h.Linkname = tar.TypeLink, f[2]
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg && len(f) > 2 {
			io.WriteString(tw, f[2])
		}
	}
	tw.Close()
	return buf.Bytes()
}

func listTar(t *testing.T, b []byte) string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c, _ := io.ReadAll(tr)
		line := fmt.Sprintf("%c %s %o %d:%d", h.Typeflag, h.Name, h.Mode, h.Uid, h.Gid)
		if h.Linkname != "" {
			line += " -> " + h.Linkname
		}
		if len(c) > 0 {
			line += " " + string(c)
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func TestFlatten(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers [][]string
		want   string
	}{
		{name: "one layer keeps everything",
			layers: [][]string{{"d ./", "d ./etc/", "f ./etc/a A", "h ./etc/b ./etc/a", "l ./etc/c a"}},
			want: `5 ./ 755 1:2
5 etc/ 755 1:2
0 etc/a 644 1:2 A
1 etc/b 0 1:2 -> etc/a
2 etc/c 0 1:2 -> a`},
		{name: "whiteouts and overrides",
			layers: [][]string{
				{"d etc/", "f etc/keep K", "f etc/gone G", "d var/", "d var/lib/", "f var/lib/x X", "f over old"},
				{"f etc/.wh.gone", "f .wh.var", "f over new", "f etc/new N"},
			},
			want: `5 etc/ 755 1:2
0 etc/keep 644 1:2 K
0 over 644 1:2 new
0 etc/new 644 1:2 N`},
		{name: "opaque directory",
			layers: [][]string{
				{"d d/", "f d/a A", "d d/sub/", "f d/sub/b B"},
				{"d d/", "f d/.wh..wh..opq", "f d/c C"},
			},
			want: `5 d/ 755 1:2
0 d/c 644 1:2 C`},
		{name: "whiteout then recreate in same layer",
			layers: [][]string{
				{"d d/", "f d/a A"},
				{"f .wh.d", "d d/", "f d/b B"},
			},
			want: `5 d/ 755 1:2
0 d/b 644 1:2 B`},
		{name: "file replaces directory",
			layers: [][]string{
				{"d x/", "f x/y Y"},
				{"f x X"},
			},
			want: `0 x 644 1:2 X`},
		{name: "hardlink target replaced above",
			layers: [][]string{
				{"f a A", "h b a", "h c a"},
				{"f a NEW"},
			},
			want: `0 b 644 1:2 A
1 c 0 1:2 -> b
0 a 644 1:2 NEW`},
		{name: "duplicate entries: last wins",
			layers: [][]string{{"f a one", "f a two"}},
			want:   `0 a 644 1:2 two`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t)
			img := empty.Image
			for _, l := range tc.layers {
				layer, err := s.PutLayer(context.Background(), bytes.NewReader(layerTar(t, l...)))
				if err != nil {
					t.Fatal(err)
				}
				if img, err = mutate.AppendLayers(img, layer); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			if err := Flatten(context.Background(), img, &out); err != nil {
				t.Fatal(err)
			}
			if got := listTar(t, out.Bytes()); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestFlattenSparse: GNU sparse files (tar -S) come out whole.
func TestFlattenSparse(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("start"), 0)
	f.WriteAt([]byte("end"), 1<<20)
	f.Close()
	out, err := exec.Command("tar", "--format=gnu", "-S", "-C", dir, "-cf", "-", "sparse").Output()
	if err != nil {
		t.Skipf("GNU tar: %v", err)
	}
	s := openTemp(t)
	layer, err := s.PutLayer(context.Background(), bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := mutate.AppendLayers(empty.Image, layer)
	var buf bytes.Buffer
	if err := Flatten(context.Background(), img, &buf); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	h, err := tr.Next()
	if err != nil || h.Typeflag != tar.TypeReg || h.Size != 1<<20+3 {
		t.Fatalf("entry %+v, %v", h, err)
	}
	b, _ := io.ReadAll(tr)
	want := make([]byte, 1<<20+3)
	copy(want, "start")
	copy(want[1<<20:], "end")
	if !bytes.Equal(b, want) {
		t.Error("sparse file content differs")
	}
}

// TestFlattenKeepsXattrs: extended attributes (file capabilities) survive.
func TestFlattenKeepsXattrs(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	tw.WriteHeader(&tar.Header{Name: "bin/ping", Typeflag: tar.TypeReg, Mode: 0o755, Size: 1,
		PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20"}})
	tw.Write([]byte("x"))
	tw.Close()
	s := openTemp(t)
	layer, err := s.PutLayer(context.Background(), &in)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := mutate.AppendLayers(empty.Image, layer)
	var out bytes.Buffer
	if err := Flatten(context.Background(), img, &out); err != nil {
		t.Fatal(err)
	}
	h, err := tar.NewReader(&out).Next()
	if err != nil || h.PAXRecords["SCHILY.xattr.security.capability"] != "\x01\x00\x00\x02\x00\x20" {
		t.Fatalf("xattr lost: %+v %v", h, err)
	}
}
