package builder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// builtImage is an image assembled from a config and stored layers, with an
// OCI manifest. Layers keep their blobs (uncompressed for local layers,
// the registry's compressed blobs for pulled ones).
type builtImage struct {
	cfg    []byte
	man    []byte
	layers map[v1.Hash]v1.Layer
}

func (i *builtImage) RawManifest() ([]byte, error)        { return i.man, nil }
func (i *builtImage) RawConfigFile() ([]byte, error)      { return i.cfg, nil }
func (i *builtImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i *builtImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := i.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("layer %s is not part of the image", h)
}

func ociLayerType(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerLayer:
		return types.OCILayer
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	case types.DockerForeignLayer:
		return types.OCIRestrictedLayer
	case "":
		return types.OCIUncompressedLayer
	}
	return mt
}

// assemble makes the image of a finished stage; extra adds top-level
// fields to the config (the remote cache's entries).
func assemble(img *dockerspec.DockerOCIImage, layers []v1.Layer, extra map[string]any) (v1.Image, error) {
	img.RootFS.Type = "layers"
	img.RootFS.DiffIDs = nil
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
	m.SchemaVersion = 2
	bi := &builtImage{layers: map[v1.Hash]v1.Layer{}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		diff, err := l.DiffID()
		if err != nil {
			return nil, err
		}
		size, err := l.Size()
		if err != nil {
			return nil, err
		}
		mt, err := l.MediaType()
		if err != nil {
			return nil, err
		}
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, digestOf(diff))
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: string(ociLayerType(mt)), Digest: digestOf(d), Size: size})
		bi.layers[d] = l
	}
	if img.Created == nil {
		for _, h := range img.History {
			if h.Created != nil {
				img.Created = h.Created
			}
		}
	}
	cfg, err := json.Marshal(img)
	if err != nil {
		return nil, err
	}
	if len(extra) > 0 {
		var m map[string]any
		if err := json.Unmarshal(cfg, &m); err != nil {
			return nil, err
		}
		for k, v := range extra {
			m[k] = v
		}
		if cfg, err = json.Marshal(m); err != nil {
			return nil, err
		}
	}
	ch, _, err := v1.SHA256(bytes.NewReader(cfg))
	if err != nil {
		return nil, err
	}
	m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digestOf(ch), Size: int64(len(cfg))}
	man, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	bi.cfg, bi.man = cfg, man
	return partial.CompressedToImage(bi)
}

// readConfig reads an image's config as the Docker/OCI image struct.
func readConfig(img v1.Image) (dockerspec.DockerOCIImage, error) {
	var c dockerspec.DockerOCIImage
	raw, err := img.RawConfigFile()
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("parsing image config: %w", err)
	}
	return c, nil
}

func timePtr(t time.Time) *time.Time { t = t.UTC(); return &t }
