package registry

import (
	"context"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-dev/strata/store"
)

// PushResult says what was pushed where.
type PushResult struct {
	Ref    string  // destination, as pushed
	Digest v1.Hash // manifest (or index) digest in the registry
	Size   int64   // manifest size
}

// compressor is the store's CompressedImage: a local image with every
// uncompressed layer replaced by its compressed blob, made once and cached.
type compressor interface {
	CompressedImage(ctx context.Context, img v1.Image, algo string) (v1.Image, error)
}

// Push uploads the local image src to dst (default: src's own name).
// Layers go compressed (o.Compression, gzip by default) through the store's
// cache; blobs the registry has are skipped (HEAD), o.Jobs move at once, and
// the manifest is put last, so a failed push never tags anything.
func Push(ctx context.Context, s *store.Store, src, dst string, o Options) (*PushResult, error) {
	if dst == "" {
		dst = src
	}
	op := "push " + dst
	if dst == src {
		// Without DEST, IMAGE must be one of the image's names, not an ID.
		rec, err := s.Resolve(src)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		tag, err := store.ParseTag(src)
		if err != nil || !contains(rec.Names, store.FullName(tag)) {
			return nil, fmt.Errorf("%s: %s is not a name of the image: give a destination (strata push IMAGE DEST)", op, src)
		}
	}
	ref, err := o.ParseReference(dst)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	img, err := localImage(ctx, s, src, &o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	t, err := o.newTransport()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	pimg := progressImage(img, o.progress())
	if err := remote.Write(ref, pimg, o.remoteOptions(ctx, t)...); err != nil {
		return nil, wrap(op, err)
	}
	reportSkipped(pimg)
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	size, _ := img.Size()
	return &PushResult{Ref: ref.String(), Digest: d, Size: size}, nil
}

// PushIndex uploads the local images srcs (one per platform, each taken
// from its config's os/architecture/variant) as one OCI image index at dst.
func PushIndex(ctx context.Context, s *store.Store, srcs []string, dst string, o Options) (*PushResult, error) {
	op := "push " + dst
	ref, err := o.ParseReference(dst)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[string]string{}
	var added []v1.Image
	for _, src := range srcs {
		img, err := localImage(ctx, s, src, &o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", op, src, err)
		}
		p := cf.Platform()
		if p == nil || p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("%s: %s has no os/architecture in its config", op, src)
		}
		ps := platformString(p)
		if other, ok := seen[ps]; ok {
			return nil, fmt.Errorf("%s: %s and %s are both %s", op, other, src, ps)
		}
		seen[ps] = src
		pimg := progressImage(img, o.progress())
		added = append(added, pimg)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        pimg,
			Descriptor: v1.Descriptor{Platform: p},
		})
	}
	t, err := o.newTransport()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := remote.WriteIndex(ref, idx, o.remoteOptions(ctx, t)...); err != nil {
		return nil, wrap(op, err)
	}
	for _, img := range added {
		reportSkipped(img)
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	size, _ := idx.Size()
	return &PushResult{Ref: ref.String(), Digest: d, Size: size}, nil
}

// localImage is the stored image src, compressed for the wire.
func localImage(ctx context.Context, s *store.Store, src string, o *Options) (v1.Image, error) {
	img, _, err := s.Image(src)
	if err != nil {
		return nil, err
	}
	c, ok := any(s).(compressor)
	if !ok {
		o.debugf("store cannot compress layers; pushing them as stored")
		return img, nil
	}
	algo := o.Compression
	if algo == "" {
		algo = "gzip"
	}
	cimg, err := c.CompressedImage(ctx, img, algo)
	if err != nil {
		return nil, fmt.Errorf("compressing %s: %w", src, err)
	}
	return cimg, nil
}

// progressImage reports each uploaded layer to p. Layers the registry
// already has are never read and are reported as "exists" at the end by
// the caller's summary; blobs that are read are "pushed".
func progressImage(img v1.Image, p Progress) v1.Image {
	if _, ok := p.(nopProgress); ok {
		return img
	}
	return &pImage{Image: img, p: p}
}

type pImage struct {
	v1.Image
	p Progress

	mu     sync.Mutex
	pushed map[v1.Hash]bool
}

func (i *pImage) done(h v1.Hash) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.pushed == nil {
		i.pushed = map[v1.Hash]bool{}
	}
	i.pushed[h] = true
}

// reportSkipped reports the layers of a pushed image that were never
// uploaded: the registry had them (or mounted them).
func reportSkipped(img v1.Image) {
	pi, ok := img.(*pImage)
	if !ok {
		return
	}
	ls, err := pi.Image.Layers()
	if err != nil {
		return
	}
	pi.mu.Lock()
	defer pi.mu.Unlock()
	for _, l := range ls {
		if d, err := l.Digest(); err == nil && !pi.pushed[d] {
			pi.p.Done(shortID(d.Hex), "exists")
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (i *pImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for n, l := range ls {
		out[n] = &pLayer{Layer: l, img: i}
	}
	return out, nil
}

func (i *pImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return &pLayer{Layer: l, img: i}, nil
}

type pLayer struct {
	v1.Layer
	img *pImage
}

func (l *pLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	d, _ := l.Layer.Digest()
	size, _ := l.Layer.Size()
	id := shortID(d.Hex)
	l.img.p.Start(id, size)
	return &pReadCloser{countingReader: countingReader{r: rc, p: l.img.p, id: id}, c: rc, size: size,
		done: func() { l.img.done(d) }}, nil
}

type pReadCloser struct {
	countingReader
	c    io.Closer
	size int64
	once sync.Once
	done func()
}

func (r *pReadCloser) Read(b []byte) (int, error) {
	n, err := r.countingReader.Read(b)
	if err == io.EOF && r.countingReader.n == r.size {
		r.once.Do(func() { r.done(); r.p.Done(r.id, "pushed") })
	}
	return n, err
}

func (r *pReadCloser) Close() error { return r.c.Close() }
