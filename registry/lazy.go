package registry

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// RemoteImage returns ref's image (for an index: the one for o.Platform,
// default this machine's) as the registry has it, without storing it: its
// manifest and config are fetched now, each layer only when it is read,
// checked against its digest as it streams. The build's remote cache
// imports through it, so a build downloads only the cached layers it uses.
func RemoteImage(ctx context.Context, refStr string, o Options) (v1.Image, error) {
	op := "fetch " + refStr
	ref, err := o.ParseReference(refStr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	plat, err := o.platform()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	t, err := o.newTransport()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ropts := o.remoteOptions(ctx, t)
	desc, err := getManifest(ref, ropts)
	if err != nil {
		return nil, wrap(op, err)
	}
	if desc.MediaType.IsIndex() {
		child, err := selectPlatform(desc.Manifest, plat)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if desc, err = getManifest(ref.Context().Digest(child.Digest.String()), ropts); err != nil {
			return nil, wrap(op, err)
		}
	}
	if !desc.MediaType.IsImage() {
		return nil, fmt.Errorf("%s: %s is a %s, not an image", op, ref, desc.MediaType)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, wrap(op, err)
	}
	// The config now: a cache import reads it first, and an error is better
	// here than as a silent miss later.
	if _, err := img.RawConfigFile(); err != nil {
		return nil, wrap(op, err)
	}
	return img, nil
}
