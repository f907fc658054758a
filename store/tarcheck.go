package store

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// ErrBadArchive is returned (wrapped) when a tar stream is not a tar, is
// truncated or corrupt, or holds an entry that escapes its root.
var ErrBadArchive = errors.New("bad archive")

// archiveError is a problem with an archive: its text is the message alone,
// and errors.Is(err, ErrBadArchive) holds.
type archiveError struct{ msg string }

func (e *archiveError) Error() string        { return e.msg }
func (e *archiveError) Is(target error) bool { return target == ErrBadArchive }

func badArchive(format string, args ...any) error {
	return &archiveError{msg: fmt.Sprintf(format, args...)}
}

// CheckTar returns a reader that yields exactly the bytes of r while
// checking, as they flow, that they form a complete tar archive whose entries
// stay inside the root: no name or hardlink target may climb out with "..".
// A problem surfaces as a read error wrapping ErrBadArchive, so a consumer
// that stores the stream (and commits only after io.EOF) never keeps a bad
// archive. Nothing is buffered beyond one read.
func CheckTar(r io.Reader) io.Reader {
	c := &tarCheck{src: r}
	c.tr = tar.NewReader(io.TeeReader(r, c))
	return c
}

type tarCheck struct {
	src     io.Reader
	tr      *tar.Reader
	pending bytes.Buffer // consumed by the tar reader, not yet handed out
	tail    [1024]byte   // the last bytes the tar reader consumed
	total   int64
	entries int
	inEntry bool
	ended   bool  // the end-of-archive marker was read
	err     error // sticky
	scratch [32 << 10]byte
}

// Write receives what the tar reader consumes (through the TeeReader).
func (c *tarCheck) Write(p []byte) (int, error) {
	c.pending.Write(p)
	c.total += int64(len(p))
	if len(p) >= len(c.tail) {
		copy(c.tail[:], p[len(p)-len(c.tail):])
	} else {
		copy(c.tail[:], c.tail[len(p):])
		copy(c.tail[len(c.tail)-len(p):], p)
	}
	return len(p), nil
}

func (c *tarCheck) Read(p []byte) (int, error) {
	for c.pending.Len() == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if c.err = c.step(); c.err != nil && c.err != io.EOF {
			// Withhold the piece that failed, so a consumer parsing the
			// same stream meets this error, not its own view of it.
			c.pending.Reset()
		}
	}
	return c.pending.Read(p)
}

// step advances the tar reader (or, after the end marker, the raw stream)
// by one bounded piece, which lands in pending.
func (c *tarCheck) step() error {
	if c.ended {
		// Padding after the end-of-archive marker belongs to the layer too.
		n, err := c.src.Read(c.scratch[:])
		c.Write(c.scratch[:n])
		return err
	}
	if c.inEntry {
		_, err := c.tr.Read(c.scratch[:])
		if err == io.EOF {
			c.inEntry = false
			return nil
		}
		return c.fail(err)
	}
	hdr, err := c.tr.Next()
	if err == io.EOF {
		if c.total == 0 {
			return badArchive("empty input, not a tar archive")
		}
		if c.total < int64(len(c.tail)) || !bytes.Equal(c.tail[:], make([]byte, len(c.tail))) {
			return badArchive("truncated tar archive (no end-of-archive marker after %d entries)", c.entries)
		}
		c.ended = true
		return nil
	}
	if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
		return c.fail(err) // ErrInsecurePath (GODEBUG tarinsecurepath=0) is judged by checkEntry
	}
	c.entries++
	if err := checkEntry(hdr); err != nil {
		return err
	}
	c.inEntry = true
	return nil
}

func (c *tarCheck) fail(err error) error {
	var de *decompressError
	switch {
	case errors.As(err, &de):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF) && c.entries == 0:
		return badArchive("not a tar archive")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badArchive("truncated tar archive (after %d entries)", c.entries)
	case errors.Is(err, tar.ErrHeader) && c.entries == 0:
		return badArchive("not a tar archive")
	case errors.Is(err, tar.ErrHeader):
		return badArchive("corrupt tar archive (after %d entries): %v", c.entries, err)
	}
	return err
}

// checkEntry refuses entries that would land outside the root.
func checkEntry(hdr *tar.Header) error {
	if escapes(hdr.Name) {
		return badArchive("tar entry %q escapes the root", hdr.Name)
	}
	if hdr.Typeflag == tar.TypeLink && escapes(hdr.Linkname) {
		return badArchive("tar entry %q: hardlink target %q escapes the root", hdr.Name, hdr.Linkname)
	}
	if strings.ContainsRune(hdr.Name, 0) || strings.ContainsRune(hdr.Linkname, 0) {
		return badArchive("tar entry %q: NUL in name", hdr.Name)
	}
	return nil
}

// escapes reports whether a tar name, taken relative to the root (a leading
// "/" included), climbs above it.
func escapes(name string) bool {
	name = strings.TrimLeft(name, "/")
	depth := 0
	for _, el := range strings.Split(name, "/") {
		switch el {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// decompressError marks errors of the decompressor under a tar stream, so
// they are reported as such and not as tar damage.
type decompressError struct {
	algo string
	err  error
}

func (e *decompressError) Error() string {
	return fmt.Sprintf("corrupt %s data: %v", e.algo, e.err)
}
func (e *decompressError) Is(target error) bool { return target == ErrBadArchive }

type decompressReader struct {
	algo string
	r    io.Reader
}

func (d *decompressReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("unexpected end of data (truncated?)")
		}
		err = &decompressError{algo: d.algo, err: err}
	}
	return n, err
}

// cleanName is a tar name as a relative path ("./etc/x" -> "etc/x").
func cleanName(name string) string {
	c := path.Clean("/" + name)
	return strings.TrimPrefix(c, "/")
}
