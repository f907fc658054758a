package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// PruneResult says what Prune removed.
type PruneResult struct {
	Blobs int   // blobs removed
	Files int   // stale temp files, locks and cache entries removed
	Bytes int64 // bytes freed
}

// Prune removes every blob not reachable from index.json or a pin (through
// manifests and indexes), compressed-cache entries of layers no longer
// reachable, and stale temp files left by interrupted writers. It holds the
// store exclusively: it waits for every writer (and every Hold) to finish,
// and they wait for it.
func (s *Store) Prune(ctx context.Context) (PruneResult, error) {
	var res PruneResult
	unlock, err := s.xlock()
	if err != nil {
		return res, err
	}
	defer unlock()
	live, err := s.reachable()
	if err != nil {
		return res, fmt.Errorf("pruning: %w", err)
	}
	// Compressed copies live as long as their uncompressed layer.
	algos, _ := os.ReadDir(s.path("compressed"))
	for _, a := range algos {
		if !a.IsDir() {
			continue
		}
		dir := s.path("compressed", a.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return res, fmt.Errorf("pruning: %w", err)
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			d, ok := parseCacheName(e.Name())
			if ok && live[d] {
				if h, err := s.CompressedBlob(d, a.Name()); err == nil {
					live[h] = true
					continue
				}
			}
			res.remove(p)
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	blobs, err := os.ReadDir(s.path("blobs", "sha256"))
	if err != nil {
		return res, fmt.Errorf("pruning: %w", err)
	}
	for _, b := range blobs {
		if live[v1.Hash{Algorithm: "sha256", Hex: b.Name()}] {
			continue
		}
		if res.remove(s.path("blobs", "sha256", b.Name())) {
			res.Blobs++
			res.Files--
		}
	}
	// Temp files of interrupted writers. Nobody can be writing one of these
	// while we hold the store exclusively, except blob writers and
	// compressors in ingest/, which keep a lock on their file.
	for _, dir := range []string{"", "pins"} {
		ents, _ := os.ReadDir(s.path(dir))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				res.remove(s.path(dir, e.Name()))
			}
		}
	}
	for _, a := range algos {
		ents, _ := os.ReadDir(s.path("compressed", a.Name()))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				res.remove(s.path("compressed", a.Name(), e.Name()))
			}
		}
	}
	ents, _ := os.ReadDir(s.path("ingest"))
	for _, e := range ents {
		p := s.path("ingest", e.Name())
		if unlockFile, ok := tryLock(p); ok {
			res.remove(p)
			unlockFile()
		}
	}
	if err := syncDir(s.path("blobs", "sha256")); err != nil {
		return res, err
	}
	return res, nil
}

func (r *PruneResult) remove(p string) bool {
	fi, err := os.Lstat(p)
	if err != nil {
		return false
	}
	if err := os.Remove(p); err != nil {
		return false
	}
	r.Files++
	r.Bytes += fi.Size()
	return true
}

// tryLock takes an exclusive lock on p without waiting.
func tryLock(p string) (func(), bool) {
	f, err := os.OpenFile(p, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

func parseCacheName(n string) (v1.Hash, bool) {
	alg, hex, ok := strings.Cut(n, "-")
	if !ok {
		return v1.Hash{}, false
	}
	h, err := v1.NewHash(alg + ":" + hex)
	return h, err == nil
}

// reachable is the set of blobs index.json and the pins keep alive.
func (s *Store) reachable() (map[v1.Hash]bool, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	pins, err := s.Pins()
	if err != nil {
		return nil, err
	}
	live := map[v1.Hash]bool{}
	var roots []v1.Hash
	for _, d := range idx.Manifests {
		roots = append(roots, d.Digest)
	}
	for _, hs := range pins {
		roots = append(roots, hs...)
	}
	for len(roots) > 0 {
		h := roots[len(roots)-1]
		roots = roots[:len(roots)-1]
		if live[h] {
			continue
		}
		live[h] = true
		roots = append(roots, s.children(h)...)
	}
	return live, nil
}

// maxManifestSize bounds what is read to look for references.
const maxManifestSize = 4 << 20

// children returns the blobs a stored manifest or index references (config,
// layers, manifests); nothing for any other blob.
func (s *Store) children(h v1.Hash) []v1.Hash {
	f, err := s.OpenBlob(h)
	if err != nil {
		return nil
	}
	defer f.Close()
	var head [1]byte
	if _, err := io.ReadFull(f, head[:]); err != nil || head[0] != '{' {
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil || len(b) > maxManifestSize {
		return nil
	}
	var m struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&m); err != nil {
		return nil
	}
	var out []v1.Hash
	if m.Config != nil {
		out = append(out, m.Config.Digest)
	}
	for _, d := range append(m.Layers, m.Manifests...) {
		out = append(out, d.Digest)
	}
	return out
}

// RemoveDangling removes from the index every image without a name that no
// pin refers to (docker's dangling images), and returns their IDs. Their
// blobs go at the next Prune.
func (s *Store) RemoveDangling() ([]v1.Hash, error) {
	unlock, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	pins, err := s.Pins()
	if err != nil {
		return nil, err
	}
	pinned := map[v1.Hash]bool{}
	for _, hs := range pins {
		for _, h := range hs {
			pinned[h] = true
		}
	}
	var removed []v1.Hash
	err = s.updateIndex(func(idx *v1.IndexManifest) error {
		removed = nil
		kept := idx.Manifests[:0]
		for _, d := range idx.Manifests {
			if d.Annotations[AnnotationRefName] == "" && !pinned[d.Digest] {
				if id, err := v1.NewHash(d.Annotations[annotationID]); err == nil {
					removed = append(removed, id)
				} else {
					removed = append(removed, d.Digest)
				}
				continue
			}
			kept = append(kept, d)
		}
		idx.Manifests = kept
		return nil
	})
	return removed, err
}
