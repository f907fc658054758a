package snapshot

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-dev/strata/store"
)

// benchTree fills dir with total bytes: a few big files, many mid-size ones
// and a tail of small files, in nested directories.
func benchTree(b *testing.B, dir string, total int64) {
	b.Helper()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i*7 + i>>9)
	}
	var written int64
	write := func(p string, size int64) {
		must2(b, os.MkdirAll(filepath.Dir(p), 0o755))
		f, err := os.Create(p)
		must2(b, err)
		for left := size; left > 0; {
			n := min(left, int64(len(chunk)))
			_, err := f.Write(chunk[:n])
			must2(b, err)
			left -= n
		}
		must2(b, f.Close())
		written += size
	}
	for i := 0; i < 4; i++ {
		write(filepath.Join(dir, "big", fmt.Sprintf("blob%d", i)), total/8)
	}
	for i := 0; written < total-total/16; i++ {
		write(filepath.Join(dir, "mid", fmt.Sprintf("d%02d", i%32), fmt.Sprintf("f%04d", i)), 1<<20)
	}
	for i := 0; written < total; i++ {
		write(filepath.Join(dir, "small", fmt.Sprintf("d%02d", i%64), fmt.Sprintf("s%05d", i)), 4<<10)
	}
}

func must2(b testing.TB, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCommit1GiB commits an upperdir holding 1 GiB into the store
// (tar, sha256 and a durable blob) and runs `tar -c | sha256sum` over the
// same tree (and `tar -c | openssl sha256`, whose sha256 uses the CPU's SHA
// instructions as Go's does, where coreutils' does not); it reports each
// one's time and the ratios (peer time / strata time: >= 1 means strata is
// at least as fast). commit includes the store's fsync of the blob; diff is
// the same tar stream hashed without being stored.
func BenchmarkCommit1GiB(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	const total = 1 << 30
	s, err := store.Open(b.TempDir())
	must2(b, err)
	sn, err := New(s, "overlay")
	must2(b, err)
	if _, err := sn.Prepare(ctx, "bench", nil); err != nil {
		b.Fatal(err)
	}
	upper := filepath.Join(s.Root(), "snapshots", "active", "bench", "upper")
	benchTree(b, upper, total)
	b.SetBytes(total)
	b.ResetTimer()
	var commitT, tarT, diffT, sslT time.Duration
	_, sslErr := exec.LookPath("openssl")
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		l, err := sn.Commit(ctx, "bench")
		must2(b, err)
		commitT += time.Since(t0)
		b.StopTimer()
		h, _ := l.Digest()
		must2(b, os.Remove(s.BlobPath(h)))
		t1 := time.Now()
		out, err := exec.Command("sh", "-c", "tar -C "+upper+" -cf - . | sha256sum").CombinedOutput()
		if err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		tarT += time.Since(t1)
		if sslErr == nil {
			t3 := time.Now()
			out, err := exec.Command("sh", "-c", "tar -C "+upper+" -cf - . | openssl sha256").CombinedOutput()
			if err != nil {
				b.Fatalf("%v: %s", err, out)
			}
			sslT += time.Since(t3)
		}
		t2 := time.Now()
		h256 := sha256.New()
		must2(b, sn.Diff(ctx, "bench", h256))
		diffT += time.Since(t2)
		b.StartTimer()
	}
	b.ReportMetric(float64(commitT.Milliseconds())/float64(b.N), "commit-ms/op")
	b.ReportMetric(float64(tarT.Milliseconds())/float64(b.N), "tar|sha256sum-ms/op")
	b.ReportMetric(float64(diffT.Milliseconds())/float64(b.N), "diff|sha256-ms/op")
	b.ReportMetric(float64(tarT)/float64(commitT), "commit-ratio")
	b.ReportMetric(float64(tarT)/float64(diffT), "diff-ratio")
	if sslErr == nil {
		b.ReportMetric(float64(sslT.Milliseconds())/float64(b.N), "tar|openssl-ms/op")
		b.ReportMetric(float64(sslT)/float64(commitT), "commit-ratio-openssl")
		b.ReportMetric(float64(sslT)/float64(diffT), "diff-ratio-openssl")
	}
}

// BenchmarkUnpack extracts a 256 MiB layer (~3,000 files) with Unpack and
// with `tar -x` (GNU tar, as root: owners, modes, times) and reports both
// times and the ratio (tar time / Unpack time).
func BenchmarkUnpack(b *testing.B) {
	requireRoot(b)
	src := b.TempDir()
	benchTree(b, src, 256<<20)
	layer := filepath.Join(b.TempDir(), "layer.tar")
	if out, err := exec.Command("tar", "-C", src, "-cf", layer, ".").CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	ctx := context.Background()
	work := b.TempDir()
	b.SetBytes(256 << 20)
	b.ResetTimer()
	var unpackT, tarT time.Duration
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(work, fmt.Sprint("u", i))
		must2(b, os.Mkdir(dst, 0o755))
		f, err := os.Open(layer)
		must2(b, err)
		t0 := time.Now()
		must2(b, Unpack(ctx, f, dst, UnpackOptions{Devices: true}))
		unpackT += time.Since(t0)
		f.Close()
		b.StopTimer()
		tdst := filepath.Join(work, fmt.Sprint("t", i))
		must2(b, os.Mkdir(tdst, 0o755))
		t1 := time.Now()
		if out, err := exec.Command("tar", "-C", tdst, "-xpf", layer).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		tarT += time.Since(t1)
		must2(b, os.RemoveAll(dst))
		must2(b, os.RemoveAll(tdst))
		b.StartTimer()
	}
	b.ReportMetric(float64(unpackT.Milliseconds())/float64(b.N), "unpack-ms/op")
	b.ReportMetric(float64(tarT.Milliseconds())/float64(b.N), "tar-x-ms/op")
	b.ReportMetric(float64(tarT)/float64(unpackT), "speed-ratio")
}

// BenchmarkCommitSmallFiles commits (CommitRemoveAsync, as a build's RUN
// does) an upper directory of 2,000 four-byte files: the cost a RUN that
// writes many small files pays after its command.
func BenchmarkCommitSmallFiles(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	s, err := store.Open(b.TempDir())
	must2(b, err)
	sn, err := New(s, "overlay", WithSystemMountpoints(), WithProcessOwned())
	must2(b, err)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		key := fmt.Sprint("small", i)
		if _, err := sn.Prepare(ctx, key, nil); err != nil {
			b.Fatal(err)
		}
		out := filepath.Join(s.Root(), "snapshots", "active", key, "upper", "out")
		must2(b, os.Mkdir(out, 0o755))
		for j := 0; j < 2000; j++ {
			must2(b, os.WriteFile(filepath.Join(out, fmt.Sprint("a", j)), []byte(fmt.Sprint(i, j, "\n")), 0o644))
		}
		b.StartTimer()
		p, err := sn.CommitRemoveAsync(ctx, key)
		must2(b, err)
		must2(b, p.Stored())
	}
}
