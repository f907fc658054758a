package store

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestLoadClassicDockerSave loads an archive laid out as docker (before 25)
// saves it: <v1 id>/layer.tar uncompressed, the config as <id>.json,
// manifest.json and repositories; a second image shares the layer by
// symlink, as docker writes it.
func TestLoadClassicDockerSave(t *testing.T) {
	layer := rootfsTar(t)
	diffID, _ := v1.NewHash(sha(layer))
	cfg := func(user string) []byte {
		b, _ := json.Marshal(v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{User: user},
			RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}}})
		return b
	}
	c1, c2 := cfg("1"), cfg("2")
	id1, id2 := sha(c1)[7:], sha(c2)[7:]
	man, _ := json.Marshal([]dockerManifest{
		{Config: id1 + ".json", RepoTags: []string{"one:latest"}, Layers: []string{"aaaa/layer.tar"}},
		{Config: id2 + ".json", RepoTags: []string{"localhost:5000/two:x"}, Layers: []string{"bbbb/layer.tar"}},
	})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	file := func(name string, b []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))})
		tw.Write(b)
	}
	tw.WriteHeader(&tar.Header{Name: "aaaa/", Typeflag: tar.TypeDir, Mode: 0o755})
	file("aaaa/VERSION", []byte("1.0"))
	file("aaaa/json", []byte("{}"))
	file("aaaa/layer.tar", layer)
	tw.WriteHeader(&tar.Header{Name: "bbbb/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bbbb/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../aaaa/layer.tar"})
	file(id1+".json", c1)
	file(id2+".json", c2)
	file("manifest.json", man)
	file("repositories", []byte(`{"one":{"latest":"aaaa"}}`))
	tw.Close()

	s := openTemp(t)
	got, err := s.Load(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID.Hex != id1 || got[1].ID.Hex != id2 ||
		fmt.Sprint(got[0].Names, got[1].Names) != "[docker.io/library/one:latest] [localhost:5000/two:x]" {
		t.Fatalf("loaded %+v", got)
	}
	for _, ref := range []string{"one", "localhost:5000/two:x"} {
		img, _, err := s.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest()
		if m.MediaType != types.OCIManifestSchema1 || len(m.Layers) != 1 || m.Layers[0].Digest != diffID ||
			m.Layers[0].MediaType != types.OCIUncompressedLayer {
			t.Errorf("%s: manifest %+v", ref, m)
		}
	}
	// Only the layer, two configs and two manifests were stored.
	if n := len(mustReadDir(t, s.Root()+"/blobs/sha256")); n != 5 {
		t.Errorf("%d blobs stored, want 5", n)
	}
	if rep, err := s.Fsck(context.Background()); err != nil || len(rep.Problems) > 0 {
		t.Errorf("fsck: %v %v", rep.Problems, err)
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestLoadOCIIndex: an OCI archive whose entry is a multi-platform index
// loads the image for this machine under the index's name.
func TestLoadOCIIndex(t *testing.T) {
	host := HostPlatform()
	other := v1.Platform{OS: "linux", Architecture: "s390x"}
	var adds []mutate.IndexAddendum
	imgs := map[string]v1.Image{}
	for _, p := range []v1.Platform{other, host} {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
		img, _ = mutate.ConfigFile(img, cf)
		p := p
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		imgs[p.Architecture] = img
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{AnnotationRefName: "example.com/multi:1"})); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tar", "-C", dir, "-cf", "-", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	s := openTemp(t)
	got, err := s.Load(context.Background(), bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := imgs[host.Architecture].ConfigName()
	if len(got) != 1 || got[0].ID != want || fmt.Sprint(got[0].Names) != "[example.com/multi:1]" {
		t.Fatalf("loaded %+v, want ID %s", got, want)
	}
	if rep, err := s.Fsck(context.Background()); err != nil || len(rep.Problems) > 0 {
		t.Errorf("fsck: %v %v", rep.Problems, err)
	}
}
