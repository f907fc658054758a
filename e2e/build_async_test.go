package e2e

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A RUN layer of 16 MiB or more has its blob written in the background
// while the next steps run (snapshot.CommitRemoveAsync). These builds use
// such layers in every way a later step can: a RUN over them, COPY --from
// of their files, the image, the cache.
const bigRunDockerfile = `FROM bbase AS gen
RUN dd if=/dev/zero of=/big bs=1M count=24 2>/dev/null && echo one > /one && mkdir /d && echo x > /d/x
RUN wc -c < /big > /size && rm /one && rm -r /d
FROM bbase
COPY --from=gen /size /big /
RUN cat /size /size > /twice
`

func TestBuildBigRunLayers(t *testing.T) {
	requireRoot(t)
	e := withBase(t)
	ctx := bldContext(t, map[string]string{"Dockerfile": bigRunDockerfile})
	const size = 24 << 20
	check := func(tree map[string]bldFile) {
		t.Helper()
		bldCheckTree(t, tree, []bldFile{
			reg("/size", 0o644, fmt.Sprintf("%d\n", size)),
			reg("/twice", 0o644, fmt.Sprintf("%d\n%d\n", size, size)),
			absent("/one"),
			absent("/d"),
		})
		if b := tree["/big"]; len(b.Content) != size || strings.Trim(b.Content, "\x00") != "" {
			t.Errorf("/big: %d bytes, want %d zero bytes", len(b.Content), size)
		}
	}
	tree, _ := bldBuild(t, e, ctx, "big:1")
	check(tree)
	e.ok("fsck")
	bldNoLeftovers(t, e)
	// the intermediate stage's layers were cached once stored
	r := e.run("build", "--progress", "plain", "-t", "big:2", "--target", "gen", ctx)
	if n := strings.Count(r.Stderr, "CACHED"); r.Code != 0 || n != 2 {
		t.Errorf("rebuilding the first stage: exit %d, %d steps cached, want 2:\n%s", r.Code, n, r.Stderr)
	}
	if got := e.ok("run", "--rm", "big:2", "cat", "/size"); got != fmt.Sprintf("%d\n", size) {
		t.Errorf("run big:2 cat /size = %q", got)
	}
	tree, _ = bldBuild(t, e, ctx, "big:1")
	check(tree)
	e.ok("fsck")
}

// TestCrashBuildBigRunLayers: a build killed at any moment, a background
// blob write included, leaves the store consistent, no tag pointing at a
// half-built image, and the same build works afterwards.
func TestCrashBuildBigRunLayers(t *testing.T) {
	requireRoot(t)
	seed := crashSeed(t)
	t.Logf("seed %d (STRATA_CRASH_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	e := withBase(t)
	ctx := bldContext(t, map[string]string{"Dockerfile": bigRunDockerfile})
	start := time.Now()
	e.ok("build", "-q", "--no-cache", "-t", "calib", ctx)
	full := time.Since(start)
	e.ok("rmi", "calib")
	e.ok("prune")
	const iterations = 10
	kills := 0
	for i := 0; i < iterations; i++ {
		d := time.Duration(rng.Int63n(int64(full) + 1))
		name := fmt.Sprintf("crash:%d", i)
		if !e.killAfter(t, d, "", "build", "-q", "--no-cache", "-t", name, ctx) {
			kills++
			fndCheckConsistent(t, e, name, "build", i, d)
		}
		e.ok("prune")
		e.ok("fsck")
		if ents, _ := os.ReadDir(filepath.Join(e.Root, "snapshots", "active")); len(ents) > 0 {
			t.Errorf("iteration %d: active snapshots left after prune: %d", i, len(ents))
		}
	}
	t.Logf("%d of %d builds killed (undisturbed: %v)", kills, iterations, full)
	e.ok("build", "-q", "-t", "after", ctx)
	if got := e.ok("run", "--rm", "after", "cat", "/twice"); got != fmt.Sprintf("%d\n%d\n", 24<<20, 24<<20) {
		t.Errorf("after the crashes: /twice = %q", got)
	}
	e.ok("fsck")
	bldNoLeftovers(t, e)
}
