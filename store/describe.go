package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// HistoryEntry is one row of `strata history`, as docker shows it.
type HistoryEntry struct {
	ID         string // the image ID on the newest row, "<missing>" below it
	Created    time.Time
	CreatedBy  string
	Size       int64 // the layer's size (0 for empty_layer entries)
	Comment    string
	EmptyLayer bool
}

// History returns img's history newest first, each entry with the size of
// the layer it made. An image without history gets one row per layer.
func History(img v1.Image) ([]HistoryEntry, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	id, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	var rows []HistoryEntry
	layer := 0
	hist := cf.History
	if len(hist) == 0 {
		for range m.Layers {
			hist = append(hist, v1.History{Created: cf.Created})
		}
	}
	for _, h := range hist {
		r := HistoryEntry{ID: "<missing>", Created: h.Created.Time, CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if !h.EmptyLayer && layer < len(m.Layers) {
			r.Size = m.Layers[layer].Size
			layer++
		}
		rows = append(rows, r)
	}
	// Newest first.
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	if len(rows) > 0 {
		rows[0].ID = id.String()
	}
	return rows, nil
}

// Inspection is what `strata inspect` prints for one image: docker's
// familiar fields first, then the manifest and config as they are stored.
type Inspection struct {
	ID           string          `json:"Id"`
	Digest       string          `json:"Digest"`
	RepoTags     []string        `json:"RepoTags"`
	RepoDigests  []string        `json:"RepoDigests"`
	Created      string          `json:"Created,omitempty"`
	Architecture string          `json:"Architecture,omitempty"`
	Os           string          `json:"Os,omitempty"`
	Variant      string          `json:"Variant,omitempty"`
	Size         int64           `json:"Size"`
	MediaType    types.MediaType `json:"MediaType"`
	Manifest     json.RawMessage `json:"Manifest"`
	Config       json.RawMessage `json:"Config"`
}

// Inspect describes img; names (full references) become RepoTags and
// RepoDigests as docker shows them. It works for any v1.Image, so a remote
// image can be described the same way.
func Inspect(img v1.Image, names []string) (*Inspection, error) {
	man, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	id, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	size := int64(len(man)) + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	in := &Inspection{
		ID: id.String(), Digest: digest.String(), RepoTags: []string{}, RepoDigests: []string{},
		Architecture: cf.Architecture, Os: cf.OS, Variant: cf.Variant,
		Size: size, MediaType: mt, Manifest: man, Config: cfg,
	}
	if !cf.Created.IsZero() {
		in.Created = cf.Created.UTC().Format(time.RFC3339Nano)
	}
	seen := map[string]bool{}
	for _, n := range names {
		repo, tag := SplitName(n)
		if r, err := ParseReference(n); err == nil {
			if _, isDigest := r.(name.Digest); !isDigest {
				in.RepoTags = append(in.RepoTags, repo+":"+tag)
			}
		}
		if rd := repo + "@" + digest.String(); !seen[rd] {
			seen[rd] = true
			in.RepoDigests = append(in.RepoDigests, rd)
		}
	}
	return in, nil
}

// Inspect describes the stored image ref resolves to.
func (s *Store) Inspect(ref string) (*Inspection, error) {
	img, rec, err := s.Image(ref)
	if err != nil {
		return nil, err
	}
	in, err := Inspect(img, rec.Names)
	if err != nil {
		return nil, fmt.Errorf("inspecting %s: %w", ref, err)
	}
	return in, nil
}

// History returns the history of the stored image ref resolves to.
func (s *Store) History(ref string) ([]HistoryEntry, error) {
	img, _, err := s.Image(ref)
	if err != nil {
		return nil, err
	}
	rows, err := History(img)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", ref, err)
	}
	return rows, nil
}
