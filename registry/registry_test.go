package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/strata-dev/strata/store"
)

// testRegistry is go-containerregistry's in-memory registry behind an
// optional fault handler.
func testRegistry(t *testing.T, fault func(w http.ResponseWriter, r *http.Request, next http.Handler)) string {
	t.Helper()
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	h := reg
	if fault != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fault(w, r, reg) })
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func testOptions() Options {
	return Options{Keychain: authn.NewMultiKeychain(), RetryBase: time.Millisecond, CertsDir: "/nonexistent"}
}

// localImage writes a random image with uncompressed layers into a new store.
func newLocal(t *testing.T, name string, layers int) (*store.Store, v1.Image) {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(4096, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	var adds []mutate.Addendum
	ls, _ := img.Layers()
	for _, l := range ls {
		rc, _ := l.Uncompressed()
		sl, err := s.PutLayer(context.Background(), rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.Addendum{Layer: sl, MediaType: types.OCIUncompressedLayer})
	}
	base := mutate.MediaType(emptyOCI(), types.OCIManifestSchema1)
	out, err := mutate.Append(base, adds...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteImage(context.Background(), out, name); err != nil {
		t.Fatal(err)
	}
	return s, out
}

func TestPushPullRoundTrip(t *testing.T) {
	ctx := context.Background()
	host := testRegistry(t, nil)
	s, _ := newLocal(t, "img:1", 3)
	pr, err := Push(ctx, s, "img:1", host+"/a/img:1", testOptions())
	if err != nil {
		t.Fatal(err)
	}
	s2, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Pull(ctx, s2, host+"/a/img:1", testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != pr.Digest {
		t.Fatalf("pulled %s, pushed %s", res.Digest, pr.Digest)
	}
	img, _, err := s2.Image(host + "/a/img:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	// Copy to another repository and list its tags.
	if _, err := Copy(ctx, host+"/a/img:1", host+"/b/img:2", testOptions()); err != nil {
		t.Fatal(err)
	}
	tags, err := Tags(ctx, host+"/b/img", testOptions())
	if err != nil || len(tags) != 1 || tags[0] != "2" {
		t.Fatalf("tags %v, %v", tags, err)
	}
}

func TestPullResumesAndRejectsCorruption(t *testing.T) {
	ctx := context.Background()
	var drops, corrupt, limited atomic.Int32
	host := testRegistry(t, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			if corrupt.Load() > 0 {
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				b := rec.Body.Bytes()
				if len(b) > 0 {
					b[len(b)/2] ^= 0xff
				}
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				w.Write(b)
				return
			}
			if r.Header.Get("Range") == "" && drops.Add(1) <= 3 {
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
				panic(http.ErrAbortHandler) // drop the connection mid-body
			}
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") && limited.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
	s, _ := newLocal(t, "img:1", 2)
	if _, err := Push(ctx, s, "img:1", host+"/a/img:1", testOptions()); err != nil {
		t.Fatal(err)
	}
	s2, _ := store.Open(t.TempDir())
	if _, err := Pull(ctx, s2, host+"/a/img:1", testOptions()); err != nil {
		t.Fatalf("pull through dropped connections: %v", err)
	}
	corrupt.Store(1)
	s3, _ := store.Open(t.TempDir())
	_, err := Pull(ctx, s3, host+"/a/img:1", testOptions())
	if !errors.Is(err, store.ErrDigestMismatch) {
		t.Fatalf("pull of corrupt blobs: %v, want digest mismatch", err)
	}
	if _, err := s3.Resolve(host + "/a/img:1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("corrupt pull left a tag: %v", err)
	}
}

func emptyOCI() v1.Image { return mutate.ConfigMediaType(mustEmpty(), types.OCIConfigJSON) }

// A blob damaged in the store after it was written is pushed as it is (push
// does not hash it again): the registry refuses the upload, the push fails
// naming the blob and nothing is tagged. An upload damaged on the way is
// refused too, without blaming the local copy.
func TestPushRefusesDamagedBlob(t *testing.T) {
	ctx := context.Background()
	s, img := newLocal(t, "img:1", 2)
	if _, err := Push(ctx, s, "img:1", testRegistry(t, nil)+"/a/img:1", testOptions()); err != nil {
		t.Fatal(err)
	}

	var mangle atomic.Bool
	host := testRegistry(t, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if mangle.Load() && r.Method == http.MethodPatch {
			b, _ := io.ReadAll(r.Body)
			b[len(b)/2] ^= 0xff
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		next.ServeHTTP(w, r)
	})
	mangle.Store(true)
	dst := host + "/mangled/img:1"
	_, err := Push(ctx, s, "img:1", dst, testOptions())
	if err == nil || errors.Is(err, store.ErrDigestMismatch) || !strings.Contains(err.Error(), "push "+dst+": digest invalid") {
		t.Fatalf("push through a mangling proxy: %v, want the registry's digest invalid", err)
	}
	mangle.Store(false)

	diffIDs, _ := img.ConfigFile()
	d := diffIDs.RootFS.DiffIDs[1]
	blob, err := s.CompressedBlob(d, store.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	p := s.BlobPath(blob)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o444); err != nil {
		t.Fatal(err)
	}
	got, _, _ := v1.SHA256(bytes.NewReader(b))
	dst = host + "/damaged/img:1"
	_, err = Push(ctx, s, "img:1", dst, testOptions())
	want := fmt.Sprintf("push %s: the registry refused blob %s: the local copy is damaged (its content is %s; strata fsck lists the damage): digest mismatch", dst, blob, got)
	if err == nil || err.Error() != want || !errors.Is(err, store.ErrDigestMismatch) {
		t.Fatalf("push of a damaged blob: %v\nwant %s", err, want)
	}
	ref, _ := name.ParseReference(dst)
	var te *transport.Error
	if _, err := remote.Head(ref); !errors.As(err, &te) || te.StatusCode != http.StatusNotFound {
		t.Fatalf("a refused push left %s tagged (HEAD: %v)", dst, err)
	}
}
