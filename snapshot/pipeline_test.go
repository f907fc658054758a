package snapshot

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"
)

func TestPipelinedWriter(t *testing.T) {
	var want, got bytes.Buffer
	p := newPipelinedWriter(&got)
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 300; i++ {
		n := r.Intn(3 << 19)
		if r.Intn(2) == 0 {
			b := make([]byte, n)
			fill(b, i)
			want.Write(b)
			if _, err := p.Write(b); err != nil {
				t.Fatal(err)
			}
			continue
		}
		buf := p.Buffer()
		if n > len(buf) {
			n = len(buf)
		}
		fill(buf[:n], i)
		want.Write(buf[:n])
		if _, err := p.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want.Bytes(), got.Bytes()) {
		t.Fatalf("output differs (%d vs %d bytes)", got.Len(), want.Len())
	}
}

type failWriter struct{}

var errBoom = errors.New("boom")

func (failWriter) Write(b []byte) (int, error) { return 0, errBoom }

func TestPipelinedWriterError(t *testing.T) {
	p := newPipelinedWriter(failWriter{})
	b := make([]byte, 1<<20)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = p.Write(b)
	}
	if cerr := p.Close(); !errors.Is(cerr, errBoom) {
		t.Fatalf("Close: %v, want boom", cerr)
	}
}

func fill(b []byte, seed int) {
	for i := range b {
		b[i] = byte(i*31 + seed)
	}
}
