package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

const (
	indexMediaType = types.OCIImageIndex
	// AnnotationRefName is the OCI annotation holding an image's name.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// annotationID records the config digest (docker's image ID).
	annotationID = "io.strata.image.id"
	// annotationCreated records when the image was created (its config's time).
	annotationCreated = "org.opencontainers.image.created"
)

// Record describes one image in the store.
type Record struct {
	Digest    v1.Hash         // manifest (or index) digest
	ID        v1.Hash         // config digest: docker's image ID
	MediaType types.MediaType // of the manifest
	Size      int64           // manifest, config and layer blobs
	Names     []string        // full names (docker.io/library/x:latest), sorted
	Created   time.Time
}

func (s *Store) readIndex() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(s.path("index.json"))
	if err != nil {
		return nil, fmt.Errorf("reading store index: %w", err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("reading store index %s: %w", s.path("index.json"), err)
	}
	return &idx, nil
}

func (s *Store) writeIndex(idx *v1.IndexManifest) error {
	sort.SliceStable(idx.Manifests, func(i, j int) bool {
		a, b := idx.Manifests[i].Annotations[AnnotationRefName], idx.Manifests[j].Annotations[AnnotationRefName]
		if a != b {
			return a < b
		}
		return idx.Manifests[i].Digest.String() < idx.Manifests[j].Digest.String()
	})
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(idx); err != nil {
		return err
	}
	return writeFileAtomic(s.path("index.json"), buf.Bytes(), 0o644)
}

// updateIndex runs f on index.json under the index lock and writes the result
// atomically when f returns nil.
func (s *Store) updateIndex(f func(idx *v1.IndexManifest) error) error {
	unlock, err := flock(s.path("index.lock"), unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	if err := f(idx); err != nil {
		return err
	}
	return s.writeIndex(idx)
}

// Images lists every image in the store, newest first.
func (s *Store) Images() ([]Record, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	recs := s.records(idx)
	for i := range recs {
		recs[i].Size = s.imageSize(recs[i].Digest)
	}
	return recs, nil
}

// records groups the index's entries by image. Sizes are left out: adding
// them up reads every manifest, which only listing needs (Images, Resolve's
// one match).
func (s *Store) records(idx *v1.IndexManifest) []Record {
	byDigest := map[v1.Hash]*Record{}
	var order []v1.Hash
	for _, d := range idx.Manifests {
		r := byDigest[d.Digest]
		if r == nil {
			r = &Record{Digest: d.Digest, MediaType: d.MediaType, Size: d.Size}
			if id, err := v1.NewHash(d.Annotations[annotationID]); err == nil {
				r.ID = id
			}
			if t, err := time.Parse(time.RFC3339Nano, d.Annotations[annotationCreated]); err == nil {
				r.Created = t
			}
			byDigest[d.Digest] = r
			order = append(order, d.Digest)
		}
		if n := d.Annotations[AnnotationRefName]; n != "" {
			r.Names = append(r.Names, n)
		}
	}
	out := make([]Record, 0, len(order))
	for _, h := range order {
		r := byDigest[h]
		sort.Strings(r.Names)
		out = append(out, *r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

// imageSize adds up the blobs an image needs (best effort: fsck reports damage).
func (s *Store) imageSize(h v1.Hash) int64 {
	b, err := os.ReadFile(s.BlobPath(h))
	if err != nil {
		return 0
	}
	m, err := v1.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return int64(len(b))
	}
	n := int64(len(b)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// Resolve finds the image a user means by ref: a name (bbase, bbase:tag,
// host:5000/repo:tag), name@digest, an image ID or manifest digest, or a
// unique prefix of one (at least 4 hex digits, with or without "sha256:").
func (s *Store) Resolve(ref string) (Record, error) {
	rec, err := s.resolve(ref)
	if err == nil {
		rec.Size = s.imageSize(rec.Digest)
	}
	return rec, err
}

func (s *Store) resolve(ref string) (Record, error) {
	idx, err := s.readIndex()
	if err != nil {
		return Record{}, err
	}
	recs := s.records(idx)
	if hexPrefix(ref) {
		p := strings.TrimPrefix(ref, "sha256:")
		var found []Record
		for _, r := range recs {
			if strings.HasPrefix(r.ID.Hex, p) || strings.HasPrefix(r.Digest.Hex, p) {
				found = append(found, r)
			}
		}
		if len(found) == 1 {
			return found[0], nil
		}
		if len(found) > 1 {
			return Record{}, fmt.Errorf("image ID prefix %q is ambiguous", ref)
		}
		if strings.HasPrefix(ref, "sha256:") {
			return Record{}, fmt.Errorf("image %s: %w", ref, ErrNotFound)
		}
	}
	r, err := ParseReference(ref)
	if err != nil {
		return Record{}, err
	}
	full := FullName(r)
	if i := strings.Index(full, "@"); i >= 0 {
		h, err := v1.NewHash(full[i+1:])
		if err != nil {
			return Record{}, fmt.Errorf("invalid reference %q: %w", ref, err)
		}
		for _, rec := range recs {
			if rec.Digest == h {
				return rec, nil
			}
		}
		return Record{}, fmt.Errorf("image %s: %w", ref, ErrNotFound)
	}
	for _, rec := range recs {
		for _, n := range rec.Names {
			if n == full {
				return rec, nil
			}
		}
	}
	return Record{}, fmt.Errorf("image %s: %w", ref, ErrNotFound)
}

func hexPrefix(s string) bool {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) < 4 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// addToIndex records img under names; each name moves from whatever image
// had it. Without names the image is recorded untagged (unless it is already
// in the index). Images that lose their last name stay, untagged.
func addToIndex(idx *v1.IndexManifest, desc v1.Descriptor, names []string) {
	taken := map[string]bool{}
	for _, n := range names {
		taken[n] = true
	}
	kept := idx.Manifests[:0]
	present := false
	orphans := map[v1.Hash]v1.Descriptor{}
	for _, d := range idx.Manifests {
		n := d.Annotations[AnnotationRefName]
		if taken[n] {
			if d.Digest != desc.Digest {
				orphans[d.Digest] = d
			}
			continue
		}
		if d.Digest == desc.Digest {
			present = true
		}
		kept = append(kept, d)
	}
	idx.Manifests = kept
	for _, n := range names {
		d := desc
		d.Annotations = copyAnnotations(desc.Annotations)
		d.Annotations[AnnotationRefName] = n
		idx.Manifests = append(idx.Manifests, d)
		present = true
	}
	if !present {
		d := desc
		d.Annotations = copyAnnotations(desc.Annotations)
		delete(d.Annotations, AnnotationRefName)
		idx.Manifests = append(idx.Manifests, d)
	}
	// An image whose names all moved elsewhere stays as <none>.
	for h, d := range orphans {
		if !indexHas(idx, h) {
			d.Annotations = copyAnnotations(d.Annotations)
			delete(d.Annotations, AnnotationRefName)
			idx.Manifests = append(idx.Manifests, d)
		}
	}
}

func indexHas(idx *v1.IndexManifest, h v1.Hash) bool {
	for _, d := range idx.Manifests {
		if d.Digest == h {
			return true
		}
	}
	return false
}

func copyAnnotations(a map[string]string) map[string]string {
	out := make(map[string]string, len(a)+1)
	for k, v := range a {
		out[k] = v
	}
	return out
}

// Tag gives the image ref resolves to the additional name to.
func (s *Store) Tag(ref string, to string) error {
	t, err := ParseTag(to)
	if err != nil {
		return err
	}
	unlock, err := s.rlock()
	if err != nil {
		return err
	}
	defer unlock()
	rec, err := s.Resolve(ref)
	if err != nil {
		return err
	}
	return s.updateIndex(func(idx *v1.IndexManifest) error {
		for _, d := range idx.Manifests {
			if d.Digest == rec.Digest {
				addToIndex(idx, d, []string{FullName(t)})
				return nil
			}
		}
		return fmt.Errorf("image %s: %w", ref, ErrNotFound)
	})
}

// RemoveResult says what Remove did, in docker's words.
type RemoveResult struct {
	Untagged []string
	Deleted  []v1.Hash
}

// Remove untags ref; an image left without names is removed from the index
// (its blobs go at the next Prune). An image referred to by ID that has
// several names is only removed with force.
func (s *Store) Remove(ref string, force bool) (RemoveResult, error) {
	var res RemoveResult
	unlock, err := s.rlock()
	if err != nil {
		return res, err
	}
	defer unlock()
	rec, err := s.Resolve(ref)
	if err != nil {
		return res, err
	}
	byName := ""
	if !hexPrefix(ref) {
		if r, err := ParseReference(ref); err == nil {
			if full := FullName(r); !strings.Contains(full, "@") {
				byName = full
			}
		}
	}
	if byName == "" && len(rec.Names) > 1 && !force {
		return res, fmt.Errorf("unable to remove %s: image is referenced by %d names (%s); remove them by name or use --force",
			ref, len(rec.Names), strings.Join(familiarAll(rec.Names), ", "))
	}
	err = s.updateIndex(func(idx *v1.IndexManifest) error {
		res = RemoveResult{}
		kept := idx.Manifests[:0]
		left := 0
		for _, d := range idx.Manifests {
			if d.Digest != rec.Digest {
				kept = append(kept, d)
				continue
			}
			n := d.Annotations[AnnotationRefName]
			if byName != "" && n != byName {
				kept = append(kept, d)
				left++
				continue
			}
			if n != "" {
				res.Untagged = append(res.Untagged, n)
			}
		}
		idx.Manifests = kept
		if left == 0 {
			res.Deleted = append(res.Deleted, rec.ID)
		}
		return nil
	})
	return res, err
}

func familiarAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = Familiar(n)
	}
	return out
}

// errNoImage is a helper for callers that want errors.Is(err, ErrNotFound).
func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
