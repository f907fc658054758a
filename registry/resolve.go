package registry

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// resolved is a reference resolved to an image manifest: for an index, the
// manifest of the image for the wanted platform.
type resolved struct {
	ref      name.Reference
	plat     v1.Platform // the platform wanted (o.Platform, default this machine's)
	t        http.RoundTripper
	ropts    []remote.Option
	desc     *remote.Descriptor // the image's manifest
	index    v1.Hash            // the index it was chosen from, if any
	platform string             // the platform chosen from the index
}

// resolveImage fetches refStr's manifest, and for an index the manifest of
// the image for o.Platform. Errors from the registry come explained
// (ErrUnauthorized, ErrNotFound, ...), without the operation's name.
func (o Options) resolveImage(ctx context.Context, refStr string) (*resolved, error) {
	ref, err := o.ParseReference(refStr)
	if err != nil {
		return nil, err
	}
	plat, err := o.platform()
	if err != nil {
		return nil, err
	}
	t, err := o.newTransport()
	if err != nil {
		return nil, err
	}
	r := &resolved{ref: ref, plat: plat, t: t, ropts: o.remoteOptions(ctx, t)}
	if r.desc, err = getManifest(ref, r.ropts); err != nil {
		return nil, explain(err)
	}
	if r.desc.MediaType.IsIndex() {
		child, err := selectPlatform(r.desc.Manifest, plat)
		if err != nil {
			return nil, err
		}
		r.index, r.platform = r.desc.Digest, platformString(child.Platform)
		if r.desc, err = getManifest(ref.Context().Digest(child.Digest.String()), r.ropts); err != nil {
			return nil, explain(err)
		}
	}
	if !r.desc.MediaType.IsImage() {
		return nil, fmt.Errorf("%s is a %s, not an image", ref, r.desc.MediaType)
	}
	return r, nil
}
