package snapshot

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"
)

// TestPipelinedWriter runs several pipelines in turn, so that later ones
// reuse the pooled buffers of earlier ones.
func TestPipelinedWriter(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		pipelineRound(t, seed)
	}
}

func pipelineRound(t *testing.T, seed int64) {
	var want, got bytes.Buffer
	p := newPipelinedWriter(&got)
	r := rand.New(rand.NewSource(seed))
	for i := 0; i < 100; i++ { // ~75 MB: many times the pipeline's buffers
		n := r.Intn(3 << 19)
		if r.Intn(2) == 0 {
			b := make([]byte, n)
			fill(b, i+int(seed))
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
		fill(buf[:n], i+int(seed))
		want.Write(buf[:n])
		if _, err := p.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if p.bufs > pipeBufs {
		t.Errorf("the pipeline held %d buffers, want at most %d", p.bufs, pipeBufs)
	}
	if !bytes.Equal(want.Bytes(), got.Bytes()) {
		t.Fatalf("seed %d: output differs (%d vs %d bytes)", seed, got.Len(), want.Len())
	}
	if _, err := p.Write([]byte("late")); !errors.Is(err, errPipeClosed) {
		t.Fatalf("Write after Close: %v, want %v", err, errPipeClosed)
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
