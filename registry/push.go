package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
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
		return nil, fmt.Errorf("%s: %w", op, refused(ctx, explain(err), img))
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
	var added, imgs []v1.Image
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
		imgs = append(imgs, img)
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
		return nil, fmt.Errorf("%s: %w", op, refused(ctx, explain(err), imgs...))
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

// refused explains a push the registry refused because an upload did not
// match its digest (DIGEST_INVALID). Blobs go out as the store has them,
// without being hashed again on the way (the store checked each one when it
// was written, and the registry checks every upload before it keeps it), so
// a blob damaged on disk since then is caught by the registry and the
// manifest is never put. Only on this error are the images' blobs hashed, to
// name the damaged one; when none is, the registry's message stands.
func refused(ctx context.Context, err error, imgs ...v1.Image) error {
	var te *transport.Error
	if !errors.As(err, &te) || !hasCode(te, transport.DigestInvalidErrorCode) {
		return err
	}
	for _, img := range imgs {
		want, got, derr := damagedBlob(ctx, img)
		if derr != nil {
			return err
		}
		if want != got {
			return fmt.Errorf("the registry refused blob %s: the local copy is damaged (its content is %s; strata fsck lists the damage): %w",
				want, got, store.ErrDigestMismatch)
		}
	}
	return err
}

func hasCode(te *transport.Error, code transport.ErrorCode) bool {
	for _, d := range te.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

// damagedBlob hashes img's config and layer blobs as they would be pushed
// and returns the first whose content does not match its digest (want !=
// got), or want == got when all match.
func damagedBlob(ctx context.Context, img v1.Image) (want, got v1.Hash, err error) {
	m, err := img.Manifest()
	if err != nil {
		return want, got, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return want, got, err
	}
	if got, _, err = v1.SHA256(bytes.NewReader(cfg)); err != nil || got != m.Config.Digest {
		return m.Config.Digest, got, err
	}
	ls, err := img.Layers()
	if err != nil {
		return want, got, err
	}
	for _, l := range ls {
		if want, err = l.Digest(); err != nil {
			return want, want, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return want, want, err
		}
		got, _, err = v1.SHA256(ctxReader{ctx, rc})
		rc.Close()
		if err != nil || got != want {
			return want, got, err
		}
	}
	return want, want, nil
}

// ctxReader stops a long read when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
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
