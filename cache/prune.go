package cache

import (
	"os"
	"path/filepath"
	"sort"
	"time"
)

// PruneOptions bound what the build cache keeps.
type PruneOptions struct {
	// KeepBytes keeps the most recently used entries whose layers add up to
	// at most this many bytes (0: no size bound).
	KeepBytes int64
	// Until removes entries not used for this long (0: no age bound).
	Until time.Duration
	// All removes every entry and every cache mount.
	All bool
	Now time.Time
}

// PruneResult says what Prune removed and what stays.
type PruneResult struct {
	Removed int
	Kept    map[string]Entry
	Mounts  int // cache mount directories removed (All)
}

// Prune removes index entries by age and size (least recently used first)
// and returns the entries that stay; the caller re-pins their layers and
// prunes the store so the layers of removed entries are freed.
func (i *Index) Prune(o PruneOptions) (PruneResult, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	all, err := i.Entries()
	if err != nil {
		return PruneResult{}, err
	}
	type kv struct {
		k string
		e Entry
	}
	var list []kv
	for k, e := range all {
		list = append(list, kv{k, e})
	}
	last := func(e Entry) time.Time {
		if e.Used.After(e.Created) {
			return e.Used
		}
		return e.Created
	}
	sort.Slice(list, func(a, b int) bool { return last(list[a].e).After(last(list[b].e)) })
	res := PruneResult{Kept: map[string]Entry{}}
	var total int64
	for _, x := range list {
		drop := o.All
		if o.Until > 0 && o.Now.Sub(last(x.e)) > o.Until {
			drop = true
		}
		if o.KeepBytes > 0 && total+x.e.Size > o.KeepBytes {
			drop = true
		}
		if drop {
			if err := i.Delete(x.k); err != nil {
				return res, err
			}
			res.Removed++
			continue
		}
		total += x.e.Size
		res.Kept[x.k] = x.e
	}
	if o.All {
		i.pruneLineage(nil)
	} else {
		keep := map[string]bool{}
		for _, e := range res.Kept {
			keep[e.DiffID] = true
		}
		i.pruneLineage(keep)
	}
	if o.All {
		mounts, _ := os.ReadDir(filepath.Join(i.dir, "mounts"))
		for _, m := range mounts {
			if err := os.RemoveAll(filepath.Join(i.dir, "mounts", m.Name())); err == nil {
				res.Mounts++
			}
		}
	}
	return res, nil
}
