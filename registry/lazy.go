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
	r, err := o.resolveImage(ctx, refStr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	img, err := r.desc.Image()
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
