package store

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// ParseReference parses an image reference with docker's rules: "bbase" is
// docker.io/library/bbase:latest; "host:5000/repo:tag" and "name@sha256:…"
// are accepted as they are.
func ParseReference(s string) (name.Reference, error) {
	r, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("invalid reference %q: must be NAME[:TAG] or NAME@DIGEST in lower case", s)
	}
	return r, nil
}

// ParseTag parses a reference that must name a tag (no digest).
func ParseTag(s string) (name.Tag, error) {
	t, err := name.NewTag(s)
	if err != nil {
		return name.Tag{}, fmt.Errorf("invalid reference %q: must be NAME[:TAG] in lower case", s)
	}
	return t, nil
}

// FullName is the canonical text of a reference as the store records it:
// docker.io/library/bbase:latest, localhost:5000/a/b:t, repo@sha256:….
func FullName(r name.Reference) string {
	reg := r.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	sep := ":"
	if _, ok := r.(name.Digest); ok {
		sep = "@"
	}
	return reg + "/" + r.Context().RepositoryStr() + sep + r.Identifier()
}

// Familiar shortens a full name the way docker prints it: docker.io/library/x
// becomes x, docker.io/u/x becomes u/x.
func Familiar(full string) string {
	s := strings.TrimPrefix(full, "docker.io/")
	if s != full {
		s = strings.TrimPrefix(s, "library/")
	}
	return s
}

// SplitName splits a full or familiar name into repository and tag (or
// digest) as `strata images` shows them.
func SplitName(full string) (repo, tag string) {
	f := Familiar(full)
	if i := strings.LastIndex(f, "@"); i >= 0 {
		return f[:i], f[i+1:]
	}
	if i := strings.LastIndex(f, ":"); i > strings.LastIndex(f, "/") {
		return f[:i], f[i+1:]
	}
	return f, "latest"
}
