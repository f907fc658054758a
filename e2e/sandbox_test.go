package e2e

// Tests of the sandbox (rootfs.Run) on its own, through the test-only
// command rootfs/internal/sandboxrun over an unpacked busybox root: no store,
// no snapshots, so a failure here is the sandbox's.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	sbBinOnce sync.Once
	sbBin     string
	sbBinErr  error
)

// sandboxBin builds rootfs/internal/sandboxrun once per test run.
func sandboxBin(t *testing.T) string {
	t.Helper()
	sbBinOnce.Do(func() {
		sbBin = filepath.Join(filepath.Dir(strataBin), "sandboxrun")
		out, err := exec.Command("go", "build", "-o", sbBin, "../rootfs/internal/sandboxrun").CombinedOutput()
		if err != nil {
			sbBinErr = fmt.Errorf("building sandboxrun: %v\n%s", err, out)
		}
	})
	if sbBinErr != nil {
		t.Fatal(sbBinErr)
	}
	return sbBin
}

// sbRoot unpacks the busybox base into a fresh directory.
func sbRoot(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "--no-overwrite-dir", "-xf", baseTar(t), "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("unpacking base: %v: %s", err, out)
	}
	// t.TempDir is 0700: the container's users must be able to reach "/".
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// hostState is what a sandbox must not change on the host.
type hostState struct {
	mounts  map[string]bool // mountinfo lines
	scratch []string
	cgroups []string
}

func captureHost(t *testing.T) hostState {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	hs := hostState{mounts: map[string]bool{}}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		hs.mounts[l] = true
	}
	ents, _ := os.ReadDir("/run/strata-sandbox")
	for _, e := range ents {
		hs.scratch = append(hs.scratch, e.Name())
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/strata/*")
	hs.cgroups = append(hs.cgroups, cgs...)
	cgs, _ = filepath.Glob("/sys/fs/cgroup/strata/*")
	hs.cgroups = append(hs.cgroups, cgs...)
	return hs
}

// checkHost asserts the host is as before: no mount the sandbox could have
// made (other tools on the machine may mount their own meanwhile), an empty
// scratch directory, no cgroup of a sandbox left.
func checkHost(t *testing.T, before hostState) {
	t.Helper()
	after := captureHost(t)
	for l := range after.mounts {
		if before.mounts[l] {
			continue
		}
		f := strings.Fields(l)
		fstype := ""
		for i, x := range f {
			if x == "-" && i+1 < len(f) {
				fstype = f[i+1]
			}
		}
		switch {
		case strings.Contains(l, "/tmp/Test"), strings.Contains(l, "strata-sandbox"),
			fstype == "proc", fstype == "sysfs", fstype == "devpts", fstype == "mqueue":
			t.Errorf("mount left on the host: %s", l)
		}
	}
	for l := range before.mounts {
		if !after.mounts[l] && (strings.Contains(l, " / / ") || strings.Contains(l, " /proc ") || strings.Contains(l, " /sys ")) {
			t.Errorf("host mount gone: %s", l)
		}
	}
	if len(after.scratch) != 0 {
		t.Errorf("/run/strata-sandbox holds %q", after.scratch)
	}
	var dirs []string
	for _, d := range after.cgroups {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) != 0 {
		t.Errorf("cgroups left: %q", dirs)
	}
}

// sbRun runs sandboxrun with args and returns stdout, stderr and exit code.
func sbRun(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(sandboxBin(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// sbOK runs a shell script in a sandbox over root and requires exit 0.
func sbOK(t *testing.T, root string, flags []string, script string) string {
	t.Helper()
	args := append(append([]string{"-rootfs", root}, flags...), "--", "sh", "-c", script)
	out, errs, code := sbRun(t, "", args...)
	if code != 0 {
		t.Fatalf("sandboxrun %q: exit %d\nstdout: %s\nstderr: %s", args, code, out, errs)
	}
	return out
}

// TestSandboxIsolation: the process sees its own PID namespace (init is PID
// 1, no host process), host name, network (lo only), filesystem, docker's
// capabilities, and the /proc and /sys paths docker masks, masked.
func TestSandboxIsolation(t *testing.T) {
	root := sbRoot(t)
	before := captureHost(t)
	tests := []struct {
		name, script, want string
		flags              []string
	}{
		{"pid1", `cat /proc/1/comm; tr '\0' ' ' < /proc/1/cmdline; echo; echo $$`, "strata-init\nstrata-init \n", nil},
		{"processes", `for p in /proc/[0-9]*; do read -r c < $p/comm; echo $c; done > /tmp/ps; sort /tmp/ps`, "sh\nstrata-init\n", nil},
		{"hostname", `hostname; cat /etc/hostname; echo $HOSTNAME`, "box1\nbox1\nbox1\n", []string{"-hostname", "box1"}},
		{"net none", `tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; cat /sys/class/net/lo/operstate`, "lo\nunknown\n", nil},
		{"caps root", `grep ^Cap /proc/self/status`, "CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n", nil},
		// no_new_privs is off by default, as in docker and BuildKit (an
		// image's sudo works for its users); a container can ask for it
		{"caps user", `grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status`, "CapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\n", []string{"-u", "app"}},
		{"no new privs", `grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status`, "NoNewPrivs:\t1\nSeccomp:\t2\n", []string{"-u", "app", "-no-new-privs"}},
		{"kcore", `head -c 1 /proc/kcore 2>/dev/null | wc -c; stat -c '%F %t:%T' /proc/keys /proc/timer_list; ls -A /proc/acpi | wc -l; ls -A /sys/firmware | wc -l`, "0\ncharacter special file 1:3\ncharacter special file 1:3\n0\n0\n", nil},
		{"readonly proc", `for f in /proc/sys/kernel/hostname /proc/sys/kernel/domainname; do echo x 2>/dev/null > $f && echo writable $f; done; grep -E ' /proc/(sys|bus|fs|irq) ' /proc/self/mountinfo | cut -d' ' -f5,6 | cut -d, -f1`, "/proc/bus ro\n/proc/fs ro\n/proc/irq ro\n/proc/sys ro\n", nil},
		{"readonly sys", `touch /sys/kernel/x 2>&1 | grep -c Read-only; cut -d' ' -f5,6 /proc/self/mountinfo | grep '^/sys ' | cut -d' ' -f2 | cut -d, -f1`, "1\nro\n", nil},
		{"filesystem", `ls /; ls /work 2>&1 || true`, "bin\ndev\netc\nproc\nroot\nsys\ntmp\nls: /work: No such file or directory\n", nil},
		{"dev", `ls -l /dev | awk 'NR>1 {print $1, $NF}'; grep ' /dev/pts ' /proc/self/mountinfo | grep -c ptmxmode=666`,
			"lrwxrwxrwx /proc/self/fd\ncrw-rw-rw- full\ndrwxrwxrwt mqueue\ncrw-rw-rw- null\nlrwxrwxrwx pts/ptmx\ndrwxr-xr-x pts\ncrw-rw-rw- random\ndrwxrwxrwt shm\nlrwxrwxrwx /proc/self/fd/2\nlrwxrwxrwx /proc/self/fd/0\nlrwxrwxrwx /proc/self/fd/1\ncrw-rw-rw- tty\ncrw-rw-rw- urandom\ncrw-rw-rw- zero\n1\n", nil},
		{"env", `env | sort`, "HOME=/root\nHOSTNAME=h\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nPWD=/\nSHLVL=1\n", []string{"-hostname", "h"}},
		{"seccomp", `grep ^Seccomp: /proc/self/status; unshare -U true 2>/dev/null || echo no userns`, "Seccomp:\t2\nno userns\n", nil},
		{"init unreachable", `for f in exe cwd root; do readlink /proc/1/$f >/dev/null 2>&1 && echo $f readable; done; (echo 1 x > /proc/1/fd/4) 2>/dev/null && echo status writable; cat /proc/1/environ 2>/dev/null; echo done`, "done\n", nil},
		{"etc files", `cat /etc/hosts | head -1; echo 'nameserver 9.9.9.9' > /etc/resolv.conf && cat /etc/resolv.conf`, "127.0.0.1\tlocalhost\nnameserver 9.9.9.9\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sbOK(t, root, tt.flags, tt.script)
			if tt.name == "pid1" {
				// The shell's own PID is small and not 1.
				lines := strings.Split(got, "\n")
				if len(lines) < 3 || lines[2] == "1" || len(lines[2]) > 3 {
					t.Errorf("shell PID %q", lines[2])
				}
				got = strings.Join(lines[:2], "\n") + "\n"
			}
			if got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
	// The image's files are untouched by the sandbox's mounts.
	if b, err := os.ReadFile(filepath.Join(root, "etc", "resolv.conf")); err != nil || len(b) != 0 {
		t.Errorf("image /etc/resolv.conf = %q, %v; want the empty mount point", b, err)
	}
	checkHost(t, before)
}

// TestSandboxHostNetwork: --network host shares the host's interfaces and
// shows the host's /sys read-only, with everything mounted below it (the
// host's cgroup hierarchies were left writable once).
func TestSandboxHostNetwork(t *testing.T) {
	root := sbRoot(t)
	host, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range strings.Split(string(host), "\n")[2:] {
		if name, _, ok := strings.Cut(l, ":"); ok {
			want = append(want, strings.TrimSpace(name))
		}
	}
	got := sbOK(t, root, []string{"-network", "host"}, `tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; touch /sys/x 2>/dev/null || echo ro`)
	if got != strings.Join(want, "\n")+"\nro\n" {
		t.Errorf("got %q, want interfaces %q and ro", got, want)
	}
	hostSys := 0
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], "/sys/") {
				hostSys++
			}
		}
	}
	if hostSys == 0 {
		t.Fatal("nothing is mounted below the host's /sys: the test shows nothing")
	}
	got = sbOK(t, root, []string{"-network", "host"}, `awk '$5 ~ "^/sys/" { n++; if ($6 !~ /^ro(,|$)/) print "writable", $5 } END { print n+0 }' /proc/self/mountinfo`)
	// the host's mounts, and the masks (/sys/firmware...) on top of them
	if n, err := strconv.Atoi(strings.TrimSpace(got)); err != nil || n < hostSys {
		t.Errorf("mounts below /sys: got %q, want the host's %d or more, all read-only", got, hostSys)
	}
}

// TestSandboxExitCodes: the process's status comes back; commands that
// cannot run give docker's codes and one line on stderr.
func TestSandboxExitCodes(t *testing.T) {
	root := sbRoot(t)
	before := captureHost(t)
	tests := []struct {
		flags, cmd []string
		code       int
		wantErr    string
	}{
		{nil, []string{"true"}, 0, ""},
		{nil, []string{"sh", "-c", "exit 3"}, 3, ""},
		{nil, []string{"sh", "-c", "kill -9 $$"}, 137, ""},
		{nil, []string{"sh", "-c", "kill -TERM $$"}, 143, ""},
		{nil, []string{"nosuchcmd"}, 127, `sandboxrun: exec: "nosuchcmd": executable file not found in $PATH`},
		{nil, []string{"/bin/nosuch"}, 127, `sandboxrun: exec: "/bin/nosuch": stat /bin/nosuch: no such file or directory`},
		{nil, []string{"/etc/passwd"}, 126, `sandboxrun: exec: "/etc/passwd": permission denied`},
		{nil, []string{"/tmp"}, 126, `sandboxrun: exec: "/tmp": permission denied`},
		{[]string{"-u", "nosuch"}, []string{"true"}, 125, "sandboxrun: unable to find user nosuch: no matching entries in passwd file"},
		{[]string{"-u", "app:nogroup"}, []string{"true"}, 125, "sandboxrun: unable to find group nogroup: no matching entries in group file"},
		{[]string{"-w", "/etc/passwd"}, []string{"true"}, 125, "sandboxrun: working directory /etc/passwd is not a directory"},
		{[]string{"-w", "rel"}, []string{"true"}, 125, `sandboxrun: the working directory "rel" is invalid, it needs to be an absolute path`},
		{[]string{"-v", "/nonexistent/x:/x"}, []string{"true"}, 125, "sandboxrun: bind mount source path does not exist: /nonexistent/x"},
		{[]string{"-network", "bridge"}, []string{"true"}, 125, `sandboxrun: invalid network mode "bridge": want "none" or "host"`},
	}
	for _, tt := range tests {
		args := append(append(append([]string{"-rootfs", root}, tt.flags...), "--"), tt.cmd...)
		_, stderr, code := sbRun(t, "", args...)
		if code != tt.code || strings.TrimRight(stderr, "\n") != tt.wantErr {
			t.Errorf("%q %q: exit %d, stderr %q; want %d, %q", tt.flags, tt.cmd, code, stderr, tt.code, tt.wantErr)
		}
	}
	checkHost(t, before)
}

// TestSandboxUser: USER resolves in the image's passwd and group files,
// HOME follows, WORKDIR is created root-owned when missing.
func TestSandboxUser(t *testing.T) {
	root := sbRoot(t)
	if err := os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\nnobody:x:65534:\napp:x:1000:\nwheel:x:10:app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		flags []string
		want  string
	}{
		{nil, "uid=0(root) gid=0(root) groups=0(root) /root /\n"},
		{[]string{"-u", "app"}, "uid=1000(app) gid=1000(app) groups=10(wheel),1000(app) /home/app /\n"},
		{[]string{"-u", "1000:65534"}, "uid=1000(app) gid=65534(nobody) groups=65534(nobody) /home/app /\n"},
		{[]string{"-u", "4242"}, "uid=4242 gid=0(root) groups=0(root) / /\n"},
		{[]string{"-u", "app", "-e", "HOME=/h", "-w", "/new/work"}, "uid=1000(app) gid=1000(app) groups=10(wheel),1000(app) /h /new/work\n"},
	}
	for _, tt := range tests {
		got := sbOK(t, root, tt.flags, `echo "$(id) $HOME $(pwd)"`)
		if got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.flags, got, tt.want)
		}
	}
	fi, err := os.Stat(filepath.Join(root, "new", "work"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode() != os.ModeDir|0o755 || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("created working directory: %v %d:%d, want drwxr-xr-x 0:0", fi.Mode(), st.Uid, st.Gid)
	}
}

// TestSandboxMounts: binds (read-write and read-only, directories and
// files), tmpfs mounts and a read-only root.
func TestSandboxMounts(t *testing.T) {
	root := sbRoot(t)
	before := captureHost(t)
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "in"), []byte("from host\n"), 0o644)
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("s3cr3t\n"), 0o600)
	got := sbOK(t, root, []string{"-v", host + ":/data", "-v", host + ":/ro:ro", "-v", secret + ":/run/secrets/s:ro", "-tmpfs", "/scratch:size=1m,mode=700"}, `
cat /data/in; echo out > /data/out
echo x > /ro/x 2>/dev/null || echo ro refused
cat /run/secrets/s
stat -c '%a' /scratch; grep ' /scratch ' /proc/self/mountinfo | grep -o 'size=1024k'
`)
	want := "from host\nro refused\ns3cr3t\n700\nsize=1024k\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(host, "out")); string(b) != "out\n" {
		t.Errorf("write through the bind: %q", b)
	}
	// The mount points were made in the root (bind targets are the caller's).
	for _, p := range []string{"data", "ro", "scratch", "run/secrets/s"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("mount point %s: %v", p, err)
		}
	}
	// Discarded writes: visible inside, never on the host.
	disc := t.TempDir()
	os.Chmod(disc, 0o750)
	os.Chown(disc, 1000, 1000)
	os.WriteFile(filepath.Join(disc, "keep"), []byte("orig\n"), 0o644)
	got = sbOK(t, root, []string{"-discard", disc + ":/ctx", "-discard", filepath.Join(disc, "keep") + ":/f"}, `
stat -c '%a %u:%g' /ctx; echo new > /ctx/new; echo changed > /ctx/keep; rm -f /ctx/keep; cat /ctx/new; ls /ctx
echo more >> /f; cat /f`)
	if want := "750 1000:1000\nnew\nnew\norig\nmore\n"; got != want {
		t.Errorf("discard binds: got %q, want %q", got, want)
	}
	if ents, _ := os.ReadDir(disc); len(ents) != 1 || ents[0].Name() != "keep" {
		t.Errorf("discard bind wrote to the host: %v", ents)
	}
	if b, _ := os.ReadFile(filepath.Join(disc, "keep")); string(b) != "orig\n" {
		t.Errorf("discard bind changed the host's file: %q", b)
	}
	got = sbOK(t, root, []string{"-read-only", "-tmpfs", "/tmp"}, `touch /x 2>/dev/null || echo root ro; touch /tmp/x && echo tmp rw; echo x > /etc/hosts && echo hosts rw`)
	if got != "root ro\ntmp rw\nhosts rw\n" {
		t.Errorf("read-only root: got %q", got)
	}
	checkHost(t, before)
}

// TestSandboxSignals: signals to the caller reach the process through init;
// its status comes back.
func TestSandboxSignals(t *testing.T) {
	root := sbRoot(t)
	before := captureHost(t)
	for _, tc := range []struct {
		sig    syscall.Signal
		script string
		code   int
		out    string
	}{
		{syscall.SIGTERM, `trap 'echo got TERM; exit 42' TERM; echo ready; sleep 1000 & wait`, 42, "got TERM\n"},
		{syscall.SIGINT, `trap 'echo got INT; exit 43' INT; echo ready; sleep 1000 & wait`, 43, "got INT\n"},
		{syscall.SIGHUP, `trap 'echo got HUP; exit 44' HUP; echo ready; sleep 1000 & wait`, 44, "got HUP\n"},
		{syscall.SIGUSR1, `trap 'echo got USR1; exit 45' USR1; echo ready; sleep 1000 & wait`, 45, "got USR1\n"},
		{syscall.SIGTERM, `echo ready; exec sleep 1000`, 143, ""},
	} {
		cmd := exec.Command(sandboxBin(t), "-rootfs", root, "--", "sh", "-c", tc.script)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(stdout)
		if line, err := r.ReadString('\n'); line != "ready\n" {
			cmd.Process.Kill()
			t.Fatalf("%q: first line %q, %v", tc.script, line, err)
		}
		cmd.Process.Signal(tc.sig)
		rest, _ := io.ReadAll(r)
		err = cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tc.code || string(rest) != tc.out {
			t.Errorf("%v to %q: exit %d, output %q; want %d, %q", tc.sig, tc.script, code, rest, tc.code, tc.out)
		}
	}
	checkHost(t, before)
}

// TestSandboxReaping: init reaps orphans (no zombies), and the sandbox ends
// with its process even when orphans still run.
func TestSandboxReaping(t *testing.T) {
	root := sbRoot(t)
	got := sbOK(t, root, nil, `sh -c 'sleep 1 & exec sleep 2'
(sleep 0 &)
for i in $(seq 100); do
  z=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null)
  [ -z "$z" ] && break
  usleep 20000
done
echo "zombies=[$z]"`)
	if got != "zombies=[]\n" {
		t.Errorf("got %q, want no zombies", got)
	}
	// An orphan still running when the process exits dies with the sandbox.
	start := time.Now()
	got = sbOK(t, root, nil, `sleep 1000 & echo started`)
	if got != "started\n" || time.Since(start) > 30*time.Second {
		t.Errorf("got %q after %v", got, time.Since(start))
	}
	for _, p := range sbSleepers() {
		t.Errorf("orphan sleep 1000 survived its sandbox: pid %s", p)
	}
}

// TestSandboxKilled: SIGKILL of the caller takes the sandbox with it.
func TestSandboxKilled(t *testing.T) {
	root := sbRoot(t)
	before := captureHost(t)
	cmd := exec.Command(sandboxBin(t), "-rootfs", root, "--", "sh", "-c", "echo ready; exec sleep 1000")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("first line %q", line)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for len(sbSleepers()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sandbox processes survived SIGKILL of their caller: %v", sbSleepers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkHost(t, before)
}

// TestSandboxCgroups: --memory, --pids-limit and --cpus land in the
// sandbox's own cgroup, which is gone afterwards.
func TestSandboxCgroups(t *testing.T) {
	root := sbRoot(t)
	before := captureHost(t)
	cmd := exec.Command(sandboxBin(t), "-i", "-memory", "67108864", "-pids-limit", "20", "-cpus", "0.5",
		"-rootfs", root, "--", "sh", "-c", `cat /proc/self/cgroup; echo end; read x; i=0; while [ $i -lt 30 ]; do sleep 1 & i=$((i+1)); done 2>&1 | grep -c 'fork'`)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	paths := map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading cgroups: %v", err)
		}
		if line == "end\n" {
			break
		}
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) == 3 {
			paths[f[1]] = f[2]
		}
	}
	read := func(ctrl, file string) string {
		dir := filepath.Join("/sys/fs/cgroup", ctrl, paths[ctrl])
		if paths[ctrl] == "" { // the controller is on the unified hierarchy
			dir = filepath.Join("/sys/fs/cgroup/unified", paths[""])
		}
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Errorf("%v", err)
		}
		return strings.TrimSpace(string(b))
	}
	got := []string{read("memory", "memory.limit_in_bytes"), read("pids", "pids.max"), read("cpu", "cpu.cfs_quota_us"), read("cpu", "cpu.cfs_period_us")}
	want := []string{"67108864", "20", "50000", "100000"}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err == nil {
		// As much swap as memory, as docker without --memory-swap.
		got, want = append(got, read("memory", "memory.memsw.limit_in_bytes")), append(want, "134217728")
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("cgroup limits %q, want %q (cgroups %q)", got, want, paths)
	}
	stdin.Write([]byte("go\n"))
	stdin.Close()
	rest, _ := io.ReadAll(r)
	if err := cmd.Wait(); err != nil {
		t.Errorf("sandbox: %v", err)
	}
	// With at most 20 tasks, some of the 30 background sleeps cannot fork.
	if n := strings.TrimSpace(string(rest)); n == "0" || n == "" {
		t.Errorf("pids limit not enforced: %q fork failures", n)
	}
	// The container sees its own cgroups, read-only, as docker shows them.
	if _, err := os.Stat("/sys/fs/cgroup/memory/cgroup.procs"); err == nil {
		got := sbOK(t, root, []string{"-memory", "67108864", "-pids-limit", "20"}, `ls /sys/fs/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; echo 1 2>/dev/null > /sys/fs/cgroup/pids/pids.max || echo ro`)
		if got != "memory\npids\n67108864\n20\nro\n" {
			t.Errorf("cgroups inside: %q", got)
		}
	}
	// Over its memory limit, the process is OOM-killed: 128+SIGKILL.
	if _, stderr, code := sbRun(t, "", "-memory", "16777216", "-rootfs", root, "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"); code != 137 {
		t.Errorf("64M buffer under a 16M limit: exit %d (%s), want 137", code, stderr)
	}
	checkHost(t, before)
}

// TestSandboxTTY: -t gives the process a real terminal: the window size of
// the caller's, and job control (Ctrl-Z stops the foreground job).
func TestSandboxTTY(t *testing.T) {
	root := sbRoot(t)
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed")
	}
	sock := filepath.Join(t.TempDir(), "tmux.sock")
	tmux := func(args ...string) string {
		out, err := exec.Command("tmux", append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %q: %v: %s", args, err, out)
		}
		return string(out)
	}
	// tmux itself needs a sane machine (it fails when /dev/null is not the
	// device): that is no failure of the sandbox.
	if out, err := exec.Command("tmux", "-S", sock, "new-session", "-d", "-x", "91", "-y", "33",
		sandboxBin(t)+" -t -rootfs "+root+" -- sh; echo sandbox-exit=$?; sleep 1000").CombinedOutput(); err != nil {
		t.Skipf("tmux cannot start a session here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("tmux", "-S", sock, "kill-server").Run() })
	// waitFor polls the pane until it shows want (bounded: a hung terminal
	// fails the test rather than the run).
	waitFor := func(want string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			pane := tmux("capture-pane", "-p")
			if strings.Contains(pane, want) {
				return pane
			}
			if time.Now().After(deadline) {
				t.Fatalf("terminal never showed %q:\n%s", want, pane)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The terminal lives in the container's devpts, as /dev/console too.
	tmux("send-keys", "stty size; echo tty=$(tty); ls -l /dev/console | cut -c1-10; echo TERM=$TERM", "Enter")
	pane := waitFor("TERM=xterm")
	for _, want := range []string{"\n33 91\n", "\ntty=/dev/pts/0\n", "\ncrw--w----\n"} {
		if !strings.Contains(pane, want) {
			t.Errorf("terminal does not show %q:\n%s", want, pane)
		}
	}
	tmux("send-keys", "sleep 1000", "Enter")
	// Ctrl-Z once sleep is the terminal's foreground process group.
	deadline := time.Now().Add(10 * time.Second)
	for !foregroundSleeper(t) {
		if time.Now().After(deadline) {
			t.Fatal("sleep 1000 never became the foreground job")
		}
		time.Sleep(10 * time.Millisecond)
	}
	tmux("send-keys", "C-z")
	waitFor("Stopped")
	tmux("send-keys", "kill -9 %1; wait; echo killed-job", "Enter")
	waitFor("killed-job")
	tmux("resize-window", "-x", "70", "-y", "20")
	tmux("send-keys", "clear; stty size", "Enter")
	waitFor("20 70")
	tmux("send-keys", "exit 5", "Enter")
	waitFor("sandbox-exit=5")
}

// foregroundSleeper reports whether a "sleep 1000" process is the
// foreground process group of its terminal (fields pgrp and tpgid of
// /proc/PID/stat).
func foregroundSleeper(t *testing.T) bool {
	for _, pid := range sbSleepers() {
		b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// f[0] state, f[1] ppid, f[2] pgrp, f[3] session, f[4] tty, f[5] tpgid
		if len(f) > 5 && f[2] == f[5] {
			return true
		}
	}
	return false
}

// TestSandboxNoLeakedFDs: descriptors the caller inherited without
// close-on-exec do not reach the container; only its stdio does.
func TestSandboxNoLeakedFDs(t *testing.T) {
	root := sbRoot(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// ls lists its own descriptors: 0-2 and 3, its handle on the directory.
	cmd := exec.Command(sandboxBin(t), "-rootfs", root, "--", "ls", "/proc/self/fd")
	cmd.ExtraFiles = make([]*os.File, 20)
	cmd.ExtraFiles[17], cmd.ExtraFiles[18] = r, w // fds 20 and 21 of sandboxrun, inheritable
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "0\n1\n2\n3\n" {
		t.Errorf("container's descriptors: %q, want 0 1 2 3", out)
	}
}

// TestSandboxHostileImage: an image's odd files fail cleanly or stay
// inside its root; nothing reaches the host.
func TestSandboxHostileImage(t *testing.T) {
	before := captureHost(t)
	tests := []struct {
		name    string
		prepare func(root string) error
		script  string
		code    int
		stdout  string
		stderr  string
	}{
		{"fifo group", func(root string) error {
			os.Remove(filepath.Join(root, "etc", "group"))
			return syscall.Mkfifo(filepath.Join(root, "etc", "group"), 0o644)
		}, "true", 125, "", "sandboxrun: reading /etc/group: not a regular file\n"},
		{"proc is a symlink", func(root string) error {
			return os.Symlink("/etc", filepath.Join(root, "proc"))
		}, "true", 125, "", "sandboxrun: sandbox: proc is not a directory in the image\n"},
		{"hosts escapes", func(root string) error {
			return os.Symlink("../../../../../../host-hosts", filepath.Join(root, "etc", "hosts"))
		}, "head -1 /etc/hosts; ls /host-hosts", 0, "127.0.0.1\tlocalhost\n/host-hosts\n", ""},
	}
	for _, tt := range tests {
		root := sbRoot(t)
		if err := tt.prepare(root); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := sbRun(t, "", "-rootfs", root, "--", "sh", "-c", tt.script)
		if code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d, %q, %q", tt.name, code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
		}
	}
	if _, err := os.Lstat("/host-hosts"); err == nil {
		t.Errorf("/host-hosts created on the host")
	}
	checkHost(t, before)
}

// sbSleepers lists the host processes running "sleep 1000" (the tests'
// long-running container processes).
func sbSleepers() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err == nil && string(b) == "sleep\x001000\x00" {
			out = append(out, ent.Name())
		}
	}
	return out
}
