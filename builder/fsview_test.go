package builder

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPosReader reads a tar of entries around the buffer's and the tar
// block's sizes through posReader, as fsView.add does, and checks that the
// offset it reports for each entry is where that entry's content lies.
// Some entries' content is read through archive/tar (buffered reads),
// others skipped (seeks within and beyond the buffer).
func TestPosReader(t *testing.T) {
	sizes := []int64{0, 1, 511, 512, 513, 3, 65535, 65536, 65537, 7, 200000, 1 << 20, 2}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	want := map[string][]byte{}
	for i, size := range sizes {
		name := fmt.Sprintf("f%02d", i)
		if i%4 == 3 {
			name += "/" + strings.Repeat("long", 40) // a PAX header first
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(j*7 + i)
		}
		want[name] = data
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "layer.tar")
	if err := os.WriteFile(p, tb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, readEvery := range []int{0, 1, 2, 3} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		pr := newPosReader(f)
		tr := tar.NewReader(pr)
		seen := 0
		for i := 0; ; i++ {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			seen++
			got := make([]byte, h.Size)
			if _, err := f.ReadAt(got, pr.pos); err != nil && !(errors.Is(err, io.EOF) && h.Size == 0) {
				t.Fatalf("%s: reading at %d: %v", h.Name, pr.pos, err)
			}
			if !bytes.Equal(got, want[h.Name]) {
				t.Fatalf("readEvery %d: %s: the content at the reported offset %d differs", readEvery, h.Name, pr.pos)
			}
			if readEvery > 0 && i%readEvery == 0 {
				b, err := io.ReadAll(tr)
				if err != nil || !bytes.Equal(b, want[h.Name]) {
					t.Fatalf("readEvery %d: %s: read through tar: %v, equal %v", readEvery, h.Name, err, bytes.Equal(b, want[h.Name]))
				}
			}
		}
		f.Close()
		if seen != len(sizes) {
			t.Fatalf("readEvery %d: %d entries, want %d", readEvery, seen, len(sizes))
		}
	}
}
