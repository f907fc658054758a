package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Hostile archives given to load and import: each must fail with one line
// naming the problem, leave the store exactly as it was, and create nothing
// anywhere.

var regexpLayers = regexp.MustCompile(`"Layers":\[[^\]]*\]`)

type tarEnt struct {
	hdr  tar.Header
	body []byte
}

func readTarEnts(t *testing.T, b []byte) []tarEnt {
	t.Helper()
	var out []tarEnt
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out = append(out, tarEnt{hdr: *h, body: body})
	}
}

func writeTarEnts(t *testing.T, ents []tarEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	return buf.Bytes()
}

// edit returns a copy of ents changed by f (which may drop, change or add).
func hostileEdit(ents []tarEnt, f func(e tarEnt) []tarEnt) []tarEnt {
	var out []tarEnt
	for _, e := range ents {
		out = append(out, f(e)...)
	}
	return out
}

func hostileReg(name string, body string) tarEnt {
	return tarEnt{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, body: []byte(body)}
}

func TestLoadHostile(t *testing.T) {
	e := withBase(t)
	dir := t.TempDir()
	ociPath := filepath.Join(dir, "oci.tar")
	dockerPath := filepath.Join(dir, "docker.tar")
	e.ok("save", "--format", "oci", "-o", ociPath, "bbase")
	e.ok("save", "--format", "docker", "-o", dockerPath, "bbase")
	ociTar, _ := os.ReadFile(ociPath)
	dockerTar, _ := os.ReadFile(dockerPath)
	oci, docker := readTarEnts(t, ociTar), readTarEnts(t, dockerTar)
	d := fndInspect(t, e, "bbase")
	var ociLayer, ociManifestBlob string
	var ociManifest struct{ Layers []struct{ Digest string } }
	for _, en := range oci {
		if strings.HasPrefix(en.hdr.Name, "blobs/sha256/") && json.Unmarshal(en.body, &ociManifest) == nil && len(ociManifest.Layers) == 1 {
			ociLayer = "blobs/sha256/" + strings.TrimPrefix(ociManifest.Layers[0].Digest, "sha256:")
			ociManifestBlob = en.hdr.Name
		}
	}
	if ociLayer == "" {
		t.Fatal("no manifest in the OCI archive")
	}
	escapee := filepath.Join(os.TempDir(), fmt.Sprintf("strata-hostile-%d", os.Getpid()))
	climb := strings.Repeat("../", 12) + strings.TrimPrefix(escapee, "/")

	for _, tc := range []struct {
		name string
		ents []tarEnt
		raw  []byte
		want string
	}{
		{name: "dotdot name", want: "escapes the root",
			ents: append(append([]tarEnt(nil), oci...), hostileReg(climb, "x"))},
		{name: "absolute name", want: `absolute name "` + escapee + `"`,
			ents: append([]tarEnt{hostileReg(escapee, "x")}, oci...)},
		{name: "symlink out of the archive", want: "points outside the archive",
			ents: append(append([]tarEnt(nil), oci...), tarEnt{hdr: tar.Header{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: climb}})},
		{name: "absolute symlink as blob", want: "points outside the archive",
			ents: hostileEdit(oci, func(en tarEnt) []tarEnt {
				if en.hdr.Name == ociLayer {
					return []tarEnt{{hdr: tar.Header{Name: ociLayer, Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}}
				}
				return []tarEnt{en}
			})},
		{name: "hardlink out of the archive", want: `hardlink target "../etc/shadow" escapes the root`,
			ents: append(append([]tarEnt(nil), oci...), tarEnt{hdr: tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "../etc/shadow"}})},
		{name: "device node", want: `unexpected entry "dev/sda" (type "4")`,
			ents: append(append([]tarEnt(nil), oci...), tarEnt{hdr: tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Devmajor: 8, Mode: 0o600}})},
		{name: "fifo", want: `unexpected entry "p" (type "6")`,
			ents: append(append([]tarEnt(nil), oci...), tarEnt{hdr: tar.Header{Name: "p", Typeflag: tar.TypeFifo, Mode: 0o600}})},
		{name: "blob digest mismatch", want: ociLayer + ": content is sha256:",
			ents: hostileEdit(oci, func(en tarEnt) []tarEnt {
				if en.hdr.Name == ociLayer {
					en.body = append([]byte(nil), en.body...)
					en.body[len(en.body)/2] ^= 1
				}
				return []tarEnt{en}
			})},
		// (Layers and config are in the store already: the manifest is not.)
		{name: "missing blob", want: "is missing from the archive",
			ents: hostileEdit(oci, func(en tarEnt) []tarEnt {
				if en.hdr.Name == ociManifestBlob {
					return nil
				}
				return []tarEnt{en}
			})},
		{name: "duplicate index.json", want: `duplicate entry "index.json"`,
			ents: append(append([]tarEnt(nil), oci...), hostileReg("index.json", `{"schemaVersion":2,"manifests":[]}`))},
		{name: "duplicate blob", want: `duplicate entry "` + ociLayer + `"`,
			ents: hostileEdit(oci, func(en tarEnt) []tarEnt {
				if en.hdr.Name == ociLayer {
					return []tarEnt{en, en}
				}
				return []tarEnt{en}
			})},
		{name: "bad image name", want: `image name "Bad/Name:x" in index.json`,
			ents: hostileEdit(oci, func(en tarEnt) []tarEnt {
				if en.hdr.Name == "index.json" {
					en.body = bytes.ReplaceAll(en.body, []byte("docker.io/library/bbase:latest"), []byte("Bad/Name:x"))
				}
				return []tarEnt{en}
			})},
		{name: "truncated", want: "truncated tar archive", raw: ociTar[:len(ociTar)/2]},
		{name: "docker layer diffID mismatch", want: "config says sha256:",
			ents: hostileEdit(docker, func(en tarEnt) []tarEnt {
				if strings.HasSuffix(en.hdr.Name, ".tar.gz") {
					en.body = fndGzip([]byte("not the layer"))
				}
				return []tarEnt{en}
			})},
		{name: "docker config tampered", want: "not what its name says",
			ents: hostileEdit(docker, func(en tarEnt) []tarEnt {
				if strings.HasPrefix(en.hdr.Name, "sha256:") {
					en.body = bytes.Replace(en.body, []byte(`"os":"linux"`), []byte(`"os":"evil!"`), 1)
				}
				return []tarEnt{en}
			})},
		{name: "docker manifest names a missing file", want: "which is not in the archive",
			ents: hostileEdit(docker, func(en tarEnt) []tarEnt {
				if strings.HasSuffix(en.hdr.Name, ".tar.gz") {
					return nil
				}
				return []tarEnt{en}
			})},
		{name: "docker manifest names a file outside", want: "climbs out with ..",
			ents: hostileEdit(docker, func(en tarEnt) []tarEnt {
				if en.hdr.Name == "manifest.json" {
					en.body = regexpLayers.ReplaceAll(en.body, []byte(`"Layers":["../../etc/shadow"]`))
				}
				return []tarEnt{en}
			})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fndStoreState(t, e)
			raw := tc.raw
			if raw == nil {
				raw = writeTarEnts(t, tc.ents)
			}
			p := filepath.Join(t.TempDir(), "hostile.tar")
			os.WriteFile(p, raw, 0o644)
			se := &env{t: t, Root: e.Root}
			se.fails(tc.want, "load", "-i", p)
			if after := fndStoreState(t, e); after != before {
				t.Errorf("store changed:\nbefore %s\nafter  %s", before, after)
			}
			if _, err := os.Lstat(escapee); err == nil {
				os.RemoveAll(escapee)
				t.Fatalf("%s was created", escapee)
			}
		})
	}
	e.ok("fsck")

	// Links inside the archive are fine: old docker save links shared layers.
	t.Run("internal symlink", func(t *testing.T) {
		ents := hostileEdit(docker, func(en tarEnt) []tarEnt {
			if strings.HasSuffix(en.hdr.Name, ".tar.gz") {
				real := en
				real.hdr.Name = "layers/real.tar.gz"
				en = tarEnt{hdr: tar.Header{Name: en.hdr.Name, Typeflag: tar.TypeSymlink, Linkname: "layers/real.tar.gz"}}
				return []tarEnt{en, real} // the link comes first
			}
			return []tarEnt{en}
		})
		p := filepath.Join(t.TempDir(), "linked.tar")
		os.WriteFile(p, writeTarEnts(t, ents), 0o644)
		e2 := newEnv(t)
		if out := e2.ok("load", "-i", p); out != "Loaded image: bbase:latest\n" {
			t.Errorf("load: %q", out)
		}
		if got := fndInspect(t, e2, "bbase").Id; got != d.Id {
			t.Errorf("ID %s, want %s", got, d.Id)
		}
		e2.ok("fsck")
	})
}

func TestImportHostile(t *testing.T) {
	e := withBase(t)
	before := fndStoreState(t, e)
	for _, tc := range []struct {
		name string
		ents []fndEntry
		want string
	}{
		{"dotdot", []fndEntry{{name: "ok"}, {name: "../x", body: "x"}}, `tar entry "../x" escapes the root`},
		{"dotdot inside", []fndEntry{{name: "a/b/../../../x", body: "x"}}, `tar entry "a/b/../../../x" escapes the root`},
		{"absolute dotdot", []fndEntry{{name: "/../../x", body: "x"}}, `tar entry "/../../x" escapes the root`},
		{"hardlink out", []fndEntry{{name: "l", typ: tar.TypeLink, link: "../../etc/shadow"}}, `hardlink target "../../etc/shadow" escapes the root`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "in.tar")
			os.WriteFile(p, fndTar(t, tc.ents...), 0o644)
			se := &env{t: t, Root: e.Root}
			se.fails(tc.want, "import", p, "hostile")
			if after := fndStoreState(t, e); after != before {
				t.Errorf("store changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	// Symlinks pointing anywhere, device nodes and absolute names are
	// ordinary in a root filesystem: they import (extraction is where they
	// are confined, see snapshot.Unpack).
	p := filepath.Join(t.TempDir(), "ok.tar")
	os.WriteFile(p, fndTar(t, fndEntry{name: "/etc/abs", body: "x"}, fndEntry{name: "lnk", typ: tar.TypeSymlink, link: "../../../etc/shadow"},
		fndEntry{name: "dev/null", typ: tar.TypeChar, mode: 0o666}), 0o644)
	e.ok("import", p, "odd")
	e.ok("fsck")
}
