package registry

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:5000": true, "127.0.0.1:5000": true, "127.8.9.10": true,
		"[::1]:5000": true, "::1": true, "10.0.0.1:5000": false, "192.168.1.2": false,
		"registry.example.com": false, "localhost.example.com:5000": false, "128.0.0.1:80": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestPlainHTTPOnlyForLoopbackOrInsecure(t *testing.T) {
	o := Options{Insecure: []string{"10.9.8.7:5000", "https://reg.internal/"}}
	rt, err := o.newTransport()
	if err != nil {
		t.Fatal(err)
	}
	// Refused before any connection is made.
	req, _ := http.NewRequest(http.MethodGet, "http://10.1.2.3:5000/v2/", nil)
	if _, err := rt.RoundTrip(req); !errors.Is(err, ErrPlainHTTP) {
		t.Fatalf("plain HTTP to 10.1.2.3: %v, want ErrPlainHTTP", err)
	}
	h := rt.(*manifestCheckTransport).inner.(*retryAfterTransport).inner.(*hostTransport)
	for host, want := range map[string]bool{
		"10.9.8.7:5000": true, "reg.internal": true, "127.0.0.1:1": true, "localhost:5000": true,
		"10.9.8.7:5001": false, "reg.internal:443": false, "example.com": false,
	} {
		if got := h.plainHTTPAllowed(host); got != want {
			t.Errorf("plainHTTPAllowed(%q) = %v, want %v", host, got, want)
		}
	}
	// Loopback over plain HTTP works.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"3", 3 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"-1", 0, false},
		{"1000", maxRetryAfter, true},
		{now.Add(4 * time.Second).Format(http.TimeFormat), 4 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
	} {
		got, ok := retryAfter(tc.v, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRetryAfterTransportRepeatsGET(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	rt := &retryAfterTransport{inner: http.DefaultTransport, retries: 5}
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || n.Load() != 3 {
		t.Fatalf("status %d after %d requests, want 200 after 3", resp.StatusCode, n.Load())
	}
	// Without Retry-After a 429 is returned as it is (the retry above decides).
	n.Store(-100)
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv2.Close()
	req, _ = http.NewRequest(http.MethodGet, srv2.URL, nil)
	resp, err = rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || n.Load() != -99 {
		t.Fatalf("status %d after %d requests", resp.StatusCode, n.Load()+100)
	}
}

func TestDebugLogNeverShowsSecrets(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"token":"SECRET-TOKEN"}`)
	}))
	defer srv.Close()
	var buf bytes.Buffer
	rt := &logTransport{inner: http.DefaultTransport, debugf: func(f string, a ...any) { fmt.Fprintf(&buf, f+"\n", a...) }}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/token?service=x&account=me&password=SECRET-QUERY", nil)
	req.Header.Set("Authorization", "Basic U0VDUkVULUhFQURFUg==")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	out := buf.String()
	if want := "http: GET " + srv.URL + "/token: 200"; !strings.Contains(out, want) {
		t.Fatalf("log %q lacks %q", out, want)
	}
	for _, s := range []string{"SECRET", "U0VDUkVU", "Authorization", "password"} {
		if strings.Contains(out, s) {
			t.Fatalf("log %q contains %q", out, s)
		}
	}
}

func TestSelectPlatform(t *testing.T) {
	idx := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
	 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("1", 64) + `","size":1,"platform":{"os":"linux","architecture":"amd64"}},
	 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("2", 64) + `","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
	 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("3", 64) + `","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v6"}},
	 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("4", 64) + `","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v7"}},
	 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("5", 64) + `","size":1,"platform":{"os":"unknown","architecture":"unknown"}}]}`
	for _, tc := range []struct {
		want v1.Platform
		got  string // digest digit, or error text
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, "1"},
		{v1.Platform{OS: "linux", Architecture: "arm64"}, "2"},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "2"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "4"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, "3"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v5"}, "no matching platform for linux/arm/v5 (the index has: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8)"},
		{v1.Platform{OS: "windows", Architecture: "amd64"}, "no matching platform for windows/amd64"},
	} {
		d, err := selectPlatform([]byte(idx), tc.want)
		if len(tc.got) == 1 {
			if err != nil || d.Digest.Hex != strings.Repeat(tc.got, 64) {
				t.Errorf("%s: got %s, %v; want digest of %s", platformString(&tc.want), d.Digest, err, tc.got)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrNoPlatform) || !strings.Contains(err.Error(), tc.got) {
			t.Errorf("%s: err %v, want %q", platformString(&tc.want), err, tc.got)
		}
	}
}

func TestExplain(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://r.example/v2/x/manifests/1?secret=1", nil)
	for _, tc := range []struct {
		err  *transport.Error
		msg  string
		kind error
	}{
		{&transport.Error{StatusCode: 401, Request: req}, "unauthorized: authentication required", ErrUnauthorized},
		{&transport.Error{StatusCode: 401, Request: req, Errors: []transport.Diagnostic{{Code: "UNAUTHORIZED", Message: "authentication required", Detail: []string{"x"}}}}, "unauthorized: authentication required", ErrUnauthorized},
		{&transport.Error{StatusCode: 403, Request: req}, "denied: requested access to the resource is denied", ErrDenied},
		{&transport.Error{StatusCode: 404, Request: req, Errors: []transport.Diagnostic{{Code: "MANIFEST_UNKNOWN", Message: "manifest unknown"}}}, "manifest unknown: manifest unknown", ErrNotFound},
		{&transport.Error{StatusCode: 502, Request: req}, "registry answered 502 Bad Gateway", nil},
	} {
		err := explain(fmt.Errorf("fetching: %w", tc.err))
		if err.Error() != tc.msg {
			t.Errorf("explain(%d) = %q, want %q", tc.err.StatusCode, err, tc.msg)
		}
		if tc.kind != nil && !errors.Is(err, tc.kind) {
			t.Errorf("explain(%d) is not %v", tc.err.StatusCode, tc.kind)
		}
		var te *transport.Error
		if !errors.As(err, &te) {
			t.Errorf("explain(%d) lost the transport error", tc.err.StatusCode)
		}
	}
}
