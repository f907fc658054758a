package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/strata-dev/strata/internal/ctxio"
)

// FsckReport is what Fsck found.
type FsckReport struct {
	Blobs    int      // blobs re-hashed
	Images   int      // index entries checked
	Problems []string // one line per problem, sorted; empty when the store is sound
}

// Fsck re-hashes every blob and checks every reference: each index entry's
// manifest, config and layers exist with the sizes their descriptors give,
// the config has one diffID per layer (equal to the digest for uncompressed
// layers), compressed-cache entries point at blobs that decompress to their
// layer, and pinned blobs exist. Leftover temp files are not damage. The
// error is only for failures to run the check at all.
func (s *Store) Fsck(ctx context.Context) (FsckReport, error) {
	var rep FsckReport
	unlock, err := s.rlock()
	if err != nil {
		return rep, err
	}
	defer unlock()
	var mu sync.Mutex
	problem := func(format string, args ...any) {
		mu.Lock()
		rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}

	// 1. Every blob's content matches its name.
	ents, err := os.ReadDir(s.path("blobs", "sha256"))
	if err != nil {
		return rep, fmt.Errorf("checking blobs: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Jobs)
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() {
			problem("blob %s: not a regular file", name)
			continue
		}
		if _, err := v1.NewHash("sha256:" + name); err != nil {
			problem("blob %s: not a sha256 digest", name)
			continue
		}
		rep.Blobs++
		g.Go(func() error {
			got, err := hashFile(gctx, s.path("blobs", "sha256", name))
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				problem("blob sha256:%s: %v", name, err)
			} else if got != name {
				problem("blob sha256:%s: content hashes to sha256:%s", name, got)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rep, err
	}

	// 2. Every index entry is a complete image.
	idx, err := s.readIndex()
	if err != nil {
		problem("index.json: %v", err)
	} else {
		for _, d := range idx.Manifests {
			rep.Images++
			what := d.Digest.String()
			if n := d.Annotations[AnnotationRefName]; n != "" {
				what = Familiar(n)
				if _, err := ParseReference(n); err != nil {
					problem("image %s: invalid name", what)
				}
			}
			for _, p := range s.checkManifest(d, 0) {
				problem("image %s: %s", what, p)
			}
		}
	}

	// 3. The compressed cache.
	algos, _ := os.ReadDir(s.path("compressed"))
	for _, a := range algos {
		if !a.IsDir() {
			continue
		}
		files, _ := os.ReadDir(s.path("compressed", a.Name()))
		for _, f := range files {
			if strings.HasPrefix(f.Name(), ".tmp-") {
				continue
			}
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			if p := s.checkCompressed(a.Name(), f.Name()); p != "" {
				problem("compressed cache %s/%s: %s", a.Name(), f.Name(), p)
			}
		}
	}

	// 4. Pins name blobs that exist.
	pins, err := s.Pins()
	if err != nil {
		problem("pins: %v", err)
	}
	for name, hs := range pins {
		for _, h := range hs {
			if !s.HasBlob(h) {
				problem("pin %s: blob %s is missing", name, h)
			}
		}
	}
	sort.Strings(rep.Problems)
	return rep, nil
}

// checkManifest checks the manifest or index d and everything it references.
func (s *Store) checkManifest(d v1.Descriptor, depth int) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	b, err := os.ReadFile(s.BlobPath(d.Digest))
	if err != nil {
		return []string{fmt.Sprintf("manifest %s is missing", d.Digest)}
	}
	if int64(len(b)) != d.Size {
		bad("manifest %s: size %d, descriptor says %d", d.Digest, len(b), d.Size)
	}
	if d.MediaType.IsIndex() {
		if depth > 4 {
			return append(out, "indexes nested too deep")
		}
		im, err := v1.ParseIndexManifest(bytes.NewReader(b))
		if err != nil {
			return append(out, fmt.Sprintf("index %s: %v", d.Digest, err))
		}
		for _, c := range im.Manifests {
			out = append(out, s.checkManifest(c, depth+1)...)
		}
		return out
	}
	m, err := v1.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return append(out, fmt.Sprintf("manifest %s: %v", d.Digest, err))
	}
	checkBlob := func(what string, desc v1.Descriptor) {
		n, err := s.BlobSize(desc.Digest)
		if err != nil {
			bad("%s %s is missing", what, desc.Digest)
		} else if n != desc.Size {
			bad("%s %s: size %d, manifest says %d", what, desc.Digest, n, desc.Size)
		}
	}
	checkBlob("config", m.Config)
	for _, l := range m.Layers {
		if isForeign(l) && !s.HasBlob(l.Digest) {
			continue // non-distributable: fetched from its URLs, never stored
		}
		checkBlob("layer", l)
	}
	cb, err := os.ReadFile(s.BlobPath(m.Config.Digest))
	if err != nil {
		return out
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(cb))
	if err != nil {
		return append(out, fmt.Sprintf("config %s: %v", m.Config.Digest, err))
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return append(out, fmt.Sprintf("config %s has %d diffIDs for %d layers", m.Config.Digest, len(cf.RootFS.DiffIDs), len(m.Layers)))
	}
	for i, l := range m.Layers {
		if IsUncompressed(l.MediaType) && cf.RootFS.DiffIDs[i] != l.Digest {
			bad("layer %d (%s) is uncompressed but its diffID is %s", i, l.Digest, cf.RootFS.DiffIDs[i])
		}
	}
	return out
}

// checkCompressed checks one compressed-cache entry: it names a stored blob
// that decompresses to the layer it stands for.
func (s *Store) checkCompressed(algo, file string) string {
	d, ok := parseCacheName(file)
	if !ok {
		return "not named after a digest"
	}
	b, err := os.ReadFile(filepath.Join(s.path("compressed", algo), file))
	if err != nil {
		return err.Error()
	}
	h, err := v1.NewHash(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Sprintf("invalid content %q", strings.TrimSpace(string(b)))
	}
	f, err := s.OpenBlob(h)
	if err != nil {
		return fmt.Sprintf("blob %s is missing", h)
	}
	defer f.Close()
	dec, err := Decompress(f)
	if err != nil {
		return fmt.Sprintf("blob %s: %v", h, err)
	}
	defer dec.Close()
	hr := newHashingReader(dec)
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return fmt.Sprintf("blob %s: %v", h, err)
	}
	if got := hr.Digest(); got != d {
		return fmt.Sprintf("blob %s decompresses to %s", h, got)
	}
	return ""
}

func hashFile(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxio.Reader(ctx, f)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// isForeign reports whether a layer is non-distributable (Windows base
// layers): registries and pulls may leave it out.
func isForeign(d v1.Descriptor) bool {
	return !d.MediaType.IsDistributable() && len(d.URLs) > 0
}
