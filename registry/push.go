package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-dev/strata/internal/ctxio"
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
	pt := newPushTracker(o.progress())
	defer pt.close()
	if err := remote.Write(ref, pt.image(img), o.remoteOptions(ctx, t)...); err != nil {
		return nil, fmt.Errorf("%s: %w", op, refused(ctx, explain(err), img))
	}
	pt.reportSkipped(img)
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
	var imgs []v1.Image
	pt := newPushTracker(o.progress())
	defer pt.close()
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
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        pt.image(img),
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
	for _, img := range imgs {
		pt.reportSkipped(img)
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
		got, _, err = v1.SHA256(ctxio.Reader(ctx, rc))
		rc.Close()
		if err != nil || got != want {
			return want, got, err
		}
	}
	return want, want, nil
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
