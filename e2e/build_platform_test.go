package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// platformOf reads os/arch/variant from the config of the image id names.
func platformOf(t *testing.T, e *env, id string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(e.Root, "blobs", "sha256", strings.TrimPrefix(strings.TrimSpace(id), "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ OS, Architecture, Variant string }
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(c.OS+"/"+c.Architecture+"/"+c.Variant, "/")
}

// TestBuildFromPlatform: FROM --platform selects a platform of a registry
// index (and pulls it in place of a stored image of another platform);
// $BUILDPLATFORM is this machine's; a stored image that cannot run here is
// used with a warning when no platform was asked for, as docker does.
func TestBuildFromPlatform(t *testing.T) {
	requireRoot(t)
	isolateDockerConfig(t)
	reg := startRegistry(t, regAnonymous)
	e := withBase(t)
	amd := writeLocalImage(t, e, "app-amd64", 1, 4<<10, "linux/amd64")
	arm := writeLocalImage(t, e, "app-arm64", 1, 4<<10, "linux/arm64/v8")
	dest := reg.Host + "/multi/app:1"
	e.ok("push", "app-amd64", dest, "--index", "app-arm64")

	e2 := withBase(t)
	build := func(e *env, df string) string {
		t.Helper()
		ctx := bldContext(t, map[string]string{"Dockerfile": df})
		r := e.run("build", "-q", ctx)
		if r.Code != 0 {
			t.Fatalf("build of %q: exit %d: %s", df, r.Code, r.Stderr)
		}
		return strings.TrimSpace(r.Stdout)
	}
	for _, tc := range []struct{ platform, want, image string }{
		{"linux/arm64", "linux/arm64/v8", arm.ID.String()},
		{"linux/amd64", "linux/amd64", amd.ID.String()},
		// the stored tag is the amd64 image now: arm64 is pulled again
		{"linux/arm64/v8", "linux/arm64/v8", arm.ID.String()},
	} {
		id := build(e2, "FROM --platform="+tc.platform+" "+dest+"\nLABEL x=y\n")
		if got := platformOf(t, e2, id); got != tc.want {
			t.Errorf("FROM --platform=%s: built a %s image, want %s", tc.platform, got, tc.want)
		}
		if got := storedImage(t, e2, dest).ID.String(); got != tc.image {
			t.Errorf("FROM --platform=%s: %s is %s, want the %s image %s", tc.platform, dest, got, tc.want, tc.image)
		}
	}

	// $BUILDPLATFORM: this machine's platform, so RUN works
	id := build(e2, "FROM --platform=$BUILDPLATFORM bbase\nRUN echo ok > /ok\n")
	if got := platformOf(t, e2, id); got != "linux/"+runtime.GOARCH {
		t.Errorf("FROM --platform=$BUILDPLATFORM: built a %s image", got)
	}

	// a stored image of another platform, no platform asked for: a warning
	r := e.run("build", "--progress", "plain", bldContext(t, map[string]string{"Dockerfile": "FROM app-arm64\nLABEL x=y\n"}))
	if r.Code != 0 || !strings.Contains(r.Stderr, "FROM app-arm64: the image's platform (linux/arm64/v8) does not match this machine's") {
		t.Errorf("no platform warning:\n%s", r.Stderr)
	}
	bldFails(t, e, "FROM --platform=linux: want os/arch[/variant]", "build", bldContext(t, map[string]string{"Dockerfile": "FROM --platform=linux bbase\n"}))
}
