package container

import (
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestMerge(t *testing.T) {
	t.Setenv("STRATA_TEST_HOSTVAR", "fromhost")
	img := v1.Config{
		Entrypoint: []string{"/entry"},
		Cmd:        []string{"default", "args"},
		Env:        []string{"PATH=/bin", "A=1"},
		User:       "app",
		WorkingDir: "/srv",
	}
	noEntry := img
	noEntry.Entrypoint = nil
	for _, tc := range []struct {
		name    string
		img     v1.Config
		opts    Options
		argv    []string
		env     []string
		user    string
		workdir string
		err     string
	}{
		{name: "image defaults", img: img, argv: []string{"/entry", "default", "args"}, env: img.Env, user: "app", workdir: "/srv"},
		{name: "args replace CMD", img: img, opts: Options{Cmd: []string{"x", "y"}}, argv: []string{"/entry", "x", "y"}, env: img.Env, user: "app", workdir: "/srv"},
		{name: "no entrypoint", img: noEntry, opts: Options{Cmd: []string{"sh"}}, argv: []string{"sh"}, env: img.Env, user: "app", workdir: "/srv"},
		{name: "entrypoint drops CMD", img: img, opts: Options{Entrypoint: []string{"/other"}}, argv: []string{"/other"}, env: img.Env, user: "app", workdir: "/srv"},
		{name: "entrypoint with args", img: img, opts: Options{Entrypoint: []string{"/other"}, Cmd: []string{"z"}}, argv: []string{"/other", "z"}, env: img.Env, user: "app", workdir: "/srv"},
		{name: "empty entrypoint", img: img, opts: Options{Entrypoint: []string{""}, Cmd: []string{"ls"}}, argv: []string{"ls"}, env: img.Env, user: "app", workdir: "/srv"},
		{name: "nothing to run", img: v1.Config{}, err: "no command specified"},
		{name: "entrypoint reset, no cmd", img: img, opts: Options{Entrypoint: []string{""}}, err: "no command specified"},
		{
			name: "env, user, workdir", img: img,
			opts: Options{Env: []string{"A=2", "B=3", "STRATA_TEST_HOSTVAR", "STRATA_TEST_UNSET_VAR", "PATH=/x"}, User: "0:0", WorkingDir: "/tmp"},
			argv: []string{"/entry", "default", "args"},
			env:  []string{"PATH=/x", "A=2", "B=3", "STRATA_TEST_HOSTVAR=fromhost"}, user: "0:0", workdir: "/tmp",
		},
		{name: "relative workdir", img: img, opts: Options{WorkingDir: "rel"}, err: "needs to be an absolute path"},
		{name: "empty env name", img: img, opts: Options{Env: []string{"=x"}}, err: `invalid environment variable: "=x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, argv, err := merge(tc.img, tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(argv, tc.argv) {
				t.Errorf("argv = %q, want %q", argv, tc.argv)
			}
			if !reflect.DeepEqual(cfg.Env, tc.env) {
				t.Errorf("env = %q, want %q", cfg.Env, tc.env)
			}
			if cfg.User != tc.user || cfg.WorkingDir != tc.workdir {
				t.Errorf("user, workdir = %q, %q; want %q, %q", cfg.User, cfg.WorkingDir, tc.user, tc.workdir)
			}
		})
	}
	// The image's config is never modified.
	if !reflect.DeepEqual(img.Env, []string{"PATH=/bin", "A=1"}) {
		t.Errorf("image env changed: %q", img.Env)
	}
}

func TestParseBinds(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		spec string
		err  string
	}{
		{spec: dir + ":/data"},
		{spec: dir + ":/data:ro"},
		{spec: "rel:/data", err: `host path "rel" is not absolute`},
		{spec: dir + ":data", err: `container path "data" is not absolute`},
		{spec: dir + "/missing:/data", err: "host path " + dir + "/missing does not exist"},
		{spec: dir + ":/", err: "cannot mount over /"},
		{spec: dir + ":/data:xx", err: `unknown option "xx"`},
		{spec: dir, err: "want HOST:CONTAINER"},
	} {
		bs, err := parseBinds([]string{tc.spec})
		if tc.err == "" {
			if err != nil || len(bs) != 1 || bs[0].Source != dir || bs[0].Target != "/data" {
				t.Errorf("%s: %v, %v", tc.spec, bs, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want %q", tc.spec, err, tc.err)
		}
	}
}

func TestFormat(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c := &Container{Path: "sh", Args: []string{"-c", "sleep 1000; echo done"}}
	if got, want := c.Command(true), `"sh -c sleep 1000; e…"`; got != want {
		t.Errorf("Command(true) = %s, want %s", got, want)
	}
	if got, want := c.Command(false), `"sh -c sleep 1000; echo done"`; got != want {
		t.Errorf("Command(false) = %s, want %s", got, want)
	}
	for _, tc := range []struct {
		st   State
		want string
	}{
		{State{Status: Created}, "Created"},
		{State{Status: Running, StartedAt: now.Add(-5 * time.Second)}, "Up 5 seconds"},
		{State{Status: Exited, ExitCode: 3, FinishedAt: now.Add(-3 * time.Minute)}, "Exited (3) 3 minutes ago"},
	} {
		c.State = tc.st
		if got := c.StatusText(now); got != tc.want {
			t.Errorf("StatusText(%v) = %q, want %q", tc.st, got, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	id, err := newID()
	if err != nil || len(id) != 64 || allDigits(id[:12]) {
		t.Fatalf("newID = %q, %v", id, err)
	}
	taken := map[string]bool{}
	for i := 0; i < 200; i++ {
		n, err := randomName(taken)
		if err != nil || taken[n] || !validName.MatchString(n) || !strings.Contains(n, "_") {
			t.Fatalf("randomName = %q, %v (taken %v)", n, err, taken[n])
		}
		taken[n] = true
	}
}
