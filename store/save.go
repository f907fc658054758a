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
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-dev/strata/internal/ctxio"
)

// Archive formats of Save and Load.
const (
	FormatDocker = "docker" // docker save/load: manifest.json, config, layer files
	FormatOCI    = "oci"    // an OCI image layout as a tar
)

// AnnotationContainerdName is the annotation docker and containerd read an
// image's name from in an OCI archive.
const AnnotationContainerdName = "io.containerd.image.name"

// SaveOptions choose Save's archive.
type SaveOptions struct {
	Format string // "docker" (the default) or "oci"
	// Compression of local layers: "gzip" (the default), "zstd", or
	// "uncompressed" (written as stored).
	Compression string
}

// Uncompressed is the SaveOptions.Compression that keeps local layers as
// they are stored.
const Uncompressed = "uncompressed"

func (o SaveOptions) check() (format, algo string, err error) {
	format, algo = o.Format, o.Compression
	if format == "" {
		format = FormatDocker
	}
	if format != FormatDocker && format != FormatOCI {
		return "", "", fmt.Errorf("unknown archive format %q (want docker or oci)", format)
	}
	if algo == "" {
		algo = Gzip
	}
	if algo != Gzip && algo != Zstd && algo != Uncompressed {
		return "", "", fmt.Errorf("unknown compression %q (want gzip, zstd or uncompressed)", algo)
	}
	return format, algo, nil
}

// archiveItem is one image of an archive and its full name ("" for none).
type archiveItem struct {
	img  v1.Image
	name string
}

// Save writes the images refs resolve to as one archive to w. Local
// (uncompressed) layers are written compressed (CompressedImage); pulled
// ones as they are. An image named by a tag is saved under that name; one
// named by ID or digest is saved without a name. The archive is streamed.
func (s *Store) Save(ctx context.Context, w io.Writer, refs []string, opts SaveOptions) error {
	format, algo, err := opts.check()
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return fmt.Errorf("saving: no image given")
	}
	release, err := s.Hold() // no Prune while blobs are read
	if err != nil {
		return err
	}
	defer release()
	var items []archiveItem
	byDigest := map[v1.Hash]v1.Image{}
	for _, ref := range refs {
		rec, err := s.Resolve(ref)
		if err != nil {
			return err
		}
		img := byDigest[rec.Digest]
		if img == nil {
			stored, err := s.ImageByDigest(rec.Digest)
			if err != nil {
				return err
			}
			if img, err = s.archived(ctx, stored, algo); err != nil {
				return fmt.Errorf("saving %s: %w", ref, err)
			}
			byDigest[rec.Digest] = img
		}
		items = append(items, archiveItem{img: img, name: tagName(ref)})
	}
	return writeArchive(ctx, w, items, format)
}

// WriteArchive writes img as a one-image archive in opts' format and
// compression to w, named fullName (a full tag; "" for none), as Save
// writes a stored image. img's layers are the store's.
func (s *Store) WriteArchive(ctx context.Context, w io.Writer, img v1.Image, fullName string, opts SaveOptions) error {
	format, algo, err := opts.check()
	if err != nil {
		return err
	}
	release, err := s.Hold()
	if err != nil {
		return err
	}
	defer release()
	if img, err = s.archived(ctx, img, algo); err != nil {
		return err
	}
	return writeArchive(ctx, w, []archiveItem{{img, fullName}}, format)
}

// archived is img with its local layers compressed with algo (or not).
func (s *Store) archived(ctx context.Context, img v1.Image, algo string) (v1.Image, error) {
	if algo == Uncompressed {
		return img, nil
	}
	return s.CompressedImage(ctx, img, algo)
}

func writeArchive(ctx context.Context, w io.Writer, items []archiveItem, format string) error {
	if format == FormatDocker {
		m := map[name.Reference]v1.Image{}
		for _, it := range items {
			var r name.Reference
			if it.name != "" {
				t, err := name.NewTag(Familiar(it.name))
				if err != nil {
					return err
				}
				r = t
			} else {
				d, err := it.img.Digest()
				if err != nil {
					return err
				}
				if r, err = name.NewDigest("strata.invalid/untagged@" + d.String()); err != nil {
					return err
				}
			}
			m[r] = it.img
		}
		if err := tarball.MultiRefWrite(m, ctxio.Writer(ctx, w)); err != nil {
			return fmt.Errorf("saving: %w", err)
		}
		return nil
	}
	ow := newOCIWriter(ctxio.Writer(ctx, w))
	for _, it := range items {
		if err := ow.add(it.img, it.name); err != nil {
			return fmt.Errorf("saving: %w", err)
		}
	}
	if err := ow.close(); err != nil {
		return fmt.Errorf("saving: %w", err)
	}
	return nil
}

// tagName is the full tag ref names, or "" when ref is an ID, a digest or
// name@digest.
func tagName(ref string) string {
	if hexPrefix(ref) {
		return ""
	}
	r, err := ParseReference(ref)
	if err != nil {
		return ""
	}
	if _, ok := r.(name.Tag); !ok {
		return ""
	}
	return FullName(r)
}

// ociWriter streams an OCI image layout as a tar: oci-layout, blobs (each
// once), then index.json.
type ociWriter struct {
	tw    *tar.Writer
	seen  map[v1.Hash]bool
	index v1.IndexManifest
	err   error
}

var epoch = time.Unix(0, 0).UTC()

func newOCIWriter(w io.Writer) *ociWriter {
	o := &ociWriter{tw: tar.NewWriter(w), seen: map[v1.Hash]bool{},
		index: v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}}
	o.dir("blobs/")
	o.dir("blobs/sha256/")
	o.file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	return o
}

func (o *ociWriter) dir(n string) {
	if o.err == nil {
		o.err = o.tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch})
	}
}

func (o *ociWriter) file(n string, b []byte) {
	o.stream(n, int64(len(b)), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

func (o *ociWriter) stream(n string, size int64, open func() (io.ReadCloser, error)) {
	if o.err != nil {
		return
	}
	if o.err = o.tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: epoch}); o.err != nil {
		return
	}
	rc, err := open()
	if err != nil {
		o.err = err
		return
	}
	defer rc.Close()
	_, o.err = io.Copy(o.tw, rc)
}

func (o *ociWriter) blob(h v1.Hash, size int64, open func() (io.ReadCloser, error)) {
	if o.seen[h] {
		return
	}
	o.seen[h] = true
	o.stream("blobs/"+h.Algorithm+"/"+h.Hex, size, open)
}

func (o *ociWriter) add(img v1.Image, fullName string) error {
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cn, err := img.ConfigName()
	if err != nil {
		return err
	}
	o.blob(cn, int64(len(cfg)), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(cfg)), nil })
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		o.blob(d, size, l.Compressed)
	}
	man, err := img.RawManifest()
	if err != nil {
		return err
	}
	md, err := img.Digest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	o.blob(md, int64(len(man)), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(man)), nil })
	desc := v1.Descriptor{MediaType: mt, Digest: md, Size: int64(len(man))}
	if cf, err := img.ConfigFile(); err == nil && cf.OS != "" {
		desc.Platform = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
	}
	if fullName != "" {
		desc.Annotations = map[string]string{AnnotationRefName: fullName, AnnotationContainerdName: fullName}
	}
	o.index.Manifests = append(o.index.Manifests, desc)
	return o.err
}

func (o *ociWriter) close() error {
	b, err := json.Marshal(o.index)
	if err != nil {
		return err
	}
	o.file("index.json", b)
	if o.err != nil {
		return o.err
	}
	return o.tw.Close()
}

// AtomicFile is a file that appears at its path complete or not at all: it
// is written to a temp file beside it and renamed on Commit.
type AtomicFile struct {
	*os.File
	path   string
	done   bool
	direct bool // path itself is written (not a regular file)
}

// CreateAtomic starts writing path. A path that exists and is neither a
// regular file nor a directory (/dev/null, a FIFO, /dev/stdout) is written
// in place: a rename over it would replace the device with a plain file.
func CreateAtomic(path string) (*AtomicFile, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("creating %s: %w", path, err)
		}
		return &AtomicFile{File: f, path: path, direct: true}, nil
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+strings.TrimPrefix(base, ".")+".tmp-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the temp file's name would only confuse
		}
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	return &AtomicFile{File: f, path: path}, nil
}

// Commit makes the file durable and moves it to its path.
func (a *AtomicFile) Commit() error {
	if a.done {
		return fmt.Errorf("%s: already closed", a.path)
	}
	a.done = true
	if a.direct {
		if err := a.File.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", a.path, err)
		}
		return nil
	}
	err := a.Chmod(0o644)
	if err == nil {
		err = a.Sync()
	}
	if cerr := a.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(a.Name(), a.path)
	}
	if err != nil {
		os.Remove(a.Name())
		return fmt.Errorf("writing %s: %w", a.path, err)
	}
	return syncDir(filepath.Dir(a.path))
}

// Abort discards the file; after Commit it does nothing.
func (a *AtomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.File.Close()
	if !a.direct {
		os.Remove(a.Name())
	}
}
