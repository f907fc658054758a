package container

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-dev/strata/rootfs"
	"github.com/strata-dev/strata/store"
)

func newManager(t *testing.T) *Manager {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// put writes a record as create would, without an image or snapshot.
func put(t *testing.T, m *Manager, c *Container) {
	t.Helper()
	h, _ := v1.NewHash("sha256:" + strings.Repeat("1", 64))
	c.Digest, c.ImageID = h, h
	if err := os.Mkdir(m.dir(c.ID), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.save(c, false); err != nil {
		t.Fatal(err)
	}
}

func id(prefix string) string { return prefix + strings.Repeat("0", 64-len(prefix)) }

func TestGet(t *testing.T) {
	m := newManager(t)
	put(t, m, &Container{ID: id("abc1"), Name: "first"})
	put(t, m, &Container{ID: id("abc2"), Name: "second"})
	put(t, m, &Container{ID: id("f00d"), Name: id("abc1")[:12]}) // a name that looks like an ID
	for _, tc := range []struct {
		ref, want, err string
	}{
		{ref: id("abc1"), want: id("abc1")},
		{ref: "second", want: id("abc2")},
		{ref: "abc2", want: id("abc2")},
		{ref: "f0", want: id("f00d")},
		{ref: id("abc1")[:12], want: id("f00d")}, // names win over ID prefixes, as in docker
		{ref: "abc", err: `container "abc": prefix matches several containers`},
		{ref: "nosuch", err: "no such container: nosuch"},
		{ref: "", err: "no such container"},
		{ref: "../../../../../../../../../../../../../../../../../../../../etc/", err: "no such container"}, // 64 bytes
	} {
		c, err := m.Get(tc.ref)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Get(%q) = %v, want error %q", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil || c.ID != tc.want {
			t.Errorf("Get(%q) = %v, %v; want %s", tc.ref, c, err, tc.want)
		}
	}
	if _, err := m.Get("nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("not found error %v is not ErrNotFound", err)
	}
}

func TestReconcileAndReap(t *testing.T) {
	m := newManager(t)
	now := time.Now().UTC()
	running := State{Status: Running, Pid: 1, StartedAt: now}
	recs := []*Container{
		{ID: id("a1"), Name: "rm_dead", Host: HostConfig{AutoRemove: true}, State: running, Created: now.Add(-6 * time.Second)},
		{ID: id("a2"), Name: "rm_alive", Host: HostConfig{AutoRemove: true}, State: running, Created: now.Add(-5 * time.Second)},
		{ID: id("a3"), Name: "create_rm", Host: HostConfig{AutoRemove: true}, State: State{Status: Created}, Created: now.Add(-4 * time.Second)},
		{ID: id("a4"), Name: "run_rm_unstarted", Host: HostConfig{AutoRemove: true}, Transient: true, State: State{Status: Created}, Created: now.Add(-3 * time.Second)},
		{ID: id("a5"), Name: "named_dead", State: running, Created: now.Add(-2 * time.Second)},
		{ID: id("a6"), Name: "named_alive", State: running, Created: now.Add(-1 * time.Second)},
	}
	for _, c := range recs {
		put(t, m, c)
	}
	// A create cut short: a directory without a record.
	if err := os.Mkdir(m.dir(id("a7")), 0o700); err != nil {
		t.Fatal(err)
	}
	// The strata processes of a2 and a6 live: they hold the locks.
	for _, cid := range []string{id("a2"), id("a6")} {
		l, ok, err := m.tryLock(cid)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		defer l.release()
	}

	all, err := m.List(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range all {
		got = append(got, c.Name+":"+c.StatusText(now.Add(2*time.Minute)))
	}
	// named_dead's strata is gone: exited (killed with it) as of this List.
	want := []string{"named_alive:Up 2 minutes", "named_dead:Exited (137) About a minute ago", "create_rm:Created", "rm_alive:Up 2 minutes"}
	if !slices.Equal(got, want) {
		t.Errorf("ps -a = %q, want %q", got, want)
	}
	ents, _ := os.ReadDir(m.root)
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name()[:2])
		}
	}
	if want := []string{"a2", "a3", "a5", "a6"}; !slices.Equal(dirs, want) {
		t.Errorf("containers left %q, want %q", dirs, want)
	}
	running2, err := m.List(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(running2) != 2 || running2[0].Name != "named_alive" || running2[1].Name != "rm_alive" {
		t.Errorf("ps lists %d containers: %v", len(running2), running2)
	}
}

func TestRemoveRefusesRunning(t *testing.T) {
	m := newManager(t)
	put(t, m, &Container{ID: id("b1"), Name: "busy", State: State{Status: Running, Pid: os.Getpid()}})
	l, _, err := m.tryLock(id("b1"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	err = m.Remove(context.Background(), "busy", false)
	if !errors.Is(err, ErrRunning) || !strings.Contains(err.Error(), "cannot remove container busy: container is running: stop it first or use rm -f") {
		t.Errorf("Remove of a running container: %v", err)
	}
	l.release()
	if err := m.Remove(context.Background(), "busy", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.root, id("b1"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record left after rm: %v", err)
	}
}

func TestLockHolder(t *testing.T) {
	m := newManager(t)
	put(t, m, &Container{ID: id("c1"), Name: "held"})
	if pid := lockHolder(m.lockPath(id("c1"))); pid != 0 {
		t.Errorf("free lock: holder %d", pid)
	}
	l, _, err := m.tryLock(id("c1"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	if pid := lockHolder(m.lockPath(id("c1"))); pid != os.Getpid() {
		t.Errorf("held lock: holder %d, want %d", pid, os.Getpid())
	}
}

func TestStreams(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if inStream(r, false) != io.Reader(r) || outStream(w, false) != io.Writer(w) {
		t.Errorf("a pipe is not passed as it is")
	}
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skip(err)
	}
	defer ptmx.Close()
	if _, ok := inStream(ptmx, false).(*os.File); ok {
		t.Errorf("without -t a terminal reaches the sandbox as a file")
	}
	if _, ok := outStream(ptmx, false).(*os.File); ok {
		t.Errorf("without -t a terminal reaches the sandbox as a file")
	}
	if inStream(ptmx, true) != io.Reader(ptmx) {
		t.Errorf("with -t the terminal is not passed as it is")
	}
}

func TestVolatile(t *testing.T) {
	in := []rootfs.Mount{
		{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/l", "upperdir=/u", "workdir=/w"}},
		{Type: "bind", Source: "/x", Options: []string{"ro"}},
	}
	out := volatile(in)
	if want := []string{"lowerdir=/l", "upperdir=/u", "workdir=/w", "volatile"}; !slices.Equal(out[0].Options, want) {
		t.Errorf("overlay options %q, want %q", out[0].Options, want)
	}
	if !slices.Equal(out[1].Options, []string{"ro"}) {
		t.Errorf("bind options %q", out[1].Options)
	}
	if len(in[0].Options) != 3 {
		t.Errorf("the snapshot's own mounts changed: %q", in[0].Options)
	}
}
