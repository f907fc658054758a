package snapshot

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// overlay stacks layers unpacked alone (layers/CHAIN/fs, overlay whiteouts)
// as lowerdirs under active/KEY/upper.
type overlay struct {
	*base
	bg background // PutLayer's extractions going on in the background
}

func (o *overlay) Kind() string { return "overlay" }

func (o *overlay) Prepare(ctx context.Context, key string, parents []v1.Layer) ([]Mount, error) {
	unlock, err := o.prepareLock()
	if err != nil {
		return nil, fmt.Errorf("preparing %s: %w", key, err)
	}
	defer unlock()
	dir, err := o.newActive(key)
	if err != nil {
		return nil, fmt.Errorf("preparing %s: %w", key, err)
	}
	lowers, err := o.unpackAll(ctx, parents)
	if err != nil {
		o.Remove(ctx, key)
		return nil, fmt.Errorf("preparing %s: %w", key, err)
	}
	if err := o.makeUpper(dir, lowers); err != nil {
		o.Remove(ctx, key)
		return nil, fmt.Errorf("preparing %s: %w", key, err)
	}
	chain, err := topChain(parents)
	if err != nil {
		o.Remove(ctx, key)
		return nil, fmt.Errorf("preparing %s: %w", key, err)
	}
	if err := writeMeta(dir, &meta{Kind: "overlay", Lowers: lowers, Chain: chain, Owned: o.owned}); err != nil {
		o.Remove(ctx, key)
		return nil, fmt.Errorf("preparing %s: %w", key, err)
	}
	return o.mounts(dir, lowers), nil
}

// unpackAll unpacks each layer once (two at a time: each is independent in
// overlay form) and returns the lower directories, top first.
func (o *overlay) unpackAll(ctx context.Context, layers []v1.Layer) ([]string, error) {
	ids, err := chainIDs(layers)
	if err != nil {
		return nil, err
	}
	lowers := make([]string, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for i, l := range layers {
		g.Go(func() error {
			p, err := o.ensureDir(gctx, "layers", ids[i], func(fs string) error {
				return unpackLayer(gctx, l, fs, overlayUnpackOptions())
			})
			if err != nil {
				d, _ := l.DiffID()
				return fmt.Errorf("unpacking layer %s: %w", d, err)
			}
			lowers[len(layers)-1-i] = p
			return o.linkShort(ids[i])
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(lowers) == 0 {
		// overlayfs needs a lowerdir: an image without layers gets an empty one.
		empty := filepath.Join(o.root, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return nil, err
		}
		lowers = []string{empty}
	}
	return lowers, nil
}

// makeUpper creates upper and work. The upper root, which hides the top
// layer's root in the merged view, is 0755 as in containerd (layers' root
// entries are not applied: see Unpack) and takes that root's owner.
func (o *overlay) makeUpper(dir string, lowers []string) error {
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(lowers[0], &st); err != nil {
		return err
	}
	if err := os.Chown(upper, int(st.Uid), int(st.Gid)); err != nil && os.Geteuid() == 0 {
		return err
	}
	return os.Chmod(upper, 0o755) // whatever the umask left
}

// lowerHasChildren reports whether rel is a directory with entries in the
// lower filesystem.
func lowerHasChildren(lv lowerView, rel string) bool {
	lp, ok := lv.lookup(rel)
	if !ok {
		return false
	}
	var st unix.Stat_t
	if unix.Lstat(lp, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false
	}
	return len(lv.names(rel)) > 0
}

func (o *overlay) mounts(dir string, lowers []string) []Mount {
	return []Mount{{
		Type:    "overlay",
		Source:  "overlay",
		Options: overlayMountOptions(lowers, filepath.Join(dir, "upper"), filepath.Join(dir, "work")),
	}}
}

func (o *overlay) Mounts(ctx context.Context, key string) ([]Mount, error) {
	dir, m, err := o.readMeta(key)
	if err != nil {
		return nil, err
	}
	return o.mounts(dir, m.Lowers), nil
}

// tree returns the diff tree of an active snapshot read from its upperdir.
func (o *overlay) tree(ctx context.Context, key string) (*node, lowerView, error) {
	dir, m, err := o.readMeta(key)
	if err != nil {
		return nil, nil, err
	}
	lv := overlayLower(m.Lowers)
	t, err := upperTree(ctx, filepath.Join(dir, "upper"))
	if err != nil {
		return nil, nil, fmt.Errorf("reading changes of %s: %w", key, err)
	}
	if err := pruneUnchanged(ctx, t, lv); err != nil {
		return nil, nil, fmt.Errorf("reading changes of %s: %w", key, err)
	}
	excludeMountpoints(t, lv, o.keepSys)
	dropIdleOpaque(t, lv)
	return t, lv, nil
}

// dropIdleOpaque clears the opaque mark of directories with nothing below
// them in the lower layers: nothing there, a file or symlink there (the
// directory entry replaces it), or an empty directory. overlayfs marks a
// directory it creates or moves opaque whether or not anything is there to
// hide; such a mark changes nothing, and BuildKit writes none.
func dropIdleOpaque(n *node, lv lowerView) {
	for _, c := range n.children {
		if c.opaque && !lowerHasChildren(lv, c.rel) {
			c.opaque = false
		}
		if c.isDir() {
			dropIdleOpaque(c, lv)
		}
	}
}

func (o *overlay) Diff(ctx context.Context, key string, w io.Writer) error {
	t, _, err := o.tree(ctx, key)
	if err != nil {
		return err
	}
	return writeTree(ctx, t, w, o.epoch)
}

func (o *overlay) Commit(ctx context.Context, key string) (v1.Layer, error) {
	return commit(ctx, o.s, key, o.Diff)
}

func (o *overlay) Changes(ctx context.Context, key string) ([]Change, error) {
	t, lv, err := o.tree(ctx, key)
	if err != nil {
		return nil, err
	}
	return changes(t, lv), nil
}
