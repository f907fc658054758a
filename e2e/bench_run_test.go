package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Container benchmarks (numbers for the record, never asserted):
//
//	go test ./e2e -run '^$' -bench 'BenchmarkRunTrue' -benchtime 30x   (and its docker peer)
//	go test ./e2e -run '^$' -bench 'BenchmarkCommit1GiB' -benchtime 3x

// benchRoot makes a fresh store holding the busybox base as bbase.
func benchRoot(b *testing.B) string {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	var shared string
	for _, p := range []string{"../../shared", "../shared"} {
		if _, err := os.Stat(filepath.Join(p, "bench", "make-base.sh")); err == nil {
			shared = p
		}
	}
	if shared == "" {
		b.Skip("../shared not found")
	}
	dir := b.TempDir()
	tarball := filepath.Join(dir, "base.tar")
	if out, err := exec.Command("bash", filepath.Join(shared, "bench", "make-base.sh"), tarball).CombinedOutput(); err != nil {
		b.Fatalf("make-base.sh: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "root")
	benchStrata(b, root, "import", tarball, "bbase")
	return root
}

func benchStrata(b *testing.B, root string, args ...string) string {
	b.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = append(os.Environ(), "STRATA_ROOT="+root)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		b.Fatalf("strata %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkRunTrue times `strata run --rm bbase true`, start to exit.
func BenchmarkRunTrue(b *testing.B) {
	root := benchRoot(b)
	benchStrata(b, root, "run", "--rm", "bbase", "true") // unpack the layer once
	var ds []time.Duration
	for b.Loop() {
		t0 := time.Now()
		benchStrata(b, root, "run", "--rm", "bbase", "true")
		ds = append(ds, time.Since(t0))
	}
	b.ReportMetric(float64(median(ds).Microseconds())/1000, "ms/median")
}

// BenchmarkRunTrueDocker is the peer: `docker run --rm --network none IMG
// true` on the same busybox base, when a dockerd is reachable.
func BenchmarkRunTrueDocker(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").Run() != nil {
		b.Skip("no dockerd")
	}
	root := benchRoot(b)
	tarball := filepath.Join(filepath.Dir(root), "base.tar")
	const img = "strata-bench-bbase:latest"
	if out, err := exec.Command("docker", "import", tarball, img).CombinedOutput(); err != nil {
		b.Fatalf("docker import: %v %s", err, out)
	}
	defer exec.Command("docker", "rmi", "-f", img).Run()
	run := func() {
		if out, err := exec.Command("docker", "run", "--rm", "--network", "none", img, "true").CombinedOutput(); err != nil {
			b.Fatalf("docker run: %v %s", err, out)
		}
	}
	run()
	var ds []time.Duration
	for b.Loop() {
		t0 := time.Now()
		run()
		ds = append(ds, time.Since(t0))
	}
	b.ReportMetric(float64(median(ds).Microseconds())/1000, "ms/median")
}

// BenchmarkCommit1GiB commits a container whose upperdir holds 1 GiB (one
// 512 MiB file and 512 files of 1 MiB, random data) and times, in the same
// loop, `tar -c upperdir | sha256sum` over the same tree. Each commit
// stores its layer for real (the previous one is removed between runs).
func BenchmarkCommit1GiB(b *testing.B) {
	root := benchRoot(b)
	benchStrata(b, root, "run", "--name", "big", "bbase", "sh", "-c",
		`mkdir /data && dd if=/dev/urandom of=/data/big bs=1M count=512 2>/dev/null && for i in $(seq 512); do dd if=/dev/urandom of=/data/f$i bs=1M count=1 2>/dev/null; done`)
	uppers, _ := filepath.Glob(filepath.Join(root, "snapshots", "active", "*", "upper"))
	if len(uppers) != 1 {
		b.Fatalf("upper directories: %q", uppers)
	}
	tarSum := exec.Command("sh", "-c", fmt.Sprintf("tar -c -C %s . | sha256sum", uppers[0]))
	if out, err := tarSum.CombinedOutput(); err != nil { // warms the page cache for both
		b.Fatalf("tar: %v %s", err, out)
	}
	var commit, tar []time.Duration
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		benchStrata(b, root, "commit", "big", fmt.Sprintf("big:%d", i))
		commit = append(commit, time.Since(t0))
		t0 = time.Now()
		if out, err := exec.Command("sh", "-c", fmt.Sprintf("tar -c -C %s . | sha256sum", uppers[0])).CombinedOutput(); err != nil {
			b.Fatalf("tar: %v %s", err, out)
		}
		tar = append(tar, time.Since(t0))
		// Drop the committed layer, so that every commit stores it anew.
		benchStrata(b, root, "rmi", fmt.Sprintf("big:%d", i))
		benchStrata(b, root, "prune")
	}
	const gib = 1 << 30
	b.ReportMetric(gib/median(commit).Seconds()/1e6, "commit-MB/s")
	b.ReportMetric(gib/median(tar).Seconds()/1e6, "tar-sha256-MB/s")
	b.ReportMetric(median(tar).Seconds()/median(commit).Seconds(), "speed-vs-tar")
}
