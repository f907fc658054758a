package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Patching an unpacked layer.
//
// A build step that reruns because a few of its inputs changed (a COPY of a
// big tree with one file edited) produces a layer that differs from the one
// it produced before in a few entries only. Instead of extracting the new
// layer whole, PutLayer can take over the unpacked directory of the
// previous layer (on the same parents) and apply just the difference:
// remove what the new layer no longer has, extract the entries that differ,
// and extract again every directory above a change (restoring its times).
//
// The result is exactly what extracting the new layer gives because:
//   - both layers are compared entry by entry, by their raw header bytes and
//     data: an entry whose bytes are equal in both extracts to the same file,
//     so the file the previous extraction left is the one a new extraction
//     would make;
//   - the previous layer's blob is checked against its diffID while it is
//     compared, and its directory holds what extracting that blob gave
//     (layer directories are never modified once in place);
//   - everything else goes through Unpack, which replaces an existing
//     non-directory and merges into an existing directory (owner, mode and
//     times are set again);
//   - hard links are always extracted again (their target may be a new
//     file), and must name a file earlier in the layer (as a fresh
//     extraction requires);
//   - only layers for which that is enough are patched: names strictly
//     increasing and every parent directory an entry of its own (a
//     directory that exists only because a file is below it would outlive
//     that file), no root entry, no sparse files, no whiteouts, and no
//     xattrs on a directory that changes (merging would keep stale ones).
//     Anything else is extracted whole, as before.
//
// The previous directory is taken over only when no active snapshot uses
// it, under the exclusive gc.lock (no Prepare can be picking it up at the
// same time); it is renamed away first, so a crash leaves a temp directory
// that Cleanup removes. The previous layer stays in the store and is simply
// extracted again if it is needed later.

// errNoPatch says the new layer cannot be made by patching the previous
// one's directory; the caller extracts it whole (or leaves it to Prepare).
var errNoPatch = errors.New("layer cannot be patched from the previous one")

// patchOp is one step of a patch: extract a record of the new layer (the
// raw header blocks and data at start in its blob), or remove del.
type patchOp struct {
	del         string
	start, size int64 // record: offset of the header, length of header + data
	dataSize    int64
}

// delta is how to turn the previous layer's extraction into the new one's.
type delta struct {
	ops     []patchOp
	entries int // entries in the new layer
	changed int // entries extracted or removed (ancestors excluded)
}

// maxPatchShare bounds the share of the new layer's entries a patch may
// change: beyond it, extracting the layer whole is as cheap and simpler.
const maxPatchShare = 0.5

// diffLayers compares the previous layer's tar (prevDiffID, read from prev)
// with the new one's (next) and returns the delta, or an error wrapping
// errNoPatch when the layers are not of the form a patch handles.
func diffLayers(ctx context.Context, prev io.Reader, prevDiffID v1.Hash, next io.Reader) (*delta, error) {
	ph := sha256.New()
	prevHashed := io.TeeReader(prev, ph)
	pr := newRawTar(prevHashed)
	nr := newRawTar(next)
	d := &delta{}
	newDirs := map[string]patchOp{} // directories of the new layer, as records
	prevDirs := map[string]bool{}   // directories of the previous layer
	emitted := map[string]bool{}    // directories already in the patch
	removed := map[string]bool{}    // previous directories removed or replaced
	files := map[string]bool{}      // non-directories of the new layer so far
	bufA := make([]byte, 64<<10)
	bufB := make([]byte, 64<<10)

	emitAncestors := func(name string) error {
		var chain []string
		for p := parentName(name); p != "" && !emitted[p]; p = parentName(p) {
			chain = append(chain, p)
		}
		for i := len(chain) - 1; i >= 0; i-- {
			op, ok := newDirs[chain[i]]
			if !ok {
				return fmt.Errorf("%w: %s: parent is not a directory of the layer", errNoPatch, chain[i])
			}
			d.ops = append(d.ops, op)
			emitted[chain[i]] = true
		}
		return nil
	}
	gone := func(name string) bool {
		for p := parentName(name); p != ""; p = parentName(p) {
			if removed[p] {
				return true
			}
		}
		return false
	}
	// prevOnly removes an entry the new layer does not have.
	prevOnly := func(e *rawEntry) error {
		if gone(e.name) {
			return nil // went with a parent
		}
		if p := parentName(e.name); p != "" {
			if _, ok := newDirs[p]; !ok {
				return fmt.Errorf("%w: %s: parent is not a directory of the new layer", errNoPatch, e.name)
			}
		}
		if err := emitAncestors(e.name); err != nil {
			return err
		}
		d.ops = append(d.ops, patchOp{del: e.name})
		d.changed++
		if e.typ == tar.TypeDir {
			removed[e.name] = true
		}
		return nil
	}

	var lastPrev, lastNew string
	var seenPrev, seenNew bool
	nextPrev := func() (*rawEntry, error) {
		e, err := pr.next()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the previous layer: %w", err)
		}
		if err := patchable(e, lastPrev, seenPrev, prevDirs); err != nil {
			return nil, err
		}
		lastPrev, seenPrev = e.name, true
		if e.typ == tar.TypeDir {
			prevDirs[e.name] = true
		}
		return e, nil
	}
	p, err := nextPrev()
	if err != nil {
		return nil, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := nr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the new layer: %w", err)
		}
		if err := patchable(n, lastNew, seenNew, nil); err != nil {
			return nil, err
		}
		if p := parentName(n.name); p != "" {
			if _, ok := newDirs[p]; !ok {
				return nil, fmt.Errorf("%w: %s: parent is not a directory of the layer", errNoPatch, n.name)
			}
		}
		lastNew, seenNew = n.name, true
		d.entries++
		rec := patchOp{start: n.start, size: int64(len(n.raw)) + n.size, dataSize: n.size}
		for p != nil && p.name < n.name {
			if err := prevOnly(p); err != nil {
				return nil, err
			}
			if p, err = nextPrev(); err != nil {
				return nil, err
			}
		}
		if n.typ == tar.TypeLink {
			// a hard link must name a file extracted before it, and is
			// always made again: its target may be a new file
			if t := cleanName(n.link); !files[t] || t == n.name {
				return nil, fmt.Errorf("%w: %s: hard link to %q, not an earlier file", errNoPatch, n.name, n.link)
			}
		} else if n.typ != tar.TypeDir {
			files[n.name] = true
		}
		same := false
		if p != nil && p.name == n.name {
			if n.typ == tar.TypeLink {
				// never the same
			} else if bytes.Equal(p.raw, n.raw) {
				if same, err = sameData(pr, nr, n.size, bufA, bufB); err != nil {
					return nil, err
				}
			} else if p.typ == tar.TypeDir && n.typ == tar.TypeDir && hasXattrs(p.pax) {
				return nil, fmt.Errorf("%w: %s: a directory with xattrs changes", errNoPatch, n.name)
			}
			if p.typ == tar.TypeDir && n.typ != tar.TypeDir {
				removed[p.name] = true // replaced: what was below it goes too
			}
			if p, err = nextPrev(); err != nil {
				return nil, err
			}
		}
		if n.typ == tar.TypeDir {
			newDirs[n.name] = rec
		}
		if !same {
			// (never below a removed directory: that is not a directory
			// of the new layer, and every parent here is one)
			if err := emitAncestors(n.name); err != nil {
				return nil, err
			}
			d.ops = append(d.ops, rec)
			d.changed++
			if n.typ == tar.TypeDir {
				emitted[n.name] = true
			}
		}
	}
	for p != nil {
		if err := prevOnly(p); err != nil {
			return nil, err
		}
		if p, err = nextPrev(); err != nil {
			return nil, err
		}
	}
	// the tar may end before the blob does (padding to a record size)
	if _, err := io.Copy(io.Discard, prevHashed); err != nil {
		return nil, fmt.Errorf("reading the previous layer: %w", err)
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(ph.Sum(nil))}
	if got != prevDiffID {
		return nil, fmt.Errorf("%w: the previous layer's blob has digest %s, not %s", errNoPatch, got, prevDiffID)
	}
	if float64(d.changed) > maxPatchShare*float64(d.entries) {
		return nil, fmt.Errorf("%w: %d of %d entries change", errNoPatch, d.changed, d.entries)
	}
	return d, nil
}

// patchable checks that entry e (after the entry named last, when any) is
// of the form a patch handles; dirs, when given, are the directories seen
// so far, one of which must be e's parent.
func patchable(e *rawEntry, last string, hasLast bool, dirs map[string]bool) error {
	switch {
	case e.name == "":
		return fmt.Errorf("%w: a root entry", errNoPatch)
	case hasLast && e.name <= last:
		return fmt.Errorf("%w: %s: entries not in order", errNoPatch, e.name)
	case strings.HasPrefix(path.Base(e.name), whiteoutPrefix):
		return fmt.Errorf("%w: %s: a whiteout", errNoPatch, e.name)
	}
	switch e.typ {
	case tar.TypeReg, tar.TypeRegA, tar.TypeDir, tar.TypeSymlink, tar.TypeFifo, tar.TypeChar, tar.TypeBlock, tar.TypeLink:
	default:
		return fmt.Errorf("%w: %s: entry type %q", errNoPatch, e.name, e.typ)
	}
	if dirs != nil {
		if p := parentName(e.name); p != "" && !dirs[p] {
			return fmt.Errorf("%w: %s: parent is not a directory of the layer", errNoPatch, e.name)
		}
	}
	return nil
}

// sameData compares the current entries' data of a and b (n bytes each).
func sameData(a, b *rawTar, n int64, bufA, bufB []byte) (bool, error) {
	if n <= int64(len(bufA)) {
		// small files: straight from the scanners' buffers when they can
		da, db := a.data(n), b.data(n)
		if da != nil && db != nil {
			return bytes.Equal(da, db), nil
		}
		if da == nil {
			if _, err := io.ReadFull(a, bufA[:n]); err != nil {
				return false, fmt.Errorf("reading the previous layer: %w", err)
			}
			da = bufA[:n]
		}
		if db == nil {
			if _, err := io.ReadFull(b, bufB[:n]); err != nil {
				return false, fmt.Errorf("reading the new layer: %w", err)
			}
			db = bufB[:n]
		}
		return bytes.Equal(da, db), nil
	}
	for n > 0 {
		k := min(int64(len(bufA)), n)
		if _, err := io.ReadFull(a, bufA[:k]); err != nil {
			return false, fmt.Errorf("reading the previous layer: %w", err)
		}
		if _, err := io.ReadFull(b, bufB[:k]); err != nil {
			return false, fmt.Errorf("reading the new layer: %w", err)
		}
		if !bytes.Equal(bufA[:k], bufB[:k]) {
			return false, nil
		}
		n -= k
	}
	return true, nil
}

func hasXattrs(pax map[string]string) bool {
	for k := range pax {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			return true
		}
	}
	return false
}

func parentName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}

// stream is the delta as a tar stream read from the new layer's blob:
// records as stored, removals as whiteouts (extracted in apply mode).
func (d *delta) stream(blob io.ReaderAt) (io.Reader, error) {
	var rs []io.Reader
	var zeros [1024]byte
	for _, op := range d.ops {
		if op.del == "" {
			rs = append(rs, io.NewSectionReader(blob, op.start, op.size), bytes.NewReader(zeros[:blockPad(op.dataSize)]))
			continue
		}
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		dir, base := path.Split(op.del)
		h := tar.Header{Typeflag: tar.TypeReg, Name: dir + whiteoutPrefix + base, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if err := tw.Flush(); err != nil {
			return nil, err
		}
		rs = append(rs, &b)
	}
	rs = append(rs, bytes.NewReader(zeros[:]))
	return io.MultiReader(rs...), nil
}

// errBusy says the previous layer's directory could not be taken over now.
var errBusy = errors.New("the previous layer's directory is in use")

// patchFrom makes the unpacked directory of l (over the chain parent) from
// that of prev (over the same parent) by applying d, taking prev's
// directory over. blob is l's blob.
func (o *overlay) patchFrom(ctx context.Context, l v1.Layer, prev v1.Hash, parent string, d *delta, blob io.ReaderAt) error {
	prevChain, err := childChain(parent, prev)
	if err != nil {
		return err
	}
	unlock, err := flock(filepath.Join(o.root, "gc.lock"), unix.LOCK_EX|unix.LOCK_NB)
	if err != nil {
		return fmt.Errorf("%w: %v", errBusy, err)
	}
	defer unlock()
	layers := filepath.Join(o.root, "layers")
	prevFinal := filepath.Join(layers, prevChain.Hex)
	used, err := o.usedLayers()
	if err != nil {
		return err
	}
	if used[prevFinal] {
		return errBusy
	}
	tmp := filepath.Join(layers, ".tmp-put-"+randHex())
	unlockPrev, err := lockFile(prevFinal + ".lock")
	if err != nil {
		return err
	}
	if !ready(prevFinal) {
		unlockPrev()
		return fmt.Errorf("%w: the previous layer is not unpacked", errNoPatch)
	}
	err = os.Rename(prevFinal, tmp)
	unlockPrev()
	if err != nil {
		return err
	}
	// From here on the directory is ours: nothing names it, and Cleanup
	// (which removes .tmp-* directories) waits for the gc.lock we hold.
	s, err := d.stream(blob)
	if err == nil {
		opts := overlayUnpackOptions()
		opts.Whiteouts = WhiteoutApply
		err = Unpack(ctx, s, filepath.Join(tmp, "fs"), opts)
	}
	if err == nil {
		err = o.adopt(l, parent, tmp)
	}
	if err != nil {
		removeTree(tmp)
		return fmt.Errorf("patching the unpacked layer: %w", err)
	}
	return nil
}

// usedLayers returns the layer directories (ROOT/snapshots/layers/HEX) that
// active snapshots use. The caller holds gc.lock exclusively.
func (o *overlay) usedLayers() (map[string]bool, error) {
	used := map[string]bool{}
	ents, err := os.ReadDir(filepath.Join(o.root, "active"))
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		_, m, err := o.readMeta(e.Name())
		if errors.Is(err, ErrNotExist) {
			continue // a Prepare that died: uses nothing
		}
		if err != nil {
			return nil, err
		}
		for _, l := range m.Lowers {
			used[filepath.Dir(l)] = true
		}
	}
	return used, nil
}
