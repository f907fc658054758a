package store

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// benchTar is a 64 MiB rootfs-like tar: 256 files of half-compressible data.
func benchTar(b *testing.B) []byte {
	b.Helper()
	rng := rand.New(rand.NewSource(1))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := make([]byte, 256<<10)
	for i := 0; i < 256; i++ {
		rng.Read(data[:len(data)/2])
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/lib/f%03d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))})
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes()
}

func BenchmarkImport(b *testing.B) {
	in := benchTar(b)
	b.SetBytes(int64(len(in)))
	for i := 0; i < b.N; i++ {
		s := openTemp(b)
		if _, err := s.Import(context.Background(), bytes.NewReader(in), ImportOptions{Names: []string{"x"}}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompressedImage(b *testing.B) {
	in := benchTar(b)
	for _, algo := range []string{Gzip, Zstd} {
		b.Run(algo, func(b *testing.B) {
			s := openTemp(b)
			rec, err := s.Import(context.Background(), bytes.NewReader(in), ImportOptions{Names: []string{"x"}})
			if err != nil {
				b.Fatal(err)
			}
			img, _ := s.ImageByDigest(rec.Digest)
			b.SetBytes(int64(len(in)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Forget the cached copy so every round compresses.
				os.RemoveAll(filepath.Join(s.Root(), "compressed"))
				if _, err := s.CompressedImage(context.Background(), img, algo); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFlatten(b *testing.B) {
	in := benchTar(b)
	s := openTemp(b)
	rec, err := s.Import(context.Background(), bytes.NewReader(in), ImportOptions{Names: []string{"x"}})
	if err != nil {
		b.Fatal(err)
	}
	img, _ := s.ImageByDigest(rec.Digest)
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Flatten(context.Background(), img, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
