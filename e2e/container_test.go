package e2e

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-dev/strata/store"
)

// checkClean asserts what every container command must leave behind: no
// mount mentioning the store root, no container or active snapshot except
// those of the containers named in keep (by ID), and the host's /dev/null.
func (e *env) checkClean(keep ...string) {
	e.t.Helper()
	mounts, err := os.ReadFile("/proc/mounts")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, e.Root) {
			e.t.Errorf("mount left behind: %s", line)
		}
	}
	// Nothing on the host was replaced (a rename over /dev/null once was).
	if fi, err := os.Stat(os.DevNull); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		e.t.Errorf("/dev/null is no longer a character device: %v %v", fi.Mode(), err)
	}
	sort.Strings(keep)
	for _, dir := range []string{"containers", "snapshots/active"} {
		var got []string
		ents, _ := os.ReadDir(filepath.Join(e.Root, dir))
		for _, ent := range ents {
			if ent.IsDir() && !strings.HasPrefix(ent.Name(), ".") {
				got = append(got, ent.Name())
			}
		}
		if !slices.Equal(got, keep) && !(len(got) == 0 && len(keep) == 0) {
			e.t.Errorf("%s: left %q, want %q", dir, got, keep)
		}
	}
}

// containerID returns the full ID of the container named name.
func (e *env) containerID(name string) string {
	e.t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(e.ok("ps", "-a", "--no-trunc")), "\n")[1:] {
		f := strings.Fields(line)
		if f[len(f)-1] == name {
			return f[0]
		}
	}
	e.t.Fatalf("no container named %s in ps -a", name)
	return ""
}

// background starts strata with args, its stdout piped back line by line.
func (e *env) background(args ...string) (*exec.Cmd, *bufio.Reader) {
	e.t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = append(os.Environ(), "STRATA_ROOT="+e.Root)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewReader(out)
}

// waitLine reads lines from r until one equals want.
func waitLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if strings.TrimRight(line, "\n") == want {
			return
		}
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
	}
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// TestContainerSandbox: a container sees its own PID namespace, host name,
// root filesystem and network, and only docker's capabilities.
func TestContainerSandbox(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	// pids: the lowest PID and whether any is >= 20 (a host process would be).
	script := `echo pids=$(ls /proc | grep '^[0-9]*$' | sort -n | awk 'NR==1{f=$1} $1>=20{big=1} END{print f, (big?"big":"small")}')
echo host=$(hostname)
echo root=$(ls / | tr '\n' ' ')
echo work=$(test -e /work && echo visible || echo absent)
echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ')
echo kcore=$(head -c 16 /proc/kcore 2>/dev/null | wc -c)
grep CapBnd /proc/self/status`
	got := e.ok("run", "--rm", "--hostname", "box1", "bbase", "sh", "-c", script)
	want := "pids=1 small\nhost=box1\nroot=bin dev etc proc root sys tmp\nwork=absent\nifaces=lo\nkcore=0\nCapBnd:\t00000000a80425fb\n"
	if got != want {
		t.Errorf("inside the container:\n%s\nwant:\n%s", got, want)
	}

	// The default host name is the container's short ID, not the host's.
	host, _ := os.Hostname()
	got = strings.TrimSpace(e.ok("run", "--rm", "bbase", "hostname"))
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(got) || got == host {
		t.Errorf("default hostname %q, want 12 hex digits (host: %q)", got, host)
	}

	// --network host sees the host's interfaces (but for veths, which
	// other containers on this machine may be making or removing).
	got = e.ok("run", "--rm", "--network", "host", "bbase", "sh", "-c", `tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort`)
	if inside, host := stable(strings.Fields(got)), stable(netIfaces(t)); !slices.Equal(inside, host) || len(host) < 2 {
		t.Errorf("--network host: interfaces %q, want the host's %q", inside, host)
	}
	e.checkClean()
}

// stable drops veth interfaces from a list of interface names.
func stable(ifaces []string) []string {
	return slices.DeleteFunc(slices.Clone(ifaces), func(n string) bool { return strings.HasPrefix(n, "veth") })
}

func netIfaces(t *testing.T) []string {
	b, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n")[2:] {
		if n, _, ok := strings.Cut(l, ":"); ok {
			out = append(out, strings.TrimSpace(n))
		}
	}
	sort.Strings(out)
	return out
}

// TestContainerRunOptions: -e, -w, -u, -v, -i, --entrypoint and the image's
// config reach the process as docker gives them.
func TestContainerRunOptions(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	host := t.TempDir()
	if err := os.Chmod(host, 0o777); err != nil { // writable by the container's user
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "in"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := e.ok("run", "--rm", "-e", "A=1", "-e", "B=two words", "-w", "/work/dir", "-u", "app",
		"-v", host+":/mnt/h", "-v", host+":/mnt/ro:ro", "--tmpfs", "/scratch:size=1m", "bbase",
		"sh", "-c", `echo "$A|$B|$(pwd)|$(id -u):$(id -g)|$HOME"; cat /mnt/h/in; echo x > /mnt/h/out && echo rw; echo x > /mnt/ro/out2 || echo ro; grep -c ' /scratch tmpfs ' /proc/mounts`)
	want := "1|two words|/work/dir|1000:1000|/home/app\nfrom host\nrw\nro\n1\n"
	if b, err := os.ReadFile(filepath.Join(host, "out")); err != nil || string(b) != "x\n" {
		t.Errorf("bind write: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(host, "out2")); err == nil {
		t.Errorf("a read-only bind was written")
	}
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// -i passes stdin; without it the process reads nothing.
	r := e.runIn([]byte("hello\n"), "run", "--rm", "-i", "bbase", "cat")
	if r.Code != 0 || r.Stdout != "hello\n" {
		t.Errorf("run -i cat: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	r = e.runIn([]byte("hello\n"), "run", "--rm", "bbase", "cat")
	if r.Code != 0 || r.Stdout != "" {
		t.Errorf("run cat without -i: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	// --read-only: the root cannot be written, a --tmpfs can.
	if got := e.ok("run", "--rm", "--read-only", "--tmpfs", "/scratch", "bbase", "sh", "-c", "touch /x 2>/dev/null || echo ro; touch /scratch/x && echo tmpfs"); got != "ro\ntmpfs\n" {
		t.Errorf("--read-only: %q", got)
	}
	// no_new_privs: off as in docker, on with --security-opt no-new-privileges
	if got := e.ok("run", "--rm", "-u", "app", "bbase", "grep", "NoNewPrivs", "/proc/self/status"); got != "NoNewPrivs:\t0\n" {
		t.Errorf("default no_new_privs: %q", got)
	}
	if got := e.ok("run", "--rm", "-u", "app", "--security-opt", "no-new-privileges", "bbase", "grep", "NoNewPrivs", "/proc/self/status"); got != "NoNewPrivs:\t1\n" {
		t.Errorf("--security-opt no-new-privileges: %q", got)
	}
	e.fails(`invalid --security-opt "seccomp=unconfined"`, "run", "--rm", "--security-opt", "seccomp=unconfined", "bbase", "true")
	// --entrypoint replaces the image's, and flags after the image belong to the command.
	if got := e.ok("run", "--rm", "--entrypoint", "echo", "bbase", "-n", "--rm", "x"); got != "--rm x" {
		t.Errorf("--entrypoint echo: %q", got)
	}
	e.checkClean()
}

// TestContainerExitCodes: the process's status comes back; strata's own
// failures are 125, a command that cannot run 126, a missing one 127 — each
// with one line on stderr and nothing left behind.
func TestContainerExitCodes(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{args: []string{"bbase", "true"}, code: 0},
		{args: []string{"bbase", "false"}, code: 1},
		{args: []string{"bbase", "sh", "-c", "exit 3"}, code: 3},
		{args: []string{"bbase", "sh", "-c", "kill -9 $$"}, code: 137},
		{args: []string{"bbase", "nosuchcommand"}, code: 127, err: "nosuchcommand"},
		{args: []string{"bbase", "/etc/passwd"}, code: 126, err: "/etc/passwd"},
		{args: []string{"bbase", "/etc"}, code: 126, err: "/etc"},
		{args: []string{"nosuchimage", "true"}, code: 125, err: "no such image: nosuchimage"},
		{args: []string{"-v", "/nonexistent-strata:/x", "bbase", "true"}, code: 125, err: "/nonexistent-strata does not exist"},
		{args: []string{"-v", "relative:/x", "bbase", "true"}, code: 125, err: "not absolute"},
		{args: []string{"-u", "nosuchuser", "bbase", "true"}, code: 125, err: "nosuchuser"},
		{args: []string{"--network", "bridge", "bbase", "true"}, code: 125, err: `invalid --network "bridge"`},
		{args: []string{"--memory", "lots", "bbase", "true"}, code: 125, err: `invalid --memory "lots"`},
		{args: []string{"--bogus", "bbase", "true"}, code: 125, err: "unknown flag: --bogus"},
	} {
		args := append([]string{"run", "--rm"}, tc.args...)
		r := e.run(args...)
		if r.Code != tc.code {
			t.Errorf("strata %s: exit %d, want %d (stderr %q)", strings.Join(args, " "), r.Code, tc.code, r.Stderr)
			continue
		}
		if tc.err != "" {
			checkFailure(t, r, tc.err, args)
		} else if r.Stderr != "" {
			t.Errorf("strata %s: stderr %q", strings.Join(args, " "), r.Stderr)
		}
		e.checkClean()
	}
}

// TestContainerLifecycle: create, start (attached and detached), ps, rm by
// name and ID prefix, and the errors of each.
func TestContainerLifecycle(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	id := strings.TrimSpace(e.ok("create", "--name", "c1", "bbase", "sh", "-c", "echo hi;exit 3"))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("create printed %q, want a 64-hex-digit ID", id)
	}
	e.fails(`the container name "c1" is already in use`, "create", "--name", "c1", "bbase", "true")
	ps := e.ok("ps", "-a")
	psRE := regexp.MustCompile(`(?m)^CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +NAMES\n` + id[:12] + ` +bbase +"sh -c echo hi;exit 3" +(Less than a second|\d+ seconds?) ago +Created +c1\n$`)
	if !psRE.MatchString(ps) {
		t.Errorf("ps -a:\n%s", ps)
	}
	if got := e.ok("ps"); strings.Count(got, "\n") != 1 {
		t.Errorf("ps lists a container that is not running:\n%s", got)
	}
	for _, ref := range []string{"c1", id[:5]} {
		r := e.run("start", "-a", ref)
		if r.Code != 3 || r.Stdout != "hi\n" || r.Stderr != "" {
			t.Errorf("start -a %s: exit %d, stdout %q, stderr %q", ref, r.Code, r.Stdout, r.Stderr)
		}
	}
	if ps := e.ok("ps", "-a"); !regexp.MustCompile(`Exited \(3\) (Less than a second|\d+ seconds?) ago +c1\n`).MatchString(ps) {
		t.Errorf("ps -a after exit:\n%s", ps)
	}
	if got := e.ok("ps", "-aq"); got != id[:12]+"\n" {
		t.Errorf("ps -aq = %q", got)
	}
	e.checkClean(id)
	e.fails("no such container: nosuch", "start", "-a", "nosuch")
	e.fails("no such container: nosuch", "rm", "nosuch")
	e.fails("no such container: nosuch", "diff", "nosuch")
	if got := e.ok("rm", "c1"); got != "c1\n" {
		t.Errorf("rm printed %q", got)
	}
	e.checkClean()

	// Detached start: the container runs without its strata in the
	// foreground; rm refuses it until -f.
	id = strings.TrimSpace(e.ok("create", "--name", "bg", "bbase", "sleep", "1717"))
	if got := e.ok("start", "bg"); got != "bg\n" {
		t.Errorf("start printed %q", got)
	}
	if ps := e.ok("ps"); !regexp.MustCompile(`"sleep 1717" .* Up (Less than a second|\d+ seconds?) +bg\n`).MatchString(ps) {
		t.Errorf("ps with a running container:\n%s", ps)
	}
	e.fails("container is running", "start", "-a", "bg")
	e.fails("container is running", "rm", "bg")
	e.fails("container is running", "commit", "bg", "x")
	e.ok("rm", "-f", "bg")
	e.checkClean()
	if got := e.ok("ps", "-a"); strings.Count(got, "\n") != 1 {
		t.Errorf("ps -a after rm -f:\n%s", got)
	}

	// stop: SIGTERM reaches the process; one that ignores it is killed
	// after -t seconds.
	e.ok("run", "-d", "--name", "st1", "bbase", "sh", "-c", `trap "exit 7" TERM; echo ready; sleep 1717 & wait`)
	e.ok("run", "-d", "--name", "st2", "bbase", "sh", "-c", `trap "" TERM; echo ready; sleep 1717`)
	// A detached container's output goes to container.log: wait for the traps.
	for _, name := range []string{"st1", "st2"} {
		log := filepath.Join(e.Root, "containers", e.containerID(name), "container.log")
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if b, _ := os.ReadFile(log); string(b) == "ready\n" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never printed ready", name)
			}
		}
	}
	if got := e.ok("stop", "-t", "1", "st1", "st2"); got != "st1\nst2\n" {
		t.Errorf("stop printed %q", got)
	}
	ps = e.ok("ps", "-a")
	for _, want := range []string{`Exited \(7\) .* st1\n`, `Exited \(137\) .* st2\n`} {
		if !regexp.MustCompile(want).MatchString(ps) {
			t.Errorf("ps -a after stop: no %s in\n%s", want, ps)
		}
	}
	if got := e.ok("logs", "st1"); got != "ready\n" {
		t.Errorf("logs st1 = %q", got)
	}
	e.ok("stop", "st1") // not running: nothing to do
	e.ok("rm", "st1", "st2")
	e.checkClean()

	// run -d: create + detached start, printing the ID.
	id = strings.TrimSpace(e.ok("run", "-d", "--name", "bg2", "bbase", "sleep", "1717"))
	if ps := e.ok("ps", "-q"); ps != id[:12]+"\n" {
		t.Errorf("ps -q after run -d = %q, want %s", ps, id[:12])
	}
	e.ok("rm", "-f", id[:8])
	e.checkClean()
}

// TestContainerSignals: SIGTERM and SIGINT to `strata run` reach the
// process, and its status comes back.
func TestContainerSignals(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	for _, tc := range []struct {
		sig  syscall.Signal
		cmd  string
		code int
		out  string
	}{
		{syscall.SIGTERM, `trap 'echo got TERM; exit 42' TERM; echo ready; sleep 1717 & wait`, 42, "got TERM\n"},
		{syscall.SIGINT, `trap 'echo got INT; exit 43' INT; echo ready; sleep 1717 & wait`, 43, "got INT\n"},
		{syscall.SIGTERM, `echo ready; exec sleep 1717`, 143, ""},
	} {
		cmd, out := e.background("run", "--rm", "bbase", "sh", "-c", tc.cmd)
		waitLine(t, out, "ready")
		if err := cmd.Process.Signal(tc.sig); err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(out)
		if code := exitCode(t, cmd); code != tc.code || string(rest) != tc.out {
			t.Errorf("%v to %q: exit %d, output %q; want %d, %q", tc.sig, tc.cmd, code, rest, tc.code, tc.out)
		}
		e.checkClean()
	}
}

// TestContainerOrphans: orphans are reaped by the container's init.
func TestContainerOrphans(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	got := e.ok("run", "--rm", "bbase", "sh", "-c", `sh -c 'sleep 1 & exec sleep 2'
for i in $(seq 100); do
  z=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null)
  [ -z "$z" ] && break
  usleep 50000
done
echo "zombies=[$z]"`)
	if got != "zombies=[]\n" {
		t.Errorf("got %q, want no zombies", got)
	}
	e.checkClean()
}

// TestContainerKilled: a SIGKILL of strata leaves no mount and no process;
// the container of `run --rm` is reaped, a named one shows as exited.
func TestContainerKilled(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	// The next run reaps what a killed `run --rm` left...
	cmd, out := e.background("run", "--rm", "bbase", "sh", "-c", "echo ready; exec sleep 1717")
	waitLine(t, out, "ready")
	cmd.Process.Kill()
	cmd.Wait()
	e.ok("run", "--rm", "bbase", "true")
	e.checkClean()
	// ... and so does ps.
	cmd, out = e.background("run", "--rm", "bbase", "sh", "-c", "echo ready; exec sleep 1717")
	waitLine(t, out, "ready")
	cmd.Process.Kill()
	cmd.Wait()
	if got := e.ok("ps", "-a"); strings.Count(got, "\n") != 1 {
		t.Errorf("ps -a after SIGKILL of run --rm:\n%s", got)
	}
	e.checkClean()

	cmd, out = e.background("run", "--name", "keep", "bbase", "sh", "-c", "echo ready; exec sleep 1717")
	waitLine(t, out, "ready")
	if ps := e.ok("ps"); !strings.Contains(ps, " keep\n") {
		t.Errorf("ps while running:\n%s", ps)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if ps := e.ok("ps", "-a"); !regexp.MustCompile(`Exited \(137\) .* keep\n`).MatchString(ps) {
		t.Errorf("ps -a after SIGKILL:\n%s", ps)
	}
	e.checkClean(e.containerID("keep"))
	e.ok("rm", "keep")
	e.checkClean()
	// No process of either container survives its strata.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := sleepersOf("1717")
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left after SIGKILL of strata: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sleepers are the host processes running "sleep 1000" (the sandbox tests'
// sleeper; the container tests use "sleep 1717", so that neither sees the
// other's).
func sleepers(t *testing.T) []string { return sleepersOf("1000") }

// sleepersOf are the host processes running "sleep SECONDS".
func sleepersOf(seconds string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err == nil && string(b) == "sleep\x00"+seconds+"\x00" {
			out = append(out, ent.Name())
		}
	}
	return out
}

// treeScript prints a container's filesystem (but the sandbox's mounts,
// and what docker's init layer adds: /.dockerenv, /etc/mtab), one line per
// path: type, mode, owner, and content digest or link target.
const treeScript = `cd / && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./etc/hosts -o -path ./etc/hostname -o -path ./etc/resolv.conf -o -path ./.dockerenv -o -path ./etc/mtab \) -prune -o -print | sort | while read -r f; do
  if [ -L "$f" ]; then echo "$f link $(readlink "$f")"
  elif [ -d "$f" ]; then echo "$f dir $(stat -c '%a %u:%g' "$f")"
  else echo "$f file $(stat -c '%a %u:%g' "$f") $(md5sum < "$f" | cut -c1-32)"; fi
done`

// TestContainerDiffCommit: the workflow of docker run → change files →
// docker diff → docker commit → docker run of the new image.
func TestContainerDiffCommit(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	// A lower layer with things to modify and delete.
	e.ok("run", "--name", "low", "bbase", "sh", "-c",
		"mkdir -p /data/old/sub /data/redo && echo keep > /data/keep && echo one > /data/mod && echo x > /data/gone && echo y > /data/old/sub/f && echo a > /data/redo/a && echo b > /data/redo/b")
	e.ok("commit", "low", "lower")
	e.ok("rm", "low")

	changes := `set -e
echo two-and-longer > /data/mod  # a new size: docker diff misses a same-size rewrite within the same second
rm /data/gone /etc/group
rm -r /data/old
rm -r /data/redo && mkdir /data/redo && echo c > /data/redo/c
mkdir -p /newdir/deep && echo n > /newdir/deep/n
echo new > /data/new
`
	out := e.ok("run", "--name", "work", "lower", "sh", "-c", changes+"echo ---\n"+treeScript)
	_, before, _ := strings.Cut(out, "---\n")
	diff := e.ok("diff", "work")
	wantDiff := `C /data
A /data/new
C /data/mod
D /data/gone
D /data/old
C /data/redo
D /data/redo/a
D /data/redo/b
A /data/redo/c
C /etc
D /etc/group
A /newdir
A /newdir/deep
A /newdir/deep/n
`
	if sortLines(diff) != sortLines(wantDiff) {
		t.Errorf("diff:\n%s\nwant (in any order):\n%s", diff, wantDiff)
	}
	dockerDiff(t, e, "lower", changes, diff)
	if lines := strings.Split(strings.TrimSpace(diff), "\n"); !sort.SliceIsSorted(lines, func(i, j int) bool { return lines[i][2:] < lines[j][2:] }) {
		t.Errorf("diff is not sorted by path:\n%s", diff)
	}

	imgID := strings.TrimSpace(e.ok("commit", "-m", "my changes", "--change", "ENV COMMITTED=yes", "--change", `CMD ["cat", "/data/new"]`, "work", "result:v1"))
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(imgID) {
		t.Errorf("commit printed %q, want an image ID", imgID)
	}
	after := e.ok("run", "--rm", "result:v1", "sh", "-c", treeScript)
	if after != before {
		t.Errorf("the committed image's tree differs from the container's:\n--- container\n%s\n--- image\n%s", before, after)
	}
	for _, want := range []string{"./data/redo/c file", "./newdir/deep/n file", "./data/new file"} {
		if !strings.Contains(after, want) {
			t.Errorf("image lacks %s", want)
		}
	}
	for _, gone := range []string{"./data/gone", "./data/old", "./data/redo/a", "./data/redo/b", "./etc/group "} {
		if strings.Contains(after, gone) {
			t.Errorf("image still has %s", gone)
		}
	}
	if got := e.ok("run", "--rm", "result:v1"); got != "new\n" {
		t.Errorf("CMD from --change: %q", got)
	}
	if got := e.ok("run", "--rm", "result:v1", "sh", "-c", "echo $COMMITTED"); got != "yes\n" {
		t.Errorf("ENV from --change: %q", got)
	}

	// The image: one more layer, with docker commit's history entry.
	s, err := store.Open(e.Root)
	if err != nil {
		t.Fatal(err)
	}
	img, rec, err := s.Image("result:v1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID.String() != imgID {
		t.Errorf("image ID %s, commit printed %s", rec.ID, imgID)
	}
	base, _, err := s.Image("lower")
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	bcf, _ := base.ConfigFile()
	if len(cf.RootFS.DiffIDs) != len(bcf.RootFS.DiffIDs)+1 || len(cf.History) != len(bcf.History)+1 {
		t.Errorf("layers %d→%d, history %d→%d: want one more of each", len(bcf.RootFS.DiffIDs), len(cf.RootFS.DiffIDs), len(bcf.History), len(cf.History))
	}
	h := cf.History[len(cf.History)-1]
	if h.Comment != "my changes" || !strings.HasPrefix(h.CreatedBy, "sh -c set -e") || h.EmptyLayer {
		t.Errorf("history entry %+v", h)
	}
	if !slices.Equal(cf.Config.Cmd, []string{"cat", "/data/new"}) || !slices.Contains(cf.Config.Env, "COMMITTED=yes") || cf.Config.Hostname != "" {
		t.Errorf("config %+v", cf.Config)
	}
	e.checkClean(e.containerID("work"))
	e.ok("rm", "work")
	e.checkClean()

	dockerLoad(t, e, "result:v1", before)
}

func sortLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(l)
	return strings.Join(l, "\n")
}

// toDocker saves ref for docker and loads it into dockerd, returning the
// function that removes it there; ok is false (and the check skipped)
// without a dockerd.
func toDocker(t *testing.T, e *env, ref string) (remove func(), ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").Run() != nil {
		t.Log("no dockerd: skipping the docker check")
		return nil, false
	}
	tarball := filepath.Join(t.TempDir(), "img.tar")
	e.ok("save", "--format", "docker", "-o", tarball, ref)
	if out, err := exec.Command("docker", "load", "-i", tarball).CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	return func() { exec.Command("docker", "rmi", "-f", ref).Run() }, true
}

// dockerDiff makes the same changes in a docker container of the same image
// and requires `docker diff` (sorted) to say what `strata diff` said.
func dockerDiff(t *testing.T, e *env, ref, changes, want string) {
	remove, ok := toDocker(t, e, ref)
	if !ok {
		return
	}
	defer remove()
	name := "strata-e2e-diff-" + filepath.Base(e.Root)
	defer exec.Command("docker", "rm", "-f", name).Run()
	if out, err := exec.Command("docker", "run", "--name", name, "--network", "none", ref, "sh", "-c", changes).CombinedOutput(); err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	out, err := exec.Command("docker", "diff", name).Output()
	if err != nil {
		t.Fatalf("docker diff: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	sort.Slice(lines, func(i, j int) bool { return lines[i][2:] < lines[j][2:] })
	if got := strings.Join(lines, "\n") + "\n"; got != want {
		t.Errorf("docker diff (sorted):\n%s\nstrata diff:\n%s", got, want)
	}
}

// dockerLoad saves ref for docker, loads it into dockerd and compares the
// tree docker's container sees with want. Skipped without a dockerd.
func dockerLoad(t *testing.T, e *env, ref, want string) {
	remove, ok := toDocker(t, e, ref)
	if !ok {
		return
	}
	defer remove()
	out, err := exec.Command("docker", "run", "--rm", "--network", "none", ref, "sh", "-c", treeScript).Output()
	if err != nil {
		t.Fatalf("docker run: %v", err)
	}
	if string(out) != want {
		t.Errorf("docker's tree differs:\n--- strata\n%s\n--- docker\n%s", want, out)
	}
}

// TestContainerLimits: run's --memory, --pids-limit and --cpus reach the
// container's cgroups.
func TestContainerLimits(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	cmd, out := e.background("run", "--rm", "--memory", "64m", "--pids-limit", "20", "--cpus", "0.5", "bbase",
		"sh", "-c", "cat /proc/self/cgroup; echo end; exec sleep 1717")
	paths := map[string]string{}
	for {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("reading cgroups: %v", err)
		}
		if line == "end\n" {
			break
		}
		if f := strings.SplitN(strings.TrimSpace(line), ":", 3); len(f) == 3 {
			paths[f[1]] = f[2]
		}
	}
	read := func(ctrl, v1file, v2file string) string {
		file := filepath.Join("/sys/fs/cgroup", ctrl, paths[ctrl], v1file)
		if paths[ctrl] == "" { // the controller is on the unified hierarchy
			file = filepath.Join("/sys/fs/cgroup/unified", paths[""], v2file)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%v", err)
		}
		return strings.TrimSpace(string(b))
	}
	got := []string{read("memory", "memory.limit_in_bytes", "memory.max"), read("pids", "pids.max", "pids.max"),
		read("cpu", "cpu.cfs_quota_us", "cpu.max")}
	if want := []string{"67108864", "20", "50000"}; strings.Join(got, " ") != strings.Join(want, " ") && strings.Join(got, " ") != "67108864 20 50000 100000" {
		t.Errorf("cgroup limits %q, want %q (cgroups %q)", got, want, paths)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := exitCode(t, cmd); code != 143 {
		t.Errorf("exit %d after SIGTERM, want 143", code)
	}
	e.checkClean()
}

// TestContainerTerminal: -t gives the process a terminal of its own, with
// the caller's window size; -i without -t gives it a pipe, never the
// caller's terminal. The caller's terminal is util-linux's script(1).
func TestContainerTerminal(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("no script(1)")
	}
	e := withBase(t)
	inTerminal := func(stdin, cmdline string) string {
		t.Helper()
		cmd := exec.Command("script", "-qec", "stty cols 100 rows 30; "+cmdline, "/dev/null")
		cmd.Env = append(os.Environ(), "STRATA_ROOT="+e.Root)
		// script's input stays open until the command is done: at EOF,
		// script types a NUL into the terminal (docker shows it too).
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		cmd.Stdin = r
		w.WriteString(stdin)
		out, err := cmd.Output()
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v\n%q", cmdline, err, out)
		}
		return string(out)
	}
	got := inTerminal("", strataBin+` run --rm -it bbase sh -c 'test -t 0 && test -t 1 && echo tty; stty size; echo $TERM'`)
	if want := "tty\r\n30 100\r\nxterm\r\n"; got != want {
		t.Errorf("run -it: %q, want %q", got, want)
	}
	// -t without -i: the terminal takes the size of strata's stdout (which,
	// stdin not attached, stays in cooked mode, as with docker: \r\r\n).
	if got := inTerminal("", strataBin+` run --rm -t bbase stty size`); strings.TrimRight(got, "\r\n") != "30 100" {
		t.Errorf("run -t: %q, want %q", got, "30 100")
	}
	got = inTerminal("hello\n", strataBin+` run --rm -i bbase sh -c 'test -t 0 || echo stdin-pipe; test -t 1 || echo stdout-pipe; head -n 1'`)
	if !strings.HasSuffix(got, "stdin-pipe\r\nstdout-pipe\r\nhello\r\n") {
		t.Errorf("run -i in a terminal: %q", got)
	}
	e.checkClean()
}

// TestContainerPrestart: a foreground run's init is started before strata's
// own Go runtime (rootfs/prestart.c) and used when its network mode is the
// run's; when the command line misleads the prestart (a --network in the
// container's command) the run still gets the network it asked for.
func TestContainerPrestart(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	t.Setenv("STRATA_SANDBOX_TRACE", "1")
	ifaces := `tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' '`
	hostIfaces := strings.Join(netIfaces(t), " ") + " "
	for _, tc := range []struct {
		name       string
		args       []string
		want       string
		prestarted bool
	}{
		{"default network", []string{"run", "--rm", "bbase", "sh", "-c", ifaces}, "lo ", true},
		{"network none", []string{"--root", e.Root, "run", "--network=none", "--rm", "bbase", "sh", "-c", ifaces}, "lo ", true},
		{"host network", []string{"run", "--rm", "--network", "host", "bbase", "sh", "-c", ifaces}, hostIfaces, true},
		{"misleading command", []string{"run", "--rm", "bbase", "sh", "-c", ifaces, "--network", "host"}, "lo ", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.args...)
			if r.Code != 0 || r.Stdout != tc.want {
				t.Fatalf("strata %s: exit %d, stdout %q, want %q\n%s", strings.Join(tc.args, " "), r.Code, r.Stdout, tc.want, r.Stderr)
			}
			if got := strings.Contains(r.Stderr, ": prestarted\n"); got != tc.prestarted {
				t.Errorf("prestarted init used: %v, want %v\n%s", got, tc.prestarted, r.Stderr)
			}
		})
	}
	e.checkClean()
}

// TestContainerMountpointsLayer: the mountpoints an image lacks (the busybox
// base has no /proc, /dev, /sys or /etc/hosts...) come from a layer outside
// the container: its writable layer stays empty and /etc keeps the image's
// attributes.
func TestContainerMountpointsLayer(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	// The base's /etc: mode 755, mtime 0 (make-base.sh's tar).
	if got := e.ok("run", "--rm", "bbase", "stat", "-c", "%a %u:%g %Y", "/etc"); got != "755 0:0 0\n" {
		t.Errorf("/etc in the container: %q, want the image's %q", got, "755 0:0 0\n")
	}
	e.ok("run", "--name", "idle", "bbase", "sh", "-c", "test -d /proc/1 && test -c /dev/null && test -s /etc/hosts")
	uppers, err := filepath.Glob(filepath.Join(e.Root, "snapshots", "active", "*", "upper"))
	if err != nil || len(uppers) != 1 {
		t.Fatalf("active snapshots: %v %v, want one", uppers, err)
	}
	if ents, err := os.ReadDir(uppers[0]); err != nil || len(ents) != 0 {
		t.Errorf("writable layer of a container that wrote nothing: %v %v, want empty", ents, err)
	}
	if got := e.ok("diff", "idle"); got != "" {
		t.Errorf("diff: %q, want none", got)
	}
	// A change in /etc copies up the image's /etc, not the mountpoints.
	e.ok("run", "--name", "etc", "bbase", "sh", "-c", "echo x > /etc/motd")
	if got := e.ok("diff", "etc"); got != "C /etc\nA /etc/motd\n" {
		t.Errorf("diff: %q", got)
	}
	e.ok("commit", "etc", "withmotd")
	if got := e.ok("run", "--rm", "withmotd", "sh", "-c", "ls /etc; cat /etc/motd"); got != "group\nhostname\nhosts\nmotd\npasswd\nresolv.conf\nx\n" {
		t.Errorf("committed image: %q", got)
	}
	e.ok("rm", "idle", "etc")
	e.checkClean()
}
