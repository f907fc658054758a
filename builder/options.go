package builder

import (
	"context"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-dev/strata/store"
)

// Options describe one build.
type Options struct {
	Store *store.Store

	// ContextDir is the build context directory. When empty, Stdin is read:
	// a tar archive (optionally compressed) is the context, anything else is
	// the Dockerfile and the context is empty.
	ContextDir string
	Stdin      io.Reader

	// Dockerfile is the Dockerfile's path ("" means CONTEXT/Dockerfile); "-"
	// reads it from Stdin.
	Dockerfile string

	Tags          []string
	BuildArgs     map[string]string
	Target        string
	NoCache       bool
	NoCacheFilter []string // stages whose steps ignore the cache
	Pull          bool     // always pull FROM images from their registry
	Network       string   // default network of RUN: "none" (default) or "host"
	Secrets       []Secret
	SSH           []SSH
	Labels        map[string]string
	Outputs       []Output
	IIDFile       string
	Push          bool
	Jobs          int // stages built at once; 0 means 2
	CacheTo       []CacheSpec
	CacheFrom     []CacheSpec

	// Progress receives the build log in the given mode: "plain", "tty",
	// "json" or "auto" (tty when Progress is a terminal), or "quiet".
	Progress     io.Writer
	ProgressMode string

	// Pull fetches a remote image into the store (FROM, COPY --from of an
	// image not in the store); PushImage uploads the result. Both are set
	// by the CLI from the registry package; nil means "not available".
	// platform ("os/arch[/variant]", FROM --platform) selects from an
	// index; "" means this machine's.
	PullImage func(ctx context.Context, ref, platform string) (v1.Image, error)
	// RemoteImage returns a registry image without storing it, its layers
	// fetched as they are read: --cache-from type=registry reads the cache
	// through it, so only the layers a build uses are downloaded. When nil,
	// PullImage is used (the whole cache is pulled).
	RemoteImage func(ctx context.Context, ref string) (v1.Image, error)
	PushImage   func(ctx context.Context, img v1.Image, ref string) error

	// Epoch, when set (SOURCE_DATE_EPOCH), is the time of every history
	// entry, of the image, and of the files and directories builds create.
	Epoch *int64
}

// Secret is a --secret id=ID,src=PATH or id=ID,env=VAR.
type Secret struct {
	ID, Src, Env string
}

// ParseSecret parses the value of --secret.
func ParseSecret(s string) (Secret, error) {
	var sec Secret
	for _, f := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return sec, fmt.Errorf("invalid secret %q: want id=ID,src=PATH or id=ID,env=VAR", s)
		}
		switch k {
		case "id":
			sec.ID = v
		case "src", "source":
			sec.Src = v
		case "env":
			sec.Env = v
		case "type":
			if v != "file" && v != "env" {
				return sec, fmt.Errorf("invalid secret %q: type must be file or env", s)
			}
		default:
			return sec, fmt.Errorf("invalid secret %q: unknown key %q", s, k)
		}
	}
	if sec.ID == "" {
		return sec, fmt.Errorf("invalid secret %q: no id", s)
	}
	if sec.Src == "" && sec.Env == "" {
		sec.Env = sec.ID
	}
	return sec, nil
}

// Output is one --output.
type Output struct {
	Type string // "image" (the store), "oci", "docker", "local", "tar"
	Dest string
	Name string // image name in a docker/oci tar (defaults to the first tag)
	// Compression of the layers in a docker/oci tar: "gzip" (the
	// default, as BuildKit), "zstd" or "uncompressed".
	Compression string
}

// ParseOutput parses --output type=T,dest=D (or a bare path: type=local).
func ParseOutput(s string) (Output, error) {
	if !strings.Contains(s, "=") {
		if s == "-" {
			return Output{Type: "tar", Dest: "-"}, nil
		}
		return Output{Type: "local", Dest: s}, nil
	}
	var o Output
	var last *string
	for _, f := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(f, "=")
		if !ok || (k != "type" && k != "dest" && k != "name" && k != "compression" && last != nil) {
			if last == nil {
				return o, fmt.Errorf("invalid output %q: want type=T,dest=D", s)
			}
			*last += "," + f // a comma inside the last value (a path)
			continue
		}
		switch k {
		case "type":
			o.Type, last = v, &o.Type
		case "dest":
			o.Dest, last = v, &o.Dest
		case "name":
			o.Name, last = v, &o.Name
		case "compression":
			o.Compression, last = v, &o.Compression
		default:
			return o, fmt.Errorf("invalid output %q: unknown key %q", s, k)
		}
	}
	switch o.Type {
	case "oci", "docker", "local", "tar":
		if o.Dest == "" {
			return o, fmt.Errorf("invalid output %q: dest= is required for type=%s", s, o.Type)
		}
	case "image", "registry":
	default:
		return o, fmt.Errorf("invalid output %q: type must be image, oci, docker, local or tar", s)
	}
	if o.Compression != "" {
		if o.Type != "oci" && o.Type != "docker" {
			return o, fmt.Errorf("invalid output %q: compression= is for type=oci and type=docker", s)
		}
		switch o.Compression {
		case store.Gzip, store.Zstd, store.Uncompressed:
		default:
			return o, fmt.Errorf("invalid output %q: compression must be gzip, zstd or uncompressed", s)
		}
	}
	return o, nil
}

// ParseKeyValues parses K=V lists (--build-arg, --label). A --build-arg
// without "=" takes its value from the environment (getenv), as docker does.
func ParseKeyValues(list []string, getenv func(string) (string, bool)) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("invalid %q: want KEY=VALUE", kv)
		}
		if !ok {
			if getenv == nil {
				return nil, fmt.Errorf("invalid %q: want KEY=VALUE", kv)
			}
			ev, found := getenv(k)
			if !found {
				continue
			}
			v = ev
		}
		out[k] = v
	}
	return out, nil
}

// Result is what a build produced.
type Result struct {
	Image  v1.Image
	ID     v1.Hash // config digest
	Digest v1.Hash // manifest digest
	Tags   []string
}
