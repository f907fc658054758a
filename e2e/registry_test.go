package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/strata-dev/strata/store"
)

// isolateDockerConfig points docker's config (credentials) at a fresh
// directory for this test and returns it.
func isolateDockerConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("STRATA_CERTS_D", filepath.Join(dir, "no-certs.d"))
	return dir
}

// writeLocalImage stores a random image (layers uncompressed, as local
// images are) of the given platform under name in e's store and returns
// its record.
func writeLocalImage(t *testing.T, e *env, ref string, layers int, layerSize int64, platform string) store.Record {
	t.Helper()
	s, err := store.Open(e.Root)
	if err != nil {
		t.Fatal(err)
	}
	rimg, err := random.Image(layerSize, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := rimg.Layers()
	var adds []mutate.Addendum
	for _, l := range ls {
		rc, _ := l.Uncompressed()
		sl, err := s.PutLayer(context.Background(), rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.Addendum{Layer: sl, MediaType: types.OCIUncompressedLayer})
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, adds...)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	p, _ := v1.ParsePlatform(platform)
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.WriteImage(context.Background(), img, ref)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// storedImage checks that the pulled image ref is in e's store and every
// blob of it matches its digest (go-containerregistry's validate reads them
// all; it expects compressed layers, as pulled images have).
func storedImage(t *testing.T, e *env, ref string) store.Record {
	t.Helper()
	s, err := store.Open(e.Root)
	if err != nil {
		t.Fatal(err)
	}
	img, rec, err := s.Image(ref)
	if err != nil {
		t.Fatalf("image %s not in the store: %v", ref, err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("stored image %s is not valid: %v", ref, err)
	}
	return rec
}

func mustStore(t *testing.T, e *env) *store.Store {
	t.Helper()
	s, err := store.Open(e.Root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// notStored fails if ref is in e's store.
func notStored(t *testing.T, e *env, ref string) {
	t.Helper()
	s, err := store.Open(e.Root)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Resolve(ref); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s is in the store after a failed pull (%v, %v)", ref, rec.Digest, err)
	}
}

var refDigest = regexp.MustCompile(`@(sha256:[0-9a-f]{64})\n?$`)

// pushedDigest is the digest in push's or copy's output "REF@DIGEST".
func pushedDigest(t *testing.T, out string) string {
	t.Helper()
	m := refDigest.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no REF@DIGEST in %q", out)
	}
	return m[1]
}

var pulledRe = regexp.MustCompile(`(?m)^Digest: (sha256:[0-9a-f]{64})\nID: (sha256:[0-9a-f]{64})$`)

// pulled returns the manifest digest and image ID pull printed.
func pulled(t *testing.T, out string) (digest, id string) {
	t.Helper()
	m := pulledRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pull output %q has no Digest/ID lines", out)
	}
	return m[1], m[2]
}

func TestRegistryPushPullRoundTrip(t *testing.T) {
	isolateDockerConfig(t)
	reg := startRegistry(t, regAnonymous)
	e := withBase(t)
	local, err := mustStore(t, e).Resolve("bbase")
	if err != nil {
		t.Fatal(err)
	}
	dest := reg.Host + "/e2e/bbase:v1"

	out := e.ok("push", "bbase", dest)
	digest := pushedDigest(t, out)
	// Without a terminal: one line per finished blob.
	if !regexp.MustCompile(`(?m)^[0-9a-f]{12}: pushed [0-9.]+[kMG]?B$`).MatchString(out) {
		t.Errorf("push printed no progress line per blob:\n%s", out)
	}
	again := e.ok("push", "bbase", dest)
	if d := pushedDigest(t, again); d != digest {
		t.Fatalf("re-push gave %s, first push %s", d, digest)
	}
	if !regexp.MustCompile(`(?m)^[0-9a-f]{12}: exists$`).MatchString(again) || strings.Contains(again, "pushed") {
		t.Errorf("re-push did not report existing blobs:\n%s", again)
	}
	if q := e.ok("push", "-q", "bbase", dest); q != dest+"@"+digest+"\n" {
		t.Errorf("push -q printed %q", q)
	}

	// rmi (and prune, so that every blob comes back from the registry):
	// pull gives the same manifest digest and image ID.
	e.ok("rmi", "bbase")
	e.ok("prune")
	e2 := e
	pullOut := e2.ok("pull", dest)
	if n := len(regexp.MustCompile(`(?m)^[0-9a-f]{12}: pulled [0-9.]+[kMG]?B$`).FindAllString(pullOut, -1)); n < 2 {
		t.Errorf("pull printed %d progress lines (want one per blob):\n%s", n, pullOut)
	}
	d, id := pulled(t, pullOut)
	if d != digest || id != local.ID.String() {
		t.Fatalf("pulled digest %s id %s; pushed %s, local id %s", d, id, digest, local.ID)
	}
	rec := storedImage(t, e2, dest)
	if rec.Digest.String() != digest || len(rec.Names) != 1 || rec.Names[0] != dest {
		t.Fatalf("stored record %+v", rec)
	}
	e2.ok("fsck")
	// The pulled image pushes back unchanged (its blobs are already compressed).
	if d := pushedDigest(t, e2.ok("push", dest, reg.Host+"/e2e/again:1")); d != digest {
		t.Fatalf("re-push of the pulled image gave %s, want %s", d, digest)
	}
	// By digest too, and a second pull finds everything already there.
	e3 := newEnv(t)
	if d, _ := pulled(t, e3.ok("pull", reg.Host+"/e2e/bbase@"+digest)); d != digest {
		t.Fatalf("pull by digest gave %s", d)
	}
	if d, _ := pulled(t, e2.ok("pull", dest)); d != digest {
		t.Fatalf("second pull gave %s", d)
	}

	var in []struct {
		ID       string `json:"Id"`
		Digest   string
		RepoTags []string
	}
	if err := json.Unmarshal([]byte(newEnv(t).ok("inspect", "--remote", dest)), &in); err != nil {
		t.Fatal(err)
	}
	if len(in) != 1 || in[0].Digest != digest || in[0].ID != local.ID.String() || len(in[0].RepoTags) != 1 || in[0].RepoTags[0] != dest {
		t.Fatalf("inspect --remote: %+v", in)
	}

	if got := e.ok("tags", reg.Host+"/e2e/bbase"); got != "v1\n" {
		t.Fatalf("tags: %q", got)
	}
	if got := e.ok("delete", dest); got != "Deleted: "+digest+"\n" {
		t.Fatalf("delete: %q", got)
	}
	newEnv(t).fails("pull "+dest+": manifest unknown", "pull", dest)
	e.fails(`invalid reference "UPPER/case"`, "push", "bbase", "UPPER/case")
	e.fails("push "+local.ID.Hex[:12]+": "+local.ID.Hex[:12]+" is not a name of the image: give a destination", "push", local.ID.Hex[:12])
	e.fails("pull "+reg.Host+"/e2e/none:1: ", "pull", reg.Host+"/e2e/none:1")
}

func TestRegistryCopy(t *testing.T) {
	isolateDockerConfig(t)
	reg1 := startRegistry(t, regAnonymous)
	reg2 := startRegistry(t, regAnonymous)
	proxy := startFaultProxy(t, reg1.Host)
	e := newEnv(t)
	writeLocalImage(t, e, "img", 3, 64<<10, "linux/amd64")
	src := proxy.Host + "/src/img:1"
	digest := pushedDigest(t, e.ok("push", "img", src))

	// Same registry, another repository: every blob is mounted, none uploaded.
	proxy.reset()
	if d := pushedDigest(t, e.ok("copy", src, proxy.Host+"/dst/img:2")); d != digest {
		t.Fatalf("copy gave %s, want %s", d, digest)
	}
	mounts := 0
	for _, r := range proxy.requests() {
		if strings.HasPrefix(r, "PATCH ") || strings.HasPrefix(r, "PUT /v2/dst/img/blobs/") {
			t.Errorf("copy within a registry uploaded a blob: %s", r)
		}
		if strings.HasPrefix(r, "POST /v2/dst/img/blobs/uploads/") && strings.Contains(r, "mount=sha256") && strings.Contains(r, "from=src%2Fimg") {
			mounts++
		}
	}
	if mounts != 4 { // 3 layers and the config
		t.Errorf("copy mounted %d blobs, want 4; requests: %q", mounts, proxy.requests())
	}

	// Another registry: streamed across, same digest, pulls back intact.
	dst := reg2.Host + "/other/img:3"
	if d := pushedDigest(t, e.ok("copy", src, dst)); d != digest {
		t.Fatalf("copy to %s gave %s, want %s", dst, d, digest)
	}
	e2 := newEnv(t)
	if d, _ := pulled(t, e2.ok("pull", dst)); d != digest {
		t.Fatalf("pull after copy gave %s", d)
	}
	storedImage(t, e2, dst)
	e.fails("copy "+proxy.Host+"/src/missing:1 "+reg2.Host+"/x/y:1: manifest unknown", "copy", proxy.Host+"/src/missing:1", reg2.Host+"/x/y:1")
}

func TestRegistryIndexPlatforms(t *testing.T) {
	isolateDockerConfig(t)
	reg := startRegistry(t, regAnonymous)
	e := newEnv(t)
	amd := writeLocalImage(t, e, "app-amd64", 2, 32<<10, "linux/amd64")
	arm := writeLocalImage(t, e, "app-arm64", 2, 32<<10, "linux/arm64/v8")
	dest := reg.Host + "/multi/app:1"
	idxDigest := pushedDigest(t, e.ok("push", "app-amd64", dest, "--index", "app-arm64"))

	// The registry holds an OCI index with both platforms.
	ref, _ := name.ParseReference(dest)
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if d, _ := idx.Digest(); d.String() != idxDigest || im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index %s %s with %d manifests, pushed %s", d, im.MediaType, len(im.Manifests), idxDigest)
	}
	child := map[string]string{}
	for _, m := range im.Manifests {
		child[m.Platform.OS+"/"+m.Platform.Architecture+"/"+m.Platform.Variant] = m.Digest.String()
	}

	// A copy carries the whole index; pulls choose by platform, from either.
	copied := reg.Host + "/multi/copy:1"
	if d := pushedDigest(t, e.ok("copy", dest, copied)); d != idxDigest {
		t.Fatalf("copy of index gave %s", d)
	}
	for _, tc := range []struct{ platform, key string }{
		{"linux/arm64", "linux/arm64/v8"},
		{"linux/arm64/v8", "linux/arm64/v8"},
		{"linux/amd64", "linux/amd64/"},
	} {
		for _, src := range []string{dest, copied} {
			e2 := newEnv(t)
			d, id := pulled(t, e2.ok("pull", "--platform", tc.platform, src))
			want := amd.ID.String()
			if strings.Contains(tc.key, "arm64") {
				want = arm.ID.String()
			}
			if d != child[tc.key] || id != want {
				t.Errorf("pull --platform %s %s: digest %s id %s, want %s %s", tc.platform, src, d, id, child[tc.key], want)
			}
			storedImage(t, e2, src)
		}
	}
	// copy --platform copies one image out of the index.
	armOnly := reg.Host + "/multi/arm:1"
	if d := pushedDigest(t, e.ok("copy", "--platform", "linux/arm64", dest, armOnly)); d != child["linux/arm64/v8"] {
		t.Fatalf("copy --platform linux/arm64 gave %s, want %s", d, child["linux/arm64/v8"])
	}
	aref, _ := name.ParseReference(armOnly)
	if desc, err := remote.Get(aref); err != nil || !desc.MediaType.IsImage() {
		t.Fatalf("copy --platform left %v (%v), want an image", desc, err)
	}
	e3 := newEnv(t)
	e3.fails("no matching platform for linux/s390x (the index has: linux/amd64, linux/arm64/v8)", "pull", "--platform", "linux/s390x", dest)
	notStored(t, e3, dest)
	single := reg.Host + "/multi/single:1"
	e.ok("push", "app-amd64", single)
	e4 := newEnv(t)
	e4.fails("pull "+single+": no matching platform: the image is linux/amd64, not linux/arm64", "pull", "--platform", "linux/arm64", single)
	notStored(t, e4, single)
	e.fails("app-amd64 and app-amd64 are both linux/amd64", "push", "app-amd64", dest, "--index", "app-amd64,app-arm64")
}

func TestRegistryAuth(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup regSetup
	}{{"basic-tls", regBasicTLS}, {"token", regToken}} {
		t.Run(tc.name, func(t *testing.T) {
			cfgDir := isolateDockerConfig(t)
			reg := startRegistry(t, tc.setup)
			var tls []string
			if reg.CA != "" {
				tls = []string{"--tls-ca", reg.CA}
			}
			e := newEnv(t)
			writeLocalImage(t, e, "img", 2, 16<<10, "linux/amd64")
			dest := reg.Host + "/private/img:1"
			var outputs []string
			run := func(stdin string, args ...string) result {
				t.Helper()
				var in []byte
				if stdin != "" {
					in = []byte(stdin)
				}
				full := append([]string{"--debug"}, args...)
				if args[0] != "logout" {
					full = append(full, tls...)
				}
				r := e.runIn(in, full...)
				outputs = append(outputs, r.Stdout, r.Stderr)
				return r
			}
			want := func(r result, code0 bool, text string, args ...string) {
				t.Helper()
				if code0 {
					if r.Code != 0 || !strings.Contains(r.Stdout, text) {
						t.Fatalf("strata %s: exit %d, stdout %q, stderr %q; want %q", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr, text)
					}
					return
				}
				// --debug lines come first; the error is the last line.
				lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
				r.Stderr = lines[len(lines)-1] + "\n"
				checkFailure(t, r, text, args)
			}

			want(run("", "push", "img", dest), false, "push "+dest+": unauthorized: authentication required")
			want(run("wrong-password\n", "login", "-u", reg.User, "--password-stdin", reg.Host), false, "login "+reg.Host+": unauthorized")
			want(run(reg.Pass+"\n", "login", "-u", "nobody", "--password-stdin", reg.Host), false, "unauthorized")
			if _, err := os.Stat(filepath.Join(cfgDir, "config.json")); err == nil {
				b, _ := os.ReadFile(filepath.Join(cfgDir, "config.json"))
				if strings.Contains(string(b), reg.Host) {
					t.Fatalf("a failed login stored credentials: %s", b)
				}
			}
			want(run(reg.Pass+"\n", "login", "-u", reg.User, "--password-stdin", reg.Host), true, "Login Succeeded")
			var cfg struct {
				Auths map[string]struct{ Auth string } `json:"auths"`
			}
			b, err := os.ReadFile(filepath.Join(cfgDir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			if got, want := cfg.Auths[reg.Host].Auth, base64.StdEncoding.EncodeToString([]byte(reg.User+":"+reg.Pass)); got != want {
				t.Fatalf("config.json auth for %s = %q, want base64(user:pass)", reg.Host, got)
			}

			r := run("", "push", "img", dest)
			want(r, true, dest+"@sha256:", "push")
			digest := pushedDigest(t, r.Stdout)
			e2 := newEnv(t)
			r = e2.runIn(nil, append([]string{"--debug", "pull", dest}, tls...)...)
			outputs = append(outputs, r.Stdout, r.Stderr)
			if r.Code != 0 {
				t.Fatalf("pull after login: %s", r.Stderr)
			}
			if d, _ := pulled(t, r.Stdout); d != digest {
				t.Fatalf("pulled %s, pushed %s", d, digest)
			}
			storedImage(t, e2, dest)
			want(run("", "tags", reg.Host+"/private/img"), true, "1\n", "tags")
			// A copy to another repository mounts the blobs: the token for the
			// target must widen to pull on the source.
			if d := pushedDigest(t, run("", "copy", dest, reg.Host+"/private/copy:2").Stdout); d != digest {
				t.Fatalf("copy gave %s, want %s", d, digest)
			}
			if reg.Tokens != nil {
				scopes := strings.Join(reg.Tokens.scopes, " ")
				if !strings.Contains(scopes, "repository:private/img:pull") || !strings.Contains(scopes, "repository:private/copy:push,pull") {
					t.Errorf("token scopes %q lack the source pull and target push scopes", scopes)
				}
			}

			if reg.CA != "" {
				// Without the CA the certificate is refused; docker's certs.d works like --tls-ca.
				e.fails("certificate", "pull", dest)
				certs := t.TempDir()
				os.MkdirAll(filepath.Join(certs, reg.Host), 0o755)
				ca, _ := os.ReadFile(reg.CA)
				writeFile(t, filepath.Join(certs, reg.Host, "ca.crt"), ca)
				t.Setenv("STRATA_CERTS_D", certs)
				newEnv(t).ok("pull", dest)
				// --insecure-registry accepts an unverified certificate.
				t.Setenv("STRATA_CERTS_D", filepath.Join(certs, "none"))
				newEnv(t).ok("pull", "--insecure-registry", reg.Host, dest)
			}

			want(run("", "logout", reg.Host), true, "Removing login credentials for "+reg.Host)
			b, _ = os.ReadFile(filepath.Join(cfgDir, "config.json"))
			if strings.Contains(string(b), reg.Host) {
				t.Fatalf("logout left credentials: %s", b)
			}
			want(run("", "pull", dest), false, "pull "+dest+": unauthorized: authentication required")
			want(run("", "logout", reg.Host), true, "Not logged in to "+reg.Host)

			// No credential ever appears in any output, --debug included.
			secrets := []string{reg.Pass, base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Pass)), "Authorization", "Bearer ey"}
			if reg.Tokens != nil {
				toks := reg.Tokens.tokens()
				if len(toks) == 0 {
					t.Fatal("the token server issued no token")
				}
				for _, tok := range toks {
					secrets = append(secrets, tok, tok[strings.LastIndex(tok, ".")+1:])
				}
			}
			all := strings.Join(outputs, "\n")
			if !strings.Contains(all, "debug: http: ") {
				t.Fatalf("--debug logged no HTTP requests:\n%s", all)
			}
			for _, s := range secrets {
				if strings.Contains(all, s) {
					t.Fatalf("output contains a credential (%.12s...)", s)
				}
			}
		})
	}
}

func TestRegistryFaults(t *testing.T) {
	isolateDockerConfig(t)
	reg := startRegistry(t, regAnonymous)
	proxy := startFaultProxy(t, reg.Host)
	e := newEnv(t)
	writeLocalImage(t, e, "img", 3, 1<<20, "linux/amd64")
	digest := pushedDigest(t, e.ok("push", "img", reg.Host+"/faults/img:1"))
	src := proxy.Host + "/faults/img:1"

	pulls := []struct {
		name   string
		faults []fault
		fail   string // "" = must succeed
		ranged bool   // a resumed download must ask for a Range
	}{
		{"connection dropped mid-blob", []fault{{"GET", "/blobs/sha256", "drop", 2}}, "", true},
		{"blob body truncated", []fault{{"GET", "/blobs/sha256", "truncate", 2}}, "", true},
		{"manifest 500 twice", []fault{{"GET", "/manifests/", "500", 2}}, "", false},
		{"blob 503", []fault{{"GET", "/blobs/sha256", "503", 2}}, "", false},
		{"429 with Retry-After", []fault{{"GET", "/manifests/", "429", 1}, {"GET", "/blobs/sha256", "429", 1}}, "", false},
		{"corrupt blob once", []fault{{"GET", "/blobs/sha256", "corrupt", 1}}, "", false},
		{"corrupt manifest once", []fault{{"GET", "/manifests/", "corrupt", 1}}, "", false},
		{"corrupt manifest always", []fault{{"GET", "/manifests/", "corrupt", 1000}}, "digest mismatch", false},
		{"corrupt blob always", []fault{{"GET", "/blobs/sha256", "corrupt", 1000}}, "digest mismatch", false},
		{"connection always dropped", []fault{{"GET", "/blobs/sha256", "drop", 1000}}, "gave up after 5 attempts", false},
		{"registry down", []fault{{"", "/", "503", 1000}}, "pull " + src + ": ", false},
	}
	for _, tc := range pulls {
		t.Run("pull/"+tc.name, func(t *testing.T) {
			proxy.reset()
			for _, f := range tc.faults {
				proxy.add(f)
			}
			e2 := newEnv(t)
			if tc.fail != "" {
				e2.fails(tc.fail, "pull", src)
				notStored(t, e2, src)
				e2.ok("fsck")
				return
			}
			if d, _ := pulled(t, e2.ok("pull", src)); d != digest {
				t.Fatalf("pulled %s, want %s", d, digest)
			}
			storedImage(t, e2, src)
			e2.ok("fsck")
			if tc.ranged && !strings.Contains(strings.Join(proxy.requests(), "\n"), "range=bytes=") {
				t.Errorf("no Range request resumed the download: %q", proxy.requests())
			}
		})
	}

	pushes := []struct {
		name   string
		faults []fault
		fail   string
	}{
		{"blob upload 500", []fault{{"PUT", "/blobs/uploads/", "500", 1}}, ""},
		{"connection dropped mid-upload", []fault{{"PATCH", "/blobs/uploads/", "dropupload", 2}}, ""},
		{"HEAD 429 then 503", []fault{{"HEAD", "/blobs/", "429", 1}, {"HEAD", "/blobs/", "503", 1}}, ""},
		{"manifest PUT fails", []fault{{"PUT", "/manifests/", "500", 1000}}, "push " + proxy.Host + "/push/manifest-put-fails:1: unknown: injected failure"},
		{"uploads always fail", []fault{{"PATCH", "/blobs/uploads/", "500", 1000}}, "push " + proxy.Host + "/push/uploads-always-fail:1: unknown: injected failure"},
	}
	for _, tc := range pushes {
		t.Run("push/"+tc.name, func(t *testing.T) {
			proxy.reset()
			for _, f := range tc.faults {
				proxy.add(f)
			}
			repo := "push/" + strings.ToLower(strings.ReplaceAll(tc.name, " ", "-"))
			dest := proxy.Host + "/" + repo + ":1"
			direct, _ := name.ParseReference(reg.Host + "/" + repo + ":1")
			if tc.fail != "" {
				e.fails(tc.fail, "push", "img", dest)
				if _, err := remote.Head(direct); err == nil {
					t.Fatalf("a failed push left %s tagged", direct)
				}
				return
			}
			if d := pushedDigest(t, e.ok("push", "img", dest)); d != digest {
				t.Fatalf("pushed %s, want %s", d, digest)
			}
			img, err := remote.Image(direct)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(img); err != nil {
				t.Fatalf("pushed image is not valid: %v", err)
			}
		})
	}
}

// A blob damaged in the store after it was written goes out as it is (push
// does not hash it again): the registry refuses it, the push fails with one
// line naming the blob, nothing is tagged, and fsck lists the same blob.
func TestRegistryPushDamagedBlob(t *testing.T) {
	isolateDockerConfig(t)
	reg := startRegistry(t, regAnonymous)
	e := newEnv(t)
	writeLocalImage(t, e, "img", 2, 256<<10, "linux/amd64")
	e.ok("push", "-q", "img", reg.Host+"/damage/ok:1")

	s := mustStore(t, e)
	img, _, err := s.Image("img")
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := s.CompressedBlob(cf.RootFS.DiffIDs[1], store.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(s.BlobPath(blob), 0o644)
	f, err := os.OpenFile(s.BlobPath(blob), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("damage"), 100); err != nil {
		t.Fatal(err)
	}
	f.Close()

	dest := reg.Host + "/damage/img:1"
	e.fails("push "+dest+": the registry refused blob "+blob.String()+": the local copy is damaged (its content is sha256:", "push", "img", dest)
	ref, _ := name.ParseReference(dest)
	if _, err := remote.Head(ref); err == nil {
		t.Fatalf("a refused push left %s tagged", dest)
	}
	if r := e.run("fsck"); r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, blob.Hex) {
		t.Fatalf("fsck after damage: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// credHelperScript is a docker credential helper (the protocol of
// docker-credential-helpers) that keeps credentials as files in $CREDS_DIR.
const credHelperScript = `#!/bin/sh
set -e
key() { printf '%s' "$1" | tr -c 'A-Za-z0-9' _; }
case "$1" in
store) in=$(cat); url=$(printf '%s' "$in" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p'); printf '%s' "$in" >"$CREDS_DIR/$(key "$url")" ;;
get) url=$(cat); f="$CREDS_DIR/$(key "$url")"; [ -f "$f" ] || { echo "credentials not found in native keychain"; exit 1; }; cat "$f" ;;
erase) url=$(cat); rm -f "$CREDS_DIR/$(key "$url")" ;;
list) echo '{}' ;;
esac
`

func TestRegistryCredentialHelpers(t *testing.T) {
	cfgDir := isolateDockerConfig(t)
	reg := startRegistry(t, regToken)
	bin, creds := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(bin, "docker-credential-strata-test"), []byte(credHelperScript))
	os.Chmod(filepath.Join(bin, "docker-credential-strata-test"), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	t.Setenv("CREDS_DIR", creds)
	e := newEnv(t)
	writeLocalImage(t, e, "img", 1, 8<<10, "linux/amd64")
	dest := reg.Host + "/helped/img:1"
	credFile := filepath.Join(creds, strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, reg.Host))

	// credsStore: login stores through the helper, nothing lands in config.json.
	writeFile(t, filepath.Join(cfgDir, "config.json"), []byte(`{"credsStore": "strata-test"}`))
	if out := e.runIn([]byte(reg.Pass+"\n"), "login", "-u", reg.User, "--password-stdin", reg.Host); out.Code != 0 {
		t.Fatalf("login with credsStore: %s", out.Stderr)
	}
	stored, err := os.ReadFile(credFile)
	if err != nil || !strings.Contains(string(stored), `"Username":"`+reg.User+`"`) || !strings.Contains(string(stored), `"Secret":"`+reg.Pass+`"`) {
		t.Fatalf("helper holds %q (%v)", stored, err)
	}
	b, _ := os.ReadFile(filepath.Join(cfgDir, "config.json"))
	if strings.Contains(string(b), base64.StdEncoding.EncodeToString([]byte(reg.User+":"+reg.Pass))) {
		t.Fatalf("config.json holds the password with a credsStore: %s", b)
	}
	digest := pushedDigest(t, e.ok("push", "img", dest))
	e.ok("logout", reg.Host)
	if _, err := os.Stat(credFile); !os.IsNotExist(err) {
		t.Fatalf("logout left the helper's credentials (%v)", err)
	}
	newEnv(t).fails("unauthorized", "pull", dest)

	// credHelpers: a helper for this registry only.
	writeFile(t, credFile, []byte(`{"ServerURL":"`+reg.Host+`","Username":"`+reg.User+`","Secret":"`+reg.Pass+`"}`))
	writeFile(t, filepath.Join(cfgDir, "config.json"), []byte(`{"credHelpers": {"`+reg.Host+`": "strata-test"}}`))
	if d, _ := pulled(t, newEnv(t).ok("pull", dest)); d != digest {
		t.Fatalf("pulled %s, pushed %s", d, digest)
	}
}
