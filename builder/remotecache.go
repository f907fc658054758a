package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"

	"github.com/strata-dev/strata/store"
)

// Remote cache format (--cache-to / --cache-from).
//
// The cache is an ordinary OCI image, so any registry or OCI layout holds it:
// its layers are the cached layers, its config a valid image config whose
// rootfs.diff_ids are those layers, plus one extra field:
//
//	"strata.cache.v1": [{"key": KEY, "diffID": "sha256:…", "size": N,
//	                     "created": TIME}, …]
//
// KEY is the instruction cache key (see package cache). mode=min exports the
// steps whose layers are in the built image, mode=max every step of every
// stage built. An importer reads the config first and fetches a layer only
// when a step's key matches, so a fresh machine downloads only the layers
// the result needs (from a registry through Options.RemoteImage; the cache
// image itself is not stored).

// CacheSpec is one --cache-to or --cache-from.
type CacheSpec struct {
	Type string // "registry" or "local"
	Ref  string // registry reference
	Dir  string // local directory (dest= or src=)
	Mode string // "min" (default) or "max"
}

// ParseCacheSpec parses type=registry,ref=R[,mode=M] or type=local,dest|src=DIR.
func ParseCacheSpec(s string) (CacheSpec, error) {
	var c CacheSpec
	for _, f := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return c, fmt.Errorf("invalid cache %q: want type=registry,ref=REF or type=local,dest=DIR", s)
		}
		switch k {
		case "type":
			c.Type = v
		case "ref":
			c.Ref = v
		case "dest", "src":
			c.Dir = v
		case "mode":
			if v != "min" && v != "max" {
				return c, fmt.Errorf("invalid cache %q: mode must be min or max", s)
			}
			c.Mode = v
		case "oci-mediatypes", "compression", "ignore-error", "image-manifest":
		default:
			return c, fmt.Errorf("invalid cache %q: unknown key %q", s, k)
		}
	}
	switch {
	case c.Type == "registry" && c.Ref == "":
		return c, fmt.Errorf("invalid cache %q: ref= is required", s)
	case c.Type == "local" && c.Dir == "":
		return c, fmt.Errorf("invalid cache %q: dest= (or src=) is required", s)
	case c.Type != "registry" && c.Type != "local":
		return c, fmt.Errorf("invalid cache %q: type must be registry or local", s)
	}
	if c.Mode == "" {
		c.Mode = "min"
	}
	return c, nil
}

type remoteEntry struct {
	Key     string    `json:"key"`
	DiffID  string    `json:"diffID"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

const cacheField = "strata.cache.v1"

// remoteSource is one imported cache: its entries and where their layers are.
type remoteSource struct {
	img     v1.Image
	entries map[string]remoteEntry
}

// importCaches reads the --cache-from configs (layers stay where they are).
func (b *builder) importCaches(ctx context.Context) {
	for _, c := range b.opts.CacheFrom {
		v := b.prog.vertex("importing cache manifest from " + c.Ref + c.Dir)
		img, err := b.openCache(ctx, c)
		if err == nil {
			var raw []byte
			if raw, err = img.RawConfigFile(); err == nil {
				var cfg map[string]json.RawMessage
				if err = json.Unmarshal(raw, &cfg); err == nil {
					var list []remoteEntry
					_ = json.Unmarshal(cfg[cacheField], &list)
					src := &remoteSource{img: img, entries: map[string]remoteEntry{}}
					for _, e := range list {
						src.entries[e.Key] = e
					}
					b.remote = append(b.remote, src)
				}
			}
		}
		if err != nil {
			// a missing or unreadable cache is not an error: the build runs
			b.prog.warn(fmt.Sprintf("cache from %s%s: %v", c.Ref, c.Dir, err))
			v.fail(err)
			continue
		}
		v.done()
	}
}

func (b *builder) openCache(ctx context.Context, c CacheSpec) (v1.Image, error) {
	switch c.Type {
	case "local":
		idx, err := layout.ImageIndexFromPath(c.Dir)
		if err != nil {
			return nil, err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		if len(m.Manifests) == 0 {
			return nil, errors.New("empty cache")
		}
		return idx.Image(m.Manifests[len(m.Manifests)-1].Digest)
	case "registry":
		if b.opts.RemoteImage != nil {
			return b.opts.RemoteImage(ctx, c.Ref)
		}
		if b.opts.PullImage == nil {
			return nil, errors.New("no registry access")
		}
		return b.opts.PullImage(ctx, c.Ref, "")
	}
	return nil, fmt.Errorf("unknown cache type %q", c.Type)
}

// remoteLookup finds key in the imported caches and brings its layer into
// the store (uncompressed, checked against its diffID).
func (b *builder) remoteLookup(ctx context.Context, key string) (v1.Layer, time.Time, bool) {
	for _, src := range b.remote {
		e, ok := src.entries[key]
		if !ok {
			continue
		}
		h, err := v1.NewHash(e.DiffID)
		if err != nil {
			continue
		}
		l, err := src.img.LayerByDiffID(h)
		if err != nil {
			continue
		}
		rc, err := l.Uncompressed()
		if err != nil {
			continue
		}
		got, err := b.s.PutLayer(ctx, rc)
		rc.Close()
		if err != nil {
			continue
		}
		if d, _ := got.Digest(); d != h {
			continue // never a wrong layer
		}
		if err := b.cacheStore(key, got, e.Created); err != nil {
			continue
		}
		return got, e.Created, true
	}
	return nil, time.Time{}, false
}

// exportCaches writes the --cache-to caches after a successful build.
func (b *builder) exportCaches(ctx context.Context, target *stage) error {
	if len(b.opts.CacheTo) == 0 {
		return nil
	}
	inImage := map[*stage]bool{}
	for st := target; st != nil; st = st.baseStage {
		inImage[st] = true
	}
	for _, c := range b.opts.CacheTo {
		var list []remoteEntry
		var layers []v1.Layer
		seen := map[string]bool{}
		b.mu.Lock()
		steps := append([]stepRecord(nil), b.steps...)
		b.mu.Unlock()
		for _, r := range steps {
			if c.Mode == "min" && !inImage[r.st] {
				continue
			}
			e, ok := b.idx.Get(r.key)
			if !ok || seen[r.key] {
				continue
			}
			h, err := v1.NewHash(e.DiffID)
			if err != nil {
				continue
			}
			l, err := b.s.Layer(h)
			if err != nil {
				continue
			}
			seen[r.key] = true
			list = append(list, remoteEntry{Key: r.key, DiffID: e.DiffID, Size: e.Size, Created: e.Created})
			layers = append(layers, l)
		}
		img, err := cacheImage(list, layers, b.plat)
		if err != nil {
			return err
		}
		v := b.prog.vertex("exporting cache to " + c.Ref + c.Dir)
		if err := b.writeCache(ctx, c, img); err != nil {
			v.fail(err)
			return fmt.Errorf("--cache-to %s%s: %w", c.Ref, c.Dir, err)
		}
		v.done()
	}
	return nil
}

func cacheImage(list []remoteEntry, layers []v1.Layer, p Platform) (v1.Image, error) {
	var cfg dockerspec.DockerOCIImage
	cfg.OS, cfg.Architecture = p.OS, p.Arch
	var uniq []v1.Layer
	have := map[v1.Hash]bool{}
	for _, l := range layers {
		d, _ := l.Digest()
		if !have[d] {
			have[d] = true
			uniq = append(uniq, l)
		}
	}
	return assemble(&cfg, uniq, map[string]any{cacheField: list})
}

func (b *builder) writeCache(ctx context.Context, c CacheSpec, img v1.Image) error {
	switch c.Type {
	case "local":
		if err := os.MkdirAll(c.Dir, 0o755); err != nil {
			return err
		}
		lp, err := layout.FromPath(c.Dir)
		if err != nil {
			if lp, err = layout.Write(c.Dir, empty.Index); err != nil {
				return err
			}
		}
		ann := map[string]string{store.AnnotationRefName: "strata-cache"}
		return lp.ReplaceImage(img, match.Annotation(store.AnnotationRefName, "strata-cache"), layout.WithAnnotations(ann))
	case "registry":
		if b.opts.PushImage == nil {
			return errors.New("no registry access")
		}
		if _, err := b.s.WriteImage(ctx, img, c.Ref); err != nil {
			return err
		}
		return b.opts.PushImage(ctx, img, c.Ref)
	}
	return fmt.Errorf("unknown cache type %q", c.Type)
}

// stepRecord is one layer step of this build, for --cache-to.
type stepRecord struct {
	st  *stage
	key string
}
