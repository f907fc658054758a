package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// strataBin is the binary under test, built once by TestMain.
var strataBin string

// baseTarOnce makes the busybox base rootfs tarball (../shared/bench/make-base.sh) once.
var (
	baseTarOnce sync.Once
	baseTarPath string
	baseTarErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	strataBin = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-o", strataBin, "../cmd/strata")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building strata:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if baseTarPath != "" {
		os.RemoveAll(filepath.Dir(baseTarPath))
	}
	os.Exit(code)
}

// result is what one strata invocation did.
type result struct {
	Stdout, Stderr string
	Code           int
}

// env is a fresh strata root for one test.
type env struct {
	t    *testing.T
	Root string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{t: t, Root: t.TempDir()}
}

// run runs strata with args and stdin (may be nil) and returns what it did.
func (e *env) runIn(stdin []byte, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = append(os.Environ(), "STRATA_ROOT="+e.Root)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running strata %s: %v", strings.Join(args, " "), err)
	}
	return r
}

func (e *env) run(args ...string) result { e.t.Helper(); return e.runIn(nil, args...) }

// ok runs strata and fails the test unless it exits 0; it returns stdout.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.Code != 0 {
		e.t.Fatalf("strata %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// fails runs strata, requires a non-zero exit and a single-line error on
// stderr containing want, and no Go stack trace.
func (e *env) fails(want string, args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	checkFailure(e.t, r, want, args)
	return r
}

func checkFailure(t *testing.T, r result, want string, args []string) {
	t.Helper()
	if r.Code == 0 {
		t.Fatalf("strata %s: succeeded, want failure with %q", strings.Join(args, " "), want)
	}
	msg := strings.TrimRight(r.Stderr, "\n")
	if strings.Contains(msg, "\n") || strings.Contains(msg, "goroutine ") || strings.Contains(msg, "panic") {
		t.Fatalf("strata %s: stderr is not one line:\n%s", strings.Join(args, " "), r.Stderr)
	}
	if !strings.Contains(msg, want) {
		t.Fatalf("strata %s: stderr %q does not contain %q", strings.Join(args, " "), msg, want)
	}
}

// baseTar returns the path of a busybox rootfs tarball (made once per run).
func baseTar(t *testing.T) string {
	t.Helper()
	baseTarOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-e2e-base-")
		if err != nil {
			baseTarErr = err
			return
		}
		p := filepath.Join(dir, "base.tar")
		out, err := exec.Command("bash", sharedDir(t)+"/bench/make-base.sh", p).CombinedOutput()
		if err != nil {
			baseTarErr = fmt.Errorf("make-base.sh: %v: %s", err, out)
			return
		}
		baseTarPath = p
	})
	if baseTarErr != nil {
		t.Fatal(baseTarErr)
	}
	return baseTarPath
}

// sharedDir is ../shared beside the checkout.
func sharedDir(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"../../shared", "../shared"} {
		if fi, err := os.Stat(filepath.Join(p, "bench", "make-base.sh")); err == nil && !fi.IsDir() {
			abs, _ := filepath.Abs(p)
			return abs
		}
	}
	t.Skip("../shared not found beside the checkout")
	return ""
}

// withBase returns an env whose store holds the busybox base as "bbase".
func withBase(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.ok("import", baseTar(t), "bbase")
	return e
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}
