package container

import (
	"context"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-dev/strata/rootfs"
	"github.com/strata-dev/strata/snapshot"
)

// Change is one line of `strata diff` ("A /path").
type Change = snapshot.Change

// snapshotter opens the snapshotter of kind ("" picks one, as for a new
// container), once per manager.
func (m *Manager) snapshotter(kind string) (snapshot.Snapshotter, error) {
	if sn, ok := m.snaps[kind]; ok {
		return sn, nil
	}
	sn, err := snapshot.New(m.s, kind)
	if err != nil {
		return nil, err
	}
	if m.snaps == nil {
		m.snaps = map[string]snapshot.Snapshotter{}
	}
	m.snaps[kind] = sn
	m.snaps[sn.Kind()] = sn
	return sn, nil
}

// prepare makes the container's writable snapshot (key = its ID) and
// returns its mounts and the snapshotter's kind.
func (m *Manager) prepare(ctx context.Context, key string, layers []v1.Layer) ([]rootfs.Mount, string, error) {
	sn, err := m.snapshotter("")
	if err != nil {
		return nil, "", err
	}
	ms, err := sn.Prepare(ctx, key, layers)
	if err != nil {
		return nil, "", err
	}
	return toRootfsMounts(ms), sn.Kind(), nil
}

func (m *Manager) mounts(ctx context.Context, c *Container) ([]rootfs.Mount, error) {
	sn, err := m.snapshotter(c.Snapshotter)
	if err != nil {
		return nil, err
	}
	ms, err := sn.Mounts(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	return toRootfsMounts(ms), nil
}

func (m *Manager) removeSnapshot(ctx context.Context, c *Container) error {
	sn, err := m.snapshotter(c.Snapshotter)
	if err != nil {
		return err
	}
	return sn.Remove(ctx, c.ID)
}

func (m *Manager) changes(ctx context.Context, c *Container) ([]Change, error) {
	sn, err := m.snapshotter(c.Snapshotter)
	if err != nil {
		return nil, err
	}
	return sn.Changes(ctx, c.ID)
}

func (m *Manager) commitLayer(ctx context.Context, c *Container) (v1.Layer, error) {
	sn, err := m.snapshotter(c.Snapshotter)
	if err != nil {
		return nil, err
	}
	return sn.Commit(ctx, c.ID)
}

// toRootfsMounts hands a snapshot's mounts to the sandbox (the same type).
func toRootfsMounts(ms []snapshot.Mount) []rootfs.Mount { return ms }

// volatile adds overlayfs's "volatile" option to the overlay among ms: the
// upper directory of a `run --rm` container is thrown away when it ends, so
// it needs none of the syncs overlayfs would do (fsync and syncfs in the
// container, and the sync of the upper filesystem at unmount, which stalls
// the next metadata change on it for milliseconds). The mounts are the
// process's own copy: the snapshot's record is unchanged.
func volatile(ms []rootfs.Mount) []rootfs.Mount {
	out := make([]rootfs.Mount, len(ms))
	for i, m := range ms {
		out[i] = m
		if m.Type == "overlay" {
			out[i].Options = append(slices.Clip(m.Options), "volatile")
		}
	}
	return out
}
