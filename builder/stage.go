package builder

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/snapshot"
)

const historyComment = "buildkit.dockerfile.v0"

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// stage is one FROM ... section being built.
type stage struct {
	b         *builder
	index     int
	ins       instructions.Stage
	name      string    // lower-cased AS name
	display   string    // as progress shows it ("" when the file has one stage)
	baseName  string    // FROM after meta-arg expansion
	platform  *Platform // FROM --platform after meta-arg expansion (nil: none)
	baseStage *stage
	deps      []*stage
	done      chan struct{}
	total     int
	cmdIndex  int

	// state after the last instruction
	img     dockerspec.DockerOCIImage
	layers  []v1.Layer
	key     string // cache key of the filesystem (parent of the next step)
	env     *kvEnv // what RUN sees and words expand with: config Env + ARGs
	args    []instructions.KeyValuePairOptional
	newHist int // history entries before this build's first new one
	view    *fsView
	viewMu  sync.Mutex
	noCache bool
	cmdSet  bool // CMD given in this stage (ENTRYPOINT then keeps it)
	// a RUN follows the instruction being run in this stage: layers it
	// writes are also unpacked for it in the same pass (see putLayer)
	runLater bool
}

// closure is the set of stages st needs, itself included.
func (st *stage) closure() map[*stage]bool {
	out := map[*stage]bool{}
	var add func(*stage)
	add = func(s *stage) {
		if out[s] {
			return
		}
		out[s] = true
		for _, d := range s.deps {
			add(d)
		}
	}
	add(st)
	return out
}

func (st *stage) build(ctx context.Context) (err error) {
	defer close(st.done)
	for _, d := range st.deps {
		select {
		case <-d.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case st.b.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-st.b.sem }()
	if err := st.init(ctx); err != nil {
		return atLine(st.b.df.Name, st.ins.Location, err)
	}
	lastRun := -1
	for i, c := range st.ins.Commands {
		if _, ok := c.(*instructions.RunCommand); ok {
			lastRun = i
		}
	}
	for i, c := range st.ins.Commands {
		st.runLater = i < lastRun
		if err := st.dispatch(ctx, c); err != nil {
			return atLine(st.b.df.Name, c.Location(), err)
		}
	}
	return nil
}

func (st *stage) init(ctx context.Context) error {
	b := st.b
	for _, f := range b.opts.NoCacheFilter {
		if strings.EqualFold(f, st.ins.Name) {
			st.noCache = true
		}
	}
	st.noCache = st.noCache || b.opts.NoCache
	switch {
	case st.baseStage != nil:
		bs := st.baseStage
		st.img = cloneImage(bs.img)
		st.layers = append([]v1.Layer(nil), bs.layers...)
		st.key = bs.key
		st.env = bs.env.clone()
		st.args = append([]instructions.KeyValuePairOptional(nil), bs.args...)
		st.newHist = bs.newHist
		if bs.view != nil {
			st.view = bs.view.clone()
		}
	case strings.EqualFold(st.baseName, "scratch"):
		st.img = emptyImage(b.plat)
		st.key = cache.NewKey("scratch").Add(b.plat.String()).Sum()
		st.env = newEnv()
	default:
		plat := b.plat
		if st.platform != nil {
			plat = *st.platform
		}
		li, err := b.loadImage(ctx, st.baseName, st.platform)
		if err != nil {
			return err
		}
		v := b.prog.vertex(st.prefix() + "FROM " + li.name)
		cfg, err := readConfig(li.img)
		if err != nil {
			v.fail(err)
			return err
		}
		if st.layers, err = li.img.Layers(); err != nil {
			v.fail(err)
			return err
		}
		cfg.Created = nil
		if cfg.OS == "" {
			cfg.OS, cfg.Architecture, cfg.Variant = plat.OS, plat.Arch, plat.Variant
		}
		st.img = cfg
		st.key = cache.NewKey("from").Add(li.digest.String(), plat.String()).Sum()
		st.env = newEnv()
		st.newHist = len(cfg.History)
		v.done()
	}
	if st.baseStage == nil {
		if _, ok := shell.EnvsFromSlice(st.img.Config.Env).Get("PATH"); !ok {
			st.img.Config.Env = append(st.img.Config.Env, "PATH="+defaultPath)
		}
		for _, e := range st.img.Config.Env {
			k, v, _ := strings.Cut(e, "=")
			st.env.Set(k, v)
		}
	}
	// ONBUILD triggers of the base (an image or, as in BuildKit, a stage)
	// run first and are not inherited.
	{
		triggers := st.img.Config.OnBuild
		st.img.Config.OnBuild = nil
		for _, t := range triggers {
			if w := strings.ToUpper(strings.Fields(t + " x")[0]); w == "RUN" || w == "COPY" || w == "ADD" || w == "WORKDIR" {
				st.total++
			}
		}
		for _, t := range triggers {
			res, err := parser.Parse(strings.NewReader(t))
			if err != nil {
				return fmt.Errorf("ONBUILD %s: %w", t, cleanErr(err))
			}
			if len(res.AST.Children) != 1 {
				return errors.New("onbuild trigger should be a single expression")
			}
			cmd, err := instructions.ParseCommand(res.AST.Children[0])
			if err != nil {
				return fmt.Errorf("ONBUILD %s: %w", t, cleanErr(err))
			}
			if err := st.dispatch(ctx, cmd); err != nil {
				return fmt.Errorf("ONBUILD %s: %w", t, err)
			}
		}
	}
	return nil
}

func emptyImage(p Platform) dockerspec.DockerOCIImage {
	var img dockerspec.DockerOCIImage
	img.OS, img.Architecture, img.Variant = p.OS, p.Arch, p.Variant
	img.RootFS.Type = "layers"
	img.Config.WorkingDir = "/"
	img.Config.Env = []string{"PATH=" + defaultPath}
	return img
}

func cloneImage(src dockerspec.DockerOCIImage) dockerspec.DockerOCIImage {
	img := src
	c := &img.Config
	c.Env = append([]string(nil), src.Config.Env...)
	c.Cmd = append([]string(nil), src.Config.Cmd...)
	c.Entrypoint = append([]string(nil), src.Config.Entrypoint...)
	c.Shell = append([]string(nil), src.Config.Shell...)
	c.OnBuild = append([]string(nil), src.Config.OnBuild...)
	if src.Config.Cmd == nil {
		c.Cmd = nil
	}
	if src.Config.Entrypoint == nil {
		c.Entrypoint = nil
	}
	if src.Config.Shell == nil {
		c.Shell = nil
	}
	if src.Config.OnBuild == nil {
		c.OnBuild = nil
	}
	c.Labels = cloneMap(src.Config.Labels)
	c.ExposedPorts = cloneSet(src.Config.ExposedPorts)
	c.Volumes = cloneSet(src.Config.Volumes)
	if src.Config.Healthcheck != nil {
		h := *src.Config.Healthcheck
		c.Healthcheck = &h
	}
	img.History = append([]ocispec.History(nil), src.History...)
	img.RootFS.DiffIDs = append(img.RootFS.DiffIDs[:0:0], src.RootFS.DiffIDs...)
	return img
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	n := make(map[string]string, len(m))
	for k, v := range m {
		n[k] = v
	}
	return n
}

func cloneSet(m map[string]struct{}) map[string]struct{} {
	if m == nil {
		return nil
	}
	n := make(map[string]struct{}, len(m))
	for k := range m {
		n[k] = struct{}{}
	}
	return n
}

// prefix is BuildKit's "[stage k/n] " step prefix.
func (st *stage) prefix() string {
	if st.total == 0 {
		return ""
	}
	st.cmdIndex++
	out := "["
	if st.display != "" {
		out += st.display + " "
	}
	w := int(1 + math.Log10(float64(st.total)))
	return out + fmt.Sprintf("%*d/%d] ", w, st.cmdIndex, st.total)
}

func (st *stage) history(createdBy string, layer bool, created *time.Time) {
	st.img.History = append(st.img.History, ocispec.History{
		CreatedBy: createdBy, Comment: historyComment, EmptyLayer: !layer, Created: created,
	})
}

// expand expands a word with the stage's environment, noting the build
// args it used.
func (st *stage) expand(word string) (string, error) {
	res, err := st.b.lex.ProcessWordWithMatches(word, st.env)
	if err != nil {
		return "", err
	}
	for k := range res.Matched {
		st.b.useArg(k)
	}
	return res.Result, nil
}

func (st *stage) dispatch(ctx context.Context, cmd instructions.Command) error {
	if _, isArg := cmd.(*instructions.ArgCommand); !isArg {
		if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
			if err := ex.Expand(st.expand); err != nil {
				return err
			}
		}
		if ex, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
			lex := shell.NewLex('\\')
			lex.SkipProcessQuotes = true
			if err := ex.ExpandRaw(func(w string) (string, error) {
				r, _, err := lex.ProcessWord(w, st.env)
				return r, err
			}); err != nil {
				return err
			}
		}
	}
	cfg := &st.img.Config
	switch c := cmd.(type) {
	case *instructions.MaintainerCommand:
		st.img.Author = c.Maintainer
		st.history("MAINTAINER "+c.Maintainer, false, st.b.epoch)
	case *instructions.EnvCommand:
		msg := "ENV"
		for _, e := range c.Env {
			msg += " " + e.String()
			st.env.Set(e.Key, e.Value)
			cfg.Env = addEnv(cfg.Env, e.Key, e.Value)
		}
		st.history(msg, false, st.b.epoch)
	case *instructions.LabelCommand:
		msg := "LABEL"
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, l := range c.Labels {
			cfg.Labels[l.Key] = l.Value
			msg += " " + l.String()
		}
		st.history(msg, false, st.b.epoch)
	case *instructions.ArgCommand:
		return st.arg(c)
	case *instructions.WorkdirCommand:
		return st.workdir(ctx, c)
	case *instructions.UserCommand:
		cfg.User = c.User
		st.history("USER "+c.User, false, st.b.epoch)
	case *instructions.ExposeCommand:
		var ports []string
		for _, p := range c.Ports {
			ps, err := st.b.lex.ProcessWords(p, st.env)
			if err != nil {
				return err
			}
			ports = append(ports, ps...)
		}
		keys, err := parsePorts(ports)
		if err != nil {
			return err
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range keys {
			cfg.ExposedPorts[p] = struct{}{}
		}
		sort.Strings(keys)
		keys = dedup(keys)
		st.history(fmt.Sprintf("EXPOSE map[%s]", strings.Join(mapKeys(keys), " ")), false, st.b.epoch)
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				return errors.New("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
		st.history(fmt.Sprintf("VOLUME %v", c.Volumes), false, st.b.epoch)
	case *instructions.StopSignalCommand:
		if err := checkSignal(c.Signal); err != nil {
			return err
		}
		cfg.StopSignal = c.Signal
		st.history("STOPSIGNAL "+c.Signal, false, st.b.epoch)
	case *instructions.ShellCommand:
		cfg.Shell = append([]string(nil), c.Shell...)
		st.history(fmt.Sprintf("SHELL %v", c.Shell), false, st.b.epoch)
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	case *instructions.CmdCommand:
		args := c.CmdLine
		if c.PrependShell {
			args = st.withShell(args)
		}
		cfg.Cmd = args
		st.cmdSet = true
		cfg.ArgsEscaped = true //nolint:staticcheck // docker compatibility, as BuildKit sets it
		st.history(fmt.Sprintf("CMD %q", args), false, st.b.epoch)
	case *instructions.EntrypointCommand:
		args := c.CmdLine
		if c.PrependShell {
			args = st.withShell(args)
		}
		cfg.Entrypoint = args
		if !st.hasCmd() {
			cfg.Cmd = nil
		}
		st.history(fmt.Sprintf("ENTRYPOINT %q", args), false, st.b.epoch)
	case *instructions.HealthCheckCommand:
		h := c.Health
		cfg.Healthcheck = &dockerspec.HealthcheckConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries}
		var hc any = cfg.Healthcheck // formatted as BuildKit does (%q of the struct)
		st.history(fmt.Sprintf("HEALTHCHECK %q", hc), false, st.b.epoch)
	case *instructions.RunCommand:
		return st.run(ctx, c)
	case *instructions.CopyCommand:
		return st.copy(ctx, copyArgs{
			sd: c.SourcesAndDest, from: c.From, chown: c.Chown, chmod: c.Chmod, link: c.Link,
			exclude: c.ExcludePatterns, parents: c.Parents, text: c.String(),
		})
	case *instructions.AddCommand:
		return st.copy(ctx, copyArgs{
			add: true, sd: c.SourcesAndDest, chown: c.Chown, chmod: c.Chmod, link: c.Link,
			exclude: c.ExcludePatterns, checksum: c.Checksum, text: c.String(), keepGitDir: c.KeepGitDir,
		})
	default:
		return fmt.Errorf("unsupported instruction %T", cmd)
	}
	return nil
}

func dedup(s []string) []string {
	var out []string
	for i, k := range s {
		if i == 0 || s[i-1] != k {
			out = append(out, k)
		}
	}
	return out
}

func mapKeys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + ":{}"
	}
	return out
}

// hasCmd reports whether this stage (not its base image) set CMD before the
// current instruction: ENTRYPOINT resets an inherited CMD only.
func (st *stage) hasCmd() bool { return st.cmdSet }

func (st *stage) withShell(args []string) []string {
	sh := st.img.Config.Shell
	if len(sh) == 0 {
		sh = []string{"/bin/sh", "-c"}
	}
	return append(append([]string(nil), sh...), strings.Join(args, " "))
}

func addEnv(env []string, k, v string) []string {
	for i, e := range env {
		if key, _, _ := strings.Cut(e, "="); key == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// arg handles ARG inside a stage: the value is --build-arg, else the
// default, else the global (meta) ARG of that name.
func (st *stage) arg(c *instructions.ArgCommand) error {
	b := st.b
	var names []string
	for _, a := range c.Args {
		b.useArg(a.Key)
		bv, hasValue := b.opts.BuildArgs[a.Key]
		hasDefault := a.Value != nil
		if !hasDefault && !hasValue {
			for _, m := range b.meta {
				if m.Key == a.Key {
					a.Value = m.Value
				}
			}
		}
		if hasValue {
			a.Value = &bv
		} else if hasDefault {
			v, err := st.expand(*a.Value)
			if err != nil {
				return err
			}
			a.Value = &v
		}
		if a.Value != nil {
			st.env.Set(a.Key, *a.Value)
		}
		st.args = append(st.args, a)
		names = append(names, a.Key)
	}
	// history names build args but never their values
	st.history("ARG "+strings.Join(names, " "), false, b.epoch)
	return nil
}

func (st *stage) workdir(ctx context.Context, c *instructions.WorkdirCommand) error {
	cfg := &st.img.Config
	wd := c.Path
	if !path.IsAbs(wd) {
		cur := cfg.WorkingDir
		if cur == "" {
			cur = "/"
		}
		wd = path.Join(cur, wd)
	}
	wd = path.Clean(wd)
	cfg.WorkingDir = wd
	if wd == "/" {
		st.history("WORKDIR "+wd, false, st.b.epoch)
		return nil
	}
	name := st.prefix() + "WORKDIR " + c.Path
	key := cache.NewKey("workdir").Add(st.key, wd, cfg.User).Sum()
	return st.layerStep(ctx, name, key, "WORKDIR "+wd, func(v *vertex) (v1.Layer, error) {
		view, err := st.fsView()
		if err != nil {
			return nil, err
		}
		plan := newCopyPlan(view, st.b.stageTime())
		rp, err := view.resolve(wd, true)
		if err != nil {
			return nil, err
		}
		if e, ok := view.get(rp); !ok || !e.isDir() {
			if cfg.User != "" {
				uid, gid, err := view.lookupUser(cfg.User)
				if err != nil {
					return nil, err
				}
				plan.uid, plan.gid, plan.chown = uid, gid, true
			}
			if err := plan.ensureDir(rp); err != nil {
				return nil, err
			}
		}
		return plan.writeLayer(ctx, st.putLayer)
	})
}

// fsView returns the merged metadata of the stage's current layers.
func (st *stage) fsView() (*fsView, error) {
	st.viewMu.Lock()
	defer st.viewMu.Unlock()
	if st.view == nil {
		st.view = newView(st.b.blobs)
	}
	for len(st.view.layers) < len(st.layers) {
		if err := st.view.add(st.layers[len(st.view.layers)]); err != nil {
			return nil, err
		}
	}
	return st.view, nil
}

// layerStep runs a step that makes a layer, or reuses the cached one.
func (st *stage) layerStep(ctx context.Context, name, key, createdBy string, produce func(v *vertex) (v1.Layer, error)) error {
	b := st.b
	v := b.prog.vertex(name)
	b.mu.Lock()
	b.steps = append(b.steps, stepRecord{st: st, key: key})
	b.mu.Unlock()
	if !st.noCache {
		l, created, ok := b.cacheLookup(key)
		if !ok && len(b.remote) > 0 {
			l, created, ok = b.remoteLookup(ctx, key)
		}
		if ok {
			v.cached()
			st.layers = append(st.layers, l)
			st.key = chainKey(key, l)
			st.history(createdBy, true, timePtr(created))
			return nil
		}
	}
	if err := ctx.Err(); err != nil {
		v.fail(err)
		return err
	}
	l, err := produce(v)
	if err != nil {
		v.fail(err)
		return err
	}
	created := b.stageTime()
	b.recordLayer(key, l, created)
	v.done()
	st.layers = append(st.layers, l)
	st.key = chainKey(key, l)
	st.history(createdBy, true, timePtr(created))
	return nil
}

// recordLayer adds the layer a step produced to the build cache, once its
// blob is stored: a snapshot.Pending one (a RUN's) in the background.
func (b *builder) recordLayer(key string, l v1.Layer, created time.Time) {
	record := func() {
		if err := b.cacheStore(key, l, created); err != nil {
			b.prog.warn("recording the build cache: " + err.Error())
		}
	}
	p, ok := l.(snapshot.Pending)
	if !ok {
		record()
		return
	}
	b.storing.Add(1)
	go func() {
		defer b.storing.Done()
		if err := p.Stored(); err != nil {
			b.mu.Lock()
			if b.storeErr == nil {
				b.storeErr = err
			}
			b.mu.Unlock()
			return
		}
		record()
	}()
}

// waitStored waits for the blobs of the layers recordLayer was given and
// returns the first error storing one.
func (b *builder) waitStored() error {
	b.storing.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.storeErr
}

// chainKey is the parent key of the step after a layer step: the step's key
// and the layer it produced. A step that reran (--no-cache, a damaged
// entry) and produced different content therefore invalidates what follows.
func chainKey(step string, l v1.Layer) string {
	d, _ := l.Digest()
	return cache.NewKey("chain").Add(step, d.String()).Sum()
}

// cacheLookup returns the cached layer for key when its blob is intact.
// A blob whose identity changed since it was verified is hashed again; a
// damaged one is removed (the step reruns and stores it again).
func (b *builder) cacheLookup(key string) (v1.Layer, time.Time, bool) {
	e, ok := b.idx.Get(key)
	if !ok {
		return nil, time.Time{}, false
	}
	h, err := v1.NewHash(e.DiffID)
	if err != nil {
		return nil, time.Time{}, false
	}
	p := b.s.BlobPath(h)
	if id := blobIdentity(p); id == "" || id != e.Blob {
		if id == "" || !verifyBlob(p, h, e.Size) {
			if id != "" {
				os.Remove(p) // damaged: never used again
			}
			_ = b.idx.Delete(key)
			return nil, time.Time{}, false
		}
		e.Blob = id
		_ = b.idx.Put(key, e)
	}
	l, err := b.s.Layer(h)
	if err != nil {
		return nil, time.Time{}, false
	}
	if now := time.Now(); now.Sub(e.Used) > time.Hour && now.Sub(e.Created) > time.Hour {
		e.Used = now.UTC() // for prune's least-recently-used order; coarse on purpose
		_ = b.idx.Put(key, e)
	}
	return l, e.Created, true
}

func blobIdentity(p string) string {
	fi, err := os.Stat(p)
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d:%d", st.Ino, st.Size, st.Mtim.Nano(), st.Ctim.Nano())
}

func verifyBlob(p string, h v1.Hash, size int64) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	got, n, err := v1.SHA256(f)
	return err == nil && got == h && n == size
}

func (b *builder) cacheStore(key string, l v1.Layer, created time.Time) error {
	d, err := l.Digest()
	if err != nil {
		return err
	}
	size, err := l.Size()
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.pins = append(b.pins, d)
	b.mu.Unlock()
	// the blob was just written and checked against its digest by the
	// store: remember its identity so hits need not hash it again
	return b.idx.Put(key, cache.Entry{DiffID: d.String(), Size: size, Created: created, Blob: blobIdentity(b.s.BlobPath(d))})
}

// fillHistoryTimes gives this build's metadata-only history entries the time
// of the layer before them (the first new layer's for leading ones), as
// BuildKit's exporter does.
func fillHistoryTimes(img *dockerspec.DockerOCIImage, from int, now time.Time) {
	if from > len(img.History) {
		from = len(img.History)
	}
	var first *time.Time
	for _, h := range img.History[from:] {
		if h.Created != nil && !h.EmptyLayer {
			first = h.Created
			break
		}
	}
	if first == nil {
		first = timePtr(now)
	}
	cur := first
	for i := from; i < len(img.History); i++ {
		if img.History[i].Created != nil {
			cur = img.History[i].Created
		} else {
			img.History[i].Created = cur
		}
	}
}
