package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBuildCacheEditRebuild edits a COPY's sources in many ways and, after
// each edit, requires the rebuild (which starts from the layer the same
// COPY produced before: content of unchanged files, its unpacked
// directory) to give exactly the image a build in a fresh root gives: the
// same COPY layer bytes, and a RUN over it that sees the same tree (names,
// modes, owners, times, sizes, contents). The previous COPY layer's
// unpacked directory is taken over rather than the new layer extracted.
func TestBuildCacheEditRebuild(t *testing.T) {
	requireRoot(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000") // the same bbase and RUN layers in every root
	files := map[string]string{
		"Dockerfile": "FROM bbase\nCOPY src /src\n" +
			"RUN find /src | sort | xargs stat -c '%n %F %a %u:%g %Y %s %h' > /list && find /src -type f | sort | xargs md5sum > /sums\n",
	}
	for d := 0; d < 4; d++ {
		for f := 0; f < 10; f++ {
			files[fmt.Sprintf("src/d%d/f%d", d, f)] = fmt.Sprintf("file %d of %d\n", f, d)
		}
	}
	ctx := bldContext(t, files)
	src := func(p string) string { return filepath.Join(ctx, "src", p) }
	e := withBase(t)
	old := time.Unix(1600000000, 0)
	// every source gets a fixed time: the fresh builds copy the same ones
	filepath.Walk(filepath.Join(ctx, "src"), func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, old, old) })

	write := func(p, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(src(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(src(p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	later := old.Add(time.Hour)
	edits := []struct {
		name string
		do   func()
	}{
		{"edit one file", func() { write("d1/f3", "edited, longer than before\n") }},
		{"mode only", func() { must(os.Chmod(src("d2/f4"), 0o600)) }},
		{"time of one, content of another", func() {
			must(os.Chtimes(src("d0/f0"), later, later))
			write("d3/f9", "edited\n")
		}},
		{"delete a file", func() { must(os.Remove(src("d0/f5"))) }},
		{"add a file and a directory", func() { write("d1/new", "new\n"); write("d4/sub/x", "x\n") }},
		{"a directory becomes a file", func() { must(os.RemoveAll(src("d4"))); write("d4", "now a file\n") }},
		{"a file becomes a directory", func() { must(os.Remove(src("d0/f1"))); write("d0/f1/inner", "inner\n") }},
		{"a hard link added", func() { must(os.Link(src("d3/f0"), src("d3/hl"))) }},
		{"a hard-linked file edited", func() { write("d3/f0", "both names see this\n") }},
	}
	// rebuild edits and checks the result against a fresh root's build;
	// inUse: a container of the image before the edit exists, so the
	// previous COPY layer's directory must stay as it is
	rebuild := func(name string, do func(), inUse bool) {
		t.Helper()
		_, cfgBefore := bldBuild(t, e, ctx, "edit")
		prevDir := filepath.Join(e.Root, "snapshots", "layers", chainID(cfgBefore.RootFS.DiffIDs[:2]))
		var before []byte
		if inUse {
			e.ok("create", "--name", "holder", "edit", "cat", "/src/d1/f3")
			var err error
			if before, err = exec.Command("sh", "-c", "cd "+prevDir+" && find . | sort | xargs stat -c '%n %a %Y %s %i'").Output(); err != nil {
				t.Fatal(err)
			}
		}
		do()
		tree, cfg := bldBuild(t, e, ctx, "edit")

		fresh := withBase(t)
		freshTree, freshCfg := bldBuild(t, fresh, ctx, "edit")
		if strings.Join(cfg.RootFS.DiffIDs, " ") != strings.Join(freshCfg.RootFS.DiffIDs, " ") {
			t.Errorf("%s: layers differ from a fresh build's:\n rebuilt %q\n fresh   %q", name, cfg.RootFS.DiffIDs, freshCfg.RootFS.DiffIDs)
		}
		for _, p := range []string{"/list", "/sums"} {
			if tree[p] != freshTree[p] {
				t.Errorf("%s: %s differs:\n rebuilt %+v\n fresh   %+v", name, p, tree[p], freshTree[p])
			}
		}
		// the COPY reran (its layer changed) and the RUN over it saw it
		if cfg.RootFS.DiffIDs[1] == cfgBefore.RootFS.DiffIDs[1] {
			t.Errorf("%s: the COPY layer did not change", name)
		}
		newDir := filepath.Join(e.Root, "snapshots", "layers", chainID(cfg.RootFS.DiffIDs[:2]))
		if _, err := os.Stat(newDir); err != nil {
			t.Errorf("%s: the new COPY layer is not unpacked: %v", name, err)
		}
		if !inUse {
			// the previous COPY layer's unpacked directory became the new one's
			if _, err := os.Stat(prevDir); err == nil {
				t.Errorf("%s: the previous COPY layer's directory was not taken over", name)
			}
			return
		}
		after, err := exec.Command("sh", "-c", "cd "+prevDir+" && find . | sort | xargs stat -c '%n %a %Y %s %i'").Output()
		if err != nil || string(after) != string(before) {
			t.Errorf("%s: a layer directory in use changed (%v)", name, err)
		}
		if out := e.ok("start", "-a", "holder"); out != "edited, longer than before\n" {
			t.Errorf("%s: the container of the previous image reads %q", name, out)
		}
		e.ok("rm", "holder")
	}
	for _, ed := range edits {
		rebuild(ed.name, ed.do, false)
	}
	rebuild("edit while a container uses the layer", func() { write("d2/f2", "edited again\n") }, true)
}

// chainID is the OCI chain ID of diffIDs, as a hex string.
func chainID(diffIDs []string) string {
	id := diffIDs[0]
	for _, d := range diffIDs[1:] {
		s := sha256.Sum256([]byte(id + " " + d))
		id = "sha256:" + hex.EncodeToString(s[:])
	}
	return strings.TrimPrefix(id, "sha256:")
}
