package builder

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-dev/strata/internal/tarscan"
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
	s    *tarscan.Scanner
	cur  *tarscan.Entry
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
	return &prevContent{rc: rc, s: tarscan.NewScanner(rc, 1<<20)}
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
		e, err := p.s.Next()
		if err != nil {
			p.done = true
			break
		}
		p.cur, p.name = e, cleanName(e.Name)
	}
	if p.done || p.name != name || p.cur.Typeflag != tar.TypeReg || p.cur.Size != size {
		return nil
	}
	b := p.s.Data(size)
	if b == nil {
		if int64(cap(p.buf)) < size {
			p.buf = make([]byte, size)
		}
		b = p.buf[:size]
		if _, err := io.ReadFull(p.s, b); err != nil {
			p.done = true
			return nil
		}
	}
	s := sha256.Sum256(b)
	var want [sha256.Size]byte
	if n, err := hex.Decode(want[:], []byte(sum)); err != nil || n != len(want) || s != want {
		return nil
	}
	return b
}
