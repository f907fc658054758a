package registry

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// DefaultJobs is how many blobs move at once unless Options.Jobs says otherwise.
const DefaultJobs = 4

// DefaultCertsDir is where docker looks for per-registry certificates
// (HOST[:PORT]/ca.crt, *.crt, client.cert + client.key).
const DefaultCertsDir = "/etc/docker/certs.d"

// Options are the knobs every registry operation shares. The zero value is
// usable: 4 jobs, this machine's platform, docker's credentials.
type Options struct {
	// Jobs bounds how many blobs are transferred at once (default 4).
	Jobs int
	// Platform selects an image from an index: "os/arch[/variant]"; empty
	// means this machine's.
	Platform string
	// Insecure lists registries (host[:port]) that may be reached over plain
	// HTTP or with an unverified certificate. Loopback registries
	// (localhost, 127.0.0.0/8, ::1) may always use plain HTTP.
	Insecure []string
	// TLSCA lists PEM files of extra certificate authorities to trust.
	TLSCA []string
	// CertsDir replaces /etc/docker/certs.d (tests).
	CertsDir string
	// Keychain finds credentials; default authn.DefaultKeychain (docker's
	// config.json, credsStore and credHelpers).
	Keychain authn.Keychain
	// Compression is the algorithm for pushed layers: "gzip" (default) or "zstd".
	Compression string
	// Progress receives per-blob progress; nil reports nothing.
	Progress Progress
	// Debugf, when set, receives one line per HTTP request (method, URL
	// without query, status, time). Headers and bodies are never logged.
	Debugf func(format string, args ...any)
	// UserAgent is sent with every request.
	UserAgent string
	// Retries is how many times a failed request or interrupted blob is
	// tried (default 5).
	Retries int
	// RetryBase is the first backoff delay (default 200ms; doubles each time).
	RetryBase time.Duration
}

func (o *Options) jobs() int {
	if o.Jobs <= 0 {
		return DefaultJobs
	}
	return o.Jobs
}

func (o *Options) retries() int {
	if o.Retries <= 0 {
		return 5
	}
	return o.Retries
}

func (o *Options) retryBase() time.Duration {
	if o.RetryBase <= 0 {
		return 200 * time.Millisecond
	}
	return o.RetryBase
}

func (o *Options) keychain() authn.Keychain {
	if o.Keychain == nil {
		return authn.DefaultKeychain
	}
	return o.Keychain
}

func (o *Options) debugf(format string, args ...any) {
	if o.Debugf != nil {
		o.Debugf(format, args...)
	}
}

func (o *Options) progress() Progress {
	if o.Progress == nil {
		return nopProgress{}
	}
	return o.Progress
}

// platform is the platform to select from an index.
func (o *Options) platform() (v1.Platform, error) {
	if o.Platform == "" {
		return HostPlatform(), nil
	}
	p, err := v1.ParsePlatform(o.Platform)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", o.Platform)
	}
	return *p, nil
}

// HostPlatform is this machine's platform as image indexes name it.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// insecure reports whether host was named as an insecure registry.
func (o *Options) insecure(host string) bool {
	for _, h := range o.Insecure {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://"), "/")
		if h == host {
			return true
		}
	}
	return false
}

// ParseReference parses an image reference with docker's rules (busybox is
// index.docker.io/library/busybox:latest), marking registries named in
// o.Insecure so that plain HTTP may be used for them.
func (o *Options) ParseReference(s string) (name.Reference, error) {
	r, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("invalid reference %q: must be [HOST[:PORT]/]NAME[:TAG|@DIGEST] in lower case", s)
	}
	if o.insecure(r.Context().RegistryStr()) {
		return name.ParseReference(s, name.Insecure)
	}
	return r, nil
}

// parseRepository parses REGISTRY/REPO (a tag or digest is ignored).
func (o *Options) parseRepository(s string) (name.Repository, error) {
	if r, err := name.ParseReference(s); err == nil {
		s = r.Context().String()
	}
	var opts []name.Option
	if r, err := name.NewRepository(s); err == nil && o.insecure(r.RegistryStr()) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(s, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("invalid repository %q", s)
	}
	return r, nil
}

// parseRegistry parses a registry host as docker login takes it: docker.io,
// index.docker.io, host:port or https://host:port/.
func (o *Options) parseRegistry(s string) (name.Registry, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	if i := strings.Index(h, "/"); i >= 0 {
		h = h[:i]
	}
	if h == "" || h == "docker.io" || h == "registry-1.docker.io" {
		h = name.DefaultRegistry
	}
	var opts []name.Option
	if o.insecure(h) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRegistry(h, append(opts, name.StrictValidation)...)
	if err != nil {
		return name.Registry{}, fmt.Errorf("invalid registry %q", s)
	}
	return r, nil
}

// backoff is the retry schedule: RetryBase, doubling, Retries attempts.
func (o *Options) backoff() remote.Backoff {
	return remote.Backoff{Duration: o.retryBase(), Factor: 2, Jitter: 0.1, Steps: o.retries()}
}

// retryCodes are the statuses retried: 408, 429 and 5xx gateway errors.
var retryCodes = []int{
	http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
	http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
}

// remoteOptions turns o into go-containerregistry options for one operation.
func (o *Options) remoteOptions(ctx context.Context, t http.RoundTripper) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithJobs(o.jobs()),
		remote.WithAuthFromKeychain(o.keychain()),
		remote.WithTransport(t),
		remote.WithRetryBackoff(o.backoff()),
		remote.WithRetryStatusCodes(retryCodes...),
	}
	if o.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(o.UserAgent))
	}
	return opts
}

// authTransport is an authenticated transport for repo with the given
// scopes (Bearer token or Basic, as the registry asks), over t with retries.
func (o *Options) authTransport(ctx context.Context, repo name.Repository, t http.RoundTripper, scopes ...string) (http.RoundTripper, error) {
	auth, err := authn.Resolve(ctx, o.keychain(), repo)
	if err != nil {
		return nil, fmt.Errorf("reading credentials for %s: %w", repo.RegistryStr(), err)
	}
	rt := transport.NewRetry(t, transport.WithRetryBackoff(o.backoff()), transport.WithRetryStatusCodes(retryCodes...))
	if o.UserAgent != "" {
		rt = transport.NewUserAgent(rt, o.UserAgent)
	}
	return transport.NewWithContext(ctx, repo.Registry, auth, rt, scopes)
}
