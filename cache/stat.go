package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// FileHasher returns the SHA-256 of files' contents, remembering each file's
// identity (device, inode, size, mtime, ctime) so that a file whose identity
// did not change is never read again. Safe for concurrent use.
type FileHasher struct {
	path    string
	mu      sync.Mutex
	entries map[string]statEntry
	seen    map[string]bool
	dirty   bool
}

type statEntry struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64
	Sum          [32]byte
}

const statMagic = "strata-stat-v1\n"

const entrySize = 5*8 + 32

func encodeEntry(b []byte, e statEntry) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], e.Dev)
	le.PutUint64(b[8:], e.Ino)
	le.PutUint64(b[16:], uint64(e.Size))
	le.PutUint64(b[24:], uint64(e.Mtime))
	le.PutUint64(b[32:], uint64(e.Ctime))
	copy(b[40:], e.Sum[:])
}

func decodeEntry(b []byte) statEntry {
	le := binary.LittleEndian
	e := statEntry{Dev: le.Uint64(b[0:]), Ino: le.Uint64(b[8:]), Size: int64(le.Uint64(b[16:])),
		Mtime: int64(le.Uint64(b[24:])), Ctime: int64(le.Uint64(b[32:]))}
	copy(e.Sum[:], b[40:])
	return e
}

// LoadFileHasher reads the stat cache at path (a missing or damaged file is
// an empty cache).
func LoadFileHasher(path string) *FileHasher {
	h := &FileHasher{path: path, entries: map[string]statEntry{}, seen: map[string]bool{}}
	b, err := os.ReadFile(path)
	if err != nil {
		return h
	}
	if len(b) < len(statMagic)+4 || string(b[:len(statMagic)]) != statMagic {
		return h
	}
	// one string for every name: a map key per entry without a copy each
	all := string(b)
	off := len(statMagic)
	n := binary.LittleEndian.Uint32(b[off:])
	off += 4
	entries := make(map[string]statEntry, min(n, uint32(len(b)/(4+entrySize))))
	for i := uint32(0); i < n; i++ {
		if len(b)-off < 4 {
			return h
		}
		l := int(binary.LittleEndian.Uint32(b[off:]))
		off += 4
		if l > 1<<16 || len(b)-off < l+entrySize {
			return h
		}
		entries[all[off:off+l]] = decodeEntry(b[off+l : off+l+entrySize])
		off += l + entrySize
	}
	h.entries = entries
	return h
}

func identity(fi os.FileInfo) (statEntry, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return statEntry{}, false
	}
	return statEntry{
		Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtim.Sec*1e9 + st.Mtim.Nsec, Ctime: st.Ctim.Sec*1e9 + st.Ctim.Nsec,
	}, true
}

// Sum returns the hex SHA-256 of the regular file at abs, whose lstat is fi.
func (h *FileHasher) Sum(abs string, fi os.FileInfo) (string, error) {
	id, ok := identity(fi)
	h.mu.Lock()
	h.seen[abs] = true
	if e, hit := h.entries[abs]; ok && hit {
		e2 := e
		e2.Sum = [32]byte{}
		if e2 == id {
			h.mu.Unlock()
			return hex.EncodeToString(e.Sum[:]), nil
		}
	}
	h.mu.Unlock()
	f, err := os.Open(abs)
	if err != nil {
		return "", err
	}
	defer f.Close()
	d := sha256.New()
	bp := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(bp)
	if _, err := io.CopyBuffer(d, f, *bp); err != nil {
		return "", fmt.Errorf("reading %s: %w", abs, err)
	}
	copy(id.Sum[:], d.Sum(nil))
	if ok {
		h.mu.Lock()
		h.entries[abs] = id
		h.dirty = true
		h.mu.Unlock()
	}
	return hex.EncodeToString(id.Sum[:]), nil
}

// Save writes the cache back if it changed, dropping files not seen in this
// build when the cache has grown large.
func (h *FileHasher) Save() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.dirty {
		return nil
	}
	if len(h.entries) > 2*len(h.seen)+1000 {
		for k := range h.entries {
			if !h.seen[k] {
				delete(h.entries, k)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return err
	}
	size := len(statMagic) + 4
	for k := range h.entries {
		size += 4 + len(k) + entrySize
	}
	buf := make([]byte, 0, size)
	buf = append(buf, statMagic...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(h.entries)))
	var rec [entrySize]byte
	for k, e := range h.entries {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(k)))
		buf = append(buf, k...)
		encodeEntry(rec[:], e)
		buf = append(buf, rec[:]...)
	}
	f, err := os.CreateTemp(filepath.Dir(h.path), ".tmp-stat-*")
	if err != nil {
		return err
	}
	_, err = f.Write(buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), h.path)
	}
	if err != nil {
		os.Remove(f.Name())
		return errors.Join(errors.New("saving stat cache"), err)
	}
	h.dirty = false
	return nil
}

var hashBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// ContextID names the stat cache file of a context directory.
func ContextID(dir string) string {
	s := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(s[:16])
}
