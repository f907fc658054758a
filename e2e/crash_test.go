package e2e

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashSeed makes the kill moments reproducible: set STRATA_CRASH_SEED to
// replay a failure.
func crashSeed(t *testing.T) int64 {
	if s := os.Getenv("STRATA_CRASH_SEED"); s != "" {
		var n int64
		fmt.Sscan(s, &n)
		return n
	}
	return time.Now().UnixNano()
}

// killAfter starts strata with args (stdin from a file when stdin is not
// ""), SIGKILLs it after delay unless it finished, and reports whether it
// completed successfully on its own.
func (e *env) killAfter(t *testing.T, delay time.Duration, stdin string, args ...string) (completed bool) {
	t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = append(os.Environ(), "STRATA_ROOT="+e.Root)
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdin = f
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("strata %s failed without being killed: %v %s", strings.Join(args, " "), err, errb.String())
		}
		return true
	case <-time.After(delay):
	}
	cmd.Process.Signal(syscall.SIGKILL)
	err := <-done
	return err == nil
}

// crashInput writes a root filesystem tar of a few MB of incompressible
// data, different for each i (so every import writes a new layer).
func crashInput(t *testing.T, dir string, rng *rand.Rand, i int) string {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("in-%d.tar", i))
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	data := make([]byte, 2<<20)
	for n := 0; n < 4; n++ {
		rng.Read(data)
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/%d-%d", i, n), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))})
		tw.Write(data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCrashImportSave SIGKILLs import and save at random moments, many
// times; after each kill the store must pass fsck, a name must point only to
// a complete image, and save's output file must be complete or absent.
func TestCrashImportSave(t *testing.T) {
	seed := crashSeed(t)
	t.Logf("seed %d (STRATA_CRASH_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	e := withBase(t)
	dir := t.TempDir()
	// Calibrate the kill window on the fastest of three undisturbed runs of
	// each (a slow machine then only makes more kills land).
	importTime, saveTime := time.Hour, time.Hour
	for c := 0; c < 3; c++ {
		name := fmt.Sprintf("calib:%d", c)
		in := crashInput(t, dir, rng, -1-c)
		start := time.Now()
		if r := e.fndRunFile(in, "import", "-", name); r.Code != 0 {
			t.Fatalf("import: %s", r.Stderr)
		}
		importTime = min(importTime, time.Since(start))
		start = time.Now()
		e.ok("save", "-o", filepath.Join(dir, "calib.tar"), name)
		saveTime = min(saveTime, time.Since(start))
		os.Remove(in)
	}
	t.Logf("undisturbed: import %v, save %v", importTime, saveTime)

	const iterations = 30
	kills := 0
	for i := 0; i < iterations; i++ {
		name := fmt.Sprintf("crash:%d", i)
		in := crashInput(t, dir, rng, i)
		d := time.Duration(rng.Int63n(int64(importTime)*5/4 + 1))
		if !e.killAfter(t, d, in, "import", "-", name) {
			kills++
			fndCheckConsistent(t, e, name, "import", i, d)
			e.ok("import", in, name) // a rerun after a crash works
		}
		os.Remove(in)
		out := filepath.Join(dir, fmt.Sprintf("out-%d.tar", i))
		format := []string{"docker", "oci"}[i%2]
		d = time.Duration(rng.Int63n(int64(saveTime)*5/4 + 1))
		if !e.killAfter(t, d, "", "save", "--format", format, "-o", out, name) {
			kills++
			fndCheckConsistent(t, e, name, "save", i, d)
			// Killed before the rename: no file. Killed after it (before
			// exiting): the whole archive. Never a partial one at -o.
			if _, err := os.Stat(out); err == nil {
				e2 := newEnv(t)
				if r := e2.run("load", "-i", out); r.Code != 0 {
					t.Fatalf("iteration %d: a killed save left a partial %s: %s", i, out, r.Stderr)
				}
				e2.ok("fsck")
				os.Remove(out)
			}
			continue
		}
		// A complete archive loads.
		if i%5 == 0 {
			e2 := newEnv(t)
			e2.ok("load", "-i", out)
			e2.ok("fsck")
		}
		os.Remove(out)
	}
	t.Logf("%d of %d runs killed before they finished", kills, 2*iterations)
	if kills < iterations/2 {
		t.Errorf("only %d kills landed: the kill window is miscalibrated", kills)
	}
	// Prune cleans what the kills left; everything named is still whole.
	e.ok("prune")
	if ents, _ := os.ReadDir(filepath.Join(e.Root, "ingest")); len(ents) != 0 {
		t.Errorf("prune left %d files in ingest/", len(ents))
	}
	e.ok("fsck")
}

// fndCheckConsistent: after a kill, fsck is clean and name, if it exists,
// is a complete image.
func fndCheckConsistent(t *testing.T, e *env, name, what string, i int, d time.Duration) {
	t.Helper()
	if r := e.run("fsck"); r.Code != 0 {
		t.Fatalf("iteration %d: fsck after killing %s at %v: exit %d\n%s%s", i, what, d, r.Code, r.Stdout, r.Stderr)
	}
	r := e.run("inspect", name)
	if r.Code == 0 {
		if r := e.run("export", name, "-o", filepath.Join(t.TempDir(), "rootfs.tar")); r.Code != 0 {
			t.Fatalf("iteration %d: %s is tagged but incomplete: %s", i, name, r.Stderr)
		}
	} else if !strings.Contains(r.Stderr, "not found") {
		t.Fatalf("iteration %d: inspect %s: %s", i, name, r.Stderr)
	}
}

// TestConcurrentProcesses: imports, saves, tags, rmis and prunes running at
// once in separate processes leave every image whole and fsck clean.
func TestConcurrentProcesses(t *testing.T) {
	e := withBase(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	var inputs []string
	for i := 0; i < 4; i++ {
		inputs = append(inputs, crashInput(t, dir, rng, i))
	}
	type job struct {
		args  []string
		stdin string
	}
	var jobs []job
	for i, in := range inputs {
		jobs = append(jobs, job{args: []string{"import", "-", fmt.Sprintf("c%d", i)}, stdin: in})
		jobs = append(jobs, job{args: []string{"prune"}})
		jobs = append(jobs, job{args: []string{"save", "-o", filepath.Join(dir, fmt.Sprintf("s%d.tar", i)), "bbase"}})
		jobs = append(jobs, job{args: []string{"tag", "bbase", fmt.Sprintf("t%d", i)}})
	}
	errs := make(chan string, len(jobs))
	for _, j := range jobs {
		go func() {
			cmd := exec.Command(strataBin, j.args...)
			cmd.Env = append(os.Environ(), "STRATA_ROOT="+e.Root)
			if j.stdin != "" {
				f, err := os.Open(j.stdin)
				if err != nil {
					errs <- err.Error()
					return
				}
				defer f.Close()
				cmd.Stdin = f
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Sprintf("strata %s: %v %s", strings.Join(j.args, " "), err, out)
				return
			}
			errs <- ""
		}()
	}
	for range jobs {
		if msg := <-errs; msg != "" {
			t.Error(msg)
		}
	}
	for i := range inputs {
		e.ok("export", fmt.Sprintf("c%d", i), "-o", filepath.Join(dir, "rootfs.tar"))
		e.ok("inspect", fmt.Sprintf("t%d", i))
		e2 := newEnv(t)
		e2.ok("load", "-i", filepath.Join(dir, fmt.Sprintf("s%d.tar", i)))
	}
	e.ok("prune")
	e.ok("fsck")
}

// TestNoSpace: a store on a full filesystem fails with one line naming the
// problem and stays consistent.
func TestNoSpace(t *testing.T) {
	requireRoot(t)
	base := baseTar(t)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	e := &env{t: t, Root: filepath.Join(mnt, "store")}
	e.ok("import", base, "small") // 2.1MB fits
	before := fndStoreState(t, e)
	e.fails("no space left on device", "import", base, "again:1", "--change", "USER 1")
	e.fails("no space left on device", "save", "-o", filepath.Join(mnt, "out.tar"), "small")
	if after := fndStoreState(t, e); after != before {
		t.Errorf("store changed:\nbefore %s\nafter  %s", before, after)
	}
	if _, err := os.Stat(filepath.Join(mnt, "out.tar")); err == nil {
		t.Error("failed save left its output file")
	}
	e.ok("fsck")
}
