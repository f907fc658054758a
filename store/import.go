package store

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/ulikunitz/xz"
)

// ImportOptions shape the image Import makes of a root filesystem tarball.
type ImportOptions struct {
	// Source names the input in the history comment ("Imported from SOURCE"),
	// as docker import does; "-" for stdin.
	Source string
	// Message replaces that comment when set (-m).
	Message string
	// Platform of the image; the zero value means this machine's.
	Platform v1.Platform
	// Created is the image's creation time; zero means SourceDateEpoch().
	Created time.Time
	// Config is the starting container config (after --change), may be nil.
	Config *v1.Config
	// Names to tag the image with (none: stays <none>).
	Names []string
}

// Import stores the root filesystem tarball read from r (plain tar, gzip,
// zstd, xz or bzip2, detected by content) as a one-layer image, as
// `docker import` does. The layer is stored uncompressed, streamed and
// checked with CheckTar as it flows; a truncated, corrupt or hostile archive
// fails with ErrBadArchive before anything is tagged. The names are written
// last, after every blob is durable.
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (Record, error) {
	names, err := fullNames(opts.Names)
	if err != nil {
		return Record{}, err
	}
	release, err := s.Hold()
	if err != nil {
		return Record{}, err
	}
	defer release()
	dec, err := Decompress(r)
	if err != nil {
		return Record{}, err
	}
	defer dec.Close()
	layer, err := s.PutLayer(ctx, CheckTar(dec))
	if err != nil {
		return Record{}, err
	}
	img, err := importImage(layer, opts)
	if err != nil {
		return Record{}, err
	}
	return s.WriteImage(ctx, img, names...)
}

func importImage(layer v1.Layer, opts ImportOptions) (v1.Image, error) {
	created := opts.Created
	if created.IsZero() {
		var err error
		if created, err = SourceDateEpoch(); err != nil {
			return nil, err
		}
	}
	p := opts.Platform
	if p.OS == "" {
		p = HostPlatform()
	}
	cfg := v1.Config{}
	if opts.Config != nil {
		cfg = *opts.Config.DeepCopy()
	}
	comment := opts.Message
	if comment == "" {
		src := opts.Source
		if src == "" {
			src = "-"
		}
		comment = "Imported from " + src
	}
	cf := &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		OSVersion:    p.OSVersion,
		Variant:      p.Variant,
		Created:      v1.Time{Time: created},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: created}, Comment: comment},
	})
}

// SourceDateEpoch is the time to stamp new images with: $SOURCE_DATE_EPOCH
// (seconds since 1970) when set, otherwise now; always UTC, whole seconds.
func SourceDateEpoch() (time.Time, error) {
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q: want seconds since 1970", v)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Now().UTC().Truncate(time.Second), nil
}

// HostPlatform is this machine's platform.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if p.Architecture == "arm" {
		p.Variant = "v7"
	}
	if p.Architecture == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// ParsePlatform parses os/arch[/variant].
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || (len(parts) == 3 && parts[2] == "") {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant], e.g. linux/amd64", s)
	}
	p := v1.Platform{OS: strings.ToLower(parts[0]), Architecture: strings.ToLower(parts[1])}
	if len(parts) == 3 {
		p.Variant = strings.ToLower(parts[2])
	}
	return p, nil
}

// Magic numbers of the compressions Decompress knows.
var magics = []struct {
	algo  string
	magic []byte
}{
	{"gzip", []byte{0x1f, 0x8b}},
	{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{"bzip2", []byte{'B', 'Z', 'h'}},
}

// Decompress detects by content whether r is gzip, zstd, xz or bzip2 and
// returns the decompressed stream (r itself, buffered, when it is none of
// them). Errors of the decompressor read as "corrupt ALGO data: ..." and wrap
// ErrBadArchive.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	algo := ""
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			algo = m.algo
			break
		}
	}
	var rc io.ReadCloser
	switch algo {
	case "":
		return io.NopCloser(br), nil
	case "gzip":
		z, err := pgzip.NewReader(br)
		if err != nil {
			return nil, &decompressError{algo: algo, err: err}
		}
		rc = z
	case "zstd":
		z, err := zstd.NewReader(br)
		if err != nil {
			return nil, &decompressError{algo: algo, err: err}
		}
		rc = z.IOReadCloser()
	case "xz":
		z, err := xz.NewReader(br)
		if err != nil {
			return nil, &decompressError{algo: algo, err: err}
		}
		rc = io.NopCloser(z)
	case "bzip2":
		rc = io.NopCloser(bzip2.NewReader(br))
	}
	return struct {
		io.Reader
		io.Closer
	}{&decompressReader{algo: algo, r: rc}, rc}, nil
}

// OpenSource opens what `strata import` and `strata load` read: "-" is
// stdin, an http:// or https:// URL is fetched (streamed, not downloaded
// first), anything else is a file.
func OpenSource(ctx context.Context, src string, stdin io.Reader) (io.ReadCloser, error) {
	switch {
	case src == "-":
		return io.NopCloser(stdin), nil
	case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", src, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", src, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("fetching %s: %s", src, resp.Status)
		}
		return resp.Body, nil
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, err // *PathError: "open FILE: no such file or directory"
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is a directory (to import a directory: tar -C DIR -c . | strata import - NAME)", src)
	}
	return f, nil
}
