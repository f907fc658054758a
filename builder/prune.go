package builder

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/store"
)

// PruneCache bounds the build cache (see cache.PruneOptions): it drops
// index entries, re-pins the layers of the entries that stay as one pin,
// and prunes the store so the other layers are freed.
func PruneCache(ctx context.Context, s *store.Store, o cache.PruneOptions) (cache.PruneResult, store.PruneResult, error) {
	dir, err := s.Dir("cache")
	if err != nil {
		return cache.PruneResult{}, store.PruneResult{}, err
	}
	idx, err := cache.OpenIndex(dir)
	if err != nil {
		return cache.PruneResult{}, store.PruneResult{}, err
	}
	release, err := s.Hold()
	if err != nil {
		return cache.PruneResult{}, store.PruneResult{}, err
	}
	res, err := idx.Prune(o)
	if err != nil {
		release()
		return res, store.PruneResult{}, err
	}
	var keep []v1.Hash
	for _, e := range res.Kept {
		if h, err := v1.NewHash(e.DiffID); err == nil {
			keep = append(keep, h)
		}
	}
	pins, err := s.Pins()
	if err == nil {
		for name := range pins {
			if strings.HasPrefix(name, "buildcache/") {
				if err := s.Unpin(name); err != nil {
					release()
					return res, store.PruneResult{}, err
				}
			}
		}
	}
	if len(keep) > 0 {
		if err := s.Pin("buildcache/kept", keep); err != nil {
			release()
			return res, store.PruneResult{}, err
		}
	}
	release()
	sres, err := s.Prune(ctx)
	if err != nil {
		return res, sres, fmt.Errorf("pruning the store: %w", err)
	}
	return res, sres, nil
}
