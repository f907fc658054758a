package builder

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/ulikunitz/xz"
	"golang.org/x/sync/errgroup"

	"github.com/strata-dev/strata/cache"
)

// buildContext is the directory COPY and ADD read from, with its
// .dockerignore rules and the stat cache that keeps rebuilds from reading
// unchanged files.
type buildContext struct {
	root   string // absolute directory
	ignore *patternmatcher.PatternMatcher
	hasher *cache.FileHasher
}

// loadIgnore reads <Dockerfile>.dockerignore beside the Dockerfile, else
// CONTEXT/.dockerignore.
func loadIgnore(ctxDir, dockerfile string) (*patternmatcher.PatternMatcher, error) {
	var candidates []string
	if dockerfile != "" && dockerfile != "-" {
		candidates = append(candidates, dockerfile+".dockerignore")
	}
	if ctxDir != "" {
		candidates = append(candidates, filepath.Join(ctxDir, ".dockerignore"))
	}
	for _, p := range candidates {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		pats, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		if len(pats) == 0 {
			return nil, nil
		}
		pm, err := patternmatcher.New(pats)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", p, err)
		}
		return pm, nil
	}
	return nil, nil
}

// srcFile is one file, directory or symlink selected by a COPY source.
type srcFile struct {
	rel  string // slash path below the source ("" is the source itself)
	abs  string
	fi   os.FileInfo
	link string
	sum  string // content digest of regular files (when hashed)
	// set for files read from a stage's or image's layers
	open func() (io.ReadCloser, error)
	// unpacked names the layers whose top one holds the content and its
	// path there (nil when unknown): its unpacked copy may be hard-linked
	unpacked func() (layers []v1.Layer, at string)
	uid, gid int
	hasOwner bool
}

// source is one matched COPY/ADD source with everything under it.
type source struct {
	pattern string // as written
	path    string // slash path in the source root (context or stage fs)
	files   []srcFile
}

func hasMeta(s string) bool { return strings.ContainsAny(s, "*?[") }

// errOutside is returned for sources that leave the build context.
var errOutside = errors.New("is outside the build context")

// matchSources expands a COPY/ADD source pattern against root. An empty
// wildcard match is allowed (BuildKit: AllowEmptyWildcard); a missing
// plain path is an error.
func matchSources(root, pattern string) ([]string, error) {
	p := path.Clean(filepath.ToSlash(pattern))
	if p == ".." || strings.HasPrefix(p, "../") {
		return nil, fmt.Errorf("%q %w", pattern, errOutside)
	}
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if !hasMeta(p) {
		if _, err := lstatIn(root, p); err != nil {
			return nil, err
		}
		return []string{p}, nil
	}
	matches := []string{""}
	for _, comp := range strings.Split(p, "/") {
		var next []string
		for _, m := range matches {
			if !hasMeta(comp) {
				c := path.Join(m, comp)
				if _, err := lstatIn(root, c); err == nil {
					next = append(next, c)
				}
				continue
			}
			dir, err := securejoin.SecureJoin(root, m)
			if err != nil {
				continue
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			for _, e := range ents {
				if ok, _ := path.Match(comp, e.Name()); ok {
					next = append(next, path.Join(m, e.Name()))
				}
			}
		}
		matches = next
	}
	sort.Strings(matches)
	return matches, nil
}

// lstatIn stats rel inside root, following symlinks in every component but
// resolving them inside root (a symlink can never reach outside it).
func lstatIn(root, rel string) (os.FileInfo, error) {
	p, err := securejoin.SecureJoin(root, rel)
	if err != nil {
		return nil, err
	}
	return os.Stat(p)
}

// errIgnored is walkSource's error for a source that .dockerignore leaves
// out of the context: to a COPY it does not exist.
var errIgnored = fmt.Errorf("%w (excluded by .dockerignore)", fs.ErrNotExist)

// walkSource lists a matched source: the path itself (its symlink followed,
// inside root) and, for a directory, everything below it, skipping what
// ignore (relative to root) or exclude (relative to the source) match.
func walkSource(root, rel string, ignore, exclude *patternmatcher.PatternMatcher) ([]srcFile, error) {
	abs, err := securejoin.SecureJoin(root, rel)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if ignore != nil && rel != "" {
		if m, _ := ignore.MatchesOrParentMatches(rel); m && !fi.IsDir() {
			return nil, errIgnored
		}
	}
	out := []srcFile{{rel: "", abs: abs, fi: fi}}
	if !fi.IsDir() {
		return out, nil
	}
	files, err := walkDir(abs, "", rel, walkInfo{}, ignore, exclude, 0)
	if err != nil {
		return nil, err
	}
	return append(out, files...), nil
}

type walkInfo struct {
	ign, exc patternmatcher.MatchInfo
}

// walkDir lists dir (recursively, sorted), applying the ignore and exclude
// matchers. Subdirectories near the top are walked concurrently: a warm
// rebuild of a big context is bound by lstat calls.
func walkDir(dir, relDir, ctxRel string, pi walkInfo, ignore, exclude *patternmatcher.PatternMatcher, depth int) ([]srcFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type slot struct {
		f        srcFile
		skip     bool
		children []srcFile
		isDir    bool
		pi       walkInfo
		ctxRel   string
	}
	slots := make([]slot, 0, len(ents))
	for _, e := range ents {
		name := e.Name()
		r := path.Join(relDir, name)
		cr := path.Join(ctxRel, name)
		a := dir + "/" + name
		npi := pi
		skip := false
		if ignore != nil {
			m, info, err := ignore.MatchesUsingParentResults(cr, pi.ign)
			if err != nil {
				return nil, err
			}
			npi.ign = info
			skip = m
		}
		if exclude != nil && !skip {
			m, info, err := exclude.MatchesUsingParentResults(r, pi.exc)
			if err != nil {
				return nil, err
			}
			npi.exc = info
			skip = m
		}
		fi, err := os.Lstat(a)
		if err != nil {
			return nil, err
		}
		if skip && !(fi.IsDir() && ((ignore != nil && ignore.Exclusions()) || (exclude != nil && exclude.Exclusions()))) {
			continue
		}
		f := srcFile{rel: r, abs: a, fi: fi}
		if fi.Mode()&os.ModeSymlink != 0 {
			if f.link, err = os.Readlink(a); err != nil {
				return nil, err
			}
		}
		slots = append(slots, slot{f: f, skip: skip, isDir: fi.IsDir(), pi: npi, ctxRel: cr})
	}
	walkOne := func(i int) error {
		s := &slots[i]
		ch, err := walkDir(s.f.abs, s.f.rel, s.ctxRel, s.pi, ignore, exclude, depth+1)
		s.children = ch
		return err
	}
	if depth < 2 {
		var g errgroup.Group
		g.SetLimit(4)
		for i := range slots {
			if slots[i].isDir {
				g.Go(func() error { return walkOne(i) })
			}
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	} else {
		for i := range slots {
			if slots[i].isDir {
				if err := walkOne(i); err != nil {
					return nil, err
				}
			}
		}
	}
	var out []srcFile
	for _, s := range slots {
		if s.skip && (!s.isDir || len(s.children) == 0) {
			continue // excluded, with nothing re-included below it
		}
		out = append(out, s.f)
		out = append(out, s.children...)
	}
	return out, nil
}

// archiveReader detects a tar archive by content (plain, gzip, bzip2, xz,
// zstd) and returns a reader of the tar stream, or nil when r is not one.
func archiveReader(f io.Reader) (io.Reader, func(), error) {
	return archiveReaderBuf(bufio.NewReaderSize(f, 1<<16))
}

// archiveReaderBuf is archiveReader on a buffered reader the caller can
// still read from when the content is not an archive.
func archiveReaderBuf(br *bufio.Reader) (io.Reader, func(), error) {
	head, _ := br.Peek(512)
	var r io.Reader
	cleanup := func() {}
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, nil
		}
		r, cleanup = gz, func() { gz.Close() }
	case bytes.HasPrefix(head, []byte("BZh")):
		r = bzip2.NewReader(br)
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		x, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, nil
		}
		r = x
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, nil
		}
		r, cleanup = z, z.Close
	default:
		if len(head) >= 262 && string(head[257:262]) == "ustar" {
			return br, cleanup, nil
		}
		return nil, nil, nil
	}
	// a compressed stream must hold a tar to be unpacked
	pb := bufio.NewReaderSize(r, 1<<16)
	h, _ := pb.Peek(512)
	if len(h) < 262 || string(h[257:262]) != "ustar" {
		cleanup()
		return nil, nil, nil
	}
	return pb, cleanup, nil
}
