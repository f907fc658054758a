package container

import (
	"context"
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-dev/strata/rootfs"
)

// The snapshot package's API is being written; these adapt to it.

func (m *Manager) prepare(ctx context.Context, key string, layers []v1.Layer) ([]rootfs.Mount, string, error) {
	return nil, "", errors.New("snapshots: not implemented yet")
}

func (m *Manager) removeSnapshot(ctx context.Context, c *Container) error { return nil }

func (m *Manager) changes(ctx context.Context, c *Container) ([]Change, error) {
	return nil, errors.New("snapshots: not implemented yet")
}

func (m *Manager) commitLayer(ctx context.Context, c *Container) (v1.Layer, error) {
	return nil, errors.New("snapshots: not implemented yet")
}

func toRootfsMounts(ms []rootfs.Mount) []rootfs.Mount { return ms }
