package store

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-dev/strata/internal/ctxio"
)

// LoadedImage is one image Load stored.
type LoadedImage struct {
	ID     v1.Hash  // config digest
	Digest v1.Hash  // manifest digest in the store
	Names  []string // full names it was tagged with
}

// maxMetaSize bounds manifest.json, index.json and the like.
const maxMetaSize = 4 << 20

// Load reads an image archive (docker save format or an OCI layout tar,
// told apart by content, optionally compressed) from r and stores its images
// under the names the archive gives. The archive is read as hostile input:
// only directories, regular files and links between its own files are
// accepted, names must stay inside it and appear once, and every blob must
// match its digest (a docker-format layer its config's diffID). Nothing is
// stored before the whole archive has been read and checked, so a bad
// archive leaves the store as it was.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]LoadedImage, error) {
	release, err := s.Hold()
	if err != nil {
		return nil, err
	}
	defer release()
	dec, err := Decompress(r)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	l := &loader{s: s, files: map[string]*staged{}, links: map[string]string{}, meta: map[string][]byte{}, dirs: map[string]bool{}}
	defer l.discard()
	if err := l.read(ctx, dec); err != nil {
		return nil, err
	}
	switch {
	case l.meta["index.json"] != nil:
		return l.loadOCI(ctx)
	case l.meta["manifest.json"] != nil:
		return l.loadDocker(ctx)
	}
	return nil, badArchive("not an image archive: no index.json or manifest.json")
}

// staged is an archive file written to ingest/, not yet committed.
type staged struct {
	w      *Writer
	name   string
	digest v1.Hash
	size   int64
}

func (f *staged) open() (*os.File, error) { return os.Open(f.w.f.Name()) }

func (f *staged) readAll(limit int64) ([]byte, error) {
	if f.size > limit {
		return nil, badArchive("%s: %d bytes, more than the %d allowed", f.name, f.size, limit)
	}
	return os.ReadFile(f.w.f.Name())
}

type loader struct {
	s     *Store
	files map[string]*staged // by clean name
	links map[string]string  // symlinks and hardlinks: clean name -> clean target
	meta  map[string][]byte  // the archive's small JSON files
	dirs  map[string]bool
	all   []*staged
}

// lookup finds the file name stands for, following links (old docker save
// archives link shared layers); links are only names inside the archive, so
// following them never touches the filesystem.
func (l *loader) lookup(n string) *staged {
	for i := 0; i < 16; i++ {
		if f := l.files[n]; f != nil {
			return f
		}
		t, ok := l.links[n]
		if !ok {
			return nil
		}
		n = t
	}
	return nil
}

var metaFiles = map[string]bool{"index.json": true, "manifest.json": true, "oci-layout": true, "repositories": true}

func (l *loader) discard() {
	for _, f := range l.all {
		f.w.Close()
	}
}

// read stages every file of the archive.
func (l *loader) read(ctx context.Context, r io.Reader) error {
	checked := CheckTar(r)
	tr := tar.NewReader(ctxio.Reader(ctx, checked))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, ErrBadArchive) {
				return err
			}
			return fmt.Errorf("reading archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		n, err := archiveName(hdr.Name)
		if err != nil {
			return err
		}
		if n == "" {
			continue // "./"
		}
		_, isLink := l.links[n]
		if l.files[n] != nil || isLink || l.meta[n] != nil || (l.dirs[n] && hdr.Typeflag != tar.TypeDir) {
			return badArchive("duplicate entry %q in image archive", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			l.dirs[n] = true
		case tar.TypeReg, tar.TypeRegA:
			if metaFiles[n] {
				if hdr.Size > maxMetaSize {
					return badArchive("%s: %d bytes, more than the %d allowed", n, hdr.Size, maxMetaSize)
				}
				b, err := io.ReadAll(tr)
				if err != nil {
					return err
				}
				l.meta[n] = b
				continue
			}
			w, err := l.s.NewWriter()
			if err != nil {
				return err
			}
			f := &staged{w: w, name: n}
			l.all = append(l.all, f)
			if _, err := io.Copy(w, tr); err != nil {
				return err
			}
			f.digest, f.size = w.Digest(), w.Size()
			l.files[n] = f
		case tar.TypeSymlink, tar.TypeLink:
			target := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink {
				if path.IsAbs(target) {
					return badArchive("symlink %q -> %q points outside the archive", hdr.Name, target)
				}
				target = path.Join(path.Dir(n), target)
			}
			t, err := archiveName(target)
			if err != nil || escapes(target) {
				return badArchive("link %q -> %q points outside the archive", hdr.Name, hdr.Linkname)
			}
			l.links[n] = t
		default:
			return badArchive("unexpected entry %q (type %q) in image archive: only files and directories belong there", hdr.Name, string(hdr.Typeflag))
		}
	}
	// Read to the end, so that a compressor's checksum is verified.
	if _, err := io.Copy(io.Discard, checked); err != nil {
		return err
	}
	return nil
}

// archiveName checks a name inside an image archive and cleans it.
func archiveName(n string) (string, error) {
	if strings.HasPrefix(n, "/") {
		return "", badArchive("absolute name %q in image archive", n)
	}
	for _, el := range strings.Split(n, "/") {
		if el == ".." {
			return "", badArchive("name %q in image archive climbs out with ..", n)
		}
	}
	if strings.ContainsRune(n, 0) {
		return "", badArchive("NUL in name %q in image archive", n)
	}
	return cleanName(n), nil
}

// checkBlobNames verifies every file under blobs/ against its name.
func (l *loader) checkBlobNames() error {
	names := []string{}
	for n := range l.files {
		names = append(names, n)
	}
	for n := range l.links {
		names = append(names, n)
	}
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, "blobs/")
		if !ok {
			continue
		}
		alg, hex, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		if alg != "sha256" {
			return badArchive("%s: unsupported digest algorithm %s", n, alg)
		}
		f := l.lookup(n)
		if f == nil {
			return badArchive("%s: link to nothing in the archive", n)
		}
		if f.digest.Hex != hex {
			return badArchive("%s: content is %s, not what its name says", n, f.digest)
		}
	}
	return nil
}

// blob finds a blob by digest in the archive (or, failing that, the store)
// and checks its size.
func (l *loader) blob(d v1.Descriptor) (*staged, error) {
	if f := l.lookup("blobs/" + d.Digest.Algorithm + "/" + d.Digest.Hex); f != nil {
		if f.size != d.Size {
			return nil, badArchive("blob %s: %d bytes, descriptor says %d", d.Digest, f.size, d.Size)
		}
		return f, nil
	}
	if n, err := l.s.BlobSize(d.Digest); err == nil && n == d.Size {
		return nil, nil // already stored
	}
	return nil, badArchive("blob %s (%s) is missing from the archive", d.Digest, d.MediaType)
}

func (l *loader) readBlob(d v1.Descriptor) ([]byte, error) {
	f, err := l.blob(d)
	if err != nil {
		return nil, err
	}
	if f != nil {
		return f.readAll(maxMetaSize)
	}
	return os.ReadFile(l.s.BlobPath(d.Digest))
}

// commit stores the staged files the images need.
func (l *loader) commit(need []*staged) error {
	done := map[*staged]bool{}
	for _, f := range need {
		if f == nil || done[f] {
			continue
		}
		done[f] = true
		if _, err := f.w.Commit(f.digest, f.size); err != nil {
			return err
		}
	}
	return nil
}

func (l *loader) loadOCI(ctx context.Context) ([]LoadedImage, error) {
	if err := l.checkBlobNames(); err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(l.meta["index.json"]))
	if err != nil {
		return nil, badArchive("index.json: %v", err)
	}
	type image struct {
		desc  v1.Descriptor
		names []string
	}
	var images []image
	var need []*staged
	for _, d := range idx.Manifests {
		names, err := ociNames(d.Annotations)
		if err != nil {
			return nil, err
		}
		d, err := l.pickManifest(d, &need, 0)
		if err != nil {
			return nil, err
		}
		images = append(images, image{desc: d, names: names})
	}
	for _, im := range images {
		f, err := l.blob(im.desc)
		if err != nil {
			return nil, err
		}
		need = append(need, f)
		raw, err := l.readBlob(im.desc)
		if err != nil {
			return nil, err
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, badArchive("manifest %s: %v", im.desc.Digest, err)
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			f, err := l.blob(d)
			if err != nil {
				return nil, err
			}
			need = append(need, f)
		}
	}
	if err := l.commit(need); err != nil {
		return nil, err
	}
	var out []LoadedImage
	for _, im := range images {
		img, err := l.s.ImageByDigest(im.desc.Digest)
		if err != nil {
			return nil, err
		}
		rec, err := l.s.WriteImage(ctx, img, im.names...)
		if err != nil {
			return nil, err
		}
		out = append(out, LoadedImage{ID: rec.ID, Digest: rec.Digest, Names: im.names})
	}
	return out, nil
}

// pickManifest follows an index down to the manifest for this machine.
func (l *loader) pickManifest(d v1.Descriptor, need *[]*staged, depth int) (v1.Descriptor, error) {
	if d.MediaType.IsImage() {
		return d, nil
	}
	if !d.MediaType.IsIndex() || depth > 4 {
		return d, badArchive("index.json: unsupported entry %s of type %q", d.Digest, d.MediaType)
	}
	raw, err := l.readBlob(d)
	if err != nil {
		return d, err
	}
	f, _ := l.blob(d)
	*need = append(*need, f)
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return d, badArchive("index %s: %v", d.Digest, err)
	}
	host := HostPlatform()
	for _, c := range im.Manifests {
		if len(im.Manifests) == 1 || c.Platform == nil || c.Platform.Satisfies(host) {
			return l.pickManifest(c, need, depth+1)
		}
	}
	return d, fmt.Errorf("index %s has no image for %s/%s", d.Digest, host.OS, host.Architecture)
}

// ociNames reads an image's name from an OCI index entry's annotations: the
// containerd name, or ref.name when it is a full reference (a bare tag such
// as "latest" names no repository, so the image stays untagged).
func ociNames(ann map[string]string) ([]string, error) {
	n := ann[AnnotationContainerdName]
	if n == "" {
		n = ann[AnnotationRefName]
		if !strings.ContainsAny(n, "/:") {
			return nil, nil
		}
	}
	if n == "" {
		return nil, nil
	}
	t, err := ParseTag(n)
	if err != nil {
		return nil, badArchive("image name %q in index.json: %v", n, err)
	}
	return []string{FullName(t)}, nil
}

// dockerManifest is one entry of a docker save manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func (l *loader) loadDocker(ctx context.Context) ([]LoadedImage, error) {
	if err := l.checkBlobNames(); err != nil {
		return nil, err
	}
	var entries []dockerManifest
	if err := json.Unmarshal(l.meta["manifest.json"], &entries); err != nil {
		return nil, badArchive("manifest.json: %v", err)
	}
	type image struct {
		img   v1.Image
		names []string
	}
	var images []image
	var need []*staged
	for _, e := range entries {
		names, err := fullNames(e.RepoTags)
		if err != nil {
			return nil, badArchive("manifest.json: %v", err)
		}
		img, files, err := l.dockerImage(e)
		if err != nil {
			return nil, err
		}
		need = append(need, files...)
		images = append(images, image{img: img, names: names})
	}
	if err := l.commit(need); err != nil {
		return nil, err
	}
	var out []LoadedImage
	for _, im := range images {
		rec, err := l.s.WriteImage(ctx, im.img, im.names...)
		if err != nil {
			return nil, err
		}
		out = append(out, LoadedImage{ID: rec.ID, Digest: rec.Digest, Names: im.names})
	}
	return out, nil
}

// dockerImage checks one docker manifest.json entry against the staged
// files and builds the OCI image that will be stored for it.
func (l *loader) dockerImage(e dockerManifest) (v1.Image, []*staged, error) {
	name := func(n string) (*staged, error) {
		c, err := archiveName(n)
		if err != nil {
			return nil, err
		}
		f := l.lookup(c)
		if f == nil {
			return nil, badArchive("manifest.json names %q, which is not in the archive", n)
		}
		return f, nil
	}
	cf, err := name(e.Config)
	if err != nil {
		return nil, nil, err
	}
	// The config's file name is usually its digest: check it when it is.
	base := strings.TrimSuffix(strings.TrimPrefix(path.Base(e.Config), "sha256:"), ".json")
	if len(base) == 64 && hexPrefix(base) && base != cf.digest.Hex {
		return nil, nil, badArchive("config %s: content is %s, not what its name says", e.Config, cf.digest)
	}
	cfgRaw, err := cf.readAll(maxMetaSize)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, nil, badArchive("config %s: %v", e.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
		return nil, nil, badArchive("config %s lists %d layers, manifest.json %d", e.Config, len(cfg.RootFS.DiffIDs), len(e.Layers))
	}
	m := &v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cf.digest, Size: cf.size}}
	layers := make([]v1.Layer, len(e.Layers))
	files := []*staged{cf}
	for i, ln := range e.Layers {
		f, err := name(ln)
		if err != nil {
			return nil, nil, err
		}
		mt, diffID, err := layerDiffID(f)
		if err != nil {
			return nil, nil, err
		}
		if diffID != cfg.RootFS.DiffIDs[i] {
			return nil, nil, badArchive("layer %s: content is %s, config says %s", ln, diffID, cfg.RootFS.DiffIDs[i])
		}
		desc := v1.Descriptor{MediaType: mt, Digest: f.digest, Size: f.size}
		m.Layers = append(m.Layers, desc)
		if IsUncompressed(mt) {
			layers[i] = &localLayer{s: l.s, h: f.digest, size: f.size}
		} else {
			layers[i], _ = partial.CompressedToLayer(&diffIDBlobLayer{blobLayer{s: l.s, desc: desc}, diffID})
		}
		files = append(files, f)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, nil, err
	}
	ci := &compressedImage{raw: raw, m: m, cfg: cfgRaw, layers: layers}
	base2, err := partial.CompressedToImage(ci)
	if err != nil {
		return nil, nil, err
	}
	return &layeredImage{Image: base2, ci: ci}, files, nil
}

// layerDiffID reads a staged docker-format layer: its media type by
// content and the digest of its uncompressed tar.
func layerDiffID(f *staged) (types.MediaType, v1.Hash, error) {
	r, err := f.open()
	if err != nil {
		return "", v1.Hash{}, err
	}
	defer r.Close()
	var head [4]byte
	n, _ := io.ReadFull(r, head[:])
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return "", v1.Hash{}, err
	}
	var mt types.MediaType
	switch {
	case n >= 2 && bytes.HasPrefix(head[:n], []byte{0x1f, 0x8b}):
		mt = types.OCILayer
	case n >= 4 && bytes.HasPrefix(head[:n], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		mt = types.OCILayerZStd
	default:
		return types.OCIUncompressedLayer, f.digest, nil
	}
	dec, err := Decompress(r)
	if err != nil {
		return "", v1.Hash{}, fmt.Errorf("layer %s: %w", f.name, err)
	}
	defer dec.Close()
	hr := newHashingReader(dec)
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return "", v1.Hash{}, fmt.Errorf("layer %s: %w", f.name, err)
	}
	return mt, hr.Digest(), nil
}
