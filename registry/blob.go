package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// blobReader streams one blob and survives interruptions: when the
// connection drops or the body ends short, it asks again from the offset it
// reached with a Range request (or, if the registry ignores Range, skips what
// it already has). It never returns more than size bytes; the caller checks
// the digest.
type blobReader struct {
	ctx     context.Context
	client  *http.Client
	url     string
	size    int64
	o       *Options
	body    io.ReadCloser
	off     int64
	fails   int
	noRange bool
	lastErr error
}

func newBlobReader(ctx context.Context, client *http.Client, repo name.Repository, d v1.Hash, size int64, o *Options) *blobReader {
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), d)
	return &blobReader{ctx: ctx, client: client, url: u, size: size, o: o}
}

func (b *blobReader) Read(p []byte) (int, error) {
	for {
		if b.body == nil {
			if b.off == b.size {
				return 0, io.EOF
			}
			if err := b.open(); err != nil {
				if !b.retry(err) {
					return 0, err
				}
				continue
			}
		}
		if rest := b.size - b.off; int64(len(p)) > rest+1 {
			p = p[:rest+1] // one byte more shows a body longer than announced
		}
		n, err := b.body.Read(p)
		b.off += int64(n)
		if b.off > b.size {
			b.close()
			return n, fmt.Errorf("blob is larger than its announced size %d", b.size)
		}
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && b.off == b.size:
			b.close()
			return n, io.EOF
		case err == io.EOF:
			err = fmt.Errorf("body ended after %d of %d bytes: %w", b.off, b.size, io.ErrUnexpectedEOF)
		}
		b.close()
		if !b.retry(err) {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// retry counts a failure and waits before the next attempt; false means give up.
func (b *blobReader) retry(err error) bool {
	if b.ctx.Err() != nil {
		return false
	}
	var perm *permanentError
	if errors.As(err, &perm) {
		return false
	}
	b.fails++
	b.lastErr = err
	if b.fails >= b.o.retries() {
		return false
	}
	d := b.o.retryBase() << (b.fails - 1)
	b.o.debugf("blob download interrupted at %d/%d bytes (%v); resuming in %s", b.off, b.size, err, d)
	return sleepCtx(b.ctx, d) == nil
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func (b *blobReader) open() error {
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return &permanentError{err}
	}
	ranged := b.off > 0 && !b.noRange
	if ranged {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", b.off, b.size-1))
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if b.off > 0 { // Range ignored: skip what we have
			if _, err := io.CopyN(io.Discard, resp.Body, b.off); err != nil {
				resp.Body.Close()
				return err
			}
		}
	case resp.StatusCode == http.StatusPartialContent && ranged:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != b.off {
			resp.Body.Close()
			return fmt.Errorf("registry answered range %q for offset %d", resp.Header.Get("Content-Range"), b.off)
		}
	default:
		err := transport.CheckError(resp, http.StatusOK)
		resp.Body.Close()
		var te *transport.Error
		if ranged && errors.As(err, &te) && te.StatusCode >= 400 && te.StatusCode < 500 {
			b.noRange = true // the registry cannot do ranges: start over and skip
			return err
		}
		if errors.As(err, &te) && !isRetryStatus(te.StatusCode) {
			return &permanentError{err}
		}
		return err
	}
	b.body = resp.Body
	return nil
}

func isRetryStatus(code int) bool {
	for _, c := range retryCodes {
		if c == code {
			return true
		}
	}
	return false
}

func contentRangeStart(v string) (int64, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "bytes ")
	i := strings.Index(v, "-")
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:i], 10, 64)
	return n, err == nil
}

func (b *blobReader) close() {
	if b.body != nil {
		b.body.Close()
		b.body = nil
	}
}

// Close releases the connection.
func (b *blobReader) Close() error { b.close(); return nil }

// errGaveUp wraps the last error after all attempts.
func (b *blobReader) gaveUp(err error) error {
	if b.fails >= b.o.retries() && b.lastErr != nil {
		return fmt.Errorf("%w (gave up after %d attempts)", b.lastErr, b.fails)
	}
	return err
}
