package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/internal/ctxio"
)

// Compression algorithms for CompressedImage.
const (
	Gzip = "gzip"
	Zstd = "zstd"
)

// Fixed compressor settings: the same layer always compresses to the same
// bytes, whatever the machine (pgzip's output depends on its block size, not
// on how many blocks run at once; zstd's on its level and window, not on its
// concurrency). TestCompressGolden holds them to that.
//
// They also bound memory, whatever the layers' sizes or number: a gzip layer
// being compressed holds about gzipBlocks+2 blocks of 1 MiB in, 1 MiB out
// and a ~1.5 MiB deflate state; a zstd one a window of history and, with
// zstdWorkers above 1, one block being written while the next is encoded.
// compressJobs layers at a time keep it all near 40 MiB of heap (pgzip's
// blocks still keep 8 cores busy), which the registry commands' soft memory
// limit relies on; four layers at a time needed ~70 MiB, and zstd with four
// workers per layer ~90 MiB, over that limit (collecting garbage nonstop).
const (
	gzipBlockSize = 1 << 20
	gzipBlocks    = 4
	zstdWorkers   = 2
	compressJobs  = 2
)

// CompressedImage returns img with every uncompressed layer (IsUncompressed)
// replaced by its compressed blob in algo ("gzip", the default when algo is
// empty, or "zstd"). Each layer is compressed at most once: the blob is
// stored, and compressed/ALGO/DIFFID remembers it for every later call.
// Already-compressed layers and the config are unchanged (so diffIDs and the
// image ID stay the same); an image without uncompressed layers is returned
// as it is. The manifest is an OCI manifest with tar+gzip or tar+zstd layers
// (a Docker schema 2 manifest stays Docker when algo is gzip). The result is
// not recorded in the index; its blobs are kept by Prune as long as the
// uncompressed layers are.
func (s *Store) CompressedImage(ctx context.Context, img v1.Image, algo string) (v1.Image, error) {
	if algo == "" {
		algo = Gzip
	}
	if algo != Gzip && algo != Zstd {
		return nil, fmt.Errorf("unknown compression %q (want gzip or zstd)", algo)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("compressing image: reading manifest: %w", err)
	}
	todo := false
	for _, l := range m.Layers {
		todo = todo || IsUncompressed(l.MediaType)
	}
	if !todo {
		return img, nil
	}
	unlock, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer unlock()

	docker := m.MediaType == types.DockerManifestSchema2 && algo == Gzip
	out := m.DeepCopy()
	if !docker {
		out.MediaType = types.OCIManifestSchema1
		out.Config.MediaType = ociType(out.Config.MediaType)
	}
	layers := make([]v1.Layer, len(m.Layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(compressJobs)
	for i, desc := range m.Layers {
		l, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("compressing image: layer %s: %w", desc.Digest, err)
		}
		if !IsUncompressed(desc.MediaType) {
			layers[i] = l
			if !docker {
				out.Layers[i].MediaType = ociType(desc.MediaType)
			}
			continue
		}
		g.Go(func() error {
			c, err := s.compressLayer(gctx, l, desc.Digest, algo)
			if err != nil {
				return err
			}
			c.mt = compressedType(algo, docker)
			layers[i] = c
			d := &out.Layers[i]
			d.MediaType, d.Digest, d.Size, d.URLs = c.mt, c.digest, c.size, nil
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("compressing image: reading config: %w", err)
	}
	ci := &compressedImage{raw: raw, m: out, cfg: cfg, layers: layers}
	base, err := partial.CompressedToImage(ci)
	if err != nil {
		return nil, err
	}
	return &layeredImage{Image: base, ci: ci}, nil
}

func compressedType(algo string, docker bool) types.MediaType {
	switch {
	case docker:
		return types.DockerLayer
	case algo == Zstd:
		return types.OCILayerZStd
	default:
		return types.OCILayer
	}
}

// ociType maps Docker media types to their OCI equivalents.
func ociType(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerConfigJSON:
		return types.OCIConfigJSON
	case types.DockerLayer:
		return types.OCILayer
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	case types.DockerForeignLayer:
		return types.OCIRestrictedLayer
	}
	return mt
}

// compressLayer returns the compressed blob of the uncompressed layer l
// (diffID d), making and recording it unless an earlier call did.
func (s *Store) compressLayer(ctx context.Context, l v1.Layer, d v1.Hash, algo string) (*compressedLayer, error) {
	if c, ok := s.cachedCompressed(l, d, algo); ok {
		return c, nil
	}
	// One process compresses a given layer at a time; the others wait and
	// then find the result.
	lockPath := s.path("ingest", "compress-"+algo+"-"+d.Hex+".lock")
	unlock, err := flock(lockPath, unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer func() {
		// A waiter may then lock the unlinked file while a newcomer locks a
		// new one: at worst the layer is compressed twice, to the same bytes.
		os.Remove(lockPath)
		unlock()
	}()
	if c, ok := s.cachedCompressed(l, d, algo); ok {
		return c, nil
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("compressing layer %s: %w", d, err)
	}
	defer rc.Close()
	w, err := s.NewWriter()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	if err := compress(ctx, w, rc, d, algo); err != nil {
		return nil, fmt.Errorf("compressing layer %s: %w", d, err)
	}
	size := w.Size()
	h, err := w.Commit(v1.Hash{}, -1)
	if err != nil {
		return nil, fmt.Errorf("compressing layer %s: %w", d, err)
	}
	dir := s.path("compressed", algo)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(s.compressedPath(algo, d), []byte(h.String()+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("compressing layer %s: recording %s: %w", d, h, err)
	}
	return &compressedLayer{s: s, Layer: l, digest: h, diffID: d, size: size}, nil
}

// compress writes the algo compression of r (whose sha256 must be d) to w.
func compress(ctx context.Context, w io.Writer, r io.Reader, d v1.Hash, algo string) error {
	var zw io.WriteCloser
	switch algo {
	case Zstd:
		z, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(zstdWorkers))
		if err != nil {
			return err
		}
		zw = z
	default:
		z, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
		if err != nil {
			return err
		}
		if err := z.SetConcurrency(gzipBlockSize, gzipBlocks); err != nil {
			return err
		}
		zw = z
	}
	hr := newHashingReader(r)
	if _, err := io.Copy(zw, ctxio.Reader(ctx, hr)); err != nil {
		zw.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if got := hr.Digest(); got != d {
		return fmt.Errorf("uncompressed content is %s: %w", got, ErrDigestMismatch)
	}
	return nil
}

// cachedCompressed looks up compressed/ALGO/DIFFID.
func (s *Store) cachedCompressed(l v1.Layer, d v1.Hash, algo string) (*compressedLayer, bool) {
	h, err := s.CompressedBlob(d, algo)
	if err != nil {
		return nil, false
	}
	size, err := s.BlobSize(h)
	if err != nil {
		return nil, false
	}
	return &compressedLayer{s: s, Layer: l, digest: h, diffID: d, size: size}, true
}

// CompressedBlob returns the digest of the stored algo-compressed blob of
// the uncompressed layer with diffID d, or an ErrNotFound error when there
// is none yet.
func (s *Store) CompressedBlob(d v1.Hash, algo string) (v1.Hash, error) {
	if algo == "" {
		algo = Gzip
	}
	b, err := os.ReadFile(s.compressedPath(algo, d))
	if errors.Is(err, os.ErrNotExist) {
		return v1.Hash{}, fmt.Errorf("%s blob of layer %s: %w", algo, d, ErrNotFound)
	}
	if err != nil {
		return v1.Hash{}, err
	}
	h, err := v1.NewHash(strings.TrimSpace(string(b)))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%s blob of layer %s: %w", algo, d, err)
	}
	if !s.HasBlob(h) {
		return v1.Hash{}, fmt.Errorf("%s blob %s of layer %s: %w", algo, h, d, ErrNotFound)
	}
	return h, nil
}

func (s *Store) compressedPath(algo string, d v1.Hash) string {
	return s.path("compressed", algo, d.Algorithm+"-"+d.Hex)
}

// compressedLayer is a stored compressed blob standing for an uncompressed
// layer: Compressed reads the blob, everything uncompressed comes from the
// original layer without decompressing.
type compressedLayer struct {
	v1.Layer // the uncompressed original: DiffID, Uncompressed
	s        *Store
	digest   v1.Hash
	diffID   v1.Hash
	size     int64
	mt       types.MediaType
}

func (c *compressedLayer) Digest() (v1.Hash, error)            { return c.digest, nil }
func (c *compressedLayer) DiffID() (v1.Hash, error)            { return c.diffID, nil }
func (c *compressedLayer) Size() (int64, error)                { return c.size, nil }
func (c *compressedLayer) MediaType() (types.MediaType, error) { return c.mt, nil }
func (c *compressedLayer) Compressed() (io.ReadCloser, error)  { return c.s.OpenBlob(c.digest) }

// compressedImage is the image CompressedImage returns.
type compressedImage struct {
	raw    []byte
	m      *v1.Manifest
	cfg    []byte
	layers []v1.Layer
}

func (i *compressedImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *compressedImage) RawConfigFile() ([]byte, error)      { return i.cfg, nil }
func (i *compressedImage) MediaType() (types.MediaType, error) { return i.m.MediaType, nil }

func (i *compressedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	return i.layer(h)
}

func (i *compressedImage) layer(h v1.Hash) (v1.Layer, error) {
	for k, d := range i.m.Layers {
		if d.Digest == h {
			return i.layers[k], nil
		}
	}
	if i.m.Config.Digest == h {
		return partial.ConfigLayer(i)
	}
	return nil, fmt.Errorf("layer %s: %w", h, ErrNotFound)
}

// layeredImage hands out compressedImage's layers as they are, rather than
// through partial's extender, whose Uncompressed would decompress the blob
// when the original uncompressed layer is at hand.
type layeredImage struct {
	v1.Image
	ci *compressedImage
}

func (i *layeredImage) Layers() ([]v1.Layer, error) {
	return append([]v1.Layer(nil), i.ci.layers...), nil
}

func (i *layeredImage) LayerByDigest(h v1.Hash) (v1.Layer, error) { return i.ci.layer(h) }

func (i *layeredImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	for _, l := range i.ci.layers {
		if d, err := l.DiffID(); err == nil && d == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("layer with diffID %s: %w", h, ErrNotFound)
}
