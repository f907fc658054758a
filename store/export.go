package store

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-dev/strata/internal/ctxio"
)

// Whiteout names of the OCI layer format.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// Export writes the image ref resolves to as one tar of its flattened root
// filesystem; see Flatten.
func (s *Store) Export(ctx context.Context, ref string, w io.Writer) error {
	img, _, err := s.Image(ref)
	if err != nil {
		return err
	}
	if err := Flatten(ctx, img, w); err != nil {
		return fmt.Errorf("exporting %s: %w", ref, err)
	}
	return nil
}

// Flatten writes img's root filesystem, with every layer's whiteouts
// applied, as a tar stream: what a container of the image would see. Every
// entry keeps its header (type, mode, owners, times, link target, xattrs);
// hardlinks stay hardlinks. Directories come first, parents before
// children, then every other entry layer by layer, so a hardlink always
// follows its target. Layer contents are streamed, never held in memory: a
// first pass reads only the headers (seeking over contents where the layer
// allows it) to learn which entry of which layer survives.
func Flatten(ctx context.Context, img v1.Image, w io.Writer) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("reading layers: %w", err)
	}
	root := &fsNode{}
	plans := make([]map[int]emit, len(layers))
	for i, l := range layers {
		if err := scanLayer(ctx, l, i, root); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	// The surviving entries: directories now, the rest per layer.
	var dirs []*fsEntry
	for i := range plans {
		plans[i] = map[int]emit{}
	}
	root.walk(func(e *fsEntry) {
		if e.hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, e)
			return
		}
		plans[e.layer][e.seq] = emit{name: e.name}
	})
	for i := range layers {
		planHardlinks(root, i, plans[i], groupsOf(root, i))
	}
	tw := tar.NewWriter(w)
	for _, d := range dirs {
		h := *d.hdr
		h.Name = d.name + "/"
		if d.name == "" {
			h.Name = "./"
		}
		if err := tw.WriteHeader(&h); err != nil {
			return err
		}
	}
	for i, l := range layers {
		if len(plans[i]) == 0 {
			continue
		}
		if err := copyLayer(ctx, l, plans[i], tw); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return tw.Close()
}

// fsNode is one path of the merged tree.
type fsNode struct {
	children map[string]*fsNode
	entry    *fsEntry // nil: only implied by a deeper entry
}

// fsEntry is the entry of one layer that currently owns a path.
type fsEntry struct {
	layer, seq int
	name       string // clean relative name, "" for the root
	hdr        *tar.Header
	links      []*fsEntry // for a regular file: the hardlinks to it in its layer
	target     *fsEntry   // for a hardlink: the regular file it points to
}

func (n *fsNode) lookup(name string, create bool) *fsNode {
	if name == "" {
		return n
	}
	cur := n
	for _, el := range strings.Split(name, "/") {
		next := cur.children[el]
		if next == nil {
			if !create {
				return nil
			}
			if cur.children == nil {
				cur.children = map[string]*fsNode{}
			}
			next = &fsNode{}
			cur.children[el] = next
		}
		cur = next
	}
	return cur
}

// remove drops name and everything below it.
func (n *fsNode) remove(name string) {
	dir, base := path.Split(name)
	if p := n.lookup(strings.TrimSuffix(dir, "/"), false); p != nil {
		delete(p.children, base)
	}
}

// walk visits every entry in path order, parents first.
func (n *fsNode) walk(f func(*fsEntry)) {
	if n.entry != nil {
		f(n.entry)
	}
	keys := make([]string, 0, len(n.children))
	for k := range n.children {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		n.children[k].walk(f)
	}
}

// scanLayer applies layer i's headers to the tree: whiteouts hide what lower
// layers had, entries take their paths (a non-directory hides what was below
// its path; the last of duplicate entries wins).
func scanLayer(ctx context.Context, l v1.Layer, i int, root *fsNode) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(ctxio.Reader(ctx, rc))
	regular := map[string]*fsEntry{} // this layer's regular files, for hardlinks
	for seq := 0; ; seq++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := cleanName(hdr.Name)
		if escapes(hdr.Name) {
			return fmt.Errorf("entry %q escapes the root", hdr.Name)
		}
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case base == whiteoutOpaque:
			if n := root.lookup(dir, false); n != nil {
				n.dropBelow(i)
			}
			continue
		case strings.HasPrefix(base, whiteoutPrefix+whiteoutPrefix):
			continue // other AUFS metadata
		case strings.HasPrefix(base, whiteoutPrefix):
			victim := path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))
			if n := root.lookup(victim, false); n != nil && n.entry != nil && n.entry.layer < i {
				root.remove(victim)
			} else if n != nil {
				n.dropBelow(i)
			}
			continue
		case hdr.Typeflag == tar.TypeXGlobalHeader:
			continue
		}
		h := *hdr
		e := &fsEntry{layer: i, seq: seq, name: name, hdr: &h}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
			regular[name] = e
		case tar.TypeLink:
			t := cleanName(hdr.Linkname)
			if target := regular[t]; target != nil {
				e.target = target
				target.links = append(target.links, e)
			}
		}
		n := root.lookup(name, true)
		if hdr.Typeflag != tar.TypeDir {
			n.children = nil // a file hides whatever tree was below its path
		}
		n.entry = e
	}
}

// dropBelow removes what layers below i put under n (an opaque directory).
func (n *fsNode) dropBelow(i int) {
	for k, c := range n.children {
		c.dropBelow(i)
		if c.entry != nil && c.entry.layer < i {
			c.entry = nil
		}
		if c.entry == nil && len(c.children) == 0 {
			delete(n.children, k)
		}
	}
}

// emit says what to do with one entry of a layer in the second pass.
type emit struct {
	name   string // write the entry under this name
	asFile bool   // a hardlink target that lost its path: write as a regular file
	linkTo string // a hardlink whose target moved: point it here
	skip   bool
}

// groupsOf lists the regular files of layer i that have hardlinks.
func groupsOf(root *fsNode, i int) []*fsEntry {
	var out []*fsEntry
	seen := map[*fsEntry]bool{}
	root.walk(func(e *fsEntry) {
		if e.layer == i && e.target != nil && !seen[e.target] {
			seen[e.target] = true
			out = append(out, e.target)
		}
	})
	return out
}

// planHardlinks repairs hardlink groups of layer i whose target no longer
// survives (an upper layer replaced or deleted it) while some links do: the
// first surviving link becomes the regular file, written where the target's
// content is in the stream, and the other links point to it.
func planHardlinks(root *fsNode, i int, plan map[int]emit, groups []*fsEntry) {
	for _, t := range groups {
		if survives(root, t) {
			continue
		}
		var first *fsEntry
		for _, l := range t.links {
			if !survives(root, l) {
				continue
			}
			if first == nil {
				first = l
				plan[t.seq] = emit{name: l.name, asFile: true}
				plan[l.seq] = emit{skip: true}
				continue
			}
			plan[l.seq] = emit{name: l.name, linkTo: first.name}
		}
	}
}

func survives(root *fsNode, e *fsEntry) bool {
	n := root.lookup(e.name, false)
	return n != nil && n.entry == e
}

// copyLayer writes the entries plan names, with their contents, in stream order.
func copyLayer(ctx context.Context, l v1.Layer, plan map[int]emit, tw *tar.Writer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(ctxio.Reader(ctx, rc))
	for seq := 0; ; seq++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p, ok := plan[seq]
		if !ok || p.skip {
			continue
		}
		h := *hdr
		h.Name = p.name
		if h.Typeflag == tar.TypeGNUSparse || h.Typeflag == tar.TypeRegA {
			h.Typeflag = tar.TypeReg // sparse files are written out in full
		}
		switch {
		case p.asFile:
			h.Typeflag = tar.TypeReg
		case p.linkTo != "":
			h.Linkname = p.linkTo
		case h.Typeflag == tar.TypeLink:
			h.Linkname = cleanName(h.Linkname)
		}
		if err := tw.WriteHeader(&h); err != nil {
			return fmt.Errorf("writing %s: %w", h.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return fmt.Errorf("writing %s: %w", h.Name, err)
			}
		}
	}
}
