package builder

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Dockerfile is a parsed Dockerfile: its stages and the ARGs before the
// first FROM.
type Dockerfile struct {
	Name     string // file name used in error messages
	Stages   []instructions.Stage
	MetaArgs []instructions.ArgCommand
	Escape   rune
	Syntax   string // the "# syntax=" directive (noted, ignored)
	Warnings []string
}

// lineError is an error that names a Dockerfile line: "Dockerfile:3: ...".
type lineError struct {
	file string
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.file, e.line, e.err) }
func (e *lineError) Unwrap() error { return e.err }

func atLine(file string, loc []parser.Range, err error) error {
	if err == nil {
		return nil
	}
	var le *lineError
	if errors.As(err, &le) {
		return err
	}
	line := 0
	if len(loc) > 0 {
		line = loc[0].Start.Line
	}
	return &lineError{file: file, line: line, err: cleanErr(err)}
}

// cleanErr drops the wrappers the buildkit parser adds (stack traces,
// "dockerfile parse error on line N:") so a message reads as one line.
func cleanErr(err error) error {
	var el *parser.ErrorLocation
	if errors.As(err, &el) {
		return errors.New(el.Unwrap().Error())
	}
	return errors.New(err.Error())
}

// Parse parses a Dockerfile. name is used in error messages (FILE:LINE).
func Parse(name string, data []byte) (*Dockerfile, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: the Dockerfile is empty", name)
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		var el *parser.ErrorLocation
		if errors.As(err, &el) && len(el.Locations) > 0 {
			return nil, atLine(name, el.Locations[0], el.Unwrap())
		}
		return nil, fmt.Errorf("%s: %w", name, cleanErr(err))
	}
	df := &Dockerfile{Name: name, Escape: res.EscapeToken}
	if syn, _, _, ok := parser.DetectSyntax(data); ok {
		df.Syntax = syn
	}
	for _, w := range res.Warnings {
		df.Warnings = append(df.Warnings, w.Short)
	}
	for _, n := range res.AST.Children {
		cmd, err := instructions.ParseInstruction(n)
		if err != nil {
			return nil, atLine(name, n.Location(), err)
		}
		if len(df.Stages) == 0 {
			if a, ok := cmd.(*instructions.ArgCommand); ok {
				df.MetaArgs = append(df.MetaArgs, *a)
				continue
			}
		}
		switch c := cmd.(type) {
		case *instructions.Stage:
			df.Stages = append(df.Stages, *c)
		case instructions.Command:
			if len(df.Stages) == 0 {
				return nil, atLine(name, n.Location(), fmt.Errorf("%s before the first FROM: a Dockerfile must begin with FROM (ARGs may precede it)", strings.ToUpper(n.Value)))
			}
			st := &df.Stages[len(df.Stages)-1]
			st.AddCommand(c)
		default:
			return nil, atLine(name, n.Location(), fmt.Errorf("unexpected %T", cmd))
		}
	}
	if len(df.Stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM instruction: nothing to build", name)
	}
	return df, nil
}

// Platform is the platform strata builds for: the host's (no emulation).
type Platform struct{ OS, Arch, Variant string }

func hostPlatform() Platform {
	p := Platform{OS: "linux", Arch: runtime.GOARCH}
	if p.Arch == "arm" {
		p.Variant = "v7"
	}
	if p.Arch == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// matches reports whether an image of platform p runs on q: the same OS and
// architecture, and the same variant when both name one. An image that
// names no platform matches any.
func (p Platform) matches(q Platform) bool {
	if p.OS == "" && p.Arch == "" {
		return true
	}
	return p.OS == q.OS && p.Arch == q.Arch && (p.Variant == "" || q.Variant == "" || p.Variant == q.Variant)
}

// imagePlatform is the platform an image's config names.
func imagePlatform(img v1.Image) (Platform, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return Platform{}, fmt.Errorf("reading image config: %w", err)
	}
	return Platform{OS: cf.OS, Arch: cf.Architecture, Variant: cf.Variant}, nil
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// platformArgs are the predefined ARGs of BuildKit (build and target are
// the same platform here).
func platformArgs(p Platform) []instructions.KeyValuePairOptional {
	kv := [][2]string{
		{"BUILDPLATFORM", p.String()}, {"BUILDOS", p.OS}, {"BUILDARCH", p.Arch}, {"BUILDVARIANT", p.Variant},
		{"TARGETPLATFORM", p.String()}, {"TARGETOS", p.OS}, {"TARGETARCH", p.Arch}, {"TARGETVARIANT", p.Variant},
	}
	out := make([]instructions.KeyValuePairOptional, 0, len(kv))
	for _, e := range kv {
		v := e[1]
		out = append(out, instructions.KeyValuePairOptional{Key: e[0], Value: &v})
	}
	return out
}

// proxyArgs are predefined build args that need no ARG declaration and are
// never reported as unused (docker's and BuildKit's list).
var proxyArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true, "ALL_PROXY": true, "all_proxy": true,
}

// kvEnv is an ordered environment (later entries replace earlier ones with
// the same key) usable as shell.EnvGetter.
type kvEnv struct {
	keys []string
	vals map[string]string
}

func newEnv() *kvEnv { return &kvEnv{vals: map[string]string{}} }

func (e *kvEnv) Set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

func (e *kvEnv) Get(k string) (string, bool) { v, ok := e.vals[k]; return v, ok }
func (e *kvEnv) Keys() []string              { return append([]string(nil), e.keys...) }

// List is the environment as KEY=VALUE strings in definition order.
func (e *kvEnv) List() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

func (e *kvEnv) clone() *kvEnv {
	n := &kvEnv{keys: append([]string(nil), e.keys...), vals: make(map[string]string, len(e.vals))}
	for k, v := range e.vals {
		n.vals[k] = v
	}
	return n
}

var _ shell.EnvGetter = (*kvEnv)(nil)

// metaArgs resolves the ARGs before the first FROM: platform args, then each
// global ARG (its default expanded with the ones before it) overridden by
// --build-arg.
func metaArgs(df *Dockerfile, lex *shell.Lex, buildArgs map[string]string, p Platform) ([]instructions.KeyValuePairOptional, error) {
	out := platformArgs(p)
	for i, a := range out {
		if v, ok := buildArgs[a.Key]; ok {
			out[i].Value = &v
		}
	}
	for _, cmd := range df.MetaArgs {
		for _, a := range cmd.Args {
			if v, ok := buildArgs[a.Key]; ok {
				a.Value = &v
			} else if a.Value != nil {
				env := newEnv()
				for _, m := range out {
					if m.Value != nil {
						env.Set(m.Key, *m.Value)
					}
				}
				r, _, err := lex.ProcessWord(*a.Value, env)
				if err != nil {
					return nil, atLine(df.Name, cmd.Location(), err)
				}
				a.Value = &r
			}
			out = append(out, a)
		}
	}
	return out, nil
}

func metaEnv(meta []instructions.KeyValuePairOptional) *kvEnv {
	env := newEnv()
	for _, m := range meta {
		if m.Value != nil {
			env.Set(m.Key, *m.Value)
		}
	}
	return env
}
