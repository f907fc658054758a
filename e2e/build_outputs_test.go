package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestBuildArchiveOutputs: --output type=oci and type=docker write what
// `strata save` writes: layers gzip-compressed by default as BuildKit's are
// (compression=zstd|uncompressed otherwise), the image named for docker and
// containerd (io.containerd.image.name) with its platform in the index; the
// archives load back into a fresh store, and skopeo reads the OCI one.
func TestBuildArchiveOutputs(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	ctx := bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nCOPY a /a\n", "a": "A"})
	cases := []struct {
		compression string
		want        types.MediaType // of the COPY layer
	}{
		{"", types.OCILayer},
		{"gzip", types.OCILayer},
		{"zstd", types.OCILayerZStd},
		{"uncompressed", types.OCIUncompressedLayer},
	}
	for _, c := range cases {
		t.Run("oci-"+c.compression, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "oci.tar")
			opt := "type=oci,dest=" + out
			if c.compression != "" {
				opt += ",compression=" + c.compression
			}
			e.ok("build", "-q", "-t", "outs:1", "--output", opt, ctx)
			dir := t.TempDir()
			if b, err := exec.Command("tar", "-C", dir, "-xf", out).CombinedOutput(); err != nil {
				t.Fatalf("untar: %v %s", err, b)
			}
			idx, err := layout.ImageIndexFromPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(im.Manifests) != 1 {
				t.Fatalf("%d manifests in index.json", len(im.Manifests))
			}
			d := im.Manifests[0]
			if got := d.Annotations["io.containerd.image.name"]; got != "docker.io/library/outs:1" {
				t.Errorf("io.containerd.image.name = %q", got)
			}
			if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture == "" {
				t.Errorf("platform = %+v", d.Platform)
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Layers[len(m.Layers)-1].MediaType; got != c.want {
				t.Errorf("COPY layer media type %s, want %s", got, c.want)
			}
			if b, err := exec.Command("skopeo", "inspect", "oci-archive:"+out).CombinedOutput(); err != nil {
				t.Errorf("skopeo inspect: %v\n%s", err, b)
			}
			checkLoads(t, out, "outs:1")
		})
	}
	t.Run("docker", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "docker.tar")
		e.ok("build", "-q", "-t", "outs:1", "--output", "type=docker,dest="+out+",name=other/name:2", ctx)
		img, err := tarball.ImageFromPath(out, nil)
		if err != nil {
			t.Fatal(err)
		}
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if mt, _ := ls[len(ls)-1].MediaType(); mt != types.DockerLayer {
			t.Errorf("COPY layer media type %s, want %s", mt, types.DockerLayer)
		}
		var man []struct{ RepoTags []string }
		b := tarMember(t, out, "manifest.json")
		if err := json.Unmarshal(b, &man); err != nil || len(man) != 1 || len(man[0].RepoTags) != 1 || man[0].RepoTags[0] != "other/name:2" {
			t.Errorf("manifest.json: %s", b)
		}
		checkLoads(t, out, "other/name:2")
	})
	for _, bad := range []string{"type=oci,dest=x,compression=lz4", "type=tar,dest=x,compression=gzip"} {
		e.fails("compression", "build", "--output", bad, ctx)
	}
}

// checkLoads loads archive into a fresh store and runs cat /a in name.
func checkLoads(t *testing.T, archive, name string) {
	t.Helper()
	f := newEnv(t)
	f.ok("load", "-i", archive)
	if out := f.ok("run", "--rm", name, "cat", "/a"); out != "A" {
		t.Errorf("%s loaded from %s printed %q", name, filepath.Base(archive), out)
	}
}

func tarMember(t *testing.T, p, member string) []byte {
	t.Helper()
	out, err := exec.Command("tar", "-xOf", p, member).Output()
	if err != nil {
		t.Fatalf("%s in %s: %v", member, p, err)
	}
	return out
}
