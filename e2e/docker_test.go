package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireDocker skips unless a dockerd answers.
func fndRequireDocker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker client")
	}
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		t.Skipf("no dockerd reachable: %s", fndLastLine(string(out)))
	}
}

// dockerRoundTrip saves ref in docker format, loads it into dockerd under a
// unique name and returns what `docker run NAME args...` prints.
func dockerRoundTrip(t *testing.T, e *env, ref string, args ...string) string {
	t.Helper()
	name := fmt.Sprintf("strata-e2e/%s:%d", strings.NewReplacer(":", "-", "/", "-").Replace(ref), os.Getpid())
	e.ok("tag", ref, name)
	tarball := filepath.Join(t.TempDir(), "img.tar")
	e.ok("save", "--format", "docker", "-o", tarball, name)
	out, err := exec.Command("docker", "load", "-i", tarball).CombinedOutput()
	if err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", name).Run() })
	if want := "Loaded image: " + name; !strings.Contains(string(out), want) {
		t.Fatalf("docker load printed %q, want %q", out, want)
	}
	run := append([]string{"run", "--rm", "--network", "none", name}, args...)
	out, err = exec.Command("docker", run...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(run, " "), err, out)
	}
	return string(out)
}

// TestDockerLoadRun: strata save --format docker output loads into docker
// and runs, with the config strata gave it.
func TestDockerLoadRun(t *testing.T) {
	fndRequireDocker(t)
	e := withBase(t)
	e.ok("import", "-c", "ENV GREETING=hello", "-c", `CMD ["sh", "-c", "echo $GREETING from $(cat /etc/hostname-free 2>/dev/null || echo busybox); id -u"]`,
		"-c", "USER 1000", baseTar(t), "greeter")
	if got := dockerRoundTrip(t, e, "greeter"); got != "hello from busybox\n1000\n" {
		t.Errorf("docker run printed %q", got)
	}
	// And back: docker's own save format loads into strata as the same image.
	name := fmt.Sprintf("strata-e2e/greeter:%d", os.Getpid())
	back := filepath.Join(t.TempDir(), "docker-save.tar")
	if out, err := exec.Command("docker", "save", "-o", back, name).CombinedOutput(); err != nil {
		t.Fatalf("docker save: %v %s", err, out)
	}
	e2 := newEnv(t)
	if out := e2.ok("load", "-i", back); out != "Loaded image: "+name+"\n" {
		t.Errorf("load of docker save: %q", out)
	}
	if a, b := fndInspect(t, e, "greeter").Id, fndInspect(t, e2, name).Id; a != b {
		t.Errorf("image ID %s after docker save/strata load, was %s", b, a)
	}
	if e.ok("export", "greeter") != e2.ok("export", name) {
		t.Error("tree differs after docker save/strata load")
	}
	e2.ok("fsck")
	t.Run("debootstrap", func(t *testing.T) {
		requireRoot(t)
		tree := debootstrapTree(t)
		se := &env{t: t, Root: e.Root}
		tarFile := filepath.Join(t.TempDir(), "rootfs.tar")
		if out, err := exec.Command("tar", "-C", tree, "-cf", tarFile, ".").CombinedOutput(); err != nil {
			t.Fatalf("tar: %v %s", err, out)
		}
		se.ok("import", tarFile, "debian:bookworm")
		want, _ := os.ReadFile(filepath.Join(tree, "etc", "debian_version"))
		if got := dockerRoundTrip(t, se, "debian:bookworm", "cat", "/etc/debian_version"); got != string(want) {
			t.Errorf("debian_version in docker: %q, want %q", got, want)
		}
	})
}
