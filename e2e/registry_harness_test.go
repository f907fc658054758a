package e2e

// The registry harness: Debian's docker-registry (CNCF distribution 2.8)
// started on a free loopback port in three set-ups (anonymous; htpasswd
// basic auth over TLS with a test CA; token auth with a JWT token server
// written here, Docker Hub's flow), and a fault-injecting proxy.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const registryBin = "/usr/bin/docker-registry"

type regSetup int

const (
	regAnonymous regSetup = iota
	regBasicTLS           // htpasswd over TLS with a test CA
	regToken              // token auth: JWTs from tokenServer
)

// testRegistry is one running docker-registry.
type testRegistry struct {
	Host       string // 127.0.0.1:PORT
	CA         string // PEM of the CA that signed its certificate (TLS set-ups)
	User, Pass string // the account (auth set-ups)
	Tokens     *tokenServer
	logPath    string
}

func requireRegistry(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(registryBin); err != nil {
		t.Skip("docker-registry is not installed (apt-get install docker-registry)")
	}
}

// startRegistry starts docker-registry in setup and stops it at cleanup.
func startRegistry(t *testing.T, setup regSetup) *testRegistry {
	t.Helper()
	requireRegistry(t)
	dir := t.TempDir()
	port := freePort(t)
	r := &testRegistry{Host: fmt.Sprintf("127.0.0.1:%d", port), logPath: filepath.Join(dir, "registry.log")}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: strata-e2e-secret
`, filepath.Join(dir, "data"), r.Host)
	scheme := "http"
	switch setup {
	case regBasicTLS:
		scheme = "https"
		r.User, r.Pass = "strata-user", "s3cret-Pa55word-xyzzy"
		ca, cert, key := makeTLS(t, dir)
		r.CA = ca
		out, err := exec.Command("htpasswd", "-Bbn", r.User, r.Pass).Output()
		if err != nil {
			t.Fatalf("htpasswd: %v", err)
		}
		htp := filepath.Join(dir, "htpasswd")
		writeFile(t, htp, out)
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\nauth:\n  htpasswd:\n    realm: strata-test\n    path: %s\n", cert, key, htp)
	case regToken:
		r.User, r.Pass = "token-user", "t0ken-Pa55word-plugh"
		r.Tokens = newTokenServer(t, dir, r.User, r.Pass)
		cfg += fmt.Sprintf("auth:\n  token:\n    realm: %s/token\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			r.Tokens.URL, r.Tokens.service, r.Tokens.issuer, r.Tokens.rootBundle)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	writeFile(t, cfgPath, []byte(cfg))
	logf, err := os.Create(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(registryBin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting docker-registry: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	waitReady(t, scheme+"://"+r.Host+"/v2/", client, exited, r.logPath)
	return r
}

// waitReady polls url until the server answers at all (200 or 401), for at
// most 20 s, or fails early when the process exits.
func waitReady(t *testing.T, url string, client *http.Client, exited <-chan error, logPath string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("registry at %s not ready after 20s: %v\n%s", url, err, log)
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("docker-registry exited: %v\n%s", err, log)
		case <-tick.C:
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	writeFile(t, path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// makeTLS makes a CA and a server certificate for 127.0.0.1 and localhost;
// it returns the PEM paths of the CA, the certificate and its key.
func makeTLS(t *testing.T, dir string) (caPath, certPath, keyPath string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "strata test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	caPath, certPath, keyPath = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	writePEM(t, caPath, "CERTIFICATE", caDER)
	writePEM(t, certPath, "CERTIFICATE", der)
	writePEM(t, keyPath, "EC PRIVATE KEY", keyDER)
	return caPath, certPath, keyPath
}

// tokenServer issues the JWTs distribution's token auth verifies (RS256,
// signed by a leaf certificate chained to the root in rootBundle), the way
// Docker Hub's auth.docker.io does: Basic credentials in, every requested
// action granted to the right user, nothing to anyone else.
type tokenServer struct {
	URL        string
	service    string
	issuer     string
	rootBundle string
	user, pass string
	key        *rsa.PrivateKey
	x5c        []string

	mu     sync.Mutex
	issued []string
	scopes []string
}

func newTokenServer(t *testing.T, dir, user, pass string) *tokenServer {
	t.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(10), Subject: pkix.Name{CommonName: "strata token root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(11), Subject: pkix.Name{CommonName: "strata token signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, &key.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	ts := &tokenServer{
		service: "strata-registry", issuer: "strata-test-issuer", rootBundle: filepath.Join(dir, "token-root.pem"),
		user: user, pass: pass, key: key,
		x5c: []string{base64.StdEncoding.EncodeToString(leafDER), base64.StdEncoding.EncodeToString(rootDER)},
	}
	writePEM(t, ts.rootBundle, "CERTIFICATE", rootDER)
	srv := httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(srv.Close)
	// A host name, as Docker Hub's auth.docker.io: go-containerregistry
	// refuses realms at private IP literals other than the registry's own.
	ts.URL = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	return ts
}

type accessEntry struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/token" {
		http.NotFound(w, r)
		return
	}
	user, pass, authed := r.BasicAuth()
	if authed && (user != ts.user || pass != ts.pass) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"details":"incorrect username or password"}`)
		return
	}
	if r.URL.Query().Get("service") != ts.service {
		http.Error(w, "unknown service", http.StatusBadRequest)
		return
	}
	access := []accessEntry{}
	for _, s := range r.URL.Query()["scope"] {
		ts.mu.Lock()
		ts.scopes = append(ts.scopes, s)
		ts.mu.Unlock()
		i, j := strings.Index(s, ":"), strings.LastIndex(s, ":")
		if i < 0 || i == j || !authed {
			continue
		}
		access = append(access, accessEntry{Type: s[:i], Name: s[i+1 : j], Actions: strings.Split(s[j+1:], ",")})
	}
	now := time.Now()
	sub := ""
	if authed {
		sub = user
	}
	claims := map[string]any{
		"iss": ts.issuer, "sub": sub, "aud": ts.service,
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Add(-time.Minute).Unix(),
		"jti": fmt.Sprintf("%d", now.UnixNano()), "access": access,
	}
	tok, err := ts.sign(claims)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ts.mu.Lock()
	ts.issued = append(ts.issued, tok)
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300, "issued_at": now.UTC().Format(time.RFC3339)})
}

func (ts *tokenServer) sign(claims map[string]any) (string, error) {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]any{"typ": "JWT", "alg": "RS256", "x5c": ts.x5c})
	c, _ := json.Marshal(claims)
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, ts.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

// tokens returns every token issued so far.
func (ts *tokenServer) tokens() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.issued...)
}

// faultProxy sits between strata and an anonymous registry and injects the
// faults it is given; it records every request.
type faultProxy struct {
	Host   string
	target string

	mu     sync.Mutex
	faults []*fault
	log    []string
}

// fault applies kind to the next times requests whose method matches and
// whose path contains path.
type fault struct {
	method, path string
	kind         string // 500 503 429 drop truncate corrupt dropupload
	times        int
}

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	p := &faultProxy{target: target}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.Host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

func (p *faultProxy) add(f fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &f)
}

func (p *faultProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults, p.log = nil, nil
}

// requests returns "METHOD /path?query" of every request so far.
func (p *faultProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	line := r.Method + " " + r.URL.RequestURI()
	if rg := r.Header.Get("Range"); rg != "" {
		line += " range=" + rg
	}
	p.log = append(p.log, line)
	kind := ""
	for _, f := range p.faults {
		if f.times > 0 && (f.method == "" || f.method == r.Method) && strings.Contains(r.URL.Path, f.path) {
			f.times--
			kind = f.kind
			break
		}
	}
	p.mu.Unlock()
	switch kind {
	case "500":
		http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}`, http.StatusInternalServerError)
		return
	case "503":
		http.Error(w, "injected outage", http.StatusServiceUnavailable)
		return
	case "429":
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
		return
	case "dropupload":
		io.CopyN(io.Discard, r.Body, 4096)
		panic(http.ErrAbortHandler)
	}
	out := r.Clone(context.Background())
	out.URL.Scheme, out.URL.Host, out.Host, out.RequestURI = "http", p.target, r.Host, ""
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	half := resp.ContentLength / 2
	switch kind {
	case "drop": // the connection dies half way through the body
		w.WriteHeader(resp.StatusCode)
		io.CopyN(w, resp.Body, half)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case "truncate": // the body ends cleanly but short (no Content-Length)
		w.Header().Del("Content-Length")
		w.WriteHeader(resp.StatusCode)
		io.CopyN(w, resp.Body, half)
		return
	case "corrupt": // same length, one byte changed
		w.WriteHeader(resp.StatusCode)
		io.CopyN(w, resp.Body, half)
		var b [1]byte
		if n, _ := resp.Body.Read(b[:]); n == 1 {
			b[0] ^= 0xff
			w.Write(b[:])
		}
		io.Copy(w, resp.Body)
		return
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}
