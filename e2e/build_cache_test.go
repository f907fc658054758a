package e2e

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var bldStepRe = regexp.MustCompile(`^#(\d+) (\[[^\]]*\] (?:RUN|COPY|ADD|WORKDIR).*)$`)

// bldSteps builds and returns, in order, each step's name and whether it was
// CACHED ("C") or ran ("R").
func bldSteps(t *testing.T, e *env, args ...string) []string {
	t.Helper()
	r := e.run(append([]string{"build", "--progress", "plain"}, args...)...)
	if r.Code != 0 {
		t.Fatalf("build failed:\n%s", r.Stderr)
	}
	names := map[string]string{}
	var order []string
	status := map[string]string{}
	for _, l := range strings.Split(r.Stderr, "\n") {
		if m := bldStepRe.FindStringSubmatch(l); m != nil {
			// "[a 2/3] RUN ..." -> "a RUN ..." (drop the counters)
			name := regexp.MustCompile(`\s*\d+/\d+\]`).ReplaceAllString(m[2], "]")
			names[m[1]] = name
			order = append(order, m[1])
			continue
		}
		f := strings.Fields(l)
		if len(f) >= 2 && strings.HasPrefix(f[0], "#") {
			id := strings.TrimPrefix(f[0], "#")
			switch f[1] {
			case "CACHED":
				status[id] = "C"
			case "DONE":
				status[id] = "R"
			}
		}
	}
	var out []string
	for _, id := range order {
		out = append(out, status[id]+" "+names[id])
	}
	// parallel stages finish in any order: sort by step name
	sort.SliceStable(out, func(i, j int) bool { return out[i][2:] < out[j][2:] })
	return out
}

func TestBuildCacheInvalidation(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	df := `FROM bbase AS a
RUN echo a > /a
FROM bbase AS b
ARG ONLY_B
RUN echo "b $ONLY_B" > /b
FROM bbase
COPY --from=a /a /a
COPY --from=b /b /b
COPY one.txt /one.txt
RUN cat /one.txt > /copy1
COPY two/ /two/
RUN ls /two > /list
`
	ctx := bldContext(t, map[string]string{"Dockerfile": df, "one.txt": "1", "two/f": "F", "two/ignored.log": "L", ".dockerignore": "**/*.log\n"})
	build := func() []string { return bldSteps(t, e, "-t", "cache", "--build-arg", "ONLY_B=x", ctx) }
	first := build()
	for _, s := range first {
		if !strings.HasPrefix(s, "R ") {
			t.Fatalf("cold build: %q did not run", s)
		}
	}
	all := func(st string) []string {
		var out []string
		for _, s := range first {
			out = append(out, st+s[1:])
		}
		return out
	}
	check := func(what string, got, want []string) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %q\n want %q", what, got, want)
		}
	}
	check("rebuild", build(), all("C"))

	// touching a file (mtime only) is a hit
	future := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(ctx, "one.txt"), future, future)
	check("touch", build(), all("C"))

	// editing a file excluded by .dockerignore is a full hit
	os.WriteFile(filepath.Join(ctx, "two/ignored.log"), []byte("changed"), 0o644)
	check("ignored edit", build(), all("C"))

	// editing one file reruns the steps from the first COPY that includes it
	os.WriteFile(filepath.Join(ctx, "two/f"), []byte("F2"), 0o644)
	want := all("C")
	for i := range want {
		if strings.Contains(want[i], "two") {
			want[i] = "R" + want[i][1:]
		}
	}
	check("edit two/f", build(), want)

	// changing a copied file's mode is a miss
	os.Chmod(filepath.Join(ctx, "one.txt"), 0o600)
	want = all("C")
	for i := range want {
		if strings.Contains(want[i], "one.txt") || strings.Contains(want[i], "two") {
			want[i] = "R" + want[i][1:]
		}
	}
	check("chmod one.txt", build(), want)

	// a build arg used only in stage b keeps stage a cached
	got := bldSteps(t, e, "-t", "cache", "--build-arg", "ONLY_B=y", ctx)
	want = all("C")
	for i := 1; i < len(want); i++ {
		if !strings.Contains(want[i], "COPY --from=a") {
			want[i] = "R" + want[i][1:]
		}
	}
	check("ONLY_B=y", got, want)

	// --no-cache runs everything
	check("--no-cache", bldSteps(t, e, "-t", "cache", "--no-cache", "--build-arg", "ONLY_B=y", ctx), all("R"))

	// undeclared proxy build args reach RUN but not its cache key, as in
	// BuildKit: a build behind a proxy shares the cache of one without
	check("HTTP_PROXY", bldSteps(t, e, "-t", "cache", "--build-arg", "ONLY_B=y", "--build-arg", "HTTP_PROXY=http://proxy.invalid:3128", ctx), all("C"))
}

func TestBuildCacheDamaged(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	ctx := bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nRUN echo hi > /hi\n"})
	_, cfg := bldBuild(t, e, ctx, "dmg")
	layer := cfg.RootFS.DiffIDs[len(cfg.RootFS.DiffIDs)-1]
	e.ok("rmi", "dmg")
	p := filepath.Join(e.Root, "blobs", "sha256", strings.TrimPrefix(layer, "sha256:"))
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := bldSteps(t, e, "-t", "dmg", ctx)
	if len(steps) != 1 || !strings.HasPrefix(steps[0], "R ") {
		t.Fatalf("damaged cache entry was used: %q", steps)
	}
	tree, _ := bldBuild(t, e, ctx, "dmg")
	bldCheckTree(t, tree, []bldFile{reg("/hi", 0o644, "hi\n")})
}

func TestBuildReproducible(t *testing.T) {
	requireRoot(t)
	ctx := bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nCOPY a /a\nRUN echo x > /x\nWORKDIR /w\nENV E=1\n", "a": "A"})
	var ids []string
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	for i := 0; i < 2; i++ {
		e := withBase(t)
		iid := filepath.Join(t.TempDir(), "iid")
		e.ok("build", "-q", "--iidfile", iid, ctx)
		b, _ := os.ReadFile(iid)
		ids = append(ids, string(b))
	}
	if ids[0] != ids[1] || ids[0] == "" {
		t.Errorf("SOURCE_DATE_EPOCH builds in fresh roots differ: %q", ids)
	}
}

// Two fresh roots: the second uses the first's exported cache, runs no
// step, and produces the same image.
func TestBuildRemoteCache(t *testing.T) {
	requireRoot(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000") // the same bbase in both roots
	reg := startRegistry(t, regAnonymous)
	ctx := bldContext(t, map[string]string{"Dockerfile": "FROM bbase AS a\nRUN echo a > /a\nFROM bbase\nCOPY f /f\nRUN cat /f > /g\nCOPY --from=a /a /a\n", "f": "F"})
	dir := filepath.Join(t.TempDir(), "cache")
	for _, c := range []struct{ to, from string }{
		{"type=local,dest=" + dir + ",mode=max", "type=local,src=" + dir},
		{"type=registry,ref=" + reg.Host + "/cache/app:buildcache,mode=max", "type=registry,ref=" + reg.Host + "/cache/app:buildcache"},
	} {
		e1, e2 := withBase(t), withBase(t)
		iid1, iid2 := filepath.Join(t.TempDir(), "1"), filepath.Join(t.TempDir(), "2")
		e1.ok("build", "-q", "--iidfile", iid1, "--cache-to", c.to, ctx)
		steps := bldSteps(t, e2, "--iidfile", iid2, "--cache-from", c.from, ctx)
		if len(steps) != 4 {
			t.Errorf("steps: %q", steps)
		}
		for _, s := range steps {
			if !strings.HasPrefix(s, "C ") {
				t.Errorf("%s: step ran in the second root: %q", c.from, s)
			}
		}
		a, _ := os.ReadFile(iid1)
		b, _ := os.ReadFile(iid2)
		if string(a) != string(b) || len(a) == 0 {
			t.Errorf("%s: image IDs differ: %s vs %s", c.from, a, b)
		}
		tree, _ := bldBuild(t, e2, ctx, "remote")
		bldCheckTree(t, tree, []bldFile{reg0("/g", "F"), reg0("/a", "a\n")})
	}

	// A build that needs one cached layer of a registry cache downloads that
	// one: the cache image is read, not pulled (nor stored).
	proxy := startFaultProxy(t, reg.Host)
	e3 := withBase(t)
	steps := bldSteps(t, e3, "--target", "a", "--cache-from", "type=registry,ref="+proxy.Host+"/cache/app:buildcache", ctx)
	if len(steps) != 1 || !strings.HasPrefix(steps[0], "C ") {
		t.Errorf("--target a from the registry cache: %q", steps)
	}
	var blobs []string
	for _, r := range proxy.requests() {
		if strings.HasPrefix(r, "GET ") && strings.Contains(r, "/blobs/") {
			blobs = append(blobs, r)
		}
	}
	if len(blobs) != 2 { // the cache's config and stage a's layer
		t.Errorf("blobs fetched for one cached step: %q, want the config and one layer", blobs)
	}
	if out := e3.ok("images", "-q"); len(strings.Fields(out)) != 2 { // bbase and the result
		t.Errorf("images after a registry cache import: %q", out)
	}
}

// <Dockerfile>.dockerignore beside a Dockerfile given with -f wins over the
// context's .dockerignore; --no-cache-filter reruns one stage only.
func TestBuildDockerfileIgnoreAndNoCacheFilter(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	ctx := bldContext(t, map[string]string{
		"app.Dockerfile":              "FROM bbase AS one\nRUN echo 1 > /1\nFROM bbase AS two\nRUN cat /proc/sys/kernel/random/uuid > /2\nFROM scratch\nCOPY --from=one /1 /1\nCOPY --from=two /2 /2\nCOPY . /ctx/\n",
		"app.Dockerfile.dockerignore": "b.txt\n",
		".dockerignore":               "a.txt\n",
		"a.txt":                       "A", "b.txt": "B",
	})
	df := filepath.Join(ctx, "app.Dockerfile")
	tree, _ := bldBuild(t, e, ctx, "ign", "-f", df)
	bldCheckTree(t, tree, []bldFile{reg("/ctx/a.txt", 0o644, "A"), absent("/ctx/b.txt")})
	steps := bldSteps(t, e, "-f", df, "--no-cache-filter", "two", ctx)
	want := []string{"C [one] RUN echo 1 > /1", "C [stage-2] COPY --from=one /1 /1", "R [stage-2] COPY --from=two /2 /2", "R [stage-2] COPY . /ctx/", "R [two] RUN cat /proc/sys/kernel/random/uuid > /2"}
	if !reflect.DeepEqual(steps, want) {
		t.Errorf("--no-cache-filter two:\n got  %q\n want %q", steps, want)
	}
}

// strata builder prune drops cache entries and lets the store free their
// layers; the next build runs its steps again.
func TestBuildCachePrune(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	ctx := bldContext(t, map[string]string{"Dockerfile": "FROM bbase\nRUN head -c 100000 /dev/urandom > /r\n"})
	iid := filepath.Join(t.TempDir(), "iid")
	e.ok("build", "-q", "--iidfile", iid, ctx)
	cfg := bldReadConfig(t, e, iid)
	layer := filepath.Join(e.Root, "blobs", "sha256", strings.TrimPrefix(cfg.RootFS.DiffIDs[1], "sha256:"))
	// the image still holds the layer: pruning the cache keeps it
	out := e.ok("builder", "prune", "--filter", "until=1000h")
	if !strings.Contains(out, "Removed 0 cache entries (1 kept)") {
		t.Errorf("prune until=1000h: %q", out)
	}
	out = e.ok("builder", "prune", "--all")
	if !strings.Contains(out, "Removed 1 cache entries (0 kept)") {
		t.Errorf("prune --all: %q", out)
	}
	if _, err := os.Stat(layer); err != nil {
		t.Errorf("a layer an image uses was pruned: %v", err)
	}
	if steps := bldSteps(t, e, ctx); len(steps) != 1 || !strings.HasPrefix(steps[0], "R ") {
		t.Errorf("after prune: %q", steps)
	}
	// untagged images and their layers go with store prune; the cache pin
	// alone kept the new layer, and --keep-storage 0 drops it
	e.ok("builder", "prune", "--keep-storage", "0")
	e.ok("prune", "--dangling")
	if ents, _ := os.ReadDir(filepath.Join(e.Root, "cache", "index")); len(ents) > 0 {
		if files, _ := os.ReadDir(filepath.Join(e.Root, "cache", "index", ents[0].Name())); len(files) > 0 {
			t.Errorf("cache entries left after --keep-storage 0")
		}
	}
}
