package e2e

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bldFile is one expected entry of a built image's flattened filesystem.
type bldFile struct {
	Path     string
	Type     byte // tar.TypeReg, TypeDir, TypeSymlink
	Mode     int64
	UID, GID int
	Content  string // regular files
	Link     string
	Absent   bool
}

func reg(p string, mode int64, content string) bldFile {
	return bldFile{Path: p, Type: tar.TypeReg, Mode: mode, Content: content}
}
func dir(p string, mode int64) bldFile { return bldFile{Path: p, Type: tar.TypeDir, Mode: mode} }
func absent(p string) bldFile          { return bldFile{Path: p, Absent: true} }

// bldConfig is the part of an image config the tests compare.
type bldConfig struct {
	Author string `json:"author"`
	Config struct {
		User         string
		ExposedPorts map[string]struct{}
		Env          []string
		Entrypoint   []string
		Cmd          []string
		Volumes      map[string]struct{}
		WorkingDir   string
		Labels       map[string]string
		StopSignal   string
		Shell        []string
		OnBuild      []string
		Healthcheck  *struct {
			Test     []string
			Interval int64
			Retries  int
		}
	} `json:"config"`
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		CreatedBy  string `json:"created_by"`
		Comment    string `json:"comment"`
		EmptyLayer bool   `json:"empty_layer"`
	} `json:"history"`
}

// bldContext writes files (name → content; a name ending in "/" is a
// directory; "->target" content makes a symlink) into a new directory.
func bldContext(t *testing.T, files map[string]string) string {
	t.Helper()
	d := t.TempDir()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(d, n)
		if strings.HasSuffix(n, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		c := files[n]
		if strings.HasPrefix(c, "->") {
			if err := os.Symlink(strings.TrimPrefix(c, "->"), p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// bldBuild builds ctx as tag and returns the flattened filesystem and the
// image config.
func bldBuild(t *testing.T, e *env, ctx, tag string, extra ...string) (map[string]bldFile, bldConfig) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "fs.tar")
	iid := filepath.Join(t.TempDir(), "iid")
	args := append([]string{"build", "--progress", "plain", "-t", tag, "--iidfile", iid, "--output", "type=tar,dest=" + out}, extra...)
	args = append(args, ctx)
	if stdout := e.ok(args...); stdout != "" {
		t.Errorf("build printed on stdout (progress and pulls go to stderr): %q", stdout)
	}
	return bldTree(t, out), bldReadConfig(t, e, iid)
}

func bldReadConfig(t *testing.T, e *env, iidfile string) bldConfig {
	t.Helper()
	id, err := os.ReadFile(iidfile)
	if err != nil {
		t.Fatal(err)
	}
	hex := strings.TrimPrefix(strings.TrimSpace(string(id)), "sha256:")
	raw, err := os.ReadFile(filepath.Join(e.Root, "blobs", "sha256", hex))
	if err != nil {
		t.Fatalf("reading config %s: %v", id, err)
	}
	var c bldConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func bldTree(t *testing.T, tarPath string) map[string]bldFile {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bldFile{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.Trim(filepath.Clean("/"+h.Name), "/")
		e := bldFile{Path: p, Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid, Link: h.Linkname}
		if e.Type == tar.TypeRegA {
			e.Type = tar.TypeReg
		}
		if e.Type == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			e.Content = string(b)
		}
		out[p] = e
	}
	return out
}

func bldCheckTree(t *testing.T, tree map[string]bldFile, want []bldFile) {
	t.Helper()
	for _, w := range want {
		got, ok := tree[w.Path]
		if w.Absent {
			if ok {
				t.Errorf("%s: present, want absent", w.Path)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: missing", w.Path)
			continue
		}
		if w.Type == 0 {
			w.Type = tar.TypeReg
		}
		got.Path = w.Path
		if w.Type != tar.TypeReg {
			got.Content = ""
		}
		if got != w {
			t.Errorf("%s:\n got  %+v\n want %+v", w.Path, got, w)
		}
	}
}

func TestBuildCopyRules(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	cases := []struct {
		name  string
		df    string
		files map[string]string
		args  []string
		want  []bldFile
	}{
		{
			name:  "file into dir with trailing slash, dir contents, multiple sources",
			df:    "FROM bbase\nCOPY a.txt /dst/\nCOPY d /dcont\nCOPY a.txt b.txt /multi/\nCOPY a.txt /renamed\n",
			files: map[string]string{"a.txt": "A", "b.txt": "B", "d/x": "X", "d/sub/y": "Y"},
			want: []bldFile{
				reg("/dst/a.txt", 0o644, "A"), dir("/dst", 0o755),
				reg("/dcont/x", 0o644, "X"), reg("/dcont/sub/y", 0o644, "Y"), absent("/dcont/d"),
				reg("/multi/a.txt", 0o644, "A"), reg("/multi/b.txt", 0o644, "B"),
				reg("/renamed", 0o644, "A"),
			},
		},
		{
			name:  "globs, relative to WORKDIR, symlinks kept",
			df:    "FROM bbase\nWORKDIR /w\nCOPY *.txt sub/\nCOPY l ./\n",
			files: map[string]string{"a.txt": "A", "b.txt": "B", "c.md": "C", "l/link": "->a.txt"},
			want: []bldFile{
				reg("/w/sub/a.txt", 0o644, "A"), reg("/w/sub/b.txt", 0o644, "B"), absent("/w/sub/c.md"),
				{Path: "/w/link", Type: tar.TypeSymlink, Mode: 0o777, Link: "a.txt"},
			},
		},
		{
			name:  "chown by name and id, chmod",
			df:    "FROM bbase\nCOPY --chown=app a.txt /o/byname\nCOPY --chown=7:8 a.txt /o/byid\nCOPY --chmod=0751 a.txt /o/mode\nCOPY --chown=app:nobody a.txt /o/group\n",
			files: map[string]string{"a.txt": "A"},
			want: []bldFile{
				{Path: "/o/byname", Type: tar.TypeReg, Mode: 0o644, UID: 1000, GID: 1000, Content: "A"},
				{Path: "/o/byid", Type: tar.TypeReg, Mode: 0o644, UID: 7, GID: 8, Content: "A"},
				reg("/o/mode", 0o751, "A"),
				{Path: "/o/group", Type: tar.TypeReg, Mode: 0o644, UID: 1000, GID: 65534, Content: "A"},
				{Path: "/o", Type: tar.TypeDir, Mode: 0o755, UID: 1000, GID: 1000},
			},
		},
		{
			name:  "exclude, link, parents, heredoc",
			df:    "FROM bbase\nCOPY --exclude=*.log d /ex/\nCOPY --link a.txt /linked/\nCOPY --parents p/q/r.txt /par/\nCOPY <<EOF /here.txt\nhello $X\nEOF\n",
			files: map[string]string{"d/keep": "K", "d/drop.log": "L", "a.txt": "A", "p/q/r.txt": "R"},
			want: []bldFile{
				reg("/ex/keep", 0o644, "K"), absent("/ex/drop.log"), reg("/linked/a.txt", 0o644, "A"),
				reg("/par/p/q/r.txt", 0o644, "R"), reg("/here.txt", 0o644, "hello \n"),
			},
		},
		{
			name:  "dockerignore with exceptions and **",
			df:    "FROM bbase\nCOPY . /ctx/\n",
			files: map[string]string{".dockerignore": "**/*.tmp\nsecret*\n!secret-ok\n", "a.txt": "A", "x/y.tmp": "T", "secret1": "S", "secret-ok": "O"},
			want: []bldFile{
				reg("/ctx/a.txt", 0o644, "A"), absent("/ctx/x/y.tmp"), absent("/ctx/secret1"), reg("/ctx/secret-ok", 0o644, "O"),
			},
		},
		{
			name:  "copy from stage by name and index, from image",
			df:    "FROM bbase AS one\nRUN mkdir /out && echo 1 > /out/f && chown 1000:1000 /out/f\nFROM scratch\nCOPY --from=one /out/f /f1\nCOPY --from=0 /out /o\nCOPY --from=bbase /etc/group /g\n",
			files: map[string]string{},
			want: []bldFile{
				{Path: "/f1", Type: tar.TypeReg, Mode: 0o644, UID: 1000, GID: 1000, Content: "1\n"},
				{Path: "/o/f", Type: tar.TypeReg, Mode: 0o644, UID: 1000, GID: 1000, Content: "1\n"},
				reg("/g", 0o644, "root:x:0:\nnobody:x:65534:\napp:x:1000:\n"),
				absent("/bin/sh"),
			},
		},
		{
			name:  "ADD extracts local archives by content",
			df:    "FROM bbase\nADD arch.bin /x/\n",
			files: map[string]string{},
			want:  []bldFile{reg("/x/inner/file", 0o600, "inside"), absent("/x/arch.bin")},
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &env{t: t, Root: e.Root}
			ctx := bldContext(t, c.files)
			if strings.Contains(c.df, "arch.bin") {
				writeGzipTar(t, filepath.Join(ctx, "arch.bin"), "inner/file", "inside")
			}
			if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(c.df), 0o644); err != nil {
				t.Fatal(err)
			}
			tree, _ := bldBuild(t, e, ctx, "copy"+string(rune('a'+i)), c.args...)
			bldCheckTree(t, tree, c.want)
		})
	}
}

func writeGzipTar(t *testing.T, p, name, content string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: filepath.Dir(name) + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(content))})
	tw.Write([]byte(content))
	tw.Close()
	zw.Close()
}

func TestBuildConfig(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	df := `# syntax=docker/dockerfile:1
ARG BASE=bbase
ARG UNUSED_GLOBAL=1
FROM $BASE AS base
MAINTAINER someone
ENV A=1 B="two words"
ENV C=${A}x
WORKDIR rel
WORKDIR sub
USER app
EXPOSE 80 53/udp
VOLUME /data
LABEL l1=v1 "l 2"=v2
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-ec"]
HEALTHCHECK --interval=5s --retries=2 CMD true
ENTRYPOINT ["/bin/echo"]
CMD ["x"]
ONBUILD RUN echo triggered > /tmp/onbuild
ARG TARGETARCH
ARG V=default
RUN echo $V $TARGETARCH > /tmp/v
FROM base AS second
ENTRYPOINT ["/bin/cat"]
`
	ctx := bldContext(t, map[string]string{"Dockerfile": df})
	_, cfg := bldBuild(t, e, ctx, "cfg1", "--build-arg", "V=secretvalue", "--target", "base")
	c := cfg.Config
	want := map[string]any{
		"Author":     "someone",
		"User":       "app",
		"WorkingDir": "/rel/sub",
		"Env":        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1", "B=two words", "C=1x"},
		"Entrypoint": []string{"/bin/echo"},
		"Cmd":        []string{"x"},
		"Shell":      []string{"/bin/sh", "-ec"},
		"StopSignal": "SIGINT",
		"OnBuild":    []string{"RUN echo triggered > /tmp/onbuild"},
		"Labels":     map[string]string{"l1": "v1", "l 2": "v2"},
		"Ports":      map[string]struct{}{"80/tcp": {}, "53/udp": {}},
		"Volumes":    map[string]struct{}{"/data": {}},
	}
	got := map[string]any{
		"Author": cfg.Author, "User": c.User, "WorkingDir": c.WorkingDir, "Env": c.Env, "Entrypoint": c.Entrypoint,
		"Cmd": c.Cmd, "Shell": c.Shell, "StopSignal": c.StopSignal, "OnBuild": c.OnBuild, "Labels": c.Labels,
		"Ports": c.ExposedPorts, "Volumes": c.Volumes,
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	if c.Healthcheck == nil || !reflect.DeepEqual(c.Healthcheck.Test, []string{"CMD-SHELL", "true"}) || c.Healthcheck.Interval != 5e9 || c.Healthcheck.Retries != 2 {
		t.Errorf("Healthcheck = %+v", c.Healthcheck)
	}
	// History: BuildKit's CREATED BY text, arg names but never values,
	// empty_layer for metadata, one layer per WORKDIR/RUN.
	var hist []string
	layers := 0
	for _, h := range cfg.History[1:] {
		if h.Comment != "buildkit.dockerfile.v0" {
			t.Errorf("history comment %q", h.Comment)
		}
		mark := "E "
		if !h.EmptyLayer {
			mark = "L "
			layers++
		}
		hist = append(hist, mark+h.CreatedBy)
	}
	wantHist := []string{
		"E MAINTAINER someone", "E ENV A=1 B=two words", "E ENV C=1x", "L WORKDIR /rel", "L WORKDIR /rel/sub",
		"E USER app", "E EXPOSE map[53/udp:{} 80/tcp:{}]", "E VOLUME [/data]", "E LABEL l1=v1 l 2=v2",
		"E STOPSIGNAL SIGINT", "E SHELL [/bin/sh -ec]",
		`E HEALTHCHECK &{["CMD-SHELL" "true"] "5s" "0s" "0s" "0s" '\x02'}`,
		`E ENTRYPOINT ["/bin/echo"]`, `E CMD ["x"]`, "E ARG TARGETARCH", "E ARG V",
		"L RUN |2 TARGETARCH V /bin/sh -ec echo $V $TARGETARCH > /tmp/v # buildkit",
	}
	if !reflect.DeepEqual(hist, wantHist) {
		t.Errorf("history:\n%s\nwant:\n%s", strings.Join(hist, "\n"), strings.Join(wantHist, "\n"))
	}
	if len(cfg.RootFS.DiffIDs) != 1+layers {
		t.Errorf("%d layers, %d non-empty history entries after the base", len(cfg.RootFS.DiffIDs), layers)
	}
	raw, _ := json.Marshal(cfg)
	if strings.Contains(string(raw), "secretvalue") {
		t.Errorf("build-arg value in the config: %s", raw)
	}

	// ENTRYPOINT in a child stage resets the inherited CMD; as in BuildKit,
	// ONBUILD fires for a stage built FROM a stage too, and is not inherited.
	tree2, cfg2 := bldBuild(t, e, ctx, "cfg2")
	if !reflect.DeepEqual(cfg2.Config.Entrypoint, []string{"/bin/cat"}) || cfg2.Config.Cmd != nil || cfg2.Config.OnBuild != nil {
		t.Errorf("second: Entrypoint %q Cmd %q OnBuild %q, want [/bin/cat], no Cmd, no OnBuild", cfg2.Config.Entrypoint, cfg2.Config.Cmd, cfg2.Config.OnBuild)
	}
	bldCheckTree(t, tree2, []bldFile{{Path: "/tmp/onbuild", Type: tar.TypeReg, Mode: 0o644, UID: 1000, GID: 1000, Content: "triggered\n"}})
	child := bldContext(t, map[string]string{"Dockerfile": "FROM cfg1\n"})
	tree, cfg3 := bldBuild(t, e, child, "cfg3")
	bldCheckTree(t, tree, []bldFile{
		{Path: "/tmp/onbuild", Type: tar.TypeReg, Mode: 0o644, UID: 1000, GID: 1000, Content: "triggered\n"},
		{Path: "/tmp/v", Type: tar.TypeReg, Mode: 0o644, UID: 1000, GID: 1000, Content: "secretvalue amd64\n"},
	})
	if cfg3.Config.OnBuild != nil {
		t.Errorf("OnBuild kept in the child: %q", cfg3.Config.OnBuild)
	}
}

func TestBuildArgsAndStages(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	df := `ARG G=global
FROM bbase AS a
ARG G
RUN echo "a:$G" > /a
FROM bbase AS unused
RUN exit 1
FROM bbase AS b
ARG L=local
RUN echo "b:$L:${G:-unset}" > /b
FROM scratch
COPY --from=a /a /a
COPY --from=b /b /b
`
	ctx := bldContext(t, map[string]string{"Dockerfile": df})
	out := filepath.Join(t.TempDir(), "fs.tar")
	r := e.run("build", "--progress", "plain", "--build-arg", "L=over", "--build-arg", "NOPE=1", "--output", "type=tar,dest="+out, ctx)
	if r.Code != 0 {
		t.Fatalf("build failed: %s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "WARNING: one or more build args were not consumed: [NOPE]") {
		t.Errorf("no unused build-arg warning:\n%s", r.Stderr)
	}
	if strings.Contains(r.Stderr, "RUN exit 1") {
		t.Errorf("the unused stage ran:\n%s", r.Stderr)
	}
	bldCheckTree(t, bldTree(t, out), []bldFile{reg("/a", 0o644, "a:global\n"), reg("/b", 0o644, "b:over:unset\n")})

	// --target picks a stage
	tree, _ := bldBuild(t, e, ctx, "tgt", "--target", "a")
	bldCheckTree(t, tree, []bldFile{reg("/a", 0o644, "a:global\n"), absent("/b")})
}

func TestBuildRunMounts(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	secret := filepath.Join(t.TempDir(), "s")
	os.WriteFile(secret, []byte("TOPSECRET"), 0o600)
	df := `FROM bbase
RUN --mount=type=cache,target=/cache sh -c 'echo x >> /cache/log; wc -l < /cache/log > /count'
RUN --mount=type=bind,source=in,target=/in cp /in/f /copied
RUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/t && ls /scratch > /tmpfs-list'
RUN --mount=type=secret,id=tok sh -c 'cat /run/secrets/tok | wc -c > /secret-len'
RUN --mount=type=secret,id=envtok,target=/s sh -c 'cat /s > /dev/null && wc -c < /s > /env-secret-len'
RUN --mount=type=secret,id=tok,env=TOK sh -c 'printf %s "$TOK" | wc -c > /secret-env-var-len'
RUN --network=none sh -c 'ls /sys/class/net > /ifaces'
RUN ["/bin/sh", "-c", "echo exec > /exec"]
RUN <<EOT
echo heredoc > /heredoc
EOT
`
	ctx := bldContext(t, map[string]string{"Dockerfile": df, "in/f": "F"})
	t.Setenv("STRATA_TEST_SECRET", "envsecret")
	tree, cfg := bldBuild(t, e, ctx, "mounts", "--secret", "id=tok,src="+secret, "--secret", "id=envtok,env=STRATA_TEST_SECRET")
	bldCheckTree(t, tree, []bldFile{
		reg("/count", 0o644, "1\n"), absent("/cache/log"), reg("/copied", 0o644, "F"), absent("/in/f"),
		reg("/tmpfs-list", 0o644, "t\n"), absent("/scratch/t"), reg("/secret-len", 0o644, "9\n"),
		absent("/run/secrets/tok"), absent("/run/secrets"), absent("/in"), absent("/scratch"), absent("/cache"), reg("/ifaces", 0o644, "lo\n"), reg("/exec", 0o644, "exec\n"),
		reg("/heredoc", 0o644, "heredoc\n"), reg("/env-secret-len", 0o644, "9\n"), absent("/s"),
		reg("/secret-env-var-len", 0o644, "9\n"),
	})
	// the cache mount persists between builds (--no-cache reruns the step)
	tree, _ = bldBuild(t, e, ctx, "mounts", "--no-cache", "--secret", "id=tok,src="+secret, "--secret", "id=envtok,env=STRATA_TEST_SECRET")
	bldCheckTree(t, tree, []bldFile{reg("/count", 0o644, "2\n")})
	// the secret is in no layer and not in the config
	raw, _ := json.Marshal(cfg)
	if strings.Contains(string(raw), "TOPSECRET") {
		t.Error("secret in the config")
	}
	for _, d := range cfg.RootFS.DiffIDs {
		b, _ := os.ReadFile(filepath.Join(e.Root, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
		if strings.Contains(string(b), "TOPSECRET") {
			t.Errorf("secret in layer %s", d)
		}
	}
}

func TestBuildOutputs(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	ctx := bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nCOPY a /a\n", "a": "A"})
	d := t.TempDir()
	e.ok("build", "-q", "-t", "outs", "--output", "type=oci,dest="+d+"/oci.tar", "--output", "type=docker,dest="+d+"/docker.tar",
		"--output", "type=local,dest="+d+"/local", "--output", "type=tar,dest="+d+"/flat.tar", ctx)
	if b, err := os.ReadFile(d + "/local/a"); err != nil || string(b) != "A" {
		t.Errorf("local output: %q %v", b, err)
	}
	if _, err := os.Stat(d + "/local/bin/busybox"); err != nil {
		t.Errorf("local output lacks the base: %v", err)
	}
	for _, c := range []struct{ file, member string }{{"oci.tar", "index.json"}, {"oci.tar", "oci-layout"}, {"docker.tar", "manifest.json"}, {"flat.tar", "a"}} {
		if !tarHas(t, filepath.Join(d, c.file), c.member) {
			t.Errorf("%s has no %s", c.file, c.member)
		}
	}
	e.ok("inspect", "outs")

	// the docker tar loads into docker and runs
	ctxd, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if exec.CommandContext(ctxd, "docker", "version", "--format", "{{.Server.Version}}").Run() != nil {
		t.Log("no dockerd: skipping docker load")
		return
	}
	e.ok("build", "-q", "-t", "strata-docker-out:1", "--output", "type=docker,dest="+d+"/named.tar", ctx)
	if out, err := exec.Command("docker", "load", "-i", d+"/named.tar").CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	defer exec.Command("docker", "rmi", "-f", "strata-docker-out:1").Run()
	out, err := exec.Command("docker", "run", "--rm", "--network", "none", "strata-docker-out:1", "cat", "/a").CombinedOutput()
	if err != nil || string(out) != "A" {
		t.Errorf("docker run: %q %v", out, err)
	}
}

func tarHas(t *testing.T, p, member string) bool {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		if strings.TrimPrefix(h.Name, "./") == member {
			return true
		}
	}
}

// bldFails builds and checks the last stderr line (progress comes first).
func bldFails(t *testing.T, e *env, want string, args ...string) result {
	t.Helper()
	r := e.run(args...)
	if r.Code == 0 {
		t.Fatalf("strata %s succeeded, want failure %q", strings.Join(args, " "), want)
	}
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "strata: ") || !strings.Contains(last, want) {
		t.Fatalf("last stderr line %q does not contain %q\n%s", last, want, r.Stderr)
	}
	if strings.Contains(r.Stderr, "goroutine ") {
		t.Fatalf("stack trace:\n%s", r.Stderr)
	}
	return r
}

func TestBuildErrors(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	cases := []struct {
		name, df, want string
		files          map[string]string
	}{
		{"syntax error", "FROM bbase\nRUN echo ok\nENV\n", "Dockerfile:3: ENV requires at least one argument", nil},
		{"unknown instruction", "FROM bbase\nFOO bar\n", "Dockerfile:2: unknown instruction: FOO", nil},
		{"missing source", "FROM bbase\nCOPY nope.txt /\n", `Dockerfile:2: failed to compute cache key: "/nope.txt": not found`, nil},
		{"outside context", "FROM bbase\nCOPY ../x /\n", "Dockerfile:2: forbidden path outside the build context: ../x", nil},
		{"dangling symlink", "FROM bbase\nCOPY l* /links/\n", `Dockerfile:2: failed to compute cache key: "/l2": not found`, map[string]string{"l1": "->Dockerfile", "l2": "->/abs/missing"}},
		{"failing RUN", "FROM bbase\nRUN echo before\nRUN echo out; exit 3\n", `Dockerfile:3: process "/bin/sh -c echo out; exit 3" did not complete successfully: exit code: 3`, nil},
		{"no FROM", "RUN true\n", "Dockerfile:1: RUN before the first FROM", nil},
		{"bad target", "FROM bbase AS x\n", `target stage "nope" could not be found`, nil},
		// a stage fails while the other one's COPY may still be extracting
		// its layer in the background
		{"failing stage", "FROM bbase AS a\nRUN exit 5\nFROM bbase\nCOPY many /many\nRUN true\nCOPY --from=a /etc/passwd /p\n",
			`Dockerfile:2: process "/bin/sh -c exit 5" did not complete successfully: exit code: 5`, manyFiles(1000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &env{t: t, Root: e.Root}
			files := map[string]string{"Dockerfile": c.df}
			for k, v := range c.files {
				files[k] = v
			}
			ctx := bldContext(t, files)
			args := []string{"build", "--progress", "plain", "-t", "broken:1", ctx}
			if c.name == "bad target" {
				args = append(args[:len(args)-1], "--target", "nope", ctx)
			}
			r := bldFails(t, e, c.want, args...)
			if c.name == "failing RUN" {
				if !strings.Contains(r.Stderr, "out\n------") || !strings.Contains(r.Stderr, " 3 | >>> RUN echo out; exit 3") {
					t.Errorf("failure report lacks the output or the Dockerfile line:\n%s", r.Stderr)
				}
			}
			if r := e.run("inspect", "broken:1"); r.Code == 0 {
				t.Error("a failed build left a tag")
			}
			bldNoLeftovers(t, e)
		})
	}
}

// manyFiles is a context of n small files below many/.
func manyFiles(n int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("many/f%d", i)] = strconv.Itoa(i)
	}
	return m
}

// bldNoLeftovers checks that no snapshot, mount or temp dir survived a build.
func bldNoLeftovers(t *testing.T, e *env) {
	t.Helper()
	if ents, _ := os.ReadDir(filepath.Join(e.Root, "snapshots", "active")); len(ents) > 0 {
		t.Errorf("active snapshots left: %d", len(ents))
	}
	if ents, _ := os.ReadDir(filepath.Join(e.Root, "tmp")); len(ents) > 0 {
		t.Errorf("temp dirs left: %d", len(ents))
	}
	ents, _ := os.ReadDir(filepath.Join(e.Root, "snapshots", "layers"))
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), ".tmp-") {
			t.Errorf("temp dir left in snapshots/layers: %s", ent.Name())
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), e.Root) {
		t.Errorf("mounts left under %s", e.Root)
	}
}

func TestBuildStdinAndProgress(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	// a Dockerfile on stdin: empty context
	r := e.runIn([]byte("FROM bbase\nRUN echo hi > /hi\n"), "build", "--progress", "plain", "-t", "stdin1", "-")
	if r.Code != 0 {
		t.Fatalf("build from stdin: %s", r.Stderr)
	}
	for _, want := range []string{"#1 [internal] load build definition from Dockerfile", "[1/2] FROM docker.io/library/bbase:latest", "[2/2] RUN echo hi > /hi", "DONE"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("progress lacks %q:\n%s", want, r.Stderr)
		}
	}
	r = e.runIn([]byte("FROM bbase\nRUN echo hi > /hi\n"), "build", "--progress", "plain", "-t", "stdin1", "-")
	if !strings.Contains(r.Stderr, "CACHED") {
		t.Errorf("second build not cached:\n%s", r.Stderr)
	}
	// a tar on stdin is the context (with a Dockerfile inside)
	ctx := bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nCOPY f /f\n", "f": "from tar"})
	tarb, err := exec.Command("tar", "-C", ctx, "-c", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	flat := filepath.Join(t.TempDir(), "flat.tar")
	if r := e.runIn(tarb, "build", "-q", "--output", "type=tar,dest="+flat, "-"); r.Code != 0 {
		t.Fatalf("tar context on stdin: %s", r.Stderr)
	}
	bldCheckTree(t, bldTree(t, flat), []bldFile{reg("/f", 0o644, "from tar")})

	r = e.runIn([]byte("FROM bbase\nRUN echo json\n"), "build", "--progress", "json", "-")
	if !strings.Contains(r.Stderr, `"status":"done"`) {
		t.Errorf("json progress:\n%s", r.Stderr)
	}
}

// TestBuildRunMountpoints: a RUN over a base without /proc, /dev and /sys
// leaves them as empty directories in its layer, as BuildKit's RUN does
// (runc makes them); a COPY-only build does not have them, and the sandbox's
// /etc files never reach a layer.
func TestBuildRunMountpoints(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	ctx := bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nRUN true\n", "f": "x"})
	tree, _ := bldBuild(t, e, ctx, "runmp")
	bldCheckTree(t, tree, []bldFile{dir("/proc", 0o755), dir("/dev", 0o755), dir("/sys", 0o755),
		absent("/etc/hosts"), absent("/etc/hostname"), absent("/etc/resolv.conf"), absent("/proc/1")})
	ctx = bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nCOPY f /f\n", "f": "x"})
	tree, _ = bldBuild(t, e, ctx, "copymp")
	bldCheckTree(t, tree, []bldFile{reg("/f", 0o644, "x"), absent("/proc"), absent("/dev"), absent("/sys")})
}

// TestBuildSSH: RUN --mount=type=ssh reaches the agent --ssh names — an
// ssh-agent's socket (default: $SSH_AUTH_SOCK) or key files — through a
// socket of the RUN's own, and leaves nothing in the layer.
func TestBuildSSH(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"ssh-agent", "ssh-keygen", "ssh-add"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip("no " + tool)
		}
	}
	e := withBase(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-key", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	fp, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	fingerprint := strings.Fields(string(fp))[1] // "256 SHA256:... test-key (ED25519)"
	sock := filepath.Join(dir, "agent.sock")
	// ssh-agent returns once its socket listens, printing its pid.
	out, err := exec.Command("ssh-agent", "-s", "-a", sock).Output()
	if err != nil {
		t.Fatalf("ssh-agent: %v", err)
	}
	_, rest, _ := strings.Cut(string(out), "SSH_AGENT_PID=")
	pid, err := strconv.Atoi(strings.TrimRight(strings.SplitN(rest, ";", 2)[0], "\n"))
	if err != nil {
		t.Fatalf("ssh-agent said %q", out)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGTERM) })
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	ctx := bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nCOPY agentls /agentls\n" +
		"RUN --mount=type=ssh echo $SSH_AUTH_SOCK > /sock && stat -c %a $SSH_AUTH_SOCK >> /sock && /agentls > /keys\n" +
		"RUN --mount=type=ssh,id=file,target=/tmp/a,mode=0644 SSH_AUTH_SOCK=/tmp/a /agentls > /filekeys && ls -ld /tmp/a > /tmpa\n"})
	build := exec.Command("go", "build", "-o", filepath.Join(ctx, "agentls"), "./testdata/agentls")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building agentls: %v\n%s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	tree, _ := bldBuild(t, e, ctx, "ssh", "--ssh", "default", "--ssh", "file="+key)
	bldCheckTree(t, tree, []bldFile{
		reg("/sock", 0o644, "/run/buildkit/ssh_agent.0\n600\n"),
		reg("/keys", 0o644, "ssh-ed25519 "+fingerprint+" test-key\n"),
		reg("/filekeys", 0o644, "ssh-ed25519 "+fingerprint+" \n"),
		absent("/run/buildkit"), absent("/tmp/a"),
	})
	if got := tree["/tmpa"].Content; !strings.HasPrefix(got, "srw-r--r--") {
		t.Errorf("ls -ld of the mode=0644 socket: %q", got)
	}
	// Without --ssh the mount is skipped, unless it is required.
	ctx = bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nRUN --mount=type=ssh test -z \"$SSH_AUTH_SOCK\"\nRUN --mount=type=ssh,required=true true\n"})
	r := e.run("build", "--progress", "plain", ctx)
	if r.Code == 0 || !strings.Contains(r.Stderr, "ssh default: not provided") {
		t.Errorf("required ssh without --ssh: exit %d\n%s", r.Code, r.Stderr)
	}
}

// TestBuildCacheMountFrom: a cache mount with from= starts as a copy of that
// stage's path and then persists like any other; the stage's own files are
// not changed by what the RUN writes to the cache.
func TestBuildCacheMountFrom(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	df := `FROM bbase AS seed
RUN mkdir -p /s/sub && echo seeded > /s/sub/f
FROM bbase
ARG X=1
RUN --mount=type=cache,target=/c,from=seed,source=/s sh -c 'cat /c/sub/f > /out; echo x >> /c/log'
RUN --mount=type=cache,target=/c,from=seed,source=/s sh -c 'ls /c > /ls; wc -l < /c/log > /n'
RUN --mount=type=cache,target=/c sh -c 'ls /c > /plain'
COPY --from=seed /s /copied
`
	ctx := bldContext(t, map[string]string{"Dockerfile": df})
	tree, _ := bldBuild(t, e, ctx, "cachefrom")
	bldCheckTree(t, tree, []bldFile{reg("/out", 0o644, "seeded\n"), reg("/ls", 0o644, "log\nsub\n"), reg("/n", 0o644, "1\n"),
		reg("/plain", 0o644, ""), reg("/copied/sub/f", 0o644, "seeded\n"), absent("/copied/log"), absent("/c")})
	// The RUNs again (a build arg in their scope changed), seed cached: the
	// same cache, the log kept the first build's line.
	tree, _ = bldBuild(t, e, ctx, "cachefrom", "--build-arg", "X=2")
	bldCheckTree(t, tree, []bldFile{reg("/out", 0o644, "seeded\n"), reg("/n", 0o644, "2\n")})
}

// gitServer serves the repositories under dir over HTTP (git's smart HTTP
// protocol, git-http-backend through CGI) and returns its address.
func gitServer(t *testing.T, dir string) string {
	t.Helper()
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Skip("no git-http-backend")
	}
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + dir, "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// gitRepo runs git commands in dir, failing the test on an error.
func gitRepo(t *testing.T, dir string, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		cmd := exec.Command("sh", "-c", c)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
	}
}

// TestBuildAddGit: ADD of a git repository (URL#REF[:SUBDIR]) adds its tree
// at that ref, without .git unless --keep-git-dir; the step is cached by the
// commit the ref names, so a moved branch reruns it.
func TestBuildAddGit(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	e := withBase(t)
	root := t.TempDir()
	repo := filepath.Join(root, "repo.git")
	work := filepath.Join(root, "work")
	os.MkdirAll(work, 0o755)
	gitRepo(t, work, "git init -q -b main .", "echo A > a.txt", "mkdir sub && printf '#!/bin/sh\\n' > sub/run.sh && chmod 755 sub/run.sh",
		"ln -s a.txt link", "git add -A && git commit -q -m one && git tag -a v1 -m v1",
		"git clone -q --bare . "+repo)
	host := gitServer(t, root)
	u := "http://" + host + "/repo.git"
	df := "FROM bbase\nADD " + u + "#v1 /src\nADD " + u + "#main:sub /sub\nADD --keep-git-dir=true " + u + " /full\n"
	ctx := bldContext(t, map[string]string{"Dockerfile": df})
	tree, _ := bldBuild(t, e, ctx, "git")
	bldCheckTree(t, tree, []bldFile{
		reg("/src/a.txt", 0o644, "A\n"), reg("/src/sub/run.sh", 0o755, "#!/bin/sh\n"),
		{Path: "/src/link", Type: tar.TypeSymlink, Mode: 0o777, Link: "a.txt"}, absent("/src/.git"),
		reg("/sub/run.sh", 0o755, "#!/bin/sh\n"), absent("/sub/a.txt"),
		reg("/full/a.txt", 0o644, "A\n"), dir("/full/.git", 0o755),
	})
	if steps := bldSteps(t, e, ctx); len(steps) != 3 || !strings.HasPrefix(steps[0], "C ") || !strings.HasPrefix(steps[1], "C ") || !strings.HasPrefix(steps[2], "C ") {
		t.Errorf("second build: %q, want every step CACHED", steps)
	}
	// main moves: the steps adding main rerun, the one adding v1 does not.
	gitRepo(t, work, "echo B > sub/new && git add -A && git commit -q -m two", "git push -q "+repo+" main")
	steps := bldSteps(t, e, ctx)
	want := []string{"R [] ADD --keep-git-dir=true " + u + " /full", "R [] ADD " + u + "#main:sub /sub", "C [] ADD " + u + "#v1 /src"}
	if !reflect.DeepEqual(steps, want) {
		t.Errorf("after a commit on main:\n got  %q\n want %q", steps, want)
	}
	tree, _ = bldBuild(t, e, ctx, "git")
	bldCheckTree(t, tree, []bldFile{reg("/sub/new", 0o644, "B\n"), absent("/src/sub/new")})
	e.fails("no ref \"nosuch\"", "build", "-q", bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nADD " + u + "#nosuch /x\n"}))
}

// TestBuildCopyHardlinks: files of the context that are hard links of one
// another stay one file and hard links in COPY's layer (as BuildKit's), and
// a RUN after it sees one inode.
func TestBuildCopyHardlinks(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	ctx := bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nCOPY d /x\nRUN stat -c %h /x/a > /links && test /x/a -ef /x/b && echo same > /same\n", "d/a": "hi\n", "d/c": "c\n"})
	if err := os.Link(filepath.Join(ctx, "d", "a"), filepath.Join(ctx, "d", "b")); err != nil {
		t.Fatal(err)
	}
	tree, _ := bldBuild(t, e, ctx, "hardlinks")
	bldCheckTree(t, tree, []bldFile{
		reg("/x/a", 0o644, "hi\n"), {Path: "/x/b", Type: tar.TypeLink, Mode: 0o644, Link: "x/a"}, reg("/x/c", 0o644, "c\n"),
		reg("/links", 0o644, "2\n"), reg("/same", 0o644, "same\n"),
	})
}

// TestBuildCopyFromUnpacked: COPY --from a stage whose layers are unpacked
// hard-links their files into its own unpacked layer when they are the
// same, and never a file a later entry of the same layer replaced: here the
// stage's image layer holds f, then h a hard link to it, then f again with
// other content of the same size, mode, owner and time.
func TestBuildCopyFromUnpacked(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	in, err := os.Open(baseTar(t))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dup := filepath.Join(t.TempDir(), "dup.tar")
	out, err := os.Create(dup)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(out)
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	mt := time.Unix(1700000000, 0)
	for _, x := range []struct{ name, link, body string }{{"f", "", "first\n"}, {"h", "f", ""}, {"f", "", "again\n"}} {
		h := &tar.Header{Name: x.name, Mode: 0o644, ModTime: mt, Typeflag: tar.TypeReg, Size: int64(len(x.body))}
		if x.link != "" {
			h.Typeflag, h.Linkname = tar.TypeLink, x.link
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(x.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	e.ok("import", dup, "dup")
	ctx := bldContext(t, map[string]string{"Dockerfile": `FROM dup AS s
RUN mkdir /d && echo same > /d/same
FROM bbase
COPY --from=s /h /f /d/same /c/
RUN cat /c/h /c/f /c/same > /out && stat -c '%h %n' /c/h /c/f /c/same > /links
`})
	tree, _ := bldBuild(t, e, ctx, "fromunpacked")
	// f (the image layer's file) and same (the RUN's) are linked to the
	// stage's unpacked layers; h is not: its content is not at f any more
	bldCheckTree(t, tree, []bldFile{
		reg("/c/h", 0o644, "first\n"), reg("/c/f", 0o644, "again\n"), reg("/c/same", 0o644, "same\n"),
		reg("/out", 0o644, "first\nagain\nsame\n"), reg("/links", 0o644, "1 /c/h\n2 /c/f\n2 /c/same\n"),
	})
}
