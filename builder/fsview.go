package builder

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/patternmatcher"
	"github.com/opencontainers/go-digest"
)

func digestOf(h v1.Hash) digest.Digest { return digest.Digest(h.String()) }

// fsEntry is the metadata of one path in a stack of layers.
type fsEntry struct {
	typ      byte
	mode     int64
	uid, gid int
	link     string
	mtime    time.Time
	layer    int   // index of the layer holding the entry's content
	off      int64 // offset of a regular file's content in that layer's blob; -1 unknown
	size     int64
	// at is the regular file's path in that layer, shared by the hard
	// links to it; "" once another entry of that name in the same layer
	// replaced it (its extraction no longer has the content there)
	at *string
}

func (e *fsEntry) isDir() bool { return e.typ == tar.TypeDir }

// posReader reads a layer blob for archive/tar through a buffer, and
// tracks the offset of the next byte it returns, so that entries can later
// be read in place. archive/tar skips content and padding by seeking: a
// seek within the buffer costs no system call, so a layer of small files
// is read in a few big reads rather than several calls per entry.
type posReader struct {
	f    *os.File
	buf  []byte
	r, w int   // buf[r:w] is read ahead of pos
	pos  int64 // offset in f of the next byte Read returns
}

func newPosReader(f *os.File) *posReader {
	return &posReader{f: f, buf: make([]byte, 64<<10)}
}

func (p *posReader) Read(b []byte) (int, error) {
	if p.r == p.w {
		if len(b) >= len(p.buf) {
			n, err := p.f.Read(b)
			p.pos += int64(n)
			return n, err
		}
		n, err := p.f.Read(p.buf)
		p.r, p.w = 0, n
		if n == 0 {
			return 0, err
		}
	}
	n := copy(b, p.buf[p.r:p.w])
	p.r += n
	p.pos += int64(n)
	return n, nil
}

func (p *posReader) Seek(off int64, whence int) (int64, error) {
	target := off
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		target = p.pos + off
	default:
		n, err := p.f.Seek(off, whence)
		if err == nil {
			p.pos, p.r, p.w = n, 0, 0
		}
		return n, err
	}
	if target >= p.pos && target-p.pos <= int64(p.w-p.r) {
		p.r += int(target - p.pos)
		p.pos = target
		return target, nil
	}
	n, err := p.f.Seek(target, io.SeekStart)
	if err != nil {
		return n, err
	}
	p.pos, p.r, p.w = n, 0, 0
	return n, nil
}

// uncompressedBlob reads l's uncompressed tar, straight from its blob when
// the blob is that tar (digest and diffID are equal: the store's file, in
// which content can be read in place, rather than a wrapper around it).
func uncompressedBlob(l v1.Layer) (io.ReadCloser, error) {
	d, err := l.Digest()
	if err != nil {
		return nil, err
	}
	if id, err := l.DiffID(); err == nil && id == d {
		return l.Compressed()
	}
	return l.Uncompressed()
}

// blobFiles keeps the uncompressed layer blobs views read content from
// open, one descriptor per layer for the whole build: a COPY --from of
// thousands of files would otherwise open the blob for each.
type blobFiles struct {
	mu sync.Mutex
	m  map[v1.Hash]*os.File
}

// get returns l's blob file, or ok false when l has none (compressed).
func (c *blobFiles) get(l v1.Layer) (f *os.File, ok bool, err error) {
	d, err := l.Digest()
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.m[d]; ok {
		return f, true, nil
	}
	rc, err := uncompressedBlob(l)
	if err != nil {
		return nil, false, err
	}
	f, ok = rc.(*os.File)
	if !ok {
		rc.Close()
		return nil, false, nil
	}
	if c.m == nil {
		c.m = map[v1.Hash]*os.File{}
	}
	c.m[d] = f
	return f, true, nil
}

func (c *blobFiles) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.m {
		f.Close()
	}
	c.m = nil
}

// open returns a reader of a regular file's content straight from the
// layer blob that holds it.
func (v *fsView) open(e *fsEntry) (io.ReadCloser, error) {
	if e.off < 0 {
		return nil, errors.New("content offset unknown")
	}
	f, ok, err := v.files.get(v.layers[e.layer])
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("layer is not a local file")
	}
	return io.NopCloser(io.NewSectionReader(f, e.off, e.size)), nil
}

// viewInfo presents a view entry as an os.FileInfo.
type viewInfo struct {
	name string
	e    *fsEntry
}

func (i viewInfo) Name() string       { return path.Base(i.name) }
func (i viewInfo) Size() int64        { return i.e.size }
func (i viewInfo) ModTime() time.Time { return i.e.mtime }
func (i viewInfo) IsDir() bool        { return i.e.isDir() }
func (i viewInfo) Sys() any           { return nil }
func (i viewInfo) Mode() os.FileMode {
	m := tarMode(i.e.mode)
	switch i.e.typ {
	case tar.TypeDir:
		m |= os.ModeDir
	case tar.TypeSymlink:
		m |= os.ModeSymlink
	case tar.TypeFifo:
		m |= os.ModeNamedPipe
	case tar.TypeChar:
		m |= os.ModeDevice | os.ModeCharDevice
	case tar.TypeBlock:
		m |= os.ModeDevice
	}
	return m
}

// sources lists what a COPY --from source pattern selects in the view:
// each match (its symlink followed) with everything below it, as srcFiles
// whose content is read in place from the layer blobs. ok is false when
// some content cannot be read in place (compressed layers).
func (v *fsView) sources(pattern string, exclude *patternmatcher.PatternMatcher) (out []source, ok bool, err error) {
	p := cleanName(pattern)
	var matches []string
	if hasMeta(p) {
		for k := range v.m {
			if m, _ := path.Match(p, k); m && k != "" {
				matches = append(matches, k)
			}
		}
		sort.Strings(matches)
	} else {
		if _, found := v.m[p]; !found {
			rp, rerr := v.resolve(p, true)
			if _, found2 := v.m[rp]; rerr != nil || !found2 {
				return nil, true, fmt.Errorf("%w: %s", fs.ErrNotExist, pattern)
			}
		}
		matches = []string{p}
	}
	ok = true
	for _, m := range matches {
		rp, err := v.resolve(m, true)
		if err != nil {
			return nil, false, err
		}
		top, found := v.m[rp]
		if !found {
			continue
		}
		src := source{pattern: pattern, path: m}
		add := func(name, rel string, e *fsEntry) {
			f := srcFile{rel: rel, fi: viewInfo{name, e}, link: e.link, uid: e.uid, gid: e.gid, hasOwner: true}
			if e.typ == tar.TypeReg {
				if e.off < 0 {
					ok = false
				}
				e := e
				f.open = func() (io.ReadCloser, error) { return v.open(e) }
				f.unpacked = func() ([]v1.Layer, string) {
					if e.at == nil || *e.at == "" {
						return nil, ""
					}
					return v.layers[:e.layer+1], *e.at
				}
			}
			src.files = append(src.files, f)
		}
		add(rp, "", top)
		if top.isDir() {
			pre := rp + "/"
			if rp == "" {
				pre = ""
			}
			var keys []string
			for k := range v.m {
				if k != "" && strings.HasPrefix(k, pre) && k != rp {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				rel := strings.TrimPrefix(k, pre)
				if exclude != nil {
					if m, _ := exclude.MatchesOrParentMatches(rel); m {
						continue
					}
				}
				add(k, rel, v.m[k])
			}
		}
		out = append(out, src)
	}
	return out, ok, nil
}

// fsView is the merged metadata of an image's layers (read from the tar
// headers only): what COPY needs to know about its destination (existing
// directories, their owners and modes, symlinks in the path) and where to
// find /etc/passwd for --chown NAME.
type fsView struct {
	m      map[string]*fsEntry // clean path without leading slash; "" is the root
	layers []v1.Layer
	files  *blobFiles // where open reads content
}

// newView is an empty view whose content is read through files (nil for a
// view no content is read from).
func newView(files *blobFiles) *fsView {
	return &fsView{files: files, m: map[string]*fsEntry{"": {typ: tar.TypeDir, mode: 0o755}}}
}

func (v *fsView) clone() *fsView {
	n := &fsView{m: make(map[string]*fsEntry, len(v.m)), layers: append([]v1.Layer(nil), v.layers...), files: v.files}
	for k, e := range v.m {
		n.m[k] = e
	}
	return n
}

func cleanName(name string) string {
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/")
}

// add reads one layer's headers into the view, applying whiteouts.
func (v *fsView) add(l v1.Layer) error {
	idx := len(v.layers)
	v.layers = append(v.layers, l)
	rc, err := uncompressedBlob(l)
	if err != nil {
		return err
	}
	defer rc.Close()
	var r io.Reader
	var pr *posReader
	if f, ok := rc.(*os.File); ok {
		pr = newPosReader(f)
		r = pr
	} else {
		r = bufio.NewReaderSize(rc, 1<<16)
	}
	tr := tar.NewReader(r)
	seen := map[string]*fsEntry{} // this layer's regular files by name
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading layer: %w", err)
		}
		name := cleanName(h.Name)
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if base == ".wh..wh..opq" {
			pre := dir + "/"
			for k := range v.m {
				if strings.HasPrefix(k, pre) || (dir == "" && k != "") {
					delete(v.m, k)
				}
			}
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			target := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			delete(v.m, target)
			for k := range v.m {
				if strings.HasPrefix(k, target+"/") {
					delete(v.m, k)
				}
			}
			continue
		}
		e := &fsEntry{typ: h.Typeflag, mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, link: h.Linkname, mtime: h.ModTime, layer: idx, off: -1, size: h.Size}
		if e.typ == tar.TypeRegA {
			e.typ = tar.TypeReg
		}
		if e.typ == tar.TypeReg && pr != nil {
			e.off = pr.pos
		}
		// a name written twice in one layer: what the first held (and hard
		// links to it) is no longer at that path in the layer's extraction
		if first, ok := seen[name]; ok {
			*first.at = ""
		}
		if e.typ == tar.TypeReg {
			at := name
			e.at = &at
			seen[name] = e
		}
		if e.typ == tar.TypeLink {
			if t, ok := v.m[cleanName(h.Linkname)]; ok {
				c := *t
				e = &c
			}
		}
		if old, ok := v.m[name]; ok && old.isDir() && !e.isDir() {
			for k := range v.m {
				if strings.HasPrefix(k, name+"/") {
					delete(v.m, k)
				}
			}
		}
		v.m[name] = e
		if name == "" {
			continue
		}
		// parents missing from the tar exist implicitly
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := v.m[d]; ok {
				break
			}
			v.m[d] = &fsEntry{typ: tar.TypeDir, mode: 0o755, layer: idx}
		}
	}
}

// resolve follows symlinks in p (an absolute path in the image) the way the
// kernel would inside a chroot, and returns the resolved clean path
// (without leading slash). When follow is false the last component is not
// followed.
func (v *fsView) resolve(p string, follow bool) (string, error) {
	parts := strings.Split(cleanName(p), "/")
	cur := ""
	for hops := 0; len(parts) > 0; {
		c := parts[0]
		parts = parts[1:]
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			cur = strings.TrimPrefix(path.Dir("/"+cur), "/")
			continue
		}
		next := path.Join(cur, c)
		e, ok := v.m[next]
		if ok && e.typ == tar.TypeSymlink && (len(parts) > 0 || follow) {
			hops++
			if hops > 40 {
				return "", fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			link := e.link
			if path.IsAbs(link) {
				cur = ""
			}
			parts = append(strings.Split(strings.Trim(link, "/"), "/"), parts...)
			continue
		}
		cur = next
	}
	return cur, nil
}

func (v *fsView) get(p string) (*fsEntry, bool) {
	e, ok := v.m[p]
	return e, ok
}

// readFile returns the content of the regular file at p (resolved), read
// from the layer that holds it.
func (v *fsView) readFile(p string) ([]byte, error) {
	rp, err := v.resolve(p, true)
	if err != nil {
		return nil, err
	}
	e, ok := v.m[rp]
	if !ok || e.typ != tar.TypeReg {
		return nil, fmt.Errorf("%s: not found", p)
	}
	if e.off >= 0 {
		rc, err := v.open(e)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, 16<<20))
	}
	rc, err := v.layers[e.layer].Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if cleanName(h.Name) == rp {
			if h.Typeflag == tar.TypeLink {
				return v.readFile("/" + cleanName(h.Linkname))
			}
			return io.ReadAll(io.LimitReader(tr, 16<<20))
		}
	}
}

// lookupUser resolves a --chown spec (NAME, UID, NAME:GROUP, UID:GID) as
// BuildKit does: a numeric user is uid=gid=N; a name takes uid and gid from
// the image's /etc/passwd; a group (name or number) replaces the gid; an
// empty user or group is 0.
func (v *fsView) lookupUser(spec string) (uid, gid int, err error) {
	user, group, hasGroup := strings.Cut(spec, ":")
	num := func(s string) (int, bool) {
		if s == "root" {
			return 0, true
		}
		n, err := strconv.ParseInt(s, 10, 32)
		return int(n), err == nil && n >= 0
	}
	if user == "" { // ":GID", as BuildKit: root
		uid, gid = 0, 0
	} else if n, ok := num(user); ok {
		uid, gid = n, n
	} else {
		passwd, _ := v.readFile("/etc/passwd")
		found := false
		for _, line := range strings.Split(string(passwd), "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 4 && f[0] == user {
				uid, _ = strconv.Atoi(f[2])
				gid, _ = strconv.Atoi(f[3])
				found = true
				break
			}
		}
		if !found {
			return 0, 0, fmt.Errorf("unable to find user %s: no matching entries in passwd file", user)
		}
	}
	if hasGroup {
		if group == "" { // "USER:", as BuildKit: group 0
			return uid, 0, nil
		}
		if n, ok := num(group); ok {
			return uid, n, nil
		}
		groups, _ := v.readFile("/etc/group")
		for _, line := range strings.Split(string(groups), "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 3 && f[0] == group {
				g, _ := strconv.Atoi(f[2])
				return uid, g, nil
			}
		}
		return 0, 0, fmt.Errorf("unable to find group %s: no matching entries in group file", group)
	}
	return uid, gid, nil
}
