package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/strata-dev/strata/store"
)

// PutOptions are PutLayer's hints.
type PutOptions struct {
	// Prev is a layer the same step produced before over the same parents.
	Prev v1.Layer
	// Source, when set, names for an entry of the layer (its clean name)
	// layers whose top one holds a file with the same content, and its
	// path there (COPY --from a stage): when that layer is unpacked and
	// its file is what the entry would extract to, the new layer's
	// unpacked form hard-links it (see UnpackOptions.LinkFrom).
	Source func(name string) (layers []v1.Layer, path string)
}

// PutLayer stores the uncompressed layer tar r in s (as s.PutLayer does)
// and, when sn keeps each layer unpacked on its own (overlay), also makes
// the new layer's unpacked form over parents, so that a snapshot over
// parents and the new layer needs no extraction of its own (builds: a COPY
// followed by a RUN).
//
// opts.Prev, when not nil, is a layer the same step produced before over
// the same parents (a hint: nothing is assumed about its content). When it
// is unpacked over parents, the new layer's unpacked form is made from its
// by applying their difference (see patch.go) before PutLayer returns.
//
// Otherwise the stream is extracted as it is stored, and the extraction
// goes on after PutLayer returns: the next step (the next COPY's listing and
// storing) overlaps with it. The layer's lock is taken before PutLayer
// returns, so a Prepare over the layer waits for the extraction and then
// finds it in place. wait, when not nil, waits for it; call it before the
// process ends (or a temp directory is left for Cleanup).
//
// The extraction is exactly what Prepare's would be (the same Unpack over
// the same bytes, whose digest the store checks); if it fails, the layer is
// simply extracted again when it is needed, so only the store's error is
// returned.
func PutLayer(ctx context.Context, sn Snapshotter, s *store.Store, parents []v1.Layer, r io.Reader, opts PutOptions) (l v1.Layer, wait func(), err error) {
	o, ok := sn.(*overlay)
	if !ok {
		l, err := s.PutLayer(ctx, r)
		return l, nil, err
	}
	parent, err := topChain(parents)
	if err != nil {
		l, err := s.PutLayer(ctx, r)
		return l, nil, err
	}
	if opts.Prev != nil {
		if pd, err := opts.Prev.DiffID(); err == nil && o.unpacked(parent, pd) {
			l, err := o.putPatched(ctx, s, parent, pd, r)
			return l, nil, err
		}
	}
	// Held shared until the extraction ends, so that Cleanup (exclusive)
	// never removes the temp directory while it is being filled.
	unlockGC, err := o.prepareLock()
	if err != nil {
		l, err := s.PutLayer(ctx, r)
		return l, nil, err
	}
	layers := filepath.Join(o.root, "layers")
	tmp := filepath.Join(layers, ".tmp-put-"+randHex())
	fs := filepath.Join(tmp, "fs")
	if err := os.MkdirAll(fs, 0o755); err != nil {
		unlockGC()
		l, err := s.PutLayer(ctx, r)
		return l, nil, err
	}
	// The store never waits for the extraction: chunks queue in cp.
	cp := newChunkPipe()
	unpacked := make(chan error, 1)
	uopts := overlayUnpackOptions()
	if opts.Source != nil {
		uopts.LinkFrom = o.linkFrom(opts.Source)
	}
	go func() {
		err := Unpack(ctx, cp, fs, uopts)
		// keep reading whatever follows (tar padding, or all of it after a
		// failure) so the store's side never blocks
		if _, cerr := io.Copy(io.Discard, cp); err == nil {
			err = cerr
		}
		unpacked <- err
	}()
	l, err = s.PutLayer(ctx, io.TeeReader(r, cp))
	cp.CloseWithError(err)
	var unlockChain func()
	if err == nil {
		// failing to lock only loses the extraction
		unlockChain, _ = o.lockChild(parent, l)
	}
	done := o.bg.add()
	go func() {
		defer close(done) // last: after the locks are released
		defer unlockGC()
		uerr := <-unpacked
		if unlockChain == nil {
			removeTree(tmp)
			return
		}
		defer unlockChain()
		if beforeAdopt != nil {
			beforeAdopt(tmp)
		}
		if uerr != nil || o.adoptLocked(l, parent, tmp) != nil {
			removeTree(tmp)
		}
	}()
	if err != nil {
		<-done
		return nil, nil, err
	}
	if unlockChain == nil {
		<-done
		return l, nil, nil
	}
	return l, func() { <-done }, nil
}

// unpacked reports whether the layer diffID over the chain parent is
// unpacked and ready.
func (o *overlay) unpacked(parent string, diffID v1.Hash) bool {
	chain, err := childChain(parent, diffID)
	return err == nil && ready(filepath.Join(o.root, "layers", chain.Hex))
}

// putPatched stores r and, while it is stored, compares it with the
// previous layer prev; then it makes the new layer's unpacked form from
// prev's (see patchFrom). When the difference cannot be applied, the layer
// is left for Prepare to extract.
func (o *overlay) putPatched(ctx context.Context, s *store.Store, parent string, prev v1.Hash, r io.Reader) (v1.Layer, error) {
	pf, err := s.OpenBlob(prev)
	if err != nil {
		return s.PutLayer(ctx, r)
	}
	defer pf.Close()
	type result struct {
		d   *delta
		err error
	}
	cp := newChunkPipe()
	done := make(chan result, 1)
	go func() {
		d, err := diffLayers(ctx, pf, prev, cp)
		// keep reading whatever follows (padding, or all of it after a
		// failure) so the store's side never blocks
		if _, cerr := io.Copy(io.Discard, cp); err == nil {
			err = cerr
		}
		done <- result{d, err}
	}()
	l, err := s.PutLayer(ctx, io.TeeReader(r, cp))
	cp.CloseWithError(err)
	res := <-done
	if err != nil {
		return nil, err
	}
	diffID, err := l.DiffID()
	if err != nil || res.err != nil || o.unpacked(parent, diffID) {
		return l, nil
	}
	nf, err := s.OpenBlob(diffID)
	if err != nil {
		return l, nil
	}
	defer nf.Close()
	// patchFrom needs the gc.lock alone: our own extractions hold it shared
	o.bg.wait()
	_ = o.patchFrom(ctx, l, prev, parent, res.d, nf)
	return l, nil
}

// chunkPipe is an io.Pipe that buffers: Write queues a copy and returns
// (blocking only when many chunks wait), so the writer (the store) never
// waits for the reader (the diff) chunk by chunk.
type chunkPipe struct {
	ch  chan []byte
	cur []byte
	err error // set before ch is closed
}

func newChunkPipe() *chunkPipe { return &chunkPipe{ch: make(chan []byte, 256)} }

func (p *chunkPipe) Write(b []byte) (int, error) {
	if len(b) > 0 {
		p.ch <- append([]byte(nil), b...)
	}
	return len(b), nil
}

// CloseWithError ends the stream: the reader gets err, or io.EOF for nil.
func (p *chunkPipe) CloseWithError(err error) {
	p.err = err
	close(p.ch)
}

func (p *chunkPipe) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		c, ok := <-p.ch
		if !ok {
			if p.err != nil {
				return 0, p.err
			}
			return 0, io.EOF
		}
		p.cur = c
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// linkFrom turns a PutOptions.Source into an UnpackOptions.LinkFrom: the
// file in the unpacked directory of the layers it names, when that
// directory is ready. The caller holds the gc.lock shared (no prune removes
// the directory meanwhile).
func (o *overlay) linkFrom(src func(string) ([]v1.Layer, string)) func(*tar.Header) (string, string) {
	// The sources name prefixes of one stack of layers: a prefix is known
	// by its backing array and length, its directory looked up once.
	type prefix struct {
		first *v1.Layer
		n     int
	}
	dirs := map[prefix]string{} // "" when not unpacked
	return func(hdr *tar.Header) (string, string) {
		layers, p := src(cleanName(hdr.Name))
		if len(layers) == 0 {
			return "", ""
		}
		k := prefix{&layers[0], len(layers)}
		dir, ok := dirs[k]
		if !ok {
			if ids, err := chainIDs(layers); err == nil {
				final := filepath.Join(o.root, "layers", ids[len(ids)-1].Hex)
				if ready(final) {
					dir = filepath.Join(final, "fs")
				}
			}
			dirs[k] = dir
		}
		if dir == "" {
			return "", ""
		}
		return dir, cleanName(p)
	}
}

// beforeAdopt, when set (tests), is called with the temp directory of a
// background extraction before it is adopted.
var beforeAdopt func(tmp string)

// lockChild takes the lock of l's unpacked directory over the chain parent.
func (o *overlay) lockChild(parent string, l v1.Layer) (func(), error) {
	diffID, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	chain, err := childChain(parent, diffID)
	if err != nil {
		return nil, err
	}
	return lockFile(filepath.Join(o.root, "layers", chain.Hex+".lock"))
}

// adopt renames tmp into place as layers/CHAIN for l over the parent chain.
func (o *overlay) adopt(l v1.Layer, parent, tmp string) error {
	unlock, err := o.lockChild(parent, l)
	if err != nil {
		return err
	}
	defer unlock()
	return o.adoptLocked(l, parent, tmp)
}

// adoptLocked is adopt with the layer's lock held (see lockChild).
func (o *overlay) adoptLocked(l v1.Layer, parent, tmp string) error {
	diffID, err := l.DiffID()
	if err != nil {
		return err
	}
	chain, err := childChain(parent, diffID)
	if err != nil {
		return err
	}
	layers := filepath.Join(o.root, "layers")
	final := filepath.Join(layers, chain.Hex)
	if ready(final) {
		return errors.New("already unpacked")
	}
	if err := discardStale(layers, final, chain.Hex); err != nil {
		return err
	}
	if err := seal(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("adopting layer %s: %w", diffID, err)
	}
	return o.linkShort(chain)
}

// background is the extractions PutLayer left going on, each a channel
// closed when it has ended (a WaitGroup would allow no new Add while a
// Wait may be returning, which parallel stages cannot promise).
type background struct {
	mu   sync.Mutex
	jobs []chan struct{}
}

// add registers a new extraction; close the channel when it ends.
func (b *background) add() chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	live := b.jobs[:0]
	for _, j := range b.jobs {
		select {
		case <-j:
		default:
			live = append(live, j)
		}
	}
	j := make(chan struct{})
	b.jobs = append(live, j)
	return j
}

// wait waits for the extractions registered so far.
func (b *background) wait() {
	b.mu.Lock()
	jobs := append([]chan struct{}(nil), b.jobs...)
	b.mu.Unlock()
	for _, j := range jobs {
		<-j
	}
}

// linkShort makes the short name of the layer directory of chain that the
// classic mount(2) fallback uses (see mount.go).
func (o *overlay) linkShort(chain v1.Hash) error {
	link := filepath.Join(o.root, "l", chain.Hex[:shortLinkLen])
	if err := os.Symlink("../layers/"+chain.Hex+"/fs", link); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

// overlayUnpackOptions are how the overlay snapshotter extracts its layers.
func overlayUnpackOptions() UnpackOptions {
	return UnpackOptions{Whiteouts: WhiteoutOverlay, Devices: os.Geteuid() == 0, NoChown: os.Geteuid() != 0}
}
