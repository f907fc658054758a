package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// rlock is held by every writer while it adds blobs and index entries, so
// that Prune (which holds the lock exclusively) never removes a blob that an
// image being written is about to reference.
func (s *Store) rlock() (func(), error) { return flock(s.path("lock"), unix.LOCK_SH) }

func (s *Store) xlock() (func(), error) { return flock(s.path("lock"), unix.LOCK_EX) }

// Jobs bounds how many blobs WriteImage copies at once.
const Jobs = 4

// WriteImage stores img (every blob, then the manifest) and records it under
// names (full or familiar references), moving each name from any image that
// had it. The index is updated only after every blob is durable.
func (s *Store) WriteImage(ctx context.Context, img v1.Image, names ...string) (Record, error) {
	full, err := fullNames(names)
	if err != nil {
		return Record{}, err
	}
	unlock, err := s.rlock()
	if err != nil {
		return Record{}, err
	}
	defer unlock()

	desc, err := s.putImage(ctx, img)
	if err != nil {
		return Record{}, err
	}
	if err := s.updateIndex(func(idx *v1.IndexManifest) error {
		addToIndex(idx, *desc, full)
		return nil
	}); err != nil {
		return Record{}, fmt.Errorf("recording image: %w", err)
	}
	return s.Resolve(desc.Digest.String())
}

func fullNames(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		t, err := ParseTag(n)
		if err != nil {
			return nil, err
		}
		out = append(out, FullName(t))
	}
	return out, nil
}

// putImage writes every blob of img and returns the descriptor to index.
func (s *Store) putImage(ctx context.Context, img v1.Image) (*v1.Descriptor, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading image layers: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Jobs)
	for _, l := range layers {
		g.Go(func() error { return s.putLayer(gctx, l) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	if _, _, err := s.PutBlob(ctx, bytes.NewReader(cfg), cfgName, int64(len(cfg))); err != nil {
		return nil, fmt.Errorf("storing config: %w", err)
	}
	man, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	mh, _, err := s.PutBlob(ctx, bytes.NewReader(man), v1.Hash{}, int64(len(man)))
	if err != nil {
		return nil, fmt.Errorf("storing manifest: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	ann := map[string]string{annotationID: cfgName.String()}
	if !cf.Created.IsZero() {
		ann[annotationCreated] = cf.Created.UTC().Format(time.RFC3339Nano)
	}
	return &v1.Descriptor{MediaType: mt, Digest: mh, Size: int64(len(man)), Annotations: ann}, nil
}

func (s *Store) putLayer(ctx context.Context, l v1.Layer) error {
	d, err := l.Digest()
	if err != nil {
		return fmt.Errorf("reading layer digest: %w", err)
	}
	if s.HasBlob(d) {
		return nil
	}
	size, err := l.Size()
	if err != nil {
		return fmt.Errorf("layer %s: %w", d, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", d, err)
	}
	defer rc.Close()
	if _, _, err := s.PutBlob(ctx, rc, d, size); err != nil {
		return fmt.Errorf("storing layer %s: %w", d, err)
	}
	return nil
}

// Image returns the stored image ref resolves to (see Resolve).
func (s *Store) Image(ref string) (v1.Image, Record, error) {
	rec, err := s.Resolve(ref)
	if err != nil {
		return nil, Record{}, err
	}
	img, err := s.ImageByDigest(rec.Digest)
	return img, rec, err
}

// ImageByDigest returns the image whose manifest has digest h. Its layers
// read straight from the blob files.
func (s *Store) ImageByDigest(h v1.Hash) (v1.Image, error) {
	man, err := os.ReadFile(s.BlobPath(h))
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", h, ErrNotFound)
	}
	m, err := v1.ParseManifest(bytes.NewReader(man))
	if err != nil {
		return nil, fmt.Errorf("image %s: parsing manifest: %w", h, err)
	}
	if m.MediaType.IsIndex() {
		return nil, fmt.Errorf("image %s is an index, not an image", h)
	}
	return partial.CompressedToImage(&storeImage{s: s, raw: man, m: m})
}

type storeImage struct {
	s   *Store
	raw []byte
	m   *v1.Manifest
}

func (i *storeImage) RawManifest() ([]byte, error) { return i.raw, nil }

func (i *storeImage) MediaType() (types.MediaType, error) {
	if i.m.MediaType != "" {
		return i.m.MediaType, nil
	}
	return types.OCIManifestSchema1, nil
}

func (i *storeImage) RawConfigFile() ([]byte, error) {
	b, err := os.ReadFile(i.s.BlobPath(i.m.Config.Digest))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", i.m.Config.Digest, ErrNotFound)
	}
	return b, nil
}

func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for k, l := range i.m.Layers {
		if l.Digest != h {
			continue
		}
		if IsUncompressed(l.MediaType) {
			return &uncompressedBlobLayer{blobLayer{s: i.s, desc: l}}, nil
		}
		// A compressed layer's diffID is in the config; knowing it saves
		// decompressing the whole blob to hash it.
		if raw, err := i.RawConfigFile(); err == nil {
			if cf, err := v1.ParseConfigFile(bytes.NewReader(raw)); err == nil && k < len(cf.RootFS.DiffIDs) {
				return &diffIDBlobLayer{blobLayer{s: i.s, desc: l}, cf.RootFS.DiffIDs[k]}, nil
			}
		}
		return &blobLayer{s: i.s, desc: l}, nil
	}
	if i.m.Config.Digest == h {
		return &blobLayer{s: i.s, desc: i.m.Config}, nil
	}
	return nil, fmt.Errorf("layer %s: %w", h, ErrNotFound)
}

// blobLayer is a stored blob seen as a layer: its Compressed stream is the
// blob as stored (which, for local images, is an uncompressed tar).
type blobLayer struct {
	s    *Store
	desc v1.Descriptor
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *blobLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error)  { return l.s.OpenBlob(l.desc.Digest) }

// uncompressedBlobLayer is a plain tar blob: its digest is its diffID.
type uncompressedBlobLayer struct{ blobLayer }

func (l *uncompressedBlobLayer) DiffID() (v1.Hash, error) { return l.desc.Digest, nil }

func (l *uncompressedBlobLayer) Uncompressed() (io.ReadCloser, error) {
	return l.s.OpenBlob(l.desc.Digest)
}

// diffIDBlobLayer is a compressed blob whose diffID the config names.
type diffIDBlobLayer struct {
	blobLayer
	diffID v1.Hash
}

func (l *diffIDBlobLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// IsUncompressed reports whether a layer media type is a plain tar.
func IsUncompressed(mt types.MediaType) bool {
	return mt == types.OCIUncompressedLayer || mt == types.DockerUncompressedLayer ||
		mt == types.OCIUncompressedRestrictedLayer
}
