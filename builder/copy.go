package builder

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-dev/strata/snapshot"
)

// layerEntry is one entry of a layer COPY writes directly (no sandbox, no
// overlay, no diff): the layer holds exactly the copied sources and the
// directories leading to them.
type layerEntry struct {
	hdr  tar.Header
	src  string // host file with the content of a regular file
	sum  string // its hex SHA-256, when known (build context files)
	data []byte // or inline content (heredocs)
	open func() (io.ReadCloser, error)
	// unpacked is the srcFile's (files of a stage's or image's layers)
	unpacked func() ([]v1.Layer, string)
	// ino identifies a host file with more than one link: the copies of
	// one inode become one file and hard links to it, as in BuildKit.
	ino *[2]uint64
}

// copyPlan collects a COPY/ADD's entries against the destination's view.
type copyPlan struct {
	view    *fsView
	entries map[string]*layerEntry
	uid     int
	gid     int
	chown   bool   // uid/gid apply to everything copied
	keepOwn bool   // keep the source's owners (COPY --from, ADD archives)
	chmod   *int64 // --chmod
	now     time.Time
	// prev is the layer this step produced last, if known: content of
	// unchanged files is taken from it (see prevContent) and its unpacked
	// form is patched into this one's (snapshot.PutLayer)
	prev v1.Layer
}

func newCopyPlan(view *fsView, now time.Time) *copyPlan {
	return &copyPlan{view: view, entries: map[string]*layerEntry{}, now: now}
}

// lookup returns what the layer being written or the image below has at p.
func (c *copyPlan) lookup(p string) (typ byte, ok bool) {
	if e, ok := c.entries[p]; ok {
		return e.hdr.Typeflag, true
	}
	if e, ok := c.view.get(p); ok {
		return e.typ, true
	}
	return 0, false
}

func (c *copyPlan) isDir(p string) bool {
	t, ok := c.lookup(p)
	return ok && t == tar.TypeDir
}

// ensureDir makes sure directory p (clean, no leading slash) and its parents
// exist: existing ones are written with their metadata (the layer stays
// self-contained, as a BuildKit diff is), missing ones are created 0755,
// owned by the --chown user or root.
func (c *copyPlan) ensureDir(p string) error {
	if p == "" || p == "." {
		return nil
	}
	if err := c.ensureDir(parentOf(p)); err != nil {
		return err
	}
	if _, ok := c.entries[p]; ok {
		if c.entries[p].hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("cannot copy to /%s: a parent is not a directory", p)
		}
		return nil
	}
	if e, ok := c.view.get(p); ok {
		if !e.isDir() {
			return fmt.Errorf("cannot copy to /%s: not a directory", p)
		}
		c.entries[p] = &layerEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: e.mtime}}
		return nil
	}
	uid, gid := 0, 0
	if c.chown {
		uid, gid = c.uid, c.gid
	}
	c.entries[p] = &layerEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755, Uid: uid, Gid: gid, ModTime: c.now}}
	return nil
}

func parentOf(p string) string {
	d := path.Dir(p)
	if d == "." || d == "/" {
		return ""
	}
	return d
}

// add records a source file at target (clean path, no leading slash).
func (c *copyPlan) add(target string, f srcFile) error {
	if target == "" {
		return nil // the root itself
	}
	if err := c.ensureDir(parentOf(target)); err != nil {
		return err
	}
	h := tar.Header{Name: target, ModTime: f.fi.ModTime(), Mode: modeBits(f.fi.Mode())}
	if st, ok := f.fi.Sys().(*syscall.Stat_t); ok && c.keepOwn {
		h.Uid, h.Gid = int(st.Uid), int(st.Gid)
	}
	if f.hasOwner && c.keepOwn {
		h.Uid, h.Gid = f.uid, f.gid
	}
	if c.chown {
		h.Uid, h.Gid = c.uid, c.gid
	}
	e := &layerEntry{}
	m := f.fi.Mode()
	switch {
	case m.IsDir() && f.rel == "":
		// A directory source's content goes into target, as in BuildKit:
		// an existing directory keeps its metadata, a new one is made 0755
		// and owned by the --chown user or root (--chmod and the source's
		// mode and owner are for what is copied into it).
		return c.ensureDir(target)
	case m.IsDir():
		h.Typeflag = tar.TypeDir
		h.Name += "/"
	case m.IsRegular():
		h.Typeflag = tar.TypeReg
		h.Size = f.fi.Size()
		e.src = f.abs
		e.open = f.open
		e.unpacked = f.unpacked
		if f.open == nil {
			e.sum = f.sum
		}
		if st, ok := f.fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 && f.open == nil {
			e.ino = &[2]uint64{uint64(st.Dev), st.Ino}
		}
	case m&os.ModeSymlink != 0:
		h.Typeflag = tar.TypeSymlink
		h.Linkname = f.link
		h.Mode = 0o777
	case m&os.ModeNamedPipe != 0:
		h.Typeflag = tar.TypeFifo
	default:
		return nil // sockets and devices are not copied
	}
	if c.chmod != nil && h.Typeflag != tar.TypeSymlink {
		h.Mode = *c.chmod
	}
	e.hdr = h
	c.entries[target] = e
	return nil
}

// addData records an inline file (heredoc).
func (c *copyPlan) addData(target string, data []byte, mode int64) error {
	if err := c.ensureDir(parentOf(target)); err != nil {
		return err
	}
	h := tar.Header{Typeflag: tar.TypeReg, Name: target, Mode: mode, Size: int64(len(data)), ModTime: c.now}
	if c.chown {
		h.Uid, h.Gid = c.uid, c.gid
	}
	if c.chmod != nil {
		h.Mode = *c.chmod
	}
	c.entries[target] = &layerEntry{hdr: h, data: data}
	return nil
}

// writeLayer streams the plan as a tar (sorted, so parents come first) into
// the store with put and returns the layer.
func (c *copyPlan) writeLayer(ctx context.Context, put func(context.Context, io.Reader) (v1.Layer, error)) (v1.Layer, error) {
	names := make([]string, 0, len(c.entries))
	for n := range c.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(c.writeTar(pw, names))
	}()
	l, err := put(ctx, pr)
	pr.CloseWithError(err)
	return l, err
}

func (c *copyPlan) writeTar(w io.Writer, names []string) error {
	prev := openPrevContent(c.prev)
	defer prev.Close()
	bw := bufio.NewWriterSize(w, 1<<16)
	tw := tar.NewWriter(bw)
	linked := map[[2]uint64]string{} // inode -> the first name written for it
	for _, n := range names {
		e := c.entries[n]
		h := e.hdr
		h.ModTime = h.ModTime.Truncate(time.Second)
		h.Format = tar.FormatUnknown
		if e.ino != nil && h.Typeflag == tar.TypeReg {
			if first, ok := linked[*e.ino]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
				if err := tw.WriteHeader(&h); err != nil {
					return fmt.Errorf("writing layer: %s: %w", n, err)
				}
				continue
			}
			linked[*e.ino] = n
		}
		if err := tw.WriteHeader(&h); err != nil {
			return fmt.Errorf("writing layer: %s: %w", n, err)
		}
		switch {
		case e.data != nil:
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
		case e.open != nil && h.Typeflag == tar.TypeReg:
			rc, err := e.open()
			if err != nil {
				return fmt.Errorf("reading %s: %w", n, err)
			}
			bp := copyBufs.Get().(*[]byte)
			_, err = io.CopyBuffer(tw, io.LimitReader(rc, h.Size), *bp)
			copyBufs.Put(bp)
			rc.Close()
			if err != nil {
				return fmt.Errorf("reading %s: %w", n, err)
			}
		case e.src != "" && h.Typeflag == tar.TypeReg:
			if b := prev.content(n, h.Size, e.sum); b != nil {
				if _, err := tw.Write(b); err != nil {
					return err
				}
				break
			}
			if err := copyFileInto(tw, e.src, h.Size); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func copyFileInto(w io.Writer, p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	n, err := io.CopyBuffer(w, io.LimitReader(f, size), *bp)
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	if n != size {
		return fmt.Errorf("%s changed size while being copied", p)
	}
	return nil
}

// copyBufs are the buffers files are copied into layers with (no garbage
// per file: a COPY of a big tree would otherwise allocate 32 KiB per file).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// destPath makes a COPY destination absolute against the working directory,
// keeping a trailing slash (it means "a directory").
func destPath(workdir, dest string) string {
	if dest == "" || dest == "." {
		dest = "./"
	}
	dir := strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.") || dest == "."
	if !path.IsAbs(dest) {
		dest = path.Join(workdir, dest)
	}
	dest = path.Clean(dest)
	if dir && dest != "/" {
		dest += "/"
	}
	return dest
}

// linkSource is a snapshot.PutOptions.Source: where the content of the
// plan's file name lies unpacked, for files from a stage or an image.
func (c *copyPlan) linkSource(name string) ([]v1.Layer, string) {
	e, ok := c.entries[name]
	if !ok || e.unpacked == nil || e.hdr.Typeflag != tar.TypeReg {
		return nil, ""
	}
	return e.unpacked()
}

// putLayer stores a layer tar the stage's next step adds. When a RUN follows
// in this stage, the snapshotter also extracts it as it is stored, going on
// in the background while the next steps start (the RUN's Prepare waits for
// it and finds it unpacked).
func (st *stage) putLayer(ctx context.Context, r io.Reader) (v1.Layer, error) {
	return st.putLayerFrom(ctx, r, snapshot.PutOptions{})
}

// putLayerFrom is putLayer with hints: a layer the step produced before
// (the new layer's unpacked form is then made from its), where files of a
// stage lie unpacked (they are hard-linked).
func (st *stage) putLayerFrom(ctx context.Context, r io.Reader, opts snapshot.PutOptions) (v1.Layer, error) {
	if !st.runLater {
		return st.b.s.PutLayer(ctx, r)
	}
	sn, err := st.b.snapshotter()
	if err != nil {
		return st.b.s.PutLayer(ctx, r)
	}
	l, wait, err := snapshot.PutLayer(ctx, sn, st.b.s, st.layers, r, opts)
	if wait != nil {
		st.b.background(wait) // the extraction the RUN's Prepare waits for
	}
	return l, err
}
