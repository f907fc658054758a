package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/strata-dev/strata/store"
)

// PutLayer stores the uncompressed layer tar r in s (as s.PutLayer does)
// and, when sn keeps each layer unpacked on its own (overlay), also makes
// the new layer's unpacked form over parents, so that a snapshot over
// parents and the new layer needs no extraction of its own (builds: a COPY
// followed by a RUN).
//
// prev, when not nil, is a layer the same step produced before over the same
// parents (a hint: nothing is assumed about its content). When prev is
// unpacked over parents, the new layer's unpacked form is made from prev's
// by applying their difference (see patch.go); otherwise the stream is
// extracted in the same pass it is stored. The extraction is exactly what
// Prepare's would be (the same Unpack over the same bytes, whose digest the
// store checks); if it fails, the layer is simply extracted again when it
// is needed, so only the store's error is returned.
func PutLayer(ctx context.Context, sn Snapshotter, s *store.Store, parents []v1.Layer, prev v1.Layer, r io.Reader) (v1.Layer, error) {
	o, ok := sn.(*overlay)
	if !ok {
		return s.PutLayer(ctx, r)
	}
	parent, err := topChain(parents)
	if err != nil {
		return s.PutLayer(ctx, r)
	}
	if prev != nil {
		if pd, err := prev.DiffID(); err == nil && o.unpacked(parent, pd) {
			return o.putPatched(ctx, s, parent, pd, r)
		}
	}
	// Held shared so that Cleanup (exclusive) never removes the temp
	// directory while it is being filled.
	unlock, err := o.prepareLock()
	if err != nil {
		return s.PutLayer(ctx, r)
	}
	defer unlock()
	layers := filepath.Join(o.root, "layers")
	tmp := filepath.Join(layers, ".tmp-put-"+randHex())
	fs := filepath.Join(tmp, "fs")
	if err := os.MkdirAll(fs, 0o755); err != nil {
		return s.PutLayer(ctx, r)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Unpack(ctx, pr, fs, overlayUnpackOptions())
		// keep reading whatever follows (tar padding, or all of it after a
		// failure) so the store's side never blocks
		if _, cerr := io.Copy(io.Discard, pr); err == nil {
			err = cerr
		}
		done <- err
	}()
	l, err := s.PutLayer(ctx, io.TeeReader(r, pw))
	pw.CloseWithError(err)
	uerr := <-done
	if err != nil {
		removeTree(tmp)
		return nil, err
	}
	if uerr != nil || o.adopt(l, parent, tmp) != nil {
		removeTree(tmp)
	}
	return l, nil
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

// adopt renames tmp into place as layers/CHAIN for l over the parent chain.
func (o *overlay) adopt(l v1.Layer, parent, tmp string) error {
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
	unlock, err := lockFile(filepath.Join(layers, chain.Hex+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
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
