package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// strata prune --cache bounds the build cache: entries within --keep-storage
// stay (the rebuild is CACHED), a plain --cache removes them (the step reruns),
// and --layers drops unpacked trees without breaking later runs.
func TestPruneCache(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	ctx := t.TempDir()
	df := "FROM bbase\nRUN echo one > /one\n"
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	build := func() string {
		t.Helper()
		r := e.run("build", "--progress", "plain", "-t", "p", ctx)
		if r.Code != 0 {
			t.Fatalf("build: exit %d: %s", r.Code, r.Stderr)
		}
		return r.Stderr + r.Stdout
	}
	cached := func(out string) bool { return strings.Contains(out, "CACHED") }

	if out := build(); cached(out) {
		t.Fatalf("first build reported CACHED:\n%s", out)
	}
	e.ok("prune", "--cache", "--keep-storage", "1GB")
	if out := build(); !cached(out) {
		t.Fatalf("cache within --keep-storage was pruned:\n%s", out)
	}
	e.ok("prune", "--cache", "--filter", "until=1h")
	if out := build(); !cached(out) {
		t.Fatalf("recently used cache was pruned by until=1h:\n%s", out)
	}
	out := e.ok("prune", "--cache", "--layers")
	if !strings.Contains(out, "Removed 1 build cache entries") {
		t.Fatalf("prune --cache output: %q", out)
	}
	if out := build(); cached(out) {
		t.Fatalf("rebuild after prune --cache still CACHED:\n%s", out)
	}
	if got := e.ok("run", "--rm", "p", "cat", "/one"); got != "one\n" {
		t.Fatalf("run after prune --layers: %q", got)
	}
	e.fails("--keep-storage and --filter go with --cache", "prune", "--keep-storage", "1GB")
	e.fails(`--filter "since=1h": want until=DURATION`, "prune", "--cache", "--filter", "since=1h")
	e.ok("fsck")
}
