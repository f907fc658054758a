package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Entry is what one cached step produced.
type Entry struct {
	// DiffID is the digest of the step's uncompressed layer.
	DiffID string `json:"diffID"`
	// Size is the layer's size in bytes (a cheap integrity check).
	Size int64 `json:"size"`
	// Created is when the step first ran: it becomes the history entry's
	// time, so a cached rebuild yields the same image.
	Created time.Time `json:"created"`
	// Used is when the entry last produced a hit (for prune).
	Used time.Time `json:"used,omitempty"`
	// Blob is the identity (inode, size, mtime, ctime) the layer blob had
	// when verified: while it is unchanged the blob is not re-hashed.
	Blob string `json:"blob,omitempty"`
}

// Index maps cache keys to entries on disk. It is safe for concurrent use by
// several processes: entries are written to a temp file and renamed.
type Index struct{ dir string }

// OpenIndex opens (creating) the index under dir.
func OpenIndex(dir string) (*Index, error) {
	if err := os.MkdirAll(filepath.Join(dir, "index"), 0o700); err != nil {
		return nil, fmt.Errorf("opening build cache: %w", err)
	}
	return &Index{dir: dir}, nil
}

// Dir is the cache's directory.
func (i *Index) Dir() string { return i.dir }

func (i *Index) path(key string) string {
	return filepath.Join(i.dir, "index", key[:2], key)
}

// Get returns the entry for key. A missing or unreadable entry is a miss.
func (i *Index) Get(key string) (Entry, bool) {
	b, err := os.ReadFile(i.path(key))
	if err != nil {
		return Entry{}, false
	}
	var e Entry
	if json.Unmarshal(b, &e) != nil || e.DiffID == "" {
		return Entry{}, false
	}
	return e, true
}

// Put records the entry for key, replacing any previous one.
func (i *Index) Put(key string, e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := writeAtomic(i.path(key), b); err != nil {
		return fmt.Errorf("recording cache entry: %w", err)
	}
	return nil
}

// writeAtomic writes b to p through a temp file renamed into place, so
// readers see the old content or the new, never a part.
func writeAtomic(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// Delete forgets key (a damaged entry).
func (i *Index) Delete(key string) error {
	err := os.Remove(i.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Entries lists every entry (for pinning and prune).
func (i *Index) Entries() (map[string]Entry, error) {
	out := map[string]Entry{}
	dirs, err := os.ReadDir(filepath.Join(i.dir, "index"))
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		files, err := os.ReadDir(filepath.Join(i.dir, "index", d.Name()))
		if err != nil {
			continue
		}
		for _, f := range files {
			if e, ok := i.Get(f.Name()); ok {
				out[f.Name()] = e
			}
		}
	}
	return out, nil
}
