package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	units "github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Tests of the foundation commands: import, images, tag, rmi, inspect,
// history, prune, fsck, save, load, export.

var imageIDRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`)

// fndRunFile runs strata with stdin read from a file (for inputs too big to
// hold in memory).
func (e *env) fndRunFile(stdin string, args ...string) result {
	e.t.Helper()
	f, err := os.Open(stdin)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = append(os.Environ(), "STRATA_ROOT="+e.Root)
	cmd.Stdin = f
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	r := result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// fndInspect returns the inspect document of ref.
func fndInspect(t *testing.T, e *env, ref string) (doc struct {
	Id, Digest string
	RepoTags   []string
	Size       int64
	Manifest   v1.Manifest
	Config     v1.ConfigFile
}) {
	t.Helper()
	out := e.ok("inspect", ref)
	var docs []json.RawMessage
	if err := json.Unmarshal([]byte(out), &docs); err != nil || len(docs) != 1 {
		t.Fatalf("inspect %s: %v\n%s", ref, err, out)
	}
	if err := json.Unmarshal(docs[0], &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func fndWrite(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func fndGzip(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestImportForms(t *testing.T) {
	base, err := os.ReadFile(baseTar(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	plain := fndWrite(t, dir, "base.tar", base)
	fndWrite(t, dir, "base.tgz", fndGzip(base))
	for _, algo := range []string{"zstd", "xz", "bzip2"} {
		if out, err := exec.Command(algo, "-k", "-f", plain).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", algo, err, out)
		}
	}
	baseDiffID := func() string { s := sha256.Sum256(base); return "sha256:" + hex.EncodeToString(s[:]) }()
	for _, tc := range []struct {
		name  string
		args  []string
		stdin []byte
		check func(t *testing.T, e *env)
	}{
		{name: "file", args: []string{"import", plain, "x"}},
		{name: "gzip file", args: []string{"import", filepath.Join(dir, "base.tgz"), "x"}},
		{name: "zstd file", args: []string{"import", plain + ".zst", "x"}},
		{name: "xz file", args: []string{"import", plain + ".xz", "x"}},
		{name: "bzip2 file", args: []string{"import", plain + ".bz2", "x"}},
		{name: "stdin", args: []string{"import", "-", "x:1.0"}, stdin: base},
		{name: "gzip stdin", args: []string{"import", "-", "x:1.0"}, stdin: fndGzip(base)},
		{name: "url", args: []string{"import", srv.URL + "/base.tgz", "localhost:5000/x/y:z"}},
		{name: "changes and message", args: []string{"import", "-c", `CMD ["/bin/sh", "-c", "echo hi"]`, "--change", "ENV A=1 B=2",
			"-c", "WORKDIR /srv", "-c", "USER 1000", "-c", "EXPOSE 80", "-c", "LABEL k=v", "-c", "VOLUME /data", "-c", "ENTRYPOINT [\"/bin/env\"]",
			"-m", "my base", "--platform", "linux/arm64/v8", plain, "x"},
			check: func(t *testing.T, e *env) {
				d := fndInspect(t, e, "x")
				c := d.Config.Config
				got := fmt.Sprintf("%q %q %q %s %s %v %v %v %q %s/%s/%s %q", c.Cmd, c.Entrypoint, c.Env, c.WorkingDir, c.User,
					c.ExposedPorts, c.Labels, c.Volumes, d.Config.History[0].Comment, d.Config.OS, d.Config.Architecture, d.Config.Variant, d.Config.History[0].CreatedBy)
				want := `["/bin/sh" "-c" "echo hi"] ["/bin/env"] ["A=1" "B=2"] /srv 1000 map[80/tcp:{}] map[k:v] map[/data:{}] "my base" linux/arm64/v8 ""`
				if got != want {
					t.Errorf("config\n got %s\nwant %s", got, want)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.runIn(tc.stdin, tc.args...)
			if r.Code != 0 || !imageIDRe.MatchString(r.Stdout) || r.Stderr != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
			}
			name := tc.args[len(tc.args)-1]
			d := fndInspect(t, e, name)
			if d.Id+"\n" != r.Stdout {
				t.Errorf("printed %q, image ID %s", r.Stdout, d.Id)
			}
			if len(d.Manifest.Layers) != 1 || d.Manifest.Layers[0].Digest.String() != baseDiffID ||
				d.Manifest.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar" {
				t.Errorf("layers %+v, want the uncompressed input %s", d.Manifest.Layers, baseDiffID)
			}
			if tc.check != nil {
				tc.check(t, e)
			} else if d.Config.OS != "linux" || d.Config.Architecture == "" || !strings.HasPrefix(d.Config.History[0].Comment, "Imported from ") {
				t.Errorf("config %+v", d.Config)
			}
			e.ok("fsck")
		})
	}
}

func TestImportSourceDateEpoch(t *testing.T) {
	var ids []string
	for i := 0; i < 2; i++ {
		e := newEnv(t)
		t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
		ids = append(ids, e.ok("import", "-m", "base", baseTar(t), "x"))
		d := fndInspect(t, e, "x")
		if d.Config.Created.Unix() != 1700000000 || d.Config.History[0].Created.Unix() != 1700000000 {
			t.Errorf("created %v", d.Config.Created)
		}
	}
	if ids[0] != ids[1] {
		t.Errorf("same input and SOURCE_DATE_EPOCH, different IDs: %v", ids)
	}
}

// TestImageCommands walks through images, tag, rmi, inspect, history, prune
// and fsck on one store, checking exact output.
func TestImageCommands(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1600000000")
	e := withBase(t)
	id := strings.TrimSpace(e.ok("inspect", "--help")) // flags documented
	if !strings.Contains(id, "inspect [flags] IMAGE...") {
		t.Errorf("inspect --help: %s", id)
	}
	d := fndInspect(t, e, "bbase")
	short := strings.TrimPrefix(d.Id, "sha256:")[:12]
	// Sizes as docker prints them (3 significant digits, decimal units).
	imageSize := regexp.QuoteMeta(units.HumanSizeWithPrecision(float64(d.Size), 3))
	layerSize := regexp.QuoteMeta(units.HumanSizeWithPrecision(float64(d.Manifest.Layers[0].Size), 3))
	rowRe := func(repo, tag, id string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(repo) + ` +` + regexp.QuoteMeta(tag) + ` +` + id + ` +[0-9a-zA-Z ]+ ago +` + imageSize + `$`)
	}
	steps := []struct {
		args []string
		want []*regexp.Regexp // stdout must match each
		not  []string         // stdout must not contain
	}{
		{args: []string{"images"}, want: []*regexp.Regexp{regexp.MustCompile(`^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE\n`), rowRe("bbase", "latest", short)}},
		{args: []string{"tag", "bbase", "other/name:v1"}},
		{args: []string{"tag", short, "localhost:5000/b:2"}},
		{args: []string{"images"}, want: []*regexp.Regexp{rowRe("bbase", "latest", short), rowRe("other/name", "v1", short), rowRe("localhost:5000/b", "2", short)}},
		{args: []string{"images", "-q"}, want: []*regexp.Regexp{regexp.MustCompile(`^(` + short + `\n){3}$`)}},
		{args: []string{"images", "--no-trunc", "other/name"}, want: []*regexp.Regexp{regexp.MustCompile(`^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE\nother/name +v1 +` + d.Id + ` +[^\n]+\n$`)}},
		{args: []string{"images", "--digests", "bbase:latest"}, want: []*regexp.Regexp{regexp.MustCompile(`^REPOSITORY +TAG +DIGEST +IMAGE ID +CREATED +SIZE\nbbase +latest +` + d.Digest + ` +` + short + ` [^\n]+\n$`)}},
		{args: []string{"images", "nothing"}, want: []*regexp.Regexp{regexp.MustCompile(`^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE\n$`)}},
		{args: []string{"images", "--format", "json"}, want: []*regexp.Regexp{regexp.MustCompile(`(?m)^\{"Repository":"other/name","Tag":"v1","ID":"` + d.Id + `","Digest":"` + d.Digest + `","CreatedAt":"2020-09-13T12:26:40Z","Size":\d+\}$`)}},
		{args: []string{"history", "bbase"}, want: []*regexp.Regexp{regexp.MustCompile(`^IMAGE +CREATED +CREATED BY +SIZE +COMMENT\n` + short + ` +\d+ years ago +` + layerSize + ` +Imported from .*base\.tar\n$`)}},
		{args: []string{"history", "--no-trunc", "bbase"}, want: []*regexp.Regexp{regexp.MustCompile(`(?m)^` + d.Id + ` `)}},
		{args: []string{"history", "-q", "bbase"}, want: []*regexp.Regexp{regexp.MustCompile(`^` + short + `\n$`)}},
		{args: []string{"rmi", "other/name:v1"}, want: []*regexp.Regexp{regexp.MustCompile(`^Untagged: other/name:v1\n$`)}},
		{args: []string{"images"}, not: []string{"other/name"}},
		{args: []string{"rmi", "-f", short}, want: []*regexp.Regexp{regexp.MustCompile(`^Untagged: bbase:latest\nUntagged: localhost:5000/b:2\nDeleted: ` + d.Id + `\n$`)}},
		{args: []string{"images"}, want: []*regexp.Regexp{regexp.MustCompile(`^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE\n$`)}},
		{args: []string{"prune"}, want: []*regexp.Regexp{regexp.MustCompile(`^Deleted 3 blobs and 0 other files\nTotal reclaimed space: ` + imageSize + `\n$`)}},
		{args: []string{"prune"}, want: []*regexp.Regexp{regexp.MustCompile(`^Deleted 0 blobs and 0 other files\nTotal reclaimed space: 0B\n$`)}},
		{args: []string{"fsck"}, want: []*regexp.Regexp{regexp.MustCompile(`^0 blobs, 0 image entries: no problems\n$`)}},
	}
	for _, st := range steps {
		out := e.ok(st.args...)
		for _, re := range st.want {
			if !re.MatchString(out) {
				t.Errorf("strata %s: output does not match %s:\n%s", strings.Join(st.args, " "), re, out)
			}
		}
		for _, n := range st.not {
			if strings.Contains(out, n) {
				t.Errorf("strata %s: output contains %q:\n%s", strings.Join(st.args, " "), n, out)
			}
		}
	}
}

func TestTagMoveAndUntagged(t *testing.T) {
	e := withBase(t)
	e.ok("import", "-c", "USER 1", baseTar(t), "second")
	first := fndInspect(t, e, "bbase").Id
	e.ok("tag", "second", "bbase") // bbase moves; the old image has no name left
	out := e.ok("images")
	if !regexp.MustCompile(`(?m)^<none> +<none> +` + strings.TrimPrefix(first, "sha256:")[:12] + ` `).MatchString(out) {
		t.Errorf("old image not listed as <none>:\n%s", out)
	}
	if got := fndInspect(t, e, first[:19]).RepoTags; len(got) != 0 {
		t.Errorf("untagged image has tags %v", got)
	}
	if out := e.ok("rmi", first); out != "Deleted: "+first+"\n" {
		t.Errorf("rmi of untagged: %q", out)
	}
	// An image with several names is refused by ID without -f.
	e.ok("tag", "bbase", "third")
	id := fndInspect(t, e, "bbase").Id
	e.fails("image is referenced by 3 names (bbase:latest, second:latest, third:latest)", "rmi", id)
}

func TestFsckDetectsDamage(t *testing.T) {
	e := withBase(t)
	d := fndInspect(t, e, "bbase")
	layer := d.Manifest.Layers[0].Digest
	p := filepath.Join(e.Root, "blobs", "sha256", layer.Hex)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[1000] ^= 0x20
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o444); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(e.Root, "blobs", "sha256", d.Manifest.Config.Digest.Hex))
	r := e.run("fsck")
	want := fmt.Sprintf("blob %s: content hashes to sha256:", layer)
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if r.Code != 1 || len(lines) != 2 || !strings.HasPrefix(lines[0], want) ||
		lines[1] != fmt.Sprintf("image bbase:latest: config %s is missing", d.Manifest.Config.Digest) {
		t.Fatalf("fsck: exit %d\n%s", r.Code, r.Stdout)
	}
	checkFailure(t, r, "fsck: 2 problems in "+e.Root, []string{"fsck"})
}

// TestBadInput: every command with bad input exits non-zero with one line
// naming the problem, and changes nothing.
func TestBadInput(t *testing.T) {
	e := withBase(t)
	dir := t.TempDir()
	base, _ := os.ReadFile(baseTar(t))
	notTar := fndWrite(t, dir, "notes.txt", []byte("just some text, not a tar archive\n"))
	corruptGz := fndGzip(base)
	corruptGz[len(corruptGz)-8] ^= 0xff
	badGz := fndWrite(t, dir, "bad.tgz", corruptGz)
	truncated := fndWrite(t, dir, "trunc.tar", base[:len(base)/2+100])
	truncGz := fndWrite(t, dir, "trunc.tgz", fndGzip(base)[:20000])
	escape := fndWrite(t, dir, "escape.tar", fndTar(t, fndEntry{name: "../../etc/evil", body: "x"}))
	before := fndStoreState(t, e)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import", filepath.Join(dir, "missing.tar"), "x"}, "importing: open " + filepath.Join(dir, "missing.tar") + ": no such file or directory"},
		{[]string{"import", dir, "x"}, "is a directory"},
		{[]string{"import", notTar, "x"}, "importing " + notTar + ": not a tar archive"},
		{[]string{"import", badGz, "x"}, "importing " + badGz + ": corrupt gzip data: gzip: invalid checksum"},
		{[]string{"import", truncated, "x"}, "importing " + truncated + ": truncated tar archive (after "},
		{[]string{"import", truncGz, "x"}, "importing " + truncGz + ": corrupt gzip data: unexpected end of data (truncated?)"},
		{[]string{"import", escape, "x"}, `tar entry "../../etc/evil" escapes the root`},
		{[]string{"import", baseTar(t), "Bad:Name"}, `invalid reference "Bad:Name": must be NAME[:TAG] in lower case`},
		{[]string{"import", baseTar(t), "x@sha256:abc"}, `invalid reference "x@sha256:abc"`},
		{[]string{"import", "-c", "RUN rm -rf /", baseTar(t), "x"}, `--change "RUN rm -rf /": RUN is not supported`},
		{[]string{"import", "--platform", "linux", baseTar(t), "x"}, `invalid platform "linux": want os/arch[/variant]`},
		{[]string{"import", "http://127.0.0.1:1/x.tar", "x"}, "importing: fetching http://127.0.0.1:1/x.tar: "},
		{[]string{"import", baseTar(t)}, "accepts 2 arg(s), received 1"},
		{[]string{"images", "--format", "yaml"}, `invalid --format "yaml": want table or json`},
		{[]string{"images", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"tag", "nope", "x"}, "image nope: not found"},
		{[]string{"tag", "bbase", "UPPER"}, `invalid reference "UPPER"`},
		{[]string{"rmi", "nope"}, "rmi: image nope: not found"},
		{[]string{"rmi", "sha256:0000"}, "rmi: image sha256:0000: not found"},
		{[]string{"inspect", "nope"}, "inspect nope: image nope: not found"},
		{[]string{"inspect", "Bad Ref"}, `invalid reference "Bad Ref"`},
		{[]string{"history", "nope:1"}, "image nope:1: not found"},
		{[]string{"save", "-o", filepath.Join(dir, "o.tar"), "nope"}, "image nope: not found"},
		{[]string{"save", "--format", "zip", "bbase"}, `invalid --format "zip": want docker or oci`},
		{[]string{"save", "--compression", "lz4", "bbase"}, `invalid --compression "lz4": want gzip or zstd`},
		{[]string{"save", "-o", "/nonexistent-dir/o.tar", "bbase"}, "save: creating /nonexistent-dir/o.tar: no such file or directory"},
		{[]string{"export", "-o", "/nonexistent-dir/o.tar", "bbase"}, "export: creating /nonexistent-dir/o.tar: no such file or directory"},
		{[]string{"load", "-i", "/etc/passwd"}, "load /etc/passwd: not a tar archive"},
		{[]string{"export", "nope"}, "image nope: not found"},
		{[]string{"load", "-i", filepath.Join(dir, "missing.tar")}, "load: open " + filepath.Join(dir, "missing.tar") + ": no such file or directory"},
		{[]string{"load", "-i", notTar}, "load " + notTar + ": not a tar archive"},
		{[]string{"load", "-i", baseTar(t)}, "not an image archive: no index.json or manifest.json"},
		{[]string{"load", "-i", badGz}, "corrupt gzip data: gzip: invalid checksum"},
	} {
		e.fails(tc.want, tc.args...)
	}
	if _, err := os.Stat(filepath.Join(dir, "o.tar")); err == nil {
		t.Error("a failed save left its output file")
	}
	if after := fndStoreState(t, e); after != before {
		t.Errorf("bad input changed the store:\nbefore %s\nafter  %s", before, after)
	}
}

// fndStoreState summarises a store: index.json and the blob, ingest and
// pins directories.
func fndStoreState(t *testing.T, e *env) string {
	t.Helper()
	idx, err := os.ReadFile(filepath.Join(e.Root, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range []string{"blobs/sha256", "ingest", "pins"} {
		ents, _ := os.ReadDir(filepath.Join(e.Root, d))
		for _, ent := range ents {
			names = append(names, d+"/"+ent.Name())
		}
	}
	sort.Strings(names)
	s := sha256.Sum256(idx)
	return hex.EncodeToString(s[:8]) + " " + strings.Join(names, " ")
}

// fndEntry is one entry for fndTar.
type fndEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func fndTar(t *testing.T, ents ...fndEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, en := range ents {
		h := &tar.Header{Name: en.name, Typeflag: en.typ, Linkname: en.link, Mode: en.mode, Size: int64(len(en.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, en.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSaveLoadRoundTrip: both formats load back (into a fresh store) as the
// same images, with the same files, and other tools read them.
func TestSaveLoadRoundTrip(t *testing.T) {
	e := withBase(t)
	e.ok("import", "-c", "CMD [\"sh\"]", baseTar(t), "localhost:5000/two:1")
	ids := map[string]string{"bbase": fndInspect(t, e, "bbase").Id, "localhost:5000/two:1": fndInspect(t, e, "localhost:5000/two:1").Id}
	tree := e.ok("export", "bbase")
	for _, fc := range []string{"docker/gzip", "oci/gzip", "oci/zstd", "docker/zstd"} {
		format, compression, _ := strings.Cut(fc, "/")
		t.Run(fc, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "img.tar")
			e.ok("save", "--format", format, "--compression", compression, "-o", out, "bbase", "localhost:5000/two:1")
			if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
				t.Fatalf("saved file: %v %v", fi, err)
			}
			// Nothing but the file itself is left in its directory.
			if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
				t.Errorf("save left %d files", len(ents))
			}
			e2 := newEnv(t)
			got := e2.ok("load", "-i", out)
			if want := "Loaded image: bbase:latest\nLoaded image: localhost:5000/two:1\n"; fndSortLines(got) != fndSortLines(want) {
				t.Errorf("load printed %q", got)
			}
			for ref, id := range ids {
				if d := fndInspect(t, e2, ref); d.Id != id {
					t.Errorf("%s: ID %s after load, was %s", ref, d.Id, id)
				}
			}
			if e2.ok("export", "bbase") != tree {
				t.Error("exported tree differs after save/load")
			}
			e2.ok("fsck")
			// Loading again changes nothing and stays consistent.
			if got := e2.ok("load", "-q", "-i", out); got != "" {
				t.Errorf("load -q printed %q", got)
			}
			e2.ok("fsck")
			// Stdout works the same as -o.
			stdout := e.ok("save", "--format", format, "--compression", compression, "bbase")
			e3 := newEnv(t)
			e3.runIn([]byte(stdout), "load")
			if d := fndInspect(t, e3, "bbase"); d.Id != ids["bbase"] {
				t.Errorf("load from stdin: ID %s", d.Id)
			}
			if format == "oci" && compression == "gzip" {
				dir := t.TempDir()
				if out, err := exec.Command("tar", "-C", dir, "-xf", out).CombinedOutput(); err != nil {
					t.Fatalf("tar: %v %s", err, out)
				}
				fndSkopeo(t, "oci:"+dir+":docker.io/library/bbase:latest", ids["bbase"])
			}
		})
	}
}

func fndSortLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(l)
	return strings.Join(l, "\n")
}

// fndSkopeo checks that skopeo reads the image at ref and sees its config.
func fndSkopeo(t *testing.T, ref, id string) {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed")
	}
	out, err := exec.Command("skopeo", "inspect", "--config", ref).Output()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v", ref, err)
	}
	s := sha256.Sum256(out)
	// skopeo --config prints the config re-indented: compare the content.
	var cf v1.ConfigFile
	if err := json.Unmarshal(out, &cf); err != nil || cf.OS != "linux" || len(cf.RootFS.DiffIDs) != 1 {
		t.Fatalf("skopeo config %s: %v %s", hex.EncodeToString(s[:]), err, out)
	}
	raw, err := exec.Command("skopeo", "inspect", "--raw", "--config", ref).Output()
	if err != nil {
		t.Fatalf("skopeo inspect --raw: %v", err)
	}
	if s := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(s[:]) != id {
		t.Errorf("skopeo's raw config hashes to %x, want %s", s, id)
	}
}

// TestOtherToolsReadStore: the store is an OCI layout skopeo and umoci read.
func TestOtherToolsReadStore(t *testing.T) {
	e := withBase(t)
	id := fndInspect(t, e, "bbase").Id
	fndSkopeo(t, "oci:"+e.Root+":docker.io/library/bbase:latest", id)
	// Archives skopeo writes from the store load back as the same image.
	for _, dest := range []string{"oci-archive:%s:bbase:v9", "docker-archive:%s:bbase:v9"} {
		p := filepath.Join(t.TempDir(), "a.tar")
		if out, err := exec.Command("skopeo", "copy", "-q", "oci:"+e.Root+":docker.io/library/bbase:latest", fmt.Sprintf(dest, p)).CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy to %s: %v %s", dest, err, out)
		}
		e2 := newEnv(t)
		if out := e2.ok("load", "-i", p); out != "Loaded image: bbase:v9\n" {
			t.Errorf("load of skopeo's %s: %q", dest, out)
		}
		if got := fndInspect(t, e2, "bbase:v9").Id; got != id {
			t.Errorf("skopeo's %s: ID %s, want %s", dest, got, id)
		}
		e2.ok("fsck")
	}
	if _, err := exec.LookPath("umoci"); err != nil {
		t.Skip("umoci not installed")
	}
	out, err := exec.Command("umoci", "ls", "--layout", e.Root).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "docker.io/library/bbase:latest" {
		t.Fatalf("umoci ls: %v %s", err, out)
	}
	if os.Geteuid() == 0 {
		bundle := filepath.Join(t.TempDir(), "bundle")
		if out, err := exec.Command("umoci", "unpack", "--image", e.Root+":docker.io/library/bbase:latest", bundle).CombinedOutput(); err != nil {
			t.Fatalf("umoci unpack: %v %s", err, out)
		}
		if fi, err := os.Lstat(filepath.Join(bundle, "rootfs", "bin", "busybox")); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("umoci unpack: bin/busybox: %v", err)
		}
	}
	e.ok("fsck") // reading tools changed nothing we care about
}

// debootstrapCache is where the Debian tree is built once and kept.
const debootstrapCache = "/var/cache/strata-test/debootstrap-bookworm"

// debootstrapTree returns a debootstrap minbase bookworm tree, building it
// (minutes; needs the Debian mirror) when the cache is empty.
func debootstrapTree(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat(filepath.Join(debootstrapCache, "etc", "debian_version")); err == nil && fi.Mode().IsRegular() {
		return debootstrapCache
	}
	requireRoot(t)
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("debootstrap is not installed (scripts/deps.sh installs it)")
	}
	tmp := fmt.Sprintf("%s.tmp-%d", debootstrapCache, os.Getpid())
	os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(debootstrapCache), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("building %s with debootstrap (takes minutes)", debootstrapCache)
	out, err := exec.Command("debootstrap", "--variant=minbase", "bookworm", tmp, "http://deb.debian.org/debian").CombinedOutput()
	if err != nil {
		os.RemoveAll(tmp)
		s := string(out)
		for _, net := range []string{"Failed getting release file", "Temporary failure in name resolution", "Could not resolve", "Connection refused", "Network is unreachable", "unable to fetch"} {
			if strings.Contains(s, net) {
				t.Skipf("debootstrap cannot reach the Debian mirror (no network): %s", fndLastLine(s))
			}
		}
		t.Fatalf("debootstrap: %v\n%s", err, s)
	}
	if err := os.Rename(tmp, debootstrapCache); err != nil {
		os.RemoveAll(tmp)
		// Another run may have finished first: its tree is as good.
		if _, serr := os.Stat(filepath.Join(debootstrapCache, "etc", "debian_version")); serr != nil {
			t.Fatal(err)
		}
	}
	return debootstrapCache
}

func fndLastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

// fndFile is what is compared of one file in a tree.
type fndFile struct {
	Type     string // d f l c b p
	Mode     uint32 // permission bits with setuid, setgid, sticky
	UID, GID int
	Content  string // sha256 of a regular file
	Link     string // symlink target
	Dev      string // major,minor of a device
	Links    string // hardlink group: the smallest name in it, "" alone
}

// fndTreeFromDir describes the tree at dir (as `tar -C dir -c .` would see it).
func fndTreeFromDir(t *testing.T, dir string) map[string]fndFile {
	t.Helper()
	out := map[string]fndFile{}
	inodes := map[uint64][]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st := fi.Sys().(*syscall.Stat_t)
		f := fndFile{Mode: st.Mode & 0o7777, UID: int(st.Uid), GID: int(st.Gid)}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			f.Type = "d"
		case syscall.S_IFREG:
			f.Type = "f"
			f.Content = fndHashFile(t, p)
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		case syscall.S_IFLNK:
			f.Type = "l"
			f.Link, _ = os.Readlink(p)
		case syscall.S_IFCHR, syscall.S_IFBLK:
			f.Type = map[bool]string{true: "c", false: "b"}[st.Mode&syscall.S_IFMT == syscall.S_IFCHR]
			f.Dev = fmt.Sprintf("%d,%d", fndMajor(st.Rdev), fndMinor(st.Rdev))
		case syscall.S_IFIFO:
			f.Type = "p"
		default:
			f.Type = "?"
		}
		out[rel] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, group := range inodes {
		if len(group) < 2 {
			continue
		}
		sort.Strings(group)
		for _, n := range group {
			f := out[n]
			f.Links = group[0]
			out[n] = f
		}
	}
	return out
}

func fndMajor(dev uint64) uint64 { return (dev >> 8) & 0xfff }
func fndMinor(dev uint64) uint64 { return (dev & 0xff) | ((dev >> 12) & 0xfff00) }

func fndHashFile(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// fndTreeFromTar describes the tree a tar stream holds.
func fndTreeFromTar(t *testing.T, r io.Reader) map[string]fndFile {
	t.Helper()
	out := map[string]fndFile{}
	groups := map[string][]string{} // target -> links
	tr := tar.NewReader(r)
	clean := func(n string) string {
		n = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(n, "./"), "/"), "/")
		if n == "" || n == "." {
			return "."
		}
		return n
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n := clean(h.Name)
		if _, dup := out[n]; dup {
			t.Errorf("tar has %s twice", n)
		}
		f := fndFile{Mode: uint32(h.Mode) & 0o7777, UID: h.Uid, GID: h.Gid}
		switch h.Typeflag {
		case tar.TypeDir:
			f.Type = "d"
		case tar.TypeReg:
			f.Type = "f"
			hs := sha256.New()
			io.Copy(hs, tr)
			f.Content = hex.EncodeToString(hs.Sum(nil))
		case tar.TypeLink:
			target := clean(h.Linkname)
			tf, ok := out[target]
			if !ok {
				t.Errorf("hardlink %s -> %s comes before its target", n, target)
			}
			f = tf
			groups[target] = append(groups[target], n)
		case tar.TypeSymlink:
			f.Type, f.Link = "l", h.Linkname
		case tar.TypeChar, tar.TypeBlock:
			f.Type = map[bool]string{true: "c", false: "b"}[h.Typeflag == tar.TypeChar]
			f.Dev = fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor)
		case tar.TypeFifo:
			f.Type = "p"
		default:
			f.Type = "?"
		}
		out[n] = f
	}
	for target, links := range groups {
		group := append([]string{target}, links...)
		sort.Strings(group)
		for _, n := range group {
			f := out[n]
			f.Links = group[0]
			out[n] = f
		}
	}
	return out
}

func fndCompareTrees(t *testing.T, want, got map[string]fndFile) {
	t.Helper()
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	bad := 0
	for _, n := range names {
		w, inWant := want[n]
		g, inGot := got[n]
		switch {
		case !inGot:
			t.Errorf("missing from export: %s", n)
		case !inWant:
			t.Errorf("extra in export: %s", n)
		case w != g:
			t.Errorf("%s differs:\n want %+v\n  got %+v", n, w, g)
		default:
			continue
		}
		if bad++; bad > 20 {
			t.Fatal("too many differences")
		}
	}
}

// TestDebootstrapRoundTrip: a Debian minbase tree imports from a tar pipe
// and exports back exactly: names, types, modes, owners, contents, link
// targets, hardlinks and device numbers.
func TestDebootstrapRoundTrip(t *testing.T) {
	requireRoot(t) // the tree has files only root reads (etc/shadow)
	tree := debootstrapTree(t)
	e := newEnv(t)
	tarFile := filepath.Join(t.TempDir(), "rootfs.tar")
	if out, err := exec.Command("tar", "-C", tree, "-cf", tarFile, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	r := e.fndRunFile(tarFile, "import", "-", "debian:bookworm")
	if r.Code != 0 || !imageIDRe.MatchString(r.Stdout) {
		t.Fatalf("import: exit %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	out := filepath.Join(t.TempDir(), "export.tar")
	e.ok("export", "debian:bookworm", "-o", out)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := fndTreeFromDir(t, tree)
	if len(want) < 1000 {
		t.Fatalf("debootstrap tree has only %d entries", len(want))
	}
	fndCompareTrees(t, want, fndTreeFromTar(t, f))
	if hist := e.ok("history", "debian:bookworm"); !strings.Contains(hist, "Imported from -") {
		t.Errorf("history: %s", hist)
	}
	e.ok("fsck")
}

// TestSaveRefusesTerminal: an archive is never written to (or read from) a
// terminal.
func TestSaveRefusesTerminal(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) is not installed")
	}
	e := withBase(t)
	for cmd, want := range map[string]string{
		"save bbase":   "refusing to write an archive to a terminal; use -o FILE or redirect stdout",
		"export bbase": "refusing to write an archive to a terminal; use -o FILE or redirect stdout",
		"import - x":   "import: refusing to read an archive from a terminal; give a FILE or pipe one in",
		"load":         "load: refusing to read an archive from a terminal; give a FILE or pipe one in",
	} {
		c := exec.Command("script", "-qec", strataBin+" "+cmd, os.DevNull)
		c.Env = append(os.Environ(), "STRATA_ROOT="+e.Root)
		out, err := c.CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) || len(out) > 200 {
			t.Errorf("%s on a terminal: %v\n%q", cmd, err, out)
		}
	}
}

func TestPruneDangling(t *testing.T) {
	e := withBase(t)
	first := fndInspect(t, e, "bbase").Id
	e.ok("import", "-c", "USER 1", baseTar(t), "bbase") // bbase moves; the first image is left <none>
	out := e.ok("prune", "--dangling")
	want := regexp.MustCompile(`^Deleted: ` + first + `\nDeleted 2 blobs and 0 other files\nTotal reclaimed space: \d+B\n$`)
	if !want.MatchString(out) {
		t.Errorf("prune --dangling printed %q", out)
	}
	if out := e.ok("images"); strings.Contains(out, "<none>") {
		t.Errorf("dangling image left:\n%s", out)
	}
	e.ok("fsck")
}
