package builder

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"golang.org/x/sync/errgroup"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/snapshot"
	"github.com/strata-dev/strata/store"
)

// builder is one build in progress.
type builder struct {
	opts   Options
	s      *store.Store
	df     *Dockerfile
	dfData []byte
	dfName string
	lex    *shell.Lex
	meta   []instructions.KeyValuePairOptional
	plat   Platform
	bctx   *buildContext
	idx    *cache.Index
	prog   *progress
	now    time.Time
	epoch  *time.Time

	stages []*stage
	byName map[string]*stage

	mu       sync.Mutex
	usedArgs map[string]bool
	images   map[string]*loadedImage
	pins     []v1.Hash // layers this build added to the cache
	tmpDirs  []string
	sem      chan struct{}
	bg       sync.WaitGroup
	// layers whose blobs are still being stored (RUN layers, see
	// recordLayer); buildCtx is the build's own context, which they use:
	// the stages' context ends with the stages, before the blobs are
	// needed, and a failed sibling stage must not fail them.
	storing  sync.WaitGroup
	storeErr error
	buildCtx context.Context
	snap     snapshot.Snapshotter
	blobs    *blobFiles      // the layer blobs views read content from
	remote   []*remoteSource // --cache-from
	steps    []stepRecord    // layer steps, for --cache-to
}

type loadedImage struct {
	once   sync.Once
	img    v1.Image
	digest v1.Hash
	name   string
	err    error
}

// Build runs a build and writes its outputs. On failure nothing is tagged.
func Build(ctx context.Context, opts Options) (*Result, error) {
	if opts.Store == nil {
		return nil, errors.New("build: no store")
	}
	b := &builder{
		opts: opts, s: opts.Store, plat: hostPlatform(), now: time.Now().UTC(),
		byName: map[string]*stage{}, usedArgs: map[string]bool{}, images: map[string]*loadedImage{},
		blobs: &blobFiles{},
	}
	if opts.Epoch != nil {
		t := time.Unix(*opts.Epoch, 0).UTC()
		b.epoch, b.now = &t, t
	}
	b.prog = newProgress(opts.Progress, opts.ProgressMode)
	defer b.cleanup()
	// A build allocates a lot of short-lived metadata (one entry per context
	// file) over a small live heap: collect garbage less often.
	defer debug.SetGCPercent(debug.SetGCPercent(800))
	res, err := b.run(ctx)
	if err != nil {
		var le *lineError
		if errors.As(err, &le) {
			b.prog.failure(b.prog.failedVertex(), le.file, b.dfData, le.line)
		}
	}
	b.prog.close()
	return res, err
}

// pinCache makes the layers this build cached GC roots (one pin per build,
// written once: the store is held for the whole build, so no prune runs in
// between).
func (b *builder) pinCache() error {
	if len(b.pins) == 0 {
		return nil
	}
	k := cache.NewKey("pin")
	for _, d := range b.pins {
		k.Add(d.String())
	}
	return b.s.Pin("buildcache/"+k.Sum()[:32], b.pins)
}

// background runs f concurrently; Build waits for it before returning.
func (b *builder) background(f func()) {
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		f()
	}()
}

func (b *builder) cleanup() {
	b.bg.Wait()
	b.blobs.close()
	for _, d := range b.tmpDirs {
		os.RemoveAll(d)
	}
}

func (b *builder) tempDir(pattern string) (string, error) {
	dir, err := b.s.Dir("tmp")
	if err != nil {
		return "", err
	}
	d, err := os.MkdirTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	b.tmpDirs = append(b.tmpDirs, d)
	b.mu.Unlock()
	return d, nil
}

func (b *builder) run(ctx context.Context) (*Result, error) {
	release, err := b.s.Hold()
	if err != nil {
		return nil, err
	}
	defer release()
	defer func() { // before release: no prune between storing and pinning
		if perr := b.pinCache(); perr != nil {
			b.prog.warn("pinning the build cache: " + perr.Error())
		}
	}()
	cdir, err := b.s.Dir("cache")
	if err != nil {
		return nil, err
	}
	if b.idx, err = cache.OpenIndex(cdir); err != nil {
		return nil, err
	}

	v := b.prog.vertex("[internal] load build definition from " + b.dockerfileName())
	data, err := b.loadDefinition()
	if err != nil {
		v.fail(err)
		return nil, err
	}
	b.dfData = data
	b.df, err = Parse(b.dockerfileName(), data)
	if err != nil {
		v.fail(err)
		return nil, err
	}
	v.done()
	for _, w := range b.df.Warnings {
		b.prog.warn(w)
	}
	b.lex = shell.NewLex(b.df.Escape)
	if b.meta, err = metaArgs(b.df, b.lex, b.opts.BuildArgs, b.plat); err != nil {
		return nil, err
	}
	for _, m := range b.df.MetaArgs {
		for _, a := range m.Args {
			b.usedArgs[a.Key] = true
		}
	}
	target, err := b.plan()
	if err != nil {
		return nil, err
	}
	if err := b.loadContext(); err != nil {
		return nil, err
	}
	b.importCaches(ctx)
	jobs := b.opts.Jobs
	if jobs <= 0 {
		jobs = 2
	}
	b.sem = make(chan struct{}, jobs)
	need := target.closure()
	b.buildCtx = ctx
	g, gctx := errgroup.WithContext(ctx)
	for _, st := range b.stages {
		if !need[st] {
			continue
		}
		g.Go(func() error { return st.build(gctx) })
	}
	err = g.Wait()
	if serr := b.waitStored(); err == nil {
		err = serr
	}
	if b.bctx != nil && b.bctx.hasher != nil {
		if serr := b.bctx.hasher.Save(); serr != nil && err == nil {
			b.prog.warn("saving the context stat cache: " + serr.Error())
		}
	}
	if err != nil {
		return nil, err
	}
	b.warnUnusedArgs()
	return b.finish(ctx, target)
}

// dockerfileName is the Dockerfile as the user named it (for messages).
func (b *builder) dockerfileName() string {
	if b.dfName != "" {
		return b.dfName
	}
	b.dfName = b.opts.Dockerfile
	if b.dfName == "" || b.dfName == "-" {
		b.dfName = "Dockerfile"
	}
	return b.dfName
}

// loadDefinition reads the Dockerfile (and, for a context on stdin, the
// context).
func (b *builder) loadDefinition() ([]byte, error) {
	if b.opts.ContextDir == "" || b.opts.ContextDir == "-" {
		if b.opts.Stdin == nil {
			return nil, errors.New("no build context: give a directory or - for stdin")
		}
		dir, err := b.tempDir("context-")
		if err != nil {
			return nil, err
		}
		b.opts.ContextDir = dir
		in := bufio.NewReaderSize(b.opts.Stdin, 1<<16)
		tr, cleanup, err := archiveReaderBuf(in)
		if err != nil {
			return nil, err
		}
		if tr != nil {
			defer cleanup()
			if err := extractTar(tr, dir, nil); err != nil {
				return nil, fmt.Errorf("reading the build context from stdin: %w", err)
			}
		} else {
			// not an archive: stdin is the Dockerfile and the context is empty
			return io.ReadAll(io.LimitReader(in, 16<<20))
		}
		if b.opts.Dockerfile == "" {
			b.opts.Dockerfile = filepath.Join(dir, "Dockerfile")
		} else if !filepath.IsAbs(b.opts.Dockerfile) {
			// -f names a file inside a context read from stdin (docker's rule)
			b.opts.Dockerfile = filepath.Join(dir, b.opts.Dockerfile)
		}
	}
	abs, err := filepath.Abs(b.opts.ContextDir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", b.opts.ContextDir)
	}
	b.opts.ContextDir = abs
	if b.opts.Dockerfile == "-" {
		if b.opts.Stdin == nil {
			return nil, errors.New("-f -: no stdin")
		}
		return io.ReadAll(io.LimitReader(b.opts.Stdin, 16<<20))
	}
	p := b.opts.Dockerfile
	if p == "" {
		p = filepath.Join(abs, "Dockerfile")
	}
	data, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no Dockerfile at %s", p)
		}
		return nil, err
	}
	return data, nil
}

func (b *builder) loadContext() error {
	v := b.prog.vertex("[internal] load .dockerignore")
	ign, err := loadIgnore(b.opts.ContextDir, b.opts.Dockerfile)
	if err != nil {
		v.fail(err)
		return err
	}
	v.done()
	cdir, err := b.s.Dir("cache")
	if err != nil {
		return err
	}
	b.bctx = &buildContext{
		root:   b.opts.ContextDir,
		ignore: ign,
		hasher: cache.LoadFileHasher(filepath.Join(cdir, "stat", cache.ContextID(b.opts.ContextDir))),
	}
	return nil
}

// plan resolves every stage's base and dependencies and returns the target.
func (b *builder) plan() (*stage, error) {
	menv := metaEnv(b.meta)
	for i, ins := range b.df.Stages {
		st := &stage{b: b, index: i, ins: ins, done: make(chan struct{})}
		res, err := b.lex.ProcessWordWithMatches(ins.BaseName, menv)
		if err != nil {
			return nil, atLine(b.df.Name, ins.Location, err)
		}
		if res.Result == "" {
			return nil, atLine(b.df.Name, ins.Location, fmt.Errorf("base name (%s) should not be blank", ins.BaseName))
		}
		st.baseName = res.Result
		if ins.Platform != "" {
			pres, err := b.lex.ProcessWordWithMatches(ins.Platform, menv)
			if err != nil {
				return nil, atLine(b.df.Name, ins.Location, err)
			}
			p, err := v1.ParsePlatform(pres.Result)
			if err != nil || p.OS == "" || p.Architecture == "" {
				return nil, atLine(b.df.Name, ins.Location, fmt.Errorf("FROM --platform=%s: want os/arch[/variant]", pres.Result))
			}
			st.platform = &Platform{OS: p.OS, Arch: p.Architecture, Variant: p.Variant}
		}
		if base, ok := b.byName[strings.ToLower(st.baseName)]; ok {
			st.baseStage = base
			st.deps = append(st.deps, base)
		}
		if ins.Name != "" {
			st.name = strings.ToLower(ins.Name)
			b.byName[st.name] = st
		}
		b.stages = append(b.stages, st)
	}
	for i, st := range b.stages {
		st.display = st.ins.Name
		if st.display == "" {
			st.display = "stage-" + strconv.Itoa(i)
		}
		if len(b.stages) == 1 {
			st.display = ""
		}
		if st.baseStage == nil && !strings.EqualFold(st.baseName, "scratch") {
			st.total = 1
		}
		for _, c := range st.ins.Commands {
			switch c := c.(type) {
			case *instructions.AddCommand, *instructions.RunCommand, *instructions.WorkdirCommand:
				st.total++
			case *instructions.CopyCommand:
				st.total++
				if c.From != "" {
					if dep := b.stageRef(c.From, i); dep != nil {
						st.deps = append(st.deps, dep)
					}
				}
			}
			if r, ok := c.(*instructions.RunCommand); ok {
				for _, m := range instructions.GetMounts(r) {
					if m.From != "" {
						if dep := b.stageRef(m.From, i); dep != nil {
							st.deps = append(st.deps, dep)
						}
					}
				}
			}
		}
	}
	if b.opts.Target == "" {
		return b.stages[len(b.stages)-1], nil
	}
	t, ok := b.byName[strings.ToLower(b.opts.Target)]
	if !ok {
		var names []string
		for n := range b.byName {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("target stage %q could not be found (stages: %s)", b.opts.Target, strings.Join(names, ", "))
	}
	return t, nil
}

// stageRef finds the stage a --from names (a name or an index before cur).
func (b *builder) stageRef(from string, cur int) *stage {
	from, _, _ = b.lex.ProcessWord(from, metaEnv(b.meta))
	if st, ok := b.byName[strings.ToLower(from)]; ok && st.index < cur {
		return st
	}
	if n, err := strconv.Atoi(from); err == nil && n >= 0 && n < cur {
		return b.stages[n]
	}
	return nil
}

// loadImage finds the image ref in the store, or pulls it through the
// registry hook when it is missing (always with --pull). want is the
// platform FROM --platform asks for (nil: none): a stored image of another
// platform is then pulled for want (or refused without registry access);
// without want, one that cannot run here is used with a warning, as docker
// does.
func (b *builder) loadImage(ctx context.Context, ref string, want *Platform) (*loadedImage, error) {
	key := ref
	if want != nil {
		key += " " + want.String()
	}
	b.mu.Lock()
	li, ok := b.images[key]
	if !ok {
		li = &loadedImage{}
		b.images[key] = li
	}
	b.mu.Unlock()
	li.once.Do(func() {
		v := b.prog.vertex("[internal] load metadata for " + fullRef(ref))
		li.name = fullRef(ref)
		if !b.opts.Pull {
			img, rec, err := b.s.Image(ref)
			var got Platform
			if err == nil {
				got, err = imagePlatform(img)
			}
			if err == nil {
				switch {
				case want == nil || got.matches(*want):
					if want == nil && !got.matches(b.plat) {
						b.prog.warn(fmt.Sprintf("FROM %s: the image's platform (%s) does not match this machine's (%s) and no specific platform was requested", ref, got, b.plat))
					}
					li.img, li.digest = img, rec.Digest
					v.done()
					return
				case b.opts.PullImage == nil:
					li.err = fmt.Errorf("image %s is %s, not the %s FROM --platform asks for (and no registry access to pull that)", ref, got, want)
					v.fail(li.err)
					return
				}
				// pull the platform asked for
			} else if !errors.Is(err, store.ErrNotFound) {
				li.err = err
				v.fail(err)
				return
			}
		}
		if b.opts.PullImage == nil {
			li.err = fmt.Errorf("image %s not found in the local store (and no registry access to pull it)", ref)
			v.fail(li.err)
			return
		}
		platform := ""
		if want != nil {
			platform = want.String()
		}
		img, err := b.opts.PullImage(ctx, ref, platform)
		if err != nil {
			li.err = fmt.Errorf("pulling %s: %w", ref, err)
			v.fail(li.err)
			return
		}
		li.img = img
		if li.digest, err = img.Digest(); err != nil {
			li.err = err
		}
		v.done()
	})
	return li, li.err
}

func fullRef(ref string) string {
	r, err := store.ParseReference(ref)
	if err != nil {
		return ref
	}
	return store.FullName(r)
}

func (b *builder) useArg(k string) {
	b.mu.Lock()
	b.usedArgs[k] = true
	b.mu.Unlock()
}

func (b *builder) warnUnusedArgs() {
	var unused []string
	for k := range b.opts.BuildArgs {
		if !b.usedArgs[k] && !proxyArgs[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		b.prog.warn(fmt.Sprintf("one or more build args were not consumed: [%s]", strings.Join(unused, " ")))
	}
}

// stageTime is the time recorded for new history entries and files.
func (b *builder) stageTime() time.Time { return b.now }
