package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"

	"github.com/strata-dev/strata/store"
)

// PullResult is what Pull stored.
type PullResult struct {
	Name     string  // full name recorded (empty when pulled by digest)
	Digest   v1.Hash // manifest digest (the registry's, unchanged)
	Index    v1.Hash // digest of the index the image was chosen from, if any
	Platform string  // the platform chosen from an index
	Record   store.Record
}

// Pull fetches the image ref names (for an index: the image for
// o.Platform, default this machine's) into s, keeping the registry's blobs
// so the manifest digest stays the same. Every blob is checked against its
// digest and size before it is stored and the name is recorded last, so an
// interrupted or corrupt pull leaves nothing tagged.
func Pull(ctx context.Context, s *store.Store, refStr string, o Options) (*PullResult, error) {
	op := "pull " + refStr
	r, err := o.resolveImage(ctx, refStr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ref, plat, t, desc := r.ref, r.plat, r.t, r.desc
	res := &PullResult{Index: r.index, Platform: r.platform}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, fmt.Errorf("%s: parsing manifest: %w", op, err)
	}
	// Keep Prune away from the blobs between their arrival and the image
	// that references them.
	release, err := s.Hold()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer release()
	if err := fetchBlobs(ctx, s, ref.Context(), t, append([]v1.Descriptor{m.Config}, m.Layers...), &o); err != nil {
		return nil, wrap(op, err)
	}
	if _, _, err := s.PutBlob(ctx, bytes.NewReader(desc.Manifest), desc.Digest, int64(len(desc.Manifest))); err != nil {
		return nil, fmt.Errorf("%s: storing manifest: %w", op, err)
	}
	img, err := s.ImageByDigest(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if o.Platform != "" && res.Index == (v1.Hash{}) {
		// A single image must be what was asked for, as docker checks.
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("%s: reading config: %w", op, err)
		}
		if got := cf.Platform(); got == nil || got.OS != plat.OS || got.Architecture != plat.Architecture ||
			plat.Variant != "" && got.Variant != "" && got.Variant != plat.Variant {
			return nil, fmt.Errorf("%s: %w: the image is %s, not %s", op, ErrNoPlatform, platformString(got), platformString(&plat))
		}
	}
	var names []string
	if tag, ok := ref.(name.Tag); ok {
		res.Name = store.FullName(tag)
		names = append(names, res.Name)
	}
	rec, err := s.WriteImage(ctx, img, names...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	res.Digest, res.Record = desc.Digest, rec
	return res, nil
}

// getManifest fetches a manifest or index. Its content is checked against
// the reference's digest (go-containerregistry) or, for a tag, against the
// Docker-Content-Digest header (manifestCheckTransport); content that does
// not match is fetched once more, then reported.
func getManifest(ref name.Reference, ropts []remote.Option) (*remote.Descriptor, error) {
	desc, err := getManifestOnce(ref, ropts)
	var te *transport.Error
	if err != nil && !errors.As(err, &te) {
		desc, err = getManifestOnce(ref, ropts)
	}
	return desc, err
}

func getManifestOnce(ref name.Reference, ropts []remote.Option) (*remote.Descriptor, error) {
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(desc.Manifest)
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if desc.Digest.Algorithm == "sha256" && got != desc.Digest {
		return nil, fmt.Errorf("manifest of %s: registry said %s, content is %s: %w", ref, desc.Digest, got, store.ErrDigestMismatch)
	}
	if int64(len(desc.Manifest)) != desc.Size && desc.Size > 0 {
		return nil, fmt.Errorf("manifest of %s: size %d, announced %d: %w", ref, len(desc.Manifest), desc.Size, store.ErrDigestMismatch)
	}
	return desc, nil
}

// selectPlatform picks want's image from an index: same OS and architecture,
// and the same variant when want has one (an image without a variant
// matches the default variant).
func selectPlatform(raw []byte, want v1.Platform) (v1.Descriptor, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("parsing index: %w", err)
	}
	var avail []string
	best, bestScore := -1, 0
	for i, d := range idx.Manifests {
		p := d.Platform
		if p == nil || p.OS == "unknown" || !d.MediaType.IsImage() && d.MediaType != "" {
			continue
		}
		avail = append(avail, platformString(p))
		if p.OS != want.OS || p.Architecture != want.Architecture {
			continue
		}
		score := 1
		switch {
		case p.Variant == want.Variant:
			score = 3
		case p.Variant == "" || want.Variant == "":
			score = 2
		default:
			continue
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		sort.Strings(avail)
		return v1.Descriptor{}, fmt.Errorf("%w for %s (the index has: %s)", ErrNoPlatform, platformString(&want), strings.Join(avail, ", "))
	}
	return idx.Manifests[best], nil
}

func platformString(p *v1.Platform) string {
	if p == nil {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// fetchBlobs stores the blobs of repo that s lacks, o.Jobs at a time.
func fetchBlobs(ctx context.Context, s *store.Store, repo name.Repository, t http.RoundTripper, descs []v1.Descriptor, o *Options) error {
	var client *http.Client
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.jobs())
	for _, d := range descs {
		id := shortID(d.Digest.Hex)
		if s.HasBlob(d.Digest) {
			o.progress().Done(id, "exists")
			continue
		}
		if client == nil {
			rt, err := o.authTransport(ctx, repo, t, repo.Scope(transport.PullScope))
			if err != nil {
				return err
			}
			client = &http.Client{Transport: rt}
		}
		g.Go(func() error { return fetchBlob(gctx, s, client, repo, d, o) })
	}
	return g.Wait()
}

// fetchBlob streams one blob into the store; a digest mismatch is tried
// once more from scratch, then reported.
func fetchBlob(ctx context.Context, s *store.Store, client *http.Client, repo name.Repository, d v1.Descriptor, o *Options) error {
	id := shortID(d.Digest.Hex)
	p := o.progress()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		br := newBlobReader(ctx, client, repo, d.Digest, d.Size, o)
		p.Start(id, d.Size)
		err = putBlob(ctx, s, &countingReader{r: br, p: p, id: id}, d.Digest, d.Size)
		br.Close()
		if err == nil {
			p.Done(id, "pulled")
			return nil
		}
		err = br.gaveUp(err)
		if !errors.Is(err, store.ErrDigestMismatch) || ctx.Err() != nil {
			break
		}
		o.debugf("blob %s: %v; fetching it again", d.Digest, err)
	}
	p.Done(id, "failed")
	if errors.Is(err, store.ErrDigestMismatch) {
		return err // the store's message names the blob and both digests
	}
	return fmt.Errorf("fetching blob %s: %w", d.Digest, err)
}

// copyBufSize is the buffer a blob is copied through: large writes into the
// store mean fewer system calls than io.Copy's 32 KiB.
const copyBufSize = 1 << 20

// putBlob stores r, which must have digest d and size bytes (see
// store.Writer.Commit), through a large buffer.
func putBlob(ctx context.Context, s *store.Store, r io.Reader, d v1.Hash, size int64) error {
	if s.HasBlob(d) {
		return nil
	}
	w, err := s.NewWriter()
	if err != nil {
		return err
	}
	defer w.Close()
	buf := make([]byte, copyBufSize)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	_, err = w.Commit(d, size)
	return err
}
