package store

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PutLayer stores an uncompressed layer tar read from r and returns it as a
// layer whose digest is its diffID (media type application/vnd.oci.image.layer.v1.tar).
func (s *Store) PutLayer(ctx context.Context, r io.Reader) (v1.Layer, error) {
	h, n, err := s.PutBlob(ctx, r, v1.Hash{}, -1)
	if err != nil {
		return nil, err
	}
	return &localLayer{s: s, h: h, size: n}, nil
}

// Layer returns the stored uncompressed layer with diffID h.
func (s *Store) Layer(h v1.Hash) (v1.Layer, error) {
	n, err := s.BlobSize(h)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", h, err)
	}
	return &localLayer{s: s, h: h, size: n}, nil
}

// localLayer is an uncompressed layer blob: digest and diffID are the same.
type localLayer struct {
	s    *Store
	h    v1.Hash
	size int64
}

func (l *localLayer) Digest() (v1.Hash, error)             { return l.h, nil }
func (l *localLayer) DiffID() (v1.Hash, error)             { return l.h, nil }
func (l *localLayer) Size() (int64, error)                 { return l.size, nil }
func (l *localLayer) MediaType() (types.MediaType, error)  { return types.OCIUncompressedLayer, nil }
func (l *localLayer) Compressed() (io.ReadCloser, error)   { return l.s.OpenBlob(l.h) }
func (l *localLayer) Uncompressed() (io.ReadCloser, error) { return l.s.OpenBlob(l.h) }
