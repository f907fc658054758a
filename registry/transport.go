package registry

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-dev/strata/store"
)

// maxRetryAfter caps how long a Retry-After header can make us wait.
const maxRetryAfter = 60 * time.Second

// ErrPlainHTTP is returned when a registry would be reached over plain HTTP
// without being loopback or named insecure.
var ErrPlainHTTP = errors.New("plain HTTP is only used for loopback registries and those named with --insecure-registry")

// newTransport is the base transport of one operation: TLS per registry host
// (extra CAs, /etc/docker/certs.d/HOST), the plain-HTTP rule, Retry-After and
// debug logging. Authentication and retries are layered on top.
func (o *Options) newTransport() (http.RoundTripper, error) {
	var extra [][]byte
	for _, f := range o.TLSCA {
		b, err := readPEM(f)
		if err != nil {
			return nil, err
		}
		extra = append(extra, b)
	}
	certsDir := o.CertsDir
	if certsDir == "" {
		certsDir = DefaultCertsDir
	}
	var t http.RoundTripper = &hostTransport{o: o, extraCAs: extra, certsDir: certsDir,
		byHost: map[string]*http.Transport{}, tlsErr: map[string]error{}}
	t = &retryAfterTransport{inner: t, retries: o.retries()}
	t = &manifestCheckTransport{inner: t}
	if o.Debugf != nil {
		t = &logTransport{inner: t, debugf: o.Debugf}
	}
	return t, nil
}

// readPEM reads a file of PEM certificates, checking that it has one.
func readPEM(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificates: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("reading CA certificates %s: no PEM certificate found", file)
	}
	return b, nil
}

// hostTransport keeps one http.Transport per registry host so that each gets
// the certificates docker would give it.
type hostTransport struct {
	o        *Options
	extraCAs [][]byte // PEM from --tls-ca
	certsDir string

	poolOnce sync.Once
	pool     *x509.CertPool // system roots and extraCAs, loaded when needed

	mu     sync.Mutex
	byHost map[string]*http.Transport
	tlsErr map[string]error // the last certificate failure per host
}

func (h *hostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if req.URL.Scheme == "http" && !h.plainHTTPAllowed(host) {
		return nil, fmt.Errorf("%s: %w", host, ErrPlainHTTP)
	}
	t, err := h.transport(host)
	if err != nil {
		return nil, err
	}
	resp, err := t.RoundTrip(req)
	if err != nil && req.URL.Scheme == "https" && isTLSError(err) {
		h.mu.Lock()
		h.tlsErr[host] = err
		h.mu.Unlock()
	}
	// After HTTPS failed on a certificate, the plain-HTTP fallback of a
	// loopback registry that only speaks HTTPS gets 400: the certificate
	// problem is the one worth reporting.
	if err == nil && req.URL.Scheme == "http" && resp.StatusCode == http.StatusBadRequest {
		h.mu.Lock()
		tlsErr := h.tlsErr[host]
		h.mu.Unlock()
		if tlsErr != nil {
			resp.Body.Close()
			return nil, tlsErr
		}
	}
	return resp, err
}

// isTLSError reports whether err is a certificate or handshake failure
// (not a plain-HTTP server answering a TLS client).
func isTLSError(err error) bool {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify)
}

func (h *hostTransport) plainHTTPAllowed(host string) bool {
	if h.o.insecure(host) {
		return true
	}
	return IsLoopback(host)
}

// IsLoopback reports whether host[:port] is localhost or a loopback address
// (127.0.0.0/8, ::1): the registries plain HTTP is used for without asking.
func IsLoopback(host string) bool {
	hn := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hn = h
	}
	hn = strings.Trim(hn, "[]")
	if hn == "localhost" {
		return true
	}
	ip := net.ParseIP(hn)
	return ip != nil && ip.IsLoopback()
}

func (h *hostTransport) transport(host string) (*http.Transport, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.byHost[host]; t != nil {
		return t, nil
	}
	// Without extra CAs RootCAs stays nil: crypto/tls then loads the system
	// roots only when a certificate is verified, which keeps plain-HTTP
	// loopback registries and re-pushes fast.
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(h.extraCAs) > 0 {
		cfg.RootCAs = h.roots()
	}
	if h.o.insecure(host) {
		cfg.InsecureSkipVerify = true // docker's meaning of an insecure registry
	}
	if err := h.loadCertsDir(cfg, host); err != nil {
		return nil, err
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   50,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
		ReadBufferSize:        256 << 10,
		WriteBufferSize:       256 << 10,
		TLSClientConfig:       cfg,
	}
	h.byHost[host] = t
	return t, nil
}

// roots is the system pool plus the --tls-ca certificates.
func (h *hostTransport) roots() *x509.CertPool {
	h.poolOnce.Do(func() {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, b := range h.extraCAs {
			pool.AppendCertsFromPEM(b)
		}
		h.pool = pool
	})
	return h.pool
}

// loadCertsDir adds certsDir/HOST/*.crt as CAs and client.cert/key pairs
// (any NAME.cert with NAME.key) as client certificates, as docker does.
func (h *hostTransport) loadCertsDir(cfg *tls.Config, host string) error {
	dir := filepath.Join(h.certsDir, host)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil // no directory: nothing to add
	}
	var pool *x509.CertPool
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".crt"):
			b, err := readPEM(p)
			if err != nil {
				return err
			}
			if pool == nil {
				pool = h.roots().Clone()
			}
			pool.AppendCertsFromPEM(b)
		case strings.HasSuffix(e.Name(), ".cert"):
			key := strings.TrimSuffix(p, ".cert") + ".key"
			c, err := tls.LoadX509KeyPair(p, key)
			if err != nil {
				return fmt.Errorf("loading client certificate %s: %w", p, err)
			}
			cfg.Certificates = append(cfg.Certificates, c)
		}
	}
	if pool != nil {
		cfg.RootCAs = pool
	}
	return nil
}

// retryAfterTransport honours Retry-After on 429 and 503: a request without
// a body is repeated after the wait (up to retries times); any other response
// is returned after the wait so the retry above it does not come too early.
type retryAfterTransport struct {
	inner   http.RoundTripper
	retries int
}

func (t *retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := t.inner.RoundTrip(req)
		if err != nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
			return resp, err
		}
		wait, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		if !ok {
			return resp, nil
		}
		canRepeat := (req.Body == nil || req.Body == http.NoBody) && attempt < t.retries
		if canRepeat {
			resp.Body.Close()
		}
		if err := sleepCtx(req.Context(), wait); err != nil {
			if canRepeat {
				return nil, err
			}
			return resp, nil
		}
		if !canRepeat {
			return resp, nil
		}
	}
}

// retryAfter parses a Retry-After value (seconds or an HTTP date), capped.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		if n < 0 {
			return 0, false
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
		if d < 0 {
			d = 0
		}
	} else {
		return 0, false
	}
	if d > maxRetryAfter {
		d = maxRetryAfter
	}
	return d, true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// logTransport logs each request's method, URL without its query (upload
// state and signed URLs carry secrets there), status and duration. It never
// logs headers (Authorization) or bodies (tokens).
type logTransport struct {
	inner  http.RoundTripper
	debugf func(string, ...any)
}

func (t *logTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.inner.RoundTrip(req)
	u := *req.URL
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	if err != nil {
		t.debugf("http: %s %s: %v (%s)", req.Method, u.String(), redactErr(err), time.Since(start).Round(time.Millisecond))
		return nil, err
	}
	t.debugf("http: %s %s: %d (%s)", req.Method, u.String(), resp.StatusCode, time.Since(start).Round(time.Millisecond))
	return resp, nil
}

// redactErr drops a URL's query from an error's text.
func redactErr(err error) string {
	var ue interface{ Unwrap() error }
	s := err.Error()
	if errors.As(err, &ue) {
		if i := strings.Index(s, "?"); i >= 0 {
			if j := strings.IndexAny(s[i:], "\": "); j >= 0 {
				return s[:i] + s[i+j:]
			}
			return s[:i]
		}
	}
	return s
}

// manifestCheckTransport checks a manifest fetched by tag against the
// Docker-Content-Digest the registry sent with it (go-containerregistry
// only checks manifests fetched by digest): a body that does not match
// fails with store.ErrDigestMismatch when it is read to the end.
type manifestCheckTransport struct {
	inner http.RoundTripper
}

func (t *manifestCheckTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.inner.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK ||
		!strings.Contains(req.URL.Path, "/manifests/") {
		return resp, err
	}
	want, herr := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if herr != nil || want.Algorithm != "sha256" {
		return resp, nil
	}
	resp.Body = &verifyingBody{ReadCloser: resp.Body, h: sha256.New(), want: want}
	return resp, nil
}

type verifyingBody struct {
	io.ReadCloser
	h    hash.Hash
	want v1.Hash
}

func (b *verifyingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(b.h.Sum(nil)); got != b.want.Hex {
			return n, fmt.Errorf("manifest %s: content is sha256:%s: %w", b.want, got, store.ErrDigestMismatch)
		}
	}
	return n, err
}
