package snapshot

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"

	"github.com/strata-dev/strata/internal/tarscan"
)

// rawTar reads a layer entry by entry with each entry's header blocks as
// stored (see internal/tarscan): two entries whose header bytes and data
// are equal extract to the same file.
type rawTar struct{ s *tarscan.Scanner }

// rawEntry is one entry of a rawTar.
type rawEntry struct {
	name string // clean name, relative to the root ("" is the root)
	typ  byte
	link string            // hard link target (TypeLink)
	pax  map[string]string // PAX records, if any
	// raw holds the header blocks; it is only valid until the next call to
	// next.
	raw []byte
	// start is the offset of the first header block in the stream; size the
	// length of the data that follows the header blocks (padding excluded).
	start, size int64
}

func newRawTar(r io.Reader) *rawTar { return &rawTar{tarscan.NewScanner(r, 1<<20)} }

// next returns the next entry, skipping what is left of the current one's
// data; io.EOF at the end of the archive. A header the scanner does not
// handle (sparse files, PAX global headers) is errNoPatch.
func (t *rawTar) next() (*rawEntry, error) {
	e, err := t.s.Next()
	if errors.Is(err, tarscan.ErrUnsupported) {
		return nil, fmt.Errorf("%w: %v", errNoPatch, err)
	}
	if err != nil {
		return nil, err
	}
	re := &rawEntry{name: cleanName(e.Name), typ: e.Typeflag, raw: e.Raw, start: e.Start, size: e.DataSize}
	if e.Header != nil {
		re.pax = e.Header.PAXRecords
	}
	if e.Typeflag == tar.TypeLink {
		re.link = e.Linkname
	}
	return re, nil
}

// Read reads the current entry's data.
func (t *rawTar) Read(p []byte) (int, error) { return t.s.Read(p) }

// data returns the next n bytes of the current entry's data without a
// copy, or nil when they are not buffered whole.
func (t *rawTar) data(n int64) []byte { return t.s.Data(n) }

func blockPad(n int64) int64 { return -n & 511 }
