package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-dev/strata/store"
)

// snapRun runs strata with extra environment variables.
func (e *env) snapRun(envv []string, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = append(append(os.Environ(), "STRATA_ROOT="+e.Root), envv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running strata %s: %v", strings.Join(args, " "), err)
	}
	if r.Code != 0 {
		e.t.Fatalf("strata %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// snapChanges is a container's work on the busybox base: every kind of
// change a layer can carry.
const snapChanges = `set -e
mkdir -p /data/old/sub /data/redo /data/empty
echo keep > /data/keep; echo one > /data/mod; echo x > /data/gone
echo y > /data/old/sub/f; echo a > /data/redo/a
echo hello > /data/h1; ln /data/h1 /data/h2; ln -s ../data/keep /data/sym
touch /data/suid; chmod 4755 /data/suid; chown 12:34 /data/keep
mkfifo /data/fifo; chmod 1777 /data/empty
`

// snapChanges2 runs over the commit of snapChanges.
const snapChanges2 = `set -e
echo two >> /data/mod
rm /data/gone /bin/true
rm -r /data/old
rm -r /data/redo && mkdir /data/redo && echo c > /data/redo/c
rm /data/sym && ln -s elsewhere /data/sym
chmod 2750 /data/empty
mkdir -p /newdir/deep && echo n > /newdir/deep/n
`

// TestSnapshotOverlayNativeSameLayer makes the same changes in a container
// on each snapshotter (STRATA_SNAPSHOTTER) with SOURCE_DATE_EPOCH set, and
// requires `strata diff` and the committed layers to be identical (same
// diffIDs), the layer's entries to be the expected ones, and no mount or
// snapshot to be left behind.
func TestSnapshotOverlayNativeSameLayer(t *testing.T) {
	requireRoot(t)
	diffIDs := map[string][]string{}
	diffs := map[string]string{}
	var layer2 map[string][]byte
	for _, kind := range []string{"overlay", "native"} {
		e := withBase(t)
		envv := []string{"STRATA_SNAPSHOTTER=" + kind, "SOURCE_DATE_EPOCH=1700000000"}
		e.snapRun(envv, "run", "--name", "one", "bbase", "sh", "-c", snapChanges)
		e.snapRun(envv, "commit", "one", "step1")
		e.snapRun(envv, "rm", "one")
		e.snapRun(envv, "run", "--name", "two", "step1", "sh", "-c", snapChanges2)
		diffs[kind] = e.snapRun(envv, "diff", "two").Stdout
		e.snapRun(envv, "commit", "two", "step2")
		e.snapRun(envv, "rm", "two")
		e.checkClean()

		s, err := store.Open(e.Root)
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := s.Image("step2")
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range cf.RootFS.DiffIDs {
			diffIDs[kind] = append(diffIDs[kind], d.String())
		}
		l, err := s.Layer(cf.RootFS.DiffIDs[len(cf.RootFS.DiffIDs)-1])
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if layer2 == nil {
			layer2 = map[string][]byte{}
		}
		layer2[kind] = b

		// every layer of the image is unpacked once, keyed by chain ID
		if kind == "overlay" {
			ents, _ := os.ReadDir(filepath.Join(e.Root, "snapshots", "layers"))
			n := 0
			for _, ent := range ents {
				if ent.IsDir() && !strings.HasPrefix(ent.Name(), ".") {
					n++
				}
			}
			if n != 2 {
				t.Errorf("overlay: %d unpacked layers, want 2 (base and step1)", n)
			}
		}
	}
	if strings.Join(diffIDs["overlay"], " ") != strings.Join(diffIDs["native"], " ") {
		t.Errorf("diffIDs differ:\noverlay %v\nnative  %v", diffIDs["overlay"], diffIDs["native"])
	}
	if diffs["overlay"] != diffs["native"] {
		t.Errorf("strata diff differs:\n--- overlay\n%s--- native\n%s", diffs["overlay"], diffs["native"])
	}
	wantDiff := `C /bin
D /bin/true
C /data
C /data/empty
D /data/gone
C /data/mod
D /data/old
C /data/redo
D /data/redo/a
A /data/redo/c
C /data/sym
A /newdir
A /newdir/deep
A /newdir/deep/n
`
	if diffs["overlay"] != wantDiff {
		t.Errorf("strata diff:\n%s\nwant:\n%s", diffs["overlay"], wantDiff)
	}
	got := snapListing(t, layer2["overlay"])
	want := []string{
		"bin/ d 755 0:0", "bin/.wh.true f 0 0:0",
		"data/ d 755 0:0", "data/.wh.gone f 0 0:0", "data/.wh.old f 0 0:0", "data/empty/ d 2750 0:0", "data/mod f 644 0:0",
		"data/redo/ d 755 0:0", "data/redo/.wh..wh..opq f 0 0:0", "data/redo/c f 644 0:0", "data/sym l 777 0:0 elsewhere",
		"newdir/ d 755 0:0", "newdir/deep/ d 755 0:0", "newdir/deep/n f 644 0:0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("layer entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// snapListing lists a layer tar: "name type mode uid:gid [link]", and
// checks every time is clamped to SOURCE_DATE_EPOCH.
func snapListing(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		typ := map[byte]string{tar.TypeDir: "d", tar.TypeReg: "f", tar.TypeSymlink: "l", tar.TypeLink: "h", tar.TypeFifo: "p"}[h.Typeflag]
		line := strings.TrimSpace(strings.Join([]string{h.Name, typ, strings.TrimLeft(snapOctal(h.Mode), "0"), snapItoa(h.Uid) + ":" + snapItoa(h.Gid), h.Linkname}, " "))
		line = strings.Replace(line, " f  0:0", " f 0 0:0", 1)
		if h.ModTime.Unix() > 1700000000 {
			t.Errorf("%s: time %v not clamped to SOURCE_DATE_EPOCH", h.Name, h.ModTime)
		}
		out = append(out, line)
	}
	return out
}

func snapOctal(m int64) string {
	s := ""
	for m > 0 {
		s = string(rune('0'+m%8)) + s
		m /= 8
	}
	if s == "" {
		return "0"
	}
	return s
}

func snapItoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for i > 0 {
		s = string(rune('0'+i%10)) + s
		i /= 10
	}
	return s
}

// TestSnapshotHostileLayer imports a root filesystem whose symlinks point
// at a directory of the host, with entries written through them; running
// it (which unpacks the layer) must create or change nothing on the host.
func TestSnapshotHostileLayer(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	host := t.TempDir()
	victim := filepath.Join(host, "victim")
	if err := os.WriteFile(victim, []byte("orig"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	rel, _ := filepath.Rel("/", host)
	add(tar.Header{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: host}, "")
	add(tar.Header{Name: "evil/pwned", Typeflag: tar.TypeReg}, "pwned")
	add(tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../../../" + rel}, "")
	add(tar.Header{Name: "up/victim", Typeflag: tar.TypeReg}, "pwned")
	add(tar.Header{Name: "lnk", Typeflag: tar.TypeSymlink, Linkname: victim}, "")
	add(tar.Header{Name: "lnk", Typeflag: tar.TypeReg}, "replaced")
	add(tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "lnk"}, "")
	tw.Close()
	p := filepath.Join(t.TempDir(), "hostile.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("import", p, "hostile")
	for _, kind := range []string{"overlay", "native"} {
		r := e.snapRunMay([]string{"STRATA_SNAPSHOTTER=" + kind}, "run", "--rm", "hostile", "/x")
		if r.Code == 0 {
			t.Errorf("%s: running a missing command succeeded", kind)
		}
		ents, _ := os.ReadDir(host)
		var names []string
		for _, ent := range ents {
			names = append(names, ent.Name())
		}
		sort.Strings(names)
		if strings.Join(names, ",") != "victim" {
			t.Errorf("%s: the host directory now holds %v", kind, names)
		}
		if b, _ := os.ReadFile(victim); string(b) != "orig" {
			t.Errorf("%s: victim changed to %q", kind, b)
		}
		e.checkClean()
	}
}

// snapRunMay is snapRun without requiring success.
func (e *env) snapRunMay(envv []string, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = append(append(os.Environ(), "STRATA_ROOT="+e.Root), envv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	}
	return r
}

// TestSnapshotParallelRuns starts several strata processes at once on a
// fresh store: each layer is unpacked once, no temp directory or snapshot
// is left, and every run sees the image.
func TestSnapshotParallelRuns(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	const n = 4
	type res struct {
		out string
		err error
	}
	ch := make(chan res, n)
	for i := 0; i < n; i++ {
		go func() {
			cmd := exec.Command(strataBin, "run", "--rm", "bbase", "cat", "/etc/passwd")
			cmd.Env = append(os.Environ(), "STRATA_ROOT="+e.Root)
			out, err := cmd.CombinedOutput()
			ch <- res{string(out), err}
		}()
	}
	for i := 0; i < n; i++ {
		r := <-ch
		if r.err != nil || !strings.Contains(r.out, "root:") {
			t.Errorf("run: %v: %s", r.err, r.out)
		}
	}
	for _, sub := range []string{"layers", "native"} {
		ents, _ := os.ReadDir(filepath.Join(e.Root, "snapshots", sub))
		var dirs []string
		for _, ent := range ents {
			if ent.IsDir() {
				dirs = append(dirs, ent.Name())
			}
		}
		if len(dirs) > 1 {
			t.Errorf("snapshots/%s holds %v: want one unpacked layer and no temp directory", sub, dirs)
		}
	}
	e.checkClean()
}

// TestSnapshotKilledUnpack SIGKILLs `strata run` at several moments while it
// unpacks a big layer for the first time: the next run must see the
// complete layer, and no temp directory or mount may stay.
func TestSnapshotKilledUnpack(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	// busybox base plus 1,500 files of 64 KiB, as one layer
	base, err := os.ReadFile(baseTar(t))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(bytes.NewReader(base))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	tw.WriteHeader(&tar.Header{Name: "big/", Typeflag: tar.TypeDir, Mode: 0o755})
	body := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	const files = 1500
	for i := 0; i < files; i++ {
		tw.WriteHeader(&tar.Header{Name: "big/f" + snapItoa(i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
		tw.Write(body)
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "big.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("import", p, "big")
	layers := filepath.Join(e.Root, "snapshots", "layers")
	for _, delay := range []time.Duration{30 * time.Millisecond, 80 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond} {
		os.RemoveAll(filepath.Join(e.Root, "snapshots"))
		cmd := exec.Command(strataBin, "run", "--rm", "big", "true")
		cmd.Env = append(os.Environ(), "STRATA_ROOT="+e.Root)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
		werr := cmd.Wait()
		var left []string
		ents, _ := os.ReadDir(layers)
		for _, ent := range ents {
			left = append(left, ent.Name())
		}
		t.Logf("killed after %v (%v): snapshots/layers held %v", delay, werr, left)
		out := e.ok("run", "--rm", "big", "sh", "-c", "ls /big | wc -l; cat /big/f"+snapItoa(files-1)+" | wc -c")
		if want := snapItoa(files) + "\n" + snapItoa(len(body)) + "\n"; out != want {
			t.Errorf("killed after %v: next run saw %q, want %q", delay, out, want)
		}
		ents, _ = os.ReadDir(layers)
		for _, ent := range ents {
			if strings.HasPrefix(ent.Name(), ".tmp-") {
				t.Errorf("killed after %v: %s left", delay, ent.Name())
			}
		}
		mounts, _ := os.ReadFile("/proc/mounts")
		if strings.Contains(string(mounts), e.Root) {
			t.Errorf("killed after %v: mount left:\n%s", delay, mounts)
		}
	}
}

// TestSnapshotRootDirNonRoot: the base tarball's root entry is "./" 0700
// (make-base.sh tars a mktemp -d directory). Like containerd, BuildKit and
// docker, strata does not apply a layer's root entry: a container's / is
// 0755 root:root, so a non-root user can run commands, in `strata run` and
// in a build's RUN, on both snapshotters.
func TestSnapshotRootDirNonRoot(t *testing.T) {
	requireRoot(t)
	out, err := exec.Command("tar", "-tvf", baseTar(t), "./").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "drwx------") {
		t.Fatalf("the base tarball's root entry is not 0700 (%v): %s", err, out)
	}
	ctx := bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nUSER 1000\nRUN stat -c '%a %u:%g' / > /tmp/root-by-user\n"})
	for _, kind := range []string{"overlay", "native"} {
		t.Run(kind, func(t *testing.T) {
			e := withBase(t)
			envv := []string{"STRATA_SNAPSHOTTER=" + kind}
			r := e.snapRun(envv, "run", "--rm", "--user", "1000", "bbase", "sh", "-c", "stat -c '%a %u:%g' /; id -u")
			if r.Stdout != "755 0:0\n1000\n" {
				t.Errorf("run --user 1000 printed %q, want \"755 0:0\\n1000\\n\"", r.Stdout)
			}
			iid := filepath.Join(t.TempDir(), "iid")
			e.snapRun(envv, "build", "-q", "--iidfile", iid, ctx)
			id, _ := os.ReadFile(iid)
			if got := e.snapRun(envv, "run", "--rm", string(id), "cat", "/tmp/root-by-user").Stdout; got != "755 0:0\n" {
				t.Errorf("RUN as USER 1000 saw / as %q, want \"755 0:0\\n\"", got)
			}
		})
	}
}
