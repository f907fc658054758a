package snapshot

import (
	"archive/tar"
	"fmt"
	"io"
)

// rawTar reads a tar stream entry by entry like archive/tar, and also gives
// each entry's header blocks exactly as stored (PAX and GNU extension
// records included) and its offset in the stream. Two entries whose header
// bytes and data are equal extract to the same file.
type rawTar struct {
	c  captureReader
	tr *tar.Reader
	// end is the offset just past the current entry's data and padding;
	// left is how much of its data has not been read yet.
	end  int64
	left int64
}

// rawEntry is one entry of a rawTar.
type rawEntry struct {
	name string // clean name, relative to the root ("" is the root)
	hdr  *tar.Header
	// raw holds the header blocks; it is only valid until the next call to
	// next.
	raw []byte
	// start is the offset of the first header block in the stream; size the
	// length of the data that follows the header blocks (padding excluded).
	start, size int64
}

// captureReader counts what is read through it and, while on, keeps it.
type captureReader struct {
	r   io.Reader
	n   int64
	on  bool
	buf []byte
}

func (c *captureReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.on {
		c.buf = append(c.buf, p[:n]...)
	}
	return n, err
}

func newRawTar(r io.Reader) *rawTar {
	t := &rawTar{c: captureReader{r: r}}
	t.tr = tar.NewReader(&t.c)
	return t
}

// next returns the next entry, skipping what is left of the current one's
// data; io.EOF at the end of the archive.
func (t *rawTar) next() (*rawEntry, error) {
	if t.left > 0 {
		if _, err := io.CopyN(io.Discard, t.tr, t.left); err != nil {
			return nil, err
		}
		t.left = 0
	}
	before := t.c.n
	t.c.buf = t.c.buf[:0]
	t.c.on = true
	hdr, err := t.tr.Next()
	t.c.on = false
	if err != nil {
		return nil, err
	}
	// what Next read: the padding of the previous entry, then the header
	// blocks of this one
	pad := t.end - before
	if pad < 0 || pad > int64(len(t.c.buf)) || t.c.n-before != int64(len(t.c.buf)) {
		return nil, fmt.Errorf("%w: unexpected header layout", ErrCorrupt)
	}
	e := &rawEntry{name: cleanName(hdr.Name), hdr: hdr, raw: t.c.buf[pad:], start: t.end}
	if isRegular(hdr) {
		e.size = hdr.Size
	}
	t.left = e.size
	t.end = t.c.n + e.size + blockPad(e.size)
	return e, nil
}

// Read reads the current entry's data.
func (t *rawTar) Read(p []byte) (int, error) {
	if t.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > t.left {
		p = p[:t.left]
	}
	n, err := t.tr.Read(p)
	t.left -= int64(n)
	if err == io.EOF && t.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func blockPad(n int64) int64 { return -n & 511 }
