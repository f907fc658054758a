package builder

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestParseErrors(t *testing.T) {
	cases := []struct{ df, want string }{
		{"FROM a\nRUN x\nFOO bar\n", "Dockerfile:3: unknown instruction: FOO"},
		{"FROM a\nENV\n", "Dockerfile:2: ENV requires at least one argument"},
		{"RUN x\n", "Dockerfile:1: RUN before the first FROM"},
		{"ARG A=1\n", "Dockerfile: no FROM instruction"},
		{"\n\n", "Dockerfile: the Dockerfile is empty"},
		{"FROM a\nCOPY\n", "Dockerfile:2: COPY requires at least two arguments"},
		{"FROM a\nCMD [\"unterminated\n", ""}, // shell form fallback: valid
	}
	for _, c := range cases {
		_, err := Parse("Dockerfile", []byte(c.df))
		if c.want == "" {
			if err != nil {
				t.Errorf("%q: %v", c.df, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: error %v, want prefix %q", c.df, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error is not one line: %q", c.df, err)
		}
	}
}

func TestParseDirectivesAndStages(t *testing.T) {
	df, err := Parse("Dockerfile", []byte("# syntax=docker/dockerfile:1\n# escape=`\nARG B=x\nFROM $B AS one\nRUN echo `\n  hi\nFROM one\n"))
	if err != nil {
		t.Fatal(err)
	}
	if df.Syntax != "docker/dockerfile:1" || df.Escape != '`' || len(df.Stages) != 2 || len(df.MetaArgs) != 1 {
		t.Errorf("syntax %q escape %q stages %d meta %d", df.Syntax, df.Escape, len(df.Stages), len(df.MetaArgs))
	}
}

func TestDestPath(t *testing.T) {
	cases := []struct{ wd, dest, want string }{
		{"/", "x", "/x"}, {"/app", "x", "/app/x"}, {"/app", "x/", "/app/x/"}, {"/app", ".", "/app/"},
		{"/app", "./", "/app/"}, {"/app", "/abs", "/abs"}, {"/app", "", "/app/"}, {"/", ".", "/"},
		{"/app", "../up/", "/up/"},
	}
	for _, c := range cases {
		if got := destPath(c.wd, c.dest); got != c.want {
			t.Errorf("destPath(%q, %q) = %q, want %q", c.wd, c.dest, got, c.want)
		}
	}
}

func TestParseOptions(t *testing.T) {
	o, err := ParseOutput("type=local,dest=/tmp/a,b")
	if err != nil || o.Type != "local" || o.Dest != "/tmp/a,b" {
		t.Errorf("ParseOutput: %+v %v", o, err)
	}
	if o, err := ParseOutput("type=oci,dest=/o.tar,compression=zstd"); err != nil || o.Compression != "zstd" || o.Dest != "/o.tar" {
		t.Errorf("ParseOutput compression: %+v %v", o, err)
	}
	for _, bad := range []string{"type=nope,dest=x", "type=oci", "dest=x,type=tar,colour=red", "type=oci,dest=x,compression=lz4", "type=local,dest=x,compression=gzip"} {
		if _, err := ParseOutput(bad); err == nil {
			t.Errorf("ParseOutput(%q) accepted", bad)
		}
	}
	s, err := ParseSecret("id=tok,src=/run/x")
	if err != nil || s.ID != "tok" || s.Src != "/run/x" {
		t.Errorf("ParseSecret: %+v %v", s, err)
	}
	if s, _ := ParseSecret("id=GH_TOKEN"); s.Env != "GH_TOKEN" {
		t.Errorf("ParseSecret without source: %+v", s)
	}
	c, err := ParseCacheSpec("type=registry,ref=r/x:c,mode=max")
	if err != nil || c.Ref != "r/x:c" || c.Mode != "max" {
		t.Errorf("ParseCacheSpec: %+v %v", c, err)
	}
	for _, bad := range []string{"type=registry", "type=local", "type=s3,ref=x", "type=local,dest=d,mode=all"} {
		if _, err := ParseCacheSpec(bad); err == nil {
			t.Errorf("ParseCacheSpec(%q) accepted", bad)
		}
	}
	kv, err := ParseKeyValues([]string{"A=1", "B", "C=x=y"}, func(k string) (string, bool) { return "env-" + k, k == "B" })
	if err != nil || kv["A"] != "1" || kv["B"] != "env-B" || kv["C"] != "x=y" {
		t.Errorf("ParseKeyValues: %v %v", kv, err)
	}
}

// memLayer is a layer held in memory (tests only).
type memLayer struct{ b []byte }

func (l memLayer) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.b))
	return h, err
}
func (l memLayer) DiffID() (v1.Hash, error) { return l.Digest() }
func (l memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.b)), nil
}
func (l memLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
func (l memLayer) Size() (int64, error)                 { return int64(len(l.b)), nil }
func (l memLayer) MediaType() (types.MediaType, error)  { return types.OCIUncompressedLayer, nil }

func tarLayer(t *testing.T, entries ...tar.Header) memLayer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		h := h
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Linkname))
			data := h.Linkname
			h.Linkname = ""
			tw.WriteHeader(&h)
			tw.Write([]byte(data))
			continue
		}
		tw.WriteHeader(&h)
	}
	tw.Close()
	return memLayer{buf.Bytes()}
}

func TestViewWhiteoutsAndSymlinks(t *testing.T) {
	v := newView(nil)
	l1 := tarLayer(t,
		tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "root:x:0:0::/root:/bin/sh\nweb:x:33:44::/:/bin/sh\n"},
		tar.Header{Name: "etc/group", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "root:x:0:\nstaff:x:50:\n"},
		tar.Header{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 5},
		tar.Header{Name: "data/old", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "x"},
		tar.Header{Name: "opq/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "opq/gone", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "x"},
		tar.Header{Name: "app", Typeflag: tar.TypeSymlink, Linkname: "/srv/app"},
		tar.Header{Name: "srv/app/", Typeflag: tar.TypeDir, Mode: 0o750},
	)
	l2 := tarLayer(t,
		tar.Header{Name: "data/.wh.old", Typeflag: tar.TypeReg},
		tar.Header{Name: "opq/.wh..wh..opq", Typeflag: tar.TypeReg},
		tar.Header{Name: "opq/new", Typeflag: tar.TypeReg, Mode: 0o600, Linkname: "n"},
	)
	for _, l := range []memLayer{l1, l2} {
		if err := v.add(l); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := v.get("data/old"); ok {
		t.Error("whiteout did not remove data/old")
	}
	if _, ok := v.get("opq/gone"); ok {
		t.Error("opaque directory kept opq/gone")
	}
	if e, ok := v.get("data"); !ok || e.mode != 0o700 || e.uid != 5 {
		t.Errorf("data: %+v", e)
	}
	if rp, _ := v.resolve("/app/sub", true); rp != "srv/app/sub" {
		t.Errorf("resolve /app/sub = %q", rp)
	}
	if rp, _ := v.resolve("/app", false); rp != "app" {
		t.Errorf("resolve /app without following = %q", rp)
	}
	for _, c := range []struct {
		spec     string
		uid, gid int
		err      bool
	}{{"web", 33, 44, false}, {"7", 7, 7, false}, {"web:staff", 33, 50, false}, {"7:9", 7, 9, false}, {"root", 0, 0, false}, {":50", 0, 50, false}, {"web:", 33, 0, false}, {"nobody", 0, 0, true}, {"web:nogroup", 0, 0, true}} {
		uid, gid, err := v.lookupUser(c.spec)
		if (err != nil) != c.err || (!c.err && (uid != c.uid || gid != c.gid)) {
			t.Errorf("lookupUser(%q) = %d:%d %v", c.spec, uid, gid, err)
		}
	}
}

func TestPlatformMatches(t *testing.T) {
	for _, tc := range []struct {
		img, want Platform
		ok        bool
	}{
		{Platform{"linux", "amd64", ""}, Platform{"linux", "amd64", ""}, true},
		{Platform{"linux", "arm64", "v8"}, Platform{"linux", "arm64", ""}, true},
		{Platform{"linux", "arm64", ""}, Platform{"linux", "arm64", "v8"}, true},
		{Platform{"linux", "arm", "v6"}, Platform{"linux", "arm", "v7"}, false},
		{Platform{"linux", "arm64", "v8"}, Platform{"linux", "amd64", ""}, false},
		{Platform{"windows", "amd64", ""}, Platform{"linux", "amd64", ""}, false},
		{Platform{}, Platform{"linux", "s390x", ""}, true}, // names none
	} {
		if got := tc.img.matches(tc.want); got != tc.ok {
			t.Errorf("%v.matches(%v) = %v, want %v", tc.img, tc.want, got, tc.ok)
		}
	}
}
