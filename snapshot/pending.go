package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/store"
)

// Pending is a committed layer whose blob may still be being written to the
// store (CommitRemoveAsync). Its digest, diffID, size and media type are
// known; Compressed and Uncompressed wait for the blob.
type Pending interface {
	v1.Layer
	// Stored waits for the blob and returns nil once it is in the store,
	// or why it could not be stored (the layer is then unusable).
	Stored() error
}

// asyncMinBytes is how much file data a diff needs before CommitRemoveAsync
// writes its blob in the background: below it, hashing the diff once more
// costs about what writing the blob does. Tests lower it.
var asyncMinBytes int64 = 16 << 20

type pendingLayer struct {
	h     v1.Hash
	size  int64
	done  chan struct{}
	layer v1.Layer // the stored layer, once done is closed and err is nil
	err   error
}

// stored is a Pending for a layer already in the store.
func stored(l v1.Layer) (*pendingLayer, error) {
	h, err := l.Digest()
	if err != nil {
		return nil, err
	}
	size, err := l.Size()
	if err != nil {
		return nil, err
	}
	p := &pendingLayer{h: h, size: size, layer: l, done: make(chan struct{})}
	close(p.done)
	return p, nil
}

func (p *pendingLayer) Digest() (v1.Hash, error)            { return p.h, nil }
func (p *pendingLayer) DiffID() (v1.Hash, error)            { return p.h, nil }
func (p *pendingLayer) Size() (int64, error)                { return p.size, nil }
func (p *pendingLayer) MediaType() (types.MediaType, error) { return types.OCIUncompressedLayer, nil }

func (p *pendingLayer) Stored() error {
	<-p.done
	return p.err
}

func (p *pendingLayer) Compressed() (io.ReadCloser, error) {
	if err := p.Stored(); err != nil {
		return nil, err
	}
	return p.layer.Compressed()
}

func (p *pendingLayer) Uncompressed() (io.ReadCloser, error) {
	if err := p.Stored(); err != nil {
		return nil, err
	}
	return p.layer.Uncompressed()
}

// storeBlob stores what write writes as a layer blob, hashing it on the way.
// With a non-zero want the blob must have that digest and size bytes, or
// nothing is stored.
func storeBlob(s *store.Store, want v1.Hash, size int64, write func(io.Writer) error) (v1.Layer, error) {
	w, err := s.NewWriter()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	pw := newPipelinedWriter(w)
	err = write(pw)
	if cerr := pw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	h, err := w.Commit(want, size)
	if err != nil {
		return nil, err
	}
	return s.Layer(h)
}

// hashTree returns the digest and size of the layer tar of the tree t
// without storing it.
func hashTree(ctx context.Context, t *node, epoch *time.Time) (v1.Hash, int64, error) {
	hw := &hashWriter{h: sha256.New()}
	if err := writeTree(ctx, t, hw, epoch); err != nil {
		return v1.Hash{}, 0, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(hw.h.Sum(nil))}, hw.n, nil
}

type hashWriter struct {
	h hash.Hash
	n int64
}

func (w *hashWriter) Write(b []byte) (int, error) {
	w.h.Write(b)
	w.n += int64(len(b))
	return len(b), nil
}

// dataBytes is the size of the regular files in the tree t.
func dataBytes(t *node) int64 {
	var n int64
	for _, c := range t.children {
		switch {
		case c.whiteout:
		case c.isDir():
			n += dataBytes(c)
		case c.st.Mode&unix.S_IFMT == unix.S_IFREG:
			n += c.st.Size
		}
	}
	return n
}

// rebase points the nodes of t read from below old at the same paths below
// dir (the upper directory was renamed to dir).
func rebase(t *node, old, dir string) {
	if rel, ok := strings.CutPrefix(t.abs, old); ok && (rel == "" || rel[0] == '/') {
		t.abs = dir + rel
	}
	for _, c := range t.children {
		rebase(c, old, dir)
	}
}
