package builder

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// prevContent serves file contents from the layer the same COPY produced
// before (its lineage's last layer, see cache.Index.Previous): a file whose
// previous entry has the same name and size, and whose previous content has
// the SHA-256 the build context has for it now, is copied from that layer's
// blob instead of being read from the context. One sequential read of a
// blob then replaces an open, read and close per file. The digest check
// makes the content exactly what reading the file would give (and what the
// step's cache key names), whatever the previous layer holds.
//
// Entries are looked up in increasing name order (the order layers are
// written in), so the previous layer is read once, front to back.
type prevContent struct {
	rc   io.ReadCloser
	tr   *tar.Reader
	cur  *tar.Header
	name string // clean name of cur
	done bool
	buf  []byte
}

// maxReuse is the largest file taken from the previous layer: bigger ones
// cost the same to read from the context and would need a big buffer.
const maxReuse = 1 << 20

// openPrevContent opens l's tar; nil when l is nil or cannot be read.
func openPrevContent(l v1.Layer) *prevContent {
	if l == nil {
		return nil
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil
	}
	var r io.Reader = rc
	if rs, ok := rc.(io.ReadSeeker); ok {
		r = &skipReader{r: rs, buf: make([]byte, 1<<20)}
	}
	return &prevContent{rc: rc, tr: tar.NewReader(r)}
}

func (p *prevContent) Close() error {
	if p == nil {
		return nil
	}
	return p.rc.Close()
}

// content returns the previous layer's content of the regular file name
// when it has this size and hex SHA-256 sum, else nil. The slice is valid
// until the next call.
func (p *prevContent) content(name string, size int64, sum string) []byte {
	if p == nil || sum == "" || size > maxReuse {
		return nil
	}
	for !p.done && (p.cur == nil || p.name < name) {
		h, err := p.tr.Next()
		if err != nil {
			p.done = true
			break
		}
		p.cur, p.name = h, cleanName(h.Name)
	}
	if p.done || p.name != name || p.cur.Typeflag != tar.TypeReg || p.cur.Size != size {
		return nil
	}
	if int64(cap(p.buf)) < size {
		p.buf = make([]byte, size)
	}
	b := p.buf[:size]
	if _, err := io.ReadFull(p.tr, b); err != nil {
		p.done = true
		return nil
	}
	s := sha256.Sum256(b)
	if hex.EncodeToString(s[:]) != sum {
		return nil
	}
	return b
}

// skipReader buffers reads from r and skips forward with Seek instead of
// reading (archive/tar skips the data of entries nobody reads that way).
type skipReader struct {
	r    io.ReadSeeker
	buf  []byte
	i, n int
}

func (s *skipReader) Read(p []byte) (int, error) {
	if s.i == s.n {
		if len(p) >= len(s.buf) {
			return s.r.Read(p)
		}
		n, err := s.r.Read(s.buf)
		s.i, s.n = 0, n
		if n == 0 {
			return 0, err
		}
	}
	k := copy(p, s.buf[s.i:s.n])
	s.i += k
	return k, nil
}

// Seek supports only moving forward from the current position.
func (s *skipReader) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || off < 0 {
		return 0, errors.New("skipReader: only forward seeks")
	}
	if buffered := int64(s.n - s.i); off <= buffered {
		s.i += int(off)
	} else {
		s.i, s.n = 0, 0
		if _, err := s.r.Seek(off-buffered, io.SeekCurrent); err != nil {
			return 0, err
		}
	}
	pos, err := s.r.Seek(0, io.SeekCurrent)
	return pos - int64(s.n-s.i), err
}
