package registry

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func TestDockerHubConventions(t *testing.T) {
	var o Options
	for in, want := range map[string]string{
		"busybox":                       "index.docker.io/library/busybox:latest",
		"busybox:1.36":                  "index.docker.io/library/busybox:1.36",
		"docker.io/library/busybox":     "index.docker.io/library/busybox:latest",
		"user/app":                      "index.docker.io/user/app:latest",
		"localhost:5000/app:1":          "localhost:5000/app:1",
		"127.0.0.1:5000/a/b/c:2":        "127.0.0.1:5000/a/b/c:2",
		"ghcr.io/o/app@sha256:" + hex64: "ghcr.io/o/app@sha256:" + hex64,
	} {
		r, err := o.ParseReference(in)
		if err != nil || r.Name() != want {
			t.Errorf("ParseReference(%q) = %v, %v; want %s", in, r, err, want)
		}
	}
	for in, want := range map[string]string{
		"docker.io": "https://index.docker.io/v1/", "index.docker.io": "https://index.docker.io/v1/",
		"registry-1.docker.io": "https://index.docker.io/v1/", "https://index.docker.io/v1/": "https://index.docker.io/v1/",
		"": "https://index.docker.io/v1/", "localhost:5000": "localhost:5000", "https://ghcr.io": "ghcr.io",
	} {
		r, err := o.parseRegistry(in)
		if err != nil || credentialKey(r) != want {
			t.Errorf("credential key of %q = %q, %v; want %q", in, credentialKey(r), err, want)
		}
	}
	if _, err := o.ParseReference("UPPER/case"); err == nil {
		t.Error("ParseReference accepted an upper-case repository")
	}
}

func TestInsecureRegistriesUsePlainHTTP(t *testing.T) {
	o := Options{Insecure: []string{"reg.internal:5000"}}
	r, err := o.ParseReference("reg.internal:5000/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Context().Scheme() != "http" {
		t.Errorf("named insecure registry: scheme %s, want http", r.Context().Scheme())
	}
	r, _ = o.ParseReference("other.internal:5000/app:1")
	if r.Context().Scheme() != "https" {
		t.Errorf("other registry: scheme %s, want https", r.Context().Scheme())
	}
	var _ name.Reference = r
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
