// Package snapshot prepares the filesystems of layers: unpacks each layer once (keyed by chain ID), mounts overlays for containers and diffs an upperdir into a layer.
package snapshot
