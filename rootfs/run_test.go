package rootfs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-dev/strata/rootfs"
)

// TestMain lets the test binary serve as the sandbox's init: Run re-executes
// /proc/self/exe, which is this binary.
func TestMain(m *testing.M) {
	if rootfs.IsInit() {
		rootfs.InitMain()
		return
	}
	os.Exit(m.Run())
}

// busyboxRoot makes a minimal root: a static busybox and its applets.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed")
	}
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"bin", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Dir(root), 0o755)
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "cat", "echo", "sleep", "true", "id", "ls", "stat", "touch"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	return root
}

func TestRunStreams(t *testing.T) {
	root := busyboxRoot(t)
	var out, errb bytes.Buffer
	code, err := rootfs.Run(context.Background(), rootfs.Spec{
		RootfsDir: root,
		Args:      []string{"sh", "-c", "cat; echo to-err >&2; exit 7"},
		Stdin:     strings.NewReader("from stdin\n"),
		Stdout:    &out,
		Stderr:    &errb,
	})
	if err != nil || code != 7 {
		t.Fatalf("Run = %d, %v; want 7, nil", code, err)
	}
	if out.String() != "from stdin\n" || errb.String() != "to-err\n" {
		t.Errorf("stdout %q, stderr %q", out.String(), errb.String())
	}
	// One writer for both keeps the order.
	var both bytes.Buffer
	code, err = rootfs.Run(context.Background(), rootfs.Spec{
		RootfsDir: root,
		Args:      []string{"sh", "-c", "echo 1; echo 2 >&2; echo 3"},
		Stdout:    &both,
		Stderr:    &both,
	})
	if err != nil || code != 0 || both.String() != "1\n2\n3\n" {
		t.Errorf("Run = %d, %v, output %q", code, err, both.String())
	}
}

func TestRunCancel(t *testing.T) {
	root := busyboxRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	r, w, _ := os.Pipe()
	defer r.Close()
	done := make(chan struct{})
	var code int
	var err error
	go func() {
		defer close(done)
		code, err = rootfs.Run(ctx, rootfs.Spec{
			RootfsDir: root,
			Args:      []string{"sh", "-c", "echo ready; exec sleep 1000"},
			Stdout:    w,
		})
	}()
	line := make([]byte, 6)
	if _, rerr := r.Read(line); rerr != nil || string(line) != "ready\n" {
		t.Fatalf("read %q, %v", line, rerr)
	}
	cancel()
	<-done
	w.Close()
	if code != 137 || !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel = %d, %v; want 137, context.Canceled", code, err)
	}
	if n := sleepers(); n != 0 {
		t.Errorf("%d sleep 1000 processes left after cancel", n)
	}
}

// sleepers counts the processes running "sleep 1000" (all in the test's
// sandboxes).
func sleepers() int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && string(b) == "sleep\x001000\x00" {
			n++
		}
	}
	return n
}

func TestRunSignals(t *testing.T) {
	root := busyboxRoot(t)
	sigs := make(chan os.Signal, 1)
	r, w, _ := os.Pipe()
	defer r.Close()
	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	go func() {
		code, err := rootfs.Run(context.Background(), rootfs.Spec{
			RootfsDir: root,
			Args:      []string{"sh", "-c", `trap 'echo got USR2; exit 9' USR2; echo ready; sleep 1000 & wait`},
			Stdout:    w,
			Signals:   sigs,
		})
		res <- result{code, err}
	}()
	buf := make([]byte, 64)
	n, _ := r.Read(buf)
	if string(buf[:n]) != "ready\n" {
		t.Fatalf("read %q", buf[:n])
	}
	sigs <- syscall.SIGUSR2
	got := <-res
	w.Close()
	n, _ = r.Read(buf)
	if got.code != 9 || got.err != nil || string(buf[:n]) != "got USR2\n" {
		t.Errorf("Run = %d, %v, output %q; want 9, nil, %q", got.code, got.err, buf[:n], "got USR2\n")
	}
}

func TestSandboxStartClose(t *testing.T) {
	root := busyboxRoot(t)
	// An unused sandbox is killed by Close.
	sb, err := rootfs.Start(rootfs.NetworkNone)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Close took %v", time.Since(start))
	}
	if code, err := sb.Run(context.Background(), rootfs.Spec{RootfsDir: root, Args: []string{"true"}}); err == nil || code != rootfs.ExitSetup {
		t.Errorf("Run after Close = %d, %v; want an error", code, err)
	}
	// A started sandbox runs one spec of its network mode.
	sb, err = rootfs.Start(rootfs.NetworkHost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Run(context.Background(), rootfs.Spec{RootfsDir: root, Args: []string{"true"}}); err == nil {
		t.Error("Run with network none in a host-network sandbox succeeded")
	}
	sb.Close()
	sb, _ = rootfs.Start(rootfs.NetworkHost)
	var out bytes.Buffer
	code, err := sb.Run(context.Background(), rootfs.Spec{RootfsDir: root, Network: rootfs.NetworkHost, Args: []string{"echo", "hi"}, Stdout: &out})
	if code != 0 || err != nil || out.String() != "hi\n" {
		t.Errorf("Run = %d, %v, %q", code, err, out.String())
	}
	if _, err := sb.Run(context.Background(), rootfs.Spec{RootfsDir: root, Network: rootfs.NetworkHost, Args: []string{"true"}}); err == nil {
		t.Error("second Run of a sandbox succeeded")
	}
	sb.Close()
}

func TestRunBadSpec(t *testing.T) {
	root := busyboxRoot(t)
	tests := []struct {
		spec rootfs.Spec
		want string
	}{
		{rootfs.Spec{RootfsDir: root}, "no command specified"},
		{rootfs.Spec{Args: []string{"true"}}, "no root filesystem given"},
		{rootfs.Spec{RootfsDir: root + "/nonexistent", Args: []string{"true"}}, "root filesystem: stat " + root + "/nonexistent: no such file or directory"},
		{rootfs.Spec{RootfsDir: root, Args: []string{"true"}, Hostname: "a/b"}, `invalid hostname "a/b"`},
		{rootfs.Spec{RootfsDir: root, Args: []string{"true"}, Memory: 1000}, "minimum memory limit allowed is 6MB"},
		{rootfs.Spec{RootfsDir: root, Args: []string{"true"}, CPUs: 0.001}, "--cpus 0.001 is below the minimum of 0.01"},
		{rootfs.Spec{RootfsDir: root, Args: []string{"true"}, Binds: []rootfs.Bind{{Source: root, Target: "/"}}}, `bind mount target "/" must be an absolute path other than /`},
		{rootfs.Spec{RootfsDir: root, Args: []string{"true"}, Tmpfs: []rootfs.Tmpfs{{Target: "rel"}}}, `tmpfs target "rel" must be an absolute path other than /`},
	}
	for _, tt := range tests {
		code, err := rootfs.Run(context.Background(), tt.spec)
		if code != rootfs.ExitSetup || err == nil || err.Error() != tt.want {
			t.Errorf("Run(%+v) = %d, %v; want %d, %q", tt.spec, code, err, rootfs.ExitSetup, tt.want)
		}
	}
}

func Example() {
	code, err := rootfs.Run(context.Background(), rootfs.Spec{
		RootfsDir: "/path/to/root",
		Args:      []string{"sh", "-c", "echo hello"},
		Stdout:    os.Stdout,
		Stderr:    os.Stderr,
	})
	fmt.Println(code, err)
}

// BenchmarkRunTrue measures a sandbox's whole life around /bin/true over a
// directory root (the test binary is the init).
func BenchmarkRunTrue(b *testing.B) {
	root := benchRoot(b)
	for i := 0; i < b.N; i++ {
		code, err := rootfs.Run(context.Background(), rootfs.Spec{RootfsDir: root, Args: []string{"true"}})
		if code != 0 || err != nil {
			b.Fatalf("Run = %d, %v", code, err)
		}
	}
}

// BenchmarkStartedRunTrue is BenchmarkRunTrue with init started ahead
// (Start), as a caller does while it prepares the image.
func BenchmarkStartedRunTrue(b *testing.B) {
	root := benchRoot(b)
	sb, _ := rootfs.Start(rootfs.NetworkNone)
	for i := 0; i < b.N; i++ {
		next, _ := rootfs.Start(rootfs.NetworkNone)
		code, err := sb.Run(context.Background(), rootfs.Spec{RootfsDir: root, Args: []string{"true"}})
		if code != 0 || err != nil {
			b.Fatalf("Run = %d, %v", code, err)
		}
		sb = next
	}
	sb.Close()
}

func benchRoot(b *testing.B) string {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		b.Skip("busybox not installed")
	}
	root := filepath.Join(b.TempDir(), "root")
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	data, _ := os.ReadFile(bb)
	os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755)
	os.Symlink("busybox", filepath.Join(root, "bin", "true"))
	return root
}

func TestRunOverlayEphemeral(t *testing.T) {
	lower := busyboxRoot(t)
	os.Symlink("busybox", filepath.Join(lower, "bin", "grep"))
	for _, ephemeral := range []bool{false, true} {
		dir := t.TempDir()
		upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
		os.Mkdir(upper, 0o755)
		os.Mkdir(work, 0o755)
		var out bytes.Buffer
		code, err := rootfs.Run(context.Background(), rootfs.Spec{
			Rootfs: []rootfs.Mount{{Type: "overlay", Source: "overlay", Options: []string{
				"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work}}},
			Ephemeral: ephemeral,
			Args:      []string{"sh", "-c", "echo data > /new; grep -c volatile /proc/self/mountinfo"},
			Stdout:    &out,
		})
		want := "0\n"
		if ephemeral {
			want = "1\n"
		}
		if code != map[bool]int{false: 1, true: 0}[ephemeral] || err != nil || out.String() != want {
			t.Errorf("ephemeral=%v: Run = %d, %v, output %q; want volatile count %q", ephemeral, code, err, out.String(), want)
		}
		if b, err := os.ReadFile(filepath.Join(upper, "new")); err != nil || string(b) != "data\n" {
			t.Errorf("ephemeral=%v: upper/new = %q, %v", ephemeral, b, err)
		}
	}
}

// TestRunIdmappedBind checks binds shown through an idmapped mount: the
// source's owner 1000:1001 appears as root, root as 1000:1001, others as
// they are; read-only stays read-only, a Discard bind's writes never reach
// the source, a plain one's land there owned by 1000:1001; the source's
// owners never change.
func TestRunIdmappedBind(t *testing.T) {
	root := busyboxRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	owners := map[string][2]int{"": {1000, 1001}, "f1000": {1000, 1001}, "f0": {0, 0}, "f5": {5, 6}}
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, o := range owners {
		p := filepath.Join(src, name)
		if name != "" {
			if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Lchown(p, o[0], o[1]); err != nil {
			t.Fatal(err)
		}
	}
	const script = "stat -c '%u:%g %n' /m /m/f0 /m/f1000 /m/f5; touch /m/new && stat -c '%u:%g %n' /m/new"
	shown := "0:0 /m\n1000:1001 /m/f0\n0:0 /m/f1000\n5:6 /m/f5\n"
	for _, tc := range []struct {
		name          string
		bind          rootfs.Bind
		out, errOut   string
		hostNewOwners string // owners of src/new afterwards, "" for none
	}{
		{"ro", rootfs.Bind{ReadOnly: true}, shown, "touch: /m/new: Read-only file system\n", ""},
		{"discard", rootfs.Bind{Discard: true}, shown + "0:0 /m/new\n", "", ""},
		{"rw", rootfs.Bind{}, shown + "0:0 /m/new\n", "", "1000:1001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(src, "new"))
			b := tc.bind
			b.Source, b.Target, b.RootUID, b.RootGID = src, "/m", 1000, 1001
			var out, errOut bytes.Buffer
			code, err := rootfs.Run(context.Background(), rootfs.Spec{
				RootfsDir: root, Args: []string{"sh", "-c", script}, Binds: []rootfs.Bind{b},
				Stdout: &out, Stderr: &errOut,
			})
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.out || errOut.String() != tc.errOut || (code == 0) != (tc.errOut == "") {
				t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant stdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String(), tc.out, tc.errOut)
			}
			var st syscall.Stat_t
			err = syscall.Lstat(filepath.Join(src, "new"), &st)
			switch {
			case tc.hostNewOwners == "" && err == nil:
				t.Errorf("the container's write reached the source")
			case tc.hostNewOwners != "" && err != nil:
				t.Errorf("the container's write is not in the source: %v", err)
			case tc.hostNewOwners != "" && fmt.Sprintf("%d:%d", st.Uid, st.Gid) != tc.hostNewOwners:
				t.Errorf("src/new owned by %d:%d, want %s", st.Uid, st.Gid, tc.hostNewOwners)
			}
			for name, o := range owners {
				if err := syscall.Lstat(filepath.Join(src, name), &st); err != nil || int(st.Uid) != o[0] || int(st.Gid) != o[1] {
					t.Errorf("src/%s owned by %d:%d (%v), want %d:%d", name, st.Uid, st.Gid, err, o[0], o[1])
				}
			}
		})
	}
}

// TestRunIdmappedBindUnsupported: a source whose file system cannot be
// idmapped (sysfs) is bound as it is, with the host's owners, rather than
// failing the run.
func TestRunIdmappedBindUnsupported(t *testing.T) {
	root := busyboxRoot(t)
	var out, errOut bytes.Buffer
	code, err := rootfs.Run(context.Background(), rootfs.Spec{
		RootfsDir: root, Args: []string{"stat", "-c", "%u:%g %F", "/m/kernel"},
		Binds:  []rootfs.Bind{{Source: "/sys", Target: "/m", ReadOnly: true, RootUID: 1000, RootGID: 1000}},
		Stdout: &out, Stderr: &errOut,
	})
	if err != nil || code != 0 || out.String() != "0:0 directory\n" {
		t.Errorf("Run = %d, %v, stdout %q, stderr %q; want 0:0 directory", code, err, out.String(), errOut.String())
	}
}
