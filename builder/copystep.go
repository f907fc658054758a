package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
	"golang.org/x/sync/errgroup"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/snapshot"
)

type copyArgs struct {
	add      bool
	sd       instructions.SourcesAndDest
	from     string
	chown    string
	chmod    string
	link     bool
	exclude  []string
	parents  bool
	checksum string
	text     string
	// keepGitDir keeps the .git directory of ADD's git sources.
	keepGitDir bool
}

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

// copySource is where a COPY reads from: the context, a stage or an image.
type copySource struct {
	root     string // directory (for stages and images: unpacked on demand)
	ignore   *patternmatcher.PatternMatcher
	keepOwn  bool
	identity string // cache identity of a stage or image ("" for the context)
	layers   []v1.Layer
	view     *fsView
	load     func() (*fsView, error) // makes view when first needed (stages)
}

// fsView is the merged metadata of a stage's or image's layers. A stage's
// is made only when the COPY runs: a cache hit needs only its key.
func (cs *copySource) fsView() (*fsView, error) {
	if cs.view == nil && cs.load != nil {
		v, err := cs.load()
		if err != nil {
			return nil, err
		}
		cs.view = v
	}
	return cs.view, nil
}

func (st *stage) copySource(ctx context.Context, from string) (*copySource, error) {
	b := st.b
	if from == "" {
		return &copySource{root: b.bctx.root, ignore: b.bctx.ignore}, nil
	}
	if dep := b.stageRef(from, st.index); dep != nil {
		return &copySource{keepOwn: true, identity: "stage:" + dep.key, layers: dep.layers, load: dep.fsView}, nil
	}
	if _, err := strconv.Atoi(from); err == nil {
		return nil, fmt.Errorf("invalid stage index %s: no such earlier stage", from)
	}
	if st.name != "" && strings.EqualFold(from, st.name) {
		return nil, fmt.Errorf("COPY --from=%s refers to the current stage", from)
	}
	li, err := b.loadImage(ctx, from, nil)
	if err != nil {
		return nil, err
	}
	layers, err := li.img.Layers()
	if err != nil {
		return nil, err
	}
	view := newView(b.blobs)
	for _, l := range layers {
		if err := view.add(l); err != nil {
			return nil, err
		}
	}
	return &copySource{keepOwn: true, identity: "image:" + li.digest.String(), layers: layers, view: view}, nil
}

// materialize unpacks the parts of a stage or image that the sources name.
func (cs *copySource) materialize(b *builder, patterns []string) error {
	if cs.root != "" {
		return nil
	}
	dir, err := b.tempDir("copy-from-")
	if err != nil {
		return err
	}
	view, err := cs.fsView()
	if err != nil {
		return err
	}
	var prefixes []string
	for _, p := range patterns {
		p = strings.TrimPrefix(path.Clean("/"+p), "/")
		if i := strings.IndexAny(p, "*?["); i >= 0 {
			p = path.Dir(p[:i+1])
			if p == "." {
				p = ""
			}
		}
		rp, err := view.resolve(p, true)
		if err != nil {
			return err
		}
		prefixes = append(prefixes, p, rp)
	}
	if err := extractLayers(cs.layers, prefixes, dir); err != nil {
		return fmt.Errorf("unpacking copy source: %w", err)
	}
	cs.root = dir
	return nil
}

func (st *stage) copy(ctx context.Context, a copyArgs) error {
	b := st.b
	cmd := "COPY"
	if a.add {
		cmd = "ADD"
	}
	text := a.text
	if t, err := st.expand(text); err == nil {
		text = t
	}
	if i := strings.IndexByte(text, ' '); i > 0 {
		text = strings.ToUpper(text[:i]) + text[i:]
	}
	name := st.prefix() + text
	workdir := st.img.Config.WorkingDir
	if workdir == "" {
		workdir = "/"
	}
	dest := destPath(workdir, a.sd.DestPath)
	var chmod *int64
	if a.chmod != "" {
		p, err := strconv.ParseUint(a.chmod, 8, 32)
		if err != nil || p > 0o7777 {
			return fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", a.chmod)
		}
		m := int64(p)
		chmod = &m
	}
	if a.checksum != "" {
		if !a.add {
			return errors.New("checksum can't be specified for COPY")
		}
		_, isGit := parseGitRef(a.sd.SourcePaths[0])
		if len(a.sd.SourcePaths) != 1 || !isURL(a.sd.SourcePaths[0]) && !isGit {
			return errors.New("checksum can only be specified for a single HTTP(S) or git source")
		}
	}
	var exclude *patternmatcher.PatternMatcher
	if len(a.exclude) > 0 {
		var err error
		if exclude, err = patternmatcher.New(a.exclude); err != nil {
			return fmt.Errorf("--exclude: %w", err)
		}
	}
	// history text, BuildKit's form
	hist := cmd
	if a.parents {
		hist += " --parents"
	}
	if a.chown != "" {
		hist += " --chown=" + a.chown
	}
	if a.chmod != "" {
		hist += " --chmod=" + a.chmod
	}
	var local, urls []string
	var gits []gitRef
	for _, s := range a.sd.SourcePaths {
		hist += " " + s
		if g, ok := parseGitRef(s); ok && a.add {
			gits = append(gits, g)
			continue
		}
		if isURL(s) {
			if !a.add {
				return fmt.Errorf("source can't be a URL for COPY: %s", s)
			}
			urls = append(urls, s)
			continue
		}
		local = append(local, s)
	}
	for _, c := range a.sd.SourceContents {
		hist += " <<" + c.Path
	}
	hist += " " + a.sd.DestPath + " # buildkit"

	src, err := st.copySource(ctx, a.from)
	if err != nil {
		return err
	}
	key := cache.NewKey(strings.ToLower(cmd)).Add(st.key, b.plat.String(), dest, a.chown, a.chmod,
		strconv.FormatBool(a.link), strconv.FormatBool(a.parents), a.checksum, src.identity).AddList(a.exclude)
	// the same step whatever its sources hold (see cache/lineage.go)
	lineage := cache.NewKey("lineage").Add(strings.ToLower(cmd), st.key, b.plat.String(), dest, a.chown, a.chmod,
		strconv.FormatBool(a.link), strconv.FormatBool(a.parents), a.checksum, src.identity).
		AddList(a.exclude).AddList(a.sd.SourcePaths).Sum()
	for _, c := range a.sd.SourceContents {
		key.Add("heredoc", c.Path, c.Data)
	}

	// Sources from the context are listed (and hashed through the stat
	// cache) before the lookup; stages and images are named by their key.
	var sources []source
	if src.identity == "" {
		for _, p := range local {
			ss, err := st.listSources(src, p, exclude)
			if err != nil {
				return err
			}
			for _, s := range ss {
				if err := b.hashFiles(s.files); err != nil {
					return err
				}
				key.Add("src", p, s.path)
				for i := range s.files {
					f := &s.files[i]
					key.Add(f.rel, strconv.FormatUint(uint64(f.fi.Mode()), 8), f.link, f.sum)
				}
			}
			sources = append(sources, ss...)
		}
	} else {
		key.AddList(local)
	}
	// A git source is named by the commit its ref resolves to now.
	type resolvedGit struct {
		gitRef
		commit, remoteRef string
	}
	var resolved []resolvedGit
	for _, g := range gits {
		commit, remoteRef, err := g.resolve(ctx)
		if err != nil {
			return err
		}
		if a.checksum != "" && !strings.HasPrefix(commit, a.checksum) {
			return fmt.Errorf("ADD %s: commit %s does not match the checksum %s", g, commit, a.checksum)
		}
		resolved = append(resolved, resolvedGit{g, commit, remoteRef})
		key.Add("git", g.url, commit, g.subdir, strconv.FormatBool(a.keepGitDir))
	}
	for _, u := range urls {
		key.Add("url", u)
	}
	// A URL without --checksum is fetched every time: its content is the key.
	var fetched []fetchedURL
	if len(urls) > 0 && a.checksum == "" {
		for _, u := range urls {
			f, err := st.fetch(ctx, u, "")
			if err != nil {
				return err
			}
			fetched = append(fetched, f)
			key.Add(f.sum)
		}
	}

	return st.layerStep(ctx, name, key.Sum(), hist, func(v *vertex) (v1.Layer, error) {
		if src.identity != "" {
			// read in place from the source's layers; unpack only when
			// some content is not in a local uncompressed blob
			view, err := src.fsView()
			if err != nil {
				return nil, err
			}
			inPlace := true
			for _, p := range local {
				ss, ok, err := view.sources(p, exclude)
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) && hasMeta(p) {
						continue
					}
					if errors.Is(err, fs.ErrNotExist) {
						return nil, fmt.Errorf("failed to compute cache key: %q: not found", "/"+cleanName(p))
					}
					return nil, err
				}
				inPlace = inPlace && ok
				sources = append(sources, ss...)
			}
			if !inPlace {
				sources = nil
				if err := src.materialize(b, local); err != nil {
					return nil, err
				}
			}
		}
		if src.identity != "" && sources == nil {
			for _, p := range local {
				ss, err := st.listSources(src, p, exclude)
				if err != nil {
					return nil, err
				}
				sources = append(sources, ss...)
			}
		}
		if len(urls) > 0 && fetched == nil {
			for _, u := range urls {
				f, err := st.fetch(ctx, u, a.checksum)
				if err != nil {
					return nil, err
				}
				fetched = append(fetched, f)
			}
		}
		for _, g := range resolved {
			dir, err := b.tempDir("git-")
			if err != nil {
				return nil, err
			}
			root, err := g.checkout(ctx, dir, g.commit, g.remoteRef, a.keepGitDir)
			if err != nil {
				return nil, err
			}
			ss, err := st.listSources(&copySource{root: root}, ".", exclude)
			if err != nil {
				return nil, err
			}
			for _, s := range ss {
				if err := b.hashFiles(s.files); err != nil {
					return nil, err
				}
			}
			sources = append(sources, ss...)
		}
		view, err := st.fsView()
		if err != nil {
			return nil, err
		}
		pv := view
		if a.link {
			pv = newView(nil)
		}
		plan := newCopyPlan(pv, b.stageTime())
		plan.prev = b.previousLayer(lineage)
		plan.keepOwn = src.keepOwn
		plan.chmod = chmod
		if a.chown != "" {
			uid, gid, err := view.lookupUser(a.chown)
			if err != nil {
				return nil, err
			}
			plan.uid, plan.gid, plan.chown = uid, gid, true
		}
		l, err := st.placeSources(ctx, plan, a, dest, sources, fetched)
		if err == nil {
			if d, derr := l.DiffID(); derr == nil {
				if err := b.idx.SetPrevious(lineage, d.String()); err != nil {
					b.prog.warn("recording the build cache: " + err.Error())
				}
			}
		}
		return l, err
	})
}

// previousLayer returns the layer the lineage produced last when it is
// still in the store, else nil.
func (b *builder) previousLayer(lineage string) v1.Layer {
	d, ok := b.idx.Previous(lineage)
	if !ok {
		return nil
	}
	h, err := v1.NewHash(d)
	if err != nil {
		return nil
	}
	l, err := b.s.Layer(h)
	if err != nil {
		return nil
	}
	return l
}

// hashFiles fills in the content digests of regular files, through the
// stat cache, reading changed files concurrently.
func (b *builder) hashFiles(files []srcFile) error {
	var g errgroup.Group
	g.SetLimit(4)
	const chunk = 256
	for lo := 0; lo < len(files); lo += chunk {
		hi := min(lo+chunk, len(files))
		g.Go(func() error {
			for i := lo; i < hi; i++ {
				f := &files[i]
				if f.fi.Mode().IsRegular() {
					sum, err := b.bctx.hasher.Sum(f.abs, f.fi)
					if err != nil {
						return err
					}
					f.sum = sum
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// listSources expands one source pattern and walks what it matches.
func (st *stage) listSources(src *copySource, pattern string, exclude *patternmatcher.PatternMatcher) ([]source, error) {
	matches, err := matchSources(src.root, pattern)
	if err != nil {
		if errors.Is(err, errOutside) {
			return nil, fmt.Errorf("forbidden path outside the build context: %s", pattern)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("failed to compute cache key: %q: not found", "/"+strings.TrimPrefix(path.Clean("/"+pattern), "/"))
		}
		return nil, err
	}
	var out []source
	for _, m := range matches {
		ign := src.ignore
		files, err := walkSource(src.root, m, ign, exclude)
		if err != nil {
			// A wildcard skips what .dockerignore leaves out; like
			// BuildKit, a match that is a dangling symlink is an error.
			if errors.Is(err, errIgnored) {
				if hasMeta(pattern) {
					continue
				}
				return nil, fmt.Errorf("failed to compute cache key: %q: not found (excluded by .dockerignore?)", "/"+m)
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("failed to compute cache key: %q: not found", "/"+m)
			}
			return nil, err
		}
		out = append(out, source{pattern: pattern, path: m, files: files})
	}
	return out, nil
}

// placeSources puts every source into the plan following COPY's rules and
// writes the layer.
func (st *stage) placeSources(ctx context.Context, plan *copyPlan, a copyArgs, dest string, sources []source, fetched []fetchedURL) (v1.Layer, error) {
	destDirHint := strings.HasSuffix(dest, "/")
	rdest, err := plan.view.resolve(dest, true)
	if err != nil {
		return nil, err
	}
	// Like BuildKit, each source is copied on its own: into dest when dest
	// ends with "/" or is (by now) a directory, else onto dest itself.
	fileTarget := func(base string) string {
		if destDirHint || plan.isDir(rdest) {
			return path.Join(rdest, base)
		}
		return rdest
	}
	for _, s := range sources {
		top := s.files[0]
		if top.fi.IsDir() {
			target := rdest
			if a.parents {
				target = path.Join(rdest, s.path)
			}
			if err := plan.ensureDir(parentOf(target)); err != nil {
				return nil, err
			}
			for _, f := range s.files {
				if err := plan.add(joinRel(target, f.rel), f); err != nil {
					return nil, err
				}
			}
			continue
		}
		if a.add && top.fi.Mode().IsRegular() {
			ok, err := st.addArchive(plan, rdest, top)
			if err != nil {
				return nil, err
			}
			if ok {
				continue
			}
		}
		target := fileTarget(path.Base(s.path))
		if a.parents {
			target = path.Join(rdest, s.path)
		}
		if err := plan.add(target, top); err != nil {
			return nil, err
		}
	}
	for _, f := range fetched {
		fi, err := os.Stat(f.file)
		if err != nil {
			return nil, err
		}
		sf := srcFile{abs: f.file, fi: fixedInfo{FileInfo: fi, mode: 0o600, mtime: f.mtime}}
		if err := plan.add(fileTarget(f.name), sf); err != nil {
			return nil, err
		}
	}
	for _, c := range a.sd.SourceContents {
		if err := plan.addData(fileTarget(strings.TrimPrefix(path.Clean("/"+c.Path), "/")), []byte(c.Data), 0o644); err != nil {
			return nil, err
		}
	}
	// Wildcards that match nothing copy nothing: like BuildKit, dest is not
	// created then.
	return plan.writeLayer(ctx, func(ctx context.Context, r io.Reader) (v1.Layer, error) {
		return st.putLayerFrom(ctx, r, snapshot.PutOptions{Prev: plan.prev, Source: plan.linkSource})
	})
}

func joinRel(target, rel string) string {
	if rel == "" {
		return target
	}
	return path.Join(target, rel)
}

// addArchive unpacks a local tar archive (detected by content) into dest,
// as ADD does. It reports false when the file is not an archive.
func (st *stage) addArchive(plan *copyPlan, dest string, f srcFile) (bool, error) {
	fh, err := os.Open(f.abs)
	if err != nil {
		return false, err
	}
	defer fh.Close()
	r, cleanup, err := archiveReader(fh)
	if err != nil || r == nil {
		return false, err
	}
	defer cleanup()
	dir, err := st.b.tempDir("add-")
	if err != nil {
		return false, err
	}
	if err := extractTar(r, dir, nil); err != nil {
		return false, fmt.Errorf("unpacking %s: %w", path.Base(f.abs), err)
	}
	files, err := walkSource(dir, "", nil, nil)
	if err != nil {
		return false, err
	}
	if err := plan.ensureDir(dest); err != nil {
		return false, err
	}
	// As in BuildKit, what the archive holds keeps its owners and modes:
	// --chown and --chmod are only for a destination ADD makes.
	keep, chown, chmod := plan.keepOwn, plan.chown, plan.chmod
	plan.keepOwn, plan.chown, plan.chmod = true, false, nil
	defer func() { plan.keepOwn, plan.chown, plan.chmod = keep, chown, chmod }()
	for _, sf := range files[1:] {
		if err := plan.add(path.Join(dest, sf.rel), sf); err != nil {
			return false, err
		}
	}
	return true, nil
}

// fixedInfo overrides a FileInfo's mode and time (files fetched by ADD).
type fixedInfo struct {
	os.FileInfo
	mode  os.FileMode
	mtime time.Time
}

func (f fixedInfo) Mode() os.FileMode  { return f.mode }
func (f fixedInfo) ModTime() time.Time { return f.mtime }
func (f fixedInfo) Sys() any           { return nil }

type fetchedURL struct {
	file  string
	name  string
	sum   string
	mtime time.Time
}

// fetch downloads an ADD URL, verifying --checksum when given.
func (st *stage) fetch(ctx context.Context, u, checksum string) (fetchedURL, error) {
	name := "__unnamed__"
	if pu, err := url.Parse(u); err == nil {
		if base := path.Base(pu.Path); base != "." && base != "/" && base != "" {
			name = base
		}
	}
	dir, err := st.b.tempDir("fetch-")
	if err != nil {
		return fetchedURL{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fetchedURL{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fetchedURL{}, fmt.Errorf("fetching %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fetchedURL{}, fmt.Errorf("fetching %s: %s", u, resp.Status)
	}
	p := filepath.Join(dir, "file")
	f, err := os.Create(p)
	if err != nil {
		return fetchedURL{}, err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fetchedURL{}, fmt.Errorf("fetching %s: %w", u, err)
	}
	sum := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if checksum != "" && checksum != sum {
		return fetchedURL{}, fmt.Errorf("fetching %s: digest mismatch %s: %s", u, sum, checksum)
	}
	mtime := st.b.stageTime()
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			mtime = t
		}
	}
	return fetchedURL{file: p, name: name, sum: sum, mtime: mtime}, nil
}
