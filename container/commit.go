package container

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-dev/strata/store"
)

// Changes lists what the container changed relative to its image, sorted
// by path, as docker diff does: a directory holding an added or deleted
// entry is listed as changed.
func (m *Manager) Changes(ctx context.Context, ref string) ([]Change, error) {
	c, err := m.Get(ref)
	if err != nil {
		return nil, err
	}
	ch, err := m.changes(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("diff %s: %w", ref, err)
	}
	return ch, nil
}

// CommitOptions are `strata commit`'s flags.
type CommitOptions struct {
	Message string   // the new layer's history comment (-m)
	Author  string   // -a
	Changes []string // Dockerfile instructions applied to the config (--change)
	// Apply applies Changes to a config (builder.ApplyChanges; passed in so
	// that this package does not depend on the builder, which depends on it).
	Apply func(cfg *v1.Config, changes []string) error
}

// Commit turns the container's writable layer into a new layer on top of
// its image and stores the result under name. The new image's config is
// the container's (the image's merged with the run options, as docker
// commit does) with opts.Changes applied. The container must not be running.
func (m *Manager) Commit(ctx context.Context, ref, name string, opts CommitOptions) (store.Record, error) {
	if _, err := store.ParseTag(name); err != nil {
		return store.Record{}, err
	}
	c, l, err := m.lockRef(ref)
	if err != nil {
		return store.Record{}, fmt.Errorf("committing: %w", err)
	}
	defer l.release()
	fail := func(err error) (store.Record, error) {
		return store.Record{}, fmt.Errorf("committing container %s: %w", ref, err)
	}
	cfg := c.Config
	// What only the run had (terminal, host name) is not the image's.
	cfg.Hostname, cfg.Tty, cfg.OpenStdin, cfg.AttachStdin, cfg.StdinOnce = "", false, false, false, false
	if len(opts.Changes) > 0 {
		if opts.Apply == nil {
			return fail(fmt.Errorf("--change is not supported here"))
		}
		if err := opts.Apply(&cfg, opts.Changes); err != nil {
			return fail(err)
		}
	}
	release, err := m.s.Hold()
	if err != nil {
		return fail(err)
	}
	defer release()
	base, err := m.s.ImageByDigest(c.Digest)
	if err != nil {
		return fail(fmt.Errorf("image %s: %w", c.Image, err))
	}
	layer, err := m.commitLayer(ctx, c)
	if err != nil {
		return fail(err)
	}
	now := time.Now().UTC()
	// The new layer is stored uncompressed, and typed to match the
	// manifest it joins: a docker manifest (a pulled image) gets docker's
	// type, so that save and push compress it like its siblings.
	layerType := types.OCIUncompressedLayer
	if mt, err := base.MediaType(); err == nil && mt == types.DockerManifestSchema2 {
		layerType = types.DockerUncompressedLayer
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: layerType,
		History: v1.History{
			Created:   v1.Time{Time: now},
			CreatedBy: strings.Join(c.Config.Cmd, " "),
			Author:    opts.Author,
			Comment:   opts.Message,
		},
	})
	if err != nil {
		return fail(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fail(err)
	}
	cf = cf.DeepCopy()
	cf.Config = cfg
	cf.Created = v1.Time{Time: now}
	cf.Author = opts.Author
	cf.Container = c.ID
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return fail(err)
	}
	rec, err := m.s.WriteImage(ctx, img, name)
	if err != nil {
		return fail(err)
	}
	return rec, nil
}
