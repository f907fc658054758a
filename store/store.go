package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/internal/ctxio"
)

// ErrNotFound is returned (wrapped) when a blob or image is not in the store.
var ErrNotFound = errors.New("not found")

// ErrDigestMismatch is returned (wrapped) when content does not match the
// digest or size it was announced with.
var ErrDigestMismatch = errors.New("digest mismatch")

// Store is an open local store. It is safe for concurrent use by several
// goroutines and several processes.
type Store struct {
	root string
}

// Open opens the store at root, creating it if needed.
func Open(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("opening store: no root directory given")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", root, err)
	}
	s := &Store{root: abs}
	for _, d := range []string{"", "blobs/sha256", "ingest", "pins", "compressed"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			return nil, fmt.Errorf("opening store %s: %w", root, err)
		}
	}
	if _, err := os.Stat(s.path("oci-layout")); errors.Is(err, os.ErrNotExist) {
		if err := writeFileAtomic(s.path("oci-layout"), []byte(`{"imageLayoutVersion": "1.0.0"}`), 0o644); err != nil {
			return nil, fmt.Errorf("opening store %s: %w", root, err)
		}
	}
	if _, err := os.Stat(s.path("index.json")); errors.Is(err, os.ErrNotExist) {
		unlock, err := flock(s.path("index.lock"), unix.LOCK_EX)
		if err != nil {
			return nil, fmt.Errorf("opening store %s: %w", root, err)
		}
		defer unlock()
		if _, err := os.Stat(s.path("index.json")); errors.Is(err, os.ErrNotExist) {
			if err := s.writeIndex(&v1.IndexManifest{SchemaVersion: 2, MediaType: indexMediaType}); err != nil {
				return nil, fmt.Errorf("opening store %s: %w", root, err)
			}
		}
	}
	return s, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// Dir returns (and creates) a directory under the root for another package's
// state, e.g. Dir("snapshots"). It lives on the same filesystem as the blobs.
func (s *Store) Dir(name string) (string, error) {
	d := s.path(name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", err
	}
	return d, nil
}

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// BlobPath is where the blob with digest h lives once stored. Callers may open
// it for reading (or hardlink it); they must never write to it.
func (s *Store) BlobPath(h v1.Hash) string {
	return s.path("blobs", h.Algorithm, h.Hex)
}

// HasBlob reports whether the blob is stored.
func (s *Store) HasBlob(h v1.Hash) bool {
	_, err := os.Stat(s.BlobPath(h))
	return err == nil
}

// OpenBlob opens a stored blob for reading.
func (s *Store) OpenBlob(h v1.Hash) (*os.File, error) {
	f, err := os.Open(s.BlobPath(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	return f, err
}

// BlobSize returns a stored blob's size.
func (s *Store) BlobSize(h v1.Hash) (int64, error) {
	fi, err := os.Stat(s.BlobPath(h))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Writer is a blob being written. Write to it, then Commit; Close without
// Commit discards it. Nothing is visible in the store before Commit returns.
type Writer struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

// NewWriter starts writing a blob into ingest/.
func (s *Store) NewWriter() (*Writer, error) {
	f, err := os.CreateTemp(s.path("ingest"), "blob-*")
	if err != nil {
		return nil, fmt.Errorf("writing blob: %w", err)
	}
	// The lock tells Prune the file is being written (it removes only
	// ingest files nobody holds); it dies with the process.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("writing blob: locking %s: %w", f.Name(), err)
	}
	return &Writer{s: s, f: f, h: sha256.New()}, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Digest is the digest of what was written so far.
func (w *Writer) Digest() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(w.h.Sum(nil))}
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Commit makes the blob durable and visible. If want is not the zero Hash, the
// content must have that digest (and size, when size >= 0) or Commit fails
// with ErrDigestMismatch and nothing is stored.
func (w *Writer) Commit(want v1.Hash, size int64) (v1.Hash, error) {
	defer w.Close()
	got := w.Digest()
	if want != (v1.Hash{}) && want != got {
		return v1.Hash{}, fmt.Errorf("blob %s: got %s: %w", want, got, ErrDigestMismatch)
	}
	if size >= 0 && size != w.n {
		return v1.Hash{}, fmt.Errorf("blob %s: size %d, expected %d: %w", got, w.n, size, ErrDigestMismatch)
	}
	if w.s.HasBlob(got) {
		return got, nil
	}
	if err := w.f.Chmod(0o444); err != nil {
		return v1.Hash{}, err
	}
	if err := w.f.Sync(); err != nil {
		return v1.Hash{}, fmt.Errorf("writing blob %s: %w", got, err)
	}
	if err := w.f.Close(); err != nil {
		return v1.Hash{}, fmt.Errorf("writing blob %s: %w", got, err)
	}
	if err := os.Rename(w.f.Name(), w.s.BlobPath(got)); err != nil {
		return v1.Hash{}, fmt.Errorf("writing blob %s: %w", got, err)
	}
	w.done = true
	if err := syncDir(filepath.Dir(w.s.BlobPath(got))); err != nil {
		return v1.Hash{}, err
	}
	return got, nil
}

// Close discards an uncommitted blob.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	return os.Remove(w.f.Name())
}

// PutBlob stores the content of r. See Writer.Commit for want and size.
// A blob nothing references yet may be removed by a concurrent Prune: hold
// the store (Hold) until an image or a pin references it.
func (s *Store) PutBlob(ctx context.Context, r io.Reader, want v1.Hash, size int64) (v1.Hash, int64, error) {
	if want != (v1.Hash{}) && s.HasBlob(want) {
		return want, size, nil
	}
	w, err := s.NewWriter()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer w.Close()
	if _, err := io.Copy(w, ctxio.Reader(ctx, r)); err != nil {
		return v1.Hash{}, 0, err
	}
	h, err := w.Commit(want, size)
	return h, w.n, err
}

// PutBytes stores b; see PutBlob.
func (s *Store) PutBytes(b []byte) (v1.Hash, error) {
	h, _, err := s.PutBlob(context.Background(), bytes.NewReader(b), v1.Hash{}, int64(len(b)))
	return h, err
}

// hashingReader computes the sha256 of what is read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
}

func newHashingReader(r io.Reader) *hashingReader {
	return &hashingReader{r: r, h: sha256.New()}
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

// Digest is the digest of what was read so far.
func (h *hashingReader) Digest() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.h.Sum(nil))}
}
