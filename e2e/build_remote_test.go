package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// FROM and COPY --from of images only in a registry are pulled on demand;
// --push uploads the result after the build.
func TestBuildRegistry(t *testing.T) {
	requireRoot(t)
	reg := startRegistry(t, regAnonymous)
	e := withBase(t)
	e.ok("push", "-q", "bbase", reg.Host+"/lib/base:1")

	fresh := newEnv(t) // no bbase here: it must come from the registry
	ctx := bldContext(t, map[string]string{"Dockerfile": "ARG REG\nFROM $REG/lib/base:1\nCOPY --from=" + reg.Host + "/lib/base:1 /etc/group /g\nRUN echo pulled > /p\n"})
	tag := reg.Host + "/lib/built:1"
	tree, _ := bldBuild(t, fresh, ctx, tag, "--build-arg", "REG="+reg.Host, "--push")
	bldCheckTree(t, tree, []bldFile{reg0("/p", "pulled\n"), reg0("/g", "root:x:0:\nnobody:x:65534:\napp:x:1000:\n")})

	other := newEnv(t)
	other.ok("pull", "-q", tag)
	other.ok("inspect", tag)
}

func reg0(p, content string) bldFile { return reg(p, 0o644, content) }

func TestBuildAddURL(t *testing.T) {
	requireRoot(t)
	body := "remote content\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(body))
	}))
	defer srv.Close()
	sum := sha256.Sum256([]byte(body))
	e := withBase(t)
	ctx := bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nADD --checksum=sha256:" + hex.EncodeToString(sum[:]) + " " + srv.URL + "/dir/file.txt /fetched/\nADD " + srv.URL + "/x /named\n"})
	tree, _ := bldBuild(t, e, ctx, "addurl")
	bldCheckTree(t, tree, []bldFile{reg("/fetched/file.txt", 0o600, body), reg("/named", 0o600, body)})

	bad := bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 " + srv.URL + "/f /f\n"})
	bldFails(t, e, "digest mismatch", "build", "--progress", "plain", bad)
}

// examples/hello builds and runs.
func TestBuildExampleHello(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	e.ok("build", "-q", "-t", "hello", "../examples/hello")
	out := e.ok("run", "--rm", "hello")
	if !strings.Contains(out, "Hello from strata! (running as root") {
		t.Errorf("hello printed %q", out)
	}
}

// examples/go-static with a Go toolchain image made from this machine's Go
// (the example's make-golang-image.sh).
func TestBuildExampleGo(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("copies the Go toolchain")
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skip("no go toolchain")
	}
	e := withBase(t)
	script, _ := filepath.Abs("../examples/go-static/make-golang-image.sh")
	cmd := exec.Command("bash", script, baseTar(t), strings.TrimSpace(string(goroot)))
	cmd.Env = append(os.Environ(), "STRATA_ROOT="+e.Root, "PATH="+filepath.Dir(strataBin)+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-golang-image.sh: %v\n%s", err, out)
	}
	tree, cfg := bldBuild(t, e, "../examples/go-static", "hello-go", "--build-arg", "GOLANG=golang-local")
	if f, ok := tree["/hello"]; !ok || f.Mode != 0o755 || len(tree) != 1 {
		t.Errorf("image tree: %v", keys(tree))
	}
	if strings.Join(cfg.Config.Entrypoint, " ") != "/hello" || cfg.Config.User != "65534:65534" {
		t.Errorf("config: %+v", cfg.Config)
	}
	out := e.ok("run", "--rm", "hello-go")
	if !strings.Contains(out, "hello from a static Go binary (linux/") || !strings.Contains(out, "uid 65534") {
		t.Errorf("hello-go printed %q", out)
	}
}

func keys(m map[string]bldFile) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// examples/debian: debootstrap, import, apt-get install in RUN. Slow and
// needs a Debian mirror: only with STRATA_E2E_DEBIAN=1.
func TestBuildExampleDebian(t *testing.T) {
	requireRoot(t)
	if os.Getenv("STRATA_E2E_DEBIAN") == "" {
		t.Skip("set STRATA_E2E_DEBIAN=1 (debootstrap and apt-get need a Debian mirror)")
	}
	e := newEnv(t)
	dir := filepath.Join(t.TempDir(), "bookworm")
	mirror := os.Getenv("DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	if out, err := exec.Command("debootstrap", "--variant=minbase", "bookworm", dir, mirror).CombinedOutput(); err != nil {
		t.Fatalf("debootstrap: %v\n%s", err, out)
	}
	tarPath := filepath.Join(t.TempDir(), "rootfs.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", tarPath, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	e.ok("import", tarPath, "debian:bookworm")
	e.ok("build", "-q", "-t", "hello-debian", "../examples/debian")
	out := e.ok("run", "--rm", "hello-debian")
	if !strings.Contains(out, "Hello from Debian, built by strata") {
		t.Errorf("printed %q", out)
	}
}
