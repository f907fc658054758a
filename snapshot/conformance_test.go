package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/strata-dev/strata/store"
	"golang.org/x/sys/unix"
)

// The conformance suite (after containerd's core/snapshots/testsuite): each
// case prepares a snapshot over the same two lower layers with every
// snapshotter, changes the mounted filesystem, and requires
//   - the same Diff bytes from every snapshotter,
//   - the Diff's entries to be exactly the expected ones,
//   - the lower layers plus the Diff (applied) to give exactly the tree the
//     container saw,
//   - Changes to list exactly the expected A/C/D lines.

var confEpoch = time.Unix(1750000000, 0)

func confLowers(t testing.TB) [][]byte {
	old := time.Unix(1700000000, 0)
	at := func(e ent) ent { e.hdr.ModTime = old; return e }
	base := mkTar(t,
		at(dir("etc", 0o755)), at(file("etc/conf", "a=1\n", 0o644)), at(file("etc/old", "old", 0o644)),
		at(file("etc/file", "f", 0o644)), at(symlink("etc/link", "conf")),
		at(dir("usr", 0o755)), at(dir("usr/share", 0o755)), at(dir("usr/share/doc", 0o755)),
		at(file("usr/share/doc/README", "read me", 0o644)), at(dir("usr/share/doc/pkg", 0o755)),
		at(file("usr/share/doc/pkg/COPYING", "gpl", 0o644)),
		at(dir("var", 0o755)), at(dir("var/lib", 0o755)), at(file("var/lib/state", "s", 0o600)),
		at(dir("var/lib/dpkg", 0o755)), at(file("var/lib/dpkg/status", "ok", 0o644)),
		at(dir("opt", 0o755)), at(dir("opt/d", 0o755)), at(file("opt/d/x", "x", 0o644)),
		at(file("bin", "not yet a dir", 0o755)),
		at(dir("lone", 0o755)), at(file("lone/only", "1", 0o644)),
		at(file("hl1", "shared", 0o644)), at(hardlink("hl2", "hl1")),
	)
	second := mkTar(t,
		at(dir("etc", 0o755)), at(file("etc/.wh.file", "", 0)), at(file("etc/added", "2", 0o644)),
		at(dir("opt", 0o755)), at(dir("opt/d", 0o755)), at(file("opt/d/.wh..wh..opq", "", 0)), at(file("opt/d/y", "y", 0o644)),
	)
	return [][]byte{base, second}
}

type confCase struct {
	name    string
	change  func(t *testing.T, root string)
	entries []string // Diff entries, see tarListing
	changes []string // Changes, "A /path"
}

var confCases = []confCase{
	{
		name:    "nothing",
		change:  func(t *testing.T, root string) {},
		entries: nil,
	},
	{
		name: "add file and directories",
		change: func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "new.txt"), []byte("new"), 0o644))
			must(t, os.MkdirAll(filepath.Join(root, "a/b/c"), 0o755))
			must(t, os.WriteFile(filepath.Join(root, "a/b/c/f"), []byte("deep"), 0o600))
			must(t, os.Mkdir(filepath.Join(root, "empty"), 0o700))
		},
		entries: []string{"a/ d 0755 0:0", "a/b/ d 0755 0:0", "a/b/c/ d 0755 0:0", "a/b/c/f f 0600 0:0 4", "empty/ d 0700 0:0", "new.txt f 0644 0:0 3"},
		changes: []string{"A /a", "A /a/b", "A /a/b/c", "A /a/b/c/f", "A /empty", "A /new.txt"},
	},
	{
		name: "modify and delete files of a lower layer",
		change: func(t *testing.T, root string) {
			f, err := os.OpenFile(filepath.Join(root, "etc/conf"), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, err = f.WriteString("b=2\n")
			must(t, err)
			must(t, f.Close())
			must(t, os.Remove(filepath.Join(root, "etc/old")))
			must(t, os.Remove(filepath.Join(root, "etc/added")))
		},
		entries: []string{"etc/ d 0755 0:0", "etc/.wh.added f 0000 0:0 0", "etc/.wh.old f 0000 0:0 0", "etc/conf f 0644 0:0 8"},
		changes: []string{"C /etc", "D /etc/added", "C /etc/conf", "D /etc/old"},
	},
	{
		name: "delete a whole directory of a lower layer",
		change: func(t *testing.T, root string) {
			must(t, os.RemoveAll(filepath.Join(root, "usr/share/doc")))
		},
		entries: []string{"usr/ d 0755 0:0", "usr/share/ d 0755 0:0", "usr/share/.wh.doc f 0000 0:0 0"},
		changes: []string{"C /usr", "C /usr/share", "D /usr/share/doc"},
	},
	{
		name: "delete then recreate a directory",
		change: func(t *testing.T, root string) {
			must(t, os.RemoveAll(filepath.Join(root, "var/lib")))
			must(t, os.Mkdir(filepath.Join(root, "var/lib"), 0o750))
			must(t, os.WriteFile(filepath.Join(root, "var/lib/new"), []byte("n"), 0o644))
		},
		entries: []string{"var/ d 0755 0:0", "var/lib/ d 0750 0:0", "var/lib/.wh..wh..opq f 0000 0:0 0", "var/lib/new f 0644 0:0 1"},
		changes: []string{"C /var", "C /var/lib", "D /var/lib/dpkg", "A /var/lib/new", "D /var/lib/state"},
	},
	{
		name: "replace a file by a directory and a directory by a file",
		change: func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, "bin")))
			must(t, os.Mkdir(filepath.Join(root, "bin"), 0o755))
			must(t, os.WriteFile(filepath.Join(root, "bin/sh"), []byte("sh"), 0o755))
			must(t, os.RemoveAll(filepath.Join(root, "opt/d")))
			must(t, os.WriteFile(filepath.Join(root, "opt/d"), []byte("file now"), 0o644))
		},
		entries: []string{"bin/ d 0755 0:0", "bin/sh f 0755 0:0 2", "opt/ d 0755 0:0", "opt/d f 0644 0:0 8"},
		changes: []string{"C /bin", "A /bin/sh", "C /opt", "C /opt/d"},
	},
	{
		name: "empty a directory file by file",
		change: func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, "lone/only")))
		},
		entries: []string{"lone/ d 0755 0:0", "lone/.wh.only f 0000 0:0 0"},
		changes: []string{"C /lone", "D /lone/only"},
	},
	{
		name: "hardlinks and symlinks",
		change: func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "h1"), []byte("hard"), 0o640))
			must(t, os.Link(filepath.Join(root, "h1"), filepath.Join(root, "h2")))
			must(t, os.Link(filepath.Join(root, "h1"), filepath.Join(root, "a-h0")))
			must(t, os.Symlink("/etc/conf", filepath.Join(root, "s")))
			must(t, os.Remove(filepath.Join(root, "etc/link")))
			must(t, os.Symlink("old", filepath.Join(root, "etc/link")))
		},
		entries: []string{"a-h0 f 0640 0:0 4", "etc/ d 0755 0:0", "etc/link l 0777 0:0 -> old", "h1 h 0640 0:0 => a-h0", "h2 h 0640 0:0 => a-h0", "s l 0777 0:0 -> /etc/conf"},
		changes: []string{"A /a-h0", "C /etc", "C /etc/link", "A /h1", "A /h2", "A /s"},
	},
	{
		name: "xattrs, modes and owners",
		change: func(t *testing.T, root string) {
			p := filepath.Join(root, "cap")
			must(t, os.WriteFile(p, []byte("elf"), 0o755))
			must(t, unix.Lsetxattr(p, "security.capability", []byte("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), 0))
			must(t, unix.Lsetxattr(filepath.Join(root, "etc/conf"), "user.note", []byte("hi"), 0))
			must(t, os.Chmod(filepath.Join(root, "var/lib/state"), 0o755|os.ModeSetuid))
			must(t, os.Chmod(filepath.Join(root, "opt"), 0o777|os.ModeSticky))
			must(t, os.Chown(filepath.Join(root, "etc/old"), 1000, 1001))
			must(t, os.Mkdir(filepath.Join(root, "srv"), 0o755))
			must(t, os.Chown(filepath.Join(root, "srv"), 5, 6))
			must(t, os.Chmod(filepath.Join(root, "srv"), 0o775|os.ModeSetgid))
		},
		entries: []string{
			`cap f 0755 0:0 3 security.capability="\x01\x00\x00\x02\x00 \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"`,
			"etc/ d 0755 0:0", `etc/conf f 0644 0:0 4 user.note="hi"`, "etc/old f 0644 1000:1001 3",
			"opt/ d 1777 0:0", "srv/ d 2775 5:6", "var/ d 0755 0:0", "var/lib/ d 0755 0:0", "var/lib/state f 4755 0:0 1",
		},
		changes: []string{"A /cap", "C /etc", "C /etc/conf", "C /etc/old", "C /opt", "A /srv", "C /var", "C /var/lib", "C /var/lib/state"},
	},
	{
		name: "special files",
		change: func(t *testing.T, root string) {
			must(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o644))
			must(t, unix.Mknod(filepath.Join(root, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
			must(t, os.Chmod(filepath.Join(root, "null"), 0o666))
			must(t, unix.Mknod(filepath.Join(root, "sock"), unix.S_IFSOCK|0o755, 0))
		},
		entries: []string{"fifo p 0644 0:0", "null c 0666 0:0 1:3"},
		changes: []string{"A /fifo", "A /null"},
	},
	{
		name: "sandbox mountpoints are left out",
		change: func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "etc/hosts"), nil, 0o644))
			must(t, os.WriteFile(filepath.Join(root, "etc/resolv.conf"), nil, 0o644))
			must(t, os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("written by the user"), 0o644))
			must(t, os.Mkdir(filepath.Join(root, "proc"), 0o555))
			must(t, os.Mkdir(filepath.Join(root, "dev"), 0o755))
			must(t, os.Mkdir(filepath.Join(root, "dev/pts"), 0o755))
		},
		entries: []string{"dev/ d 0755 0:0", "dev/pts/ d 0755 0:0", "etc/ d 0755 0:0", "etc/hostname f 0644 0:0 19"},
		changes: []string{"A /dev", "A /dev/pts", "C /etc", "A /etc/hostname"},
	},
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func layersFromTars(t testing.TB, tars [][]byte) []v1.Layer {
	var out []v1.Layer
	for _, b := range tars {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// tarListing describes each entry: "name type mode uid:gid extra [xattrs]".
func tarListing(t testing.TB, b []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		typ := map[byte]string{tar.TypeDir: "d", tar.TypeReg: "f", tar.TypeSymlink: "l", tar.TypeLink: "h", tar.TypeChar: "c", tar.TypeBlock: "b", tar.TypeFifo: "p"}[h.Typeflag]
		line := fmt.Sprintf("%s %s %04o %d:%d", h.Name, typ, h.Mode, h.Uid, h.Gid)
		switch h.Typeflag {
		case tar.TypeReg:
			line += fmt.Sprintf(" %d", h.Size)
		case tar.TypeSymlink:
			line += " -> " + h.Linkname
		case tar.TypeLink:
			line += " => " + h.Linkname
		case tar.TypeChar, tar.TypeBlock:
			line += fmt.Sprintf(" %d:%d", h.Devmajor, h.Devminor)
		}
		var xs []string
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				xs = append(xs, fmt.Sprintf("%s=%q", name, v))
			}
		}
		sort.Strings(xs)
		if len(xs) > 0 {
			line += " " + strings.Join(xs, ",")
		}
		if h.ModTime.After(confEpoch) {
			line += " NOT-CLAMPED"
		}
		out = append(out, line)
	}
	return out
}

func kinds(t *testing.T) []string {
	requireRoot(t)
	if err := OverlaySupported(t.TempDir()); err != nil {
		t.Logf("overlay unavailable (%v): native only", err)
		return []string{"native"}
	}
	return []string{"overlay", "native"}
}

// mountForTest mounts ms on a fresh directory of the host (tests only) and
// returns it; the returned function unmounts it (also run by t.Cleanup).
func mountForTest(t *testing.T, ms []Mount) (string, func()) {
	t.Helper()
	mnt := t.TempDir()
	if err := MountAll(ms, mnt); err != nil {
		t.Fatal(err)
	}
	done := false
	umount := func() {
		if !done {
			done = true
			if err := unix.Unmount(mnt, 0); err != nil {
				t.Errorf("unmounting %s: %v", mnt, err)
			}
		}
	}
	t.Cleanup(umount)
	return mnt, umount
}

func TestConformance(t *testing.T) {
	ks := kinds(t)
	lowers := confLowers(t)
	for _, tc := range confCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var first []byte
			for _, kind := range ks {
				s, err := store.Open(t.TempDir())
				must(t, err)
				sn, err := New(s, kind, WithSourceDateEpoch(confEpoch))
				must(t, err)
				layers := layersFromTars(t, lowers)
				ms, err := sn.Prepare(ctx, "c1", layers)
				must(t, err)
				mnt, umount := mountForTest(t, ms)
				tc.change(t, mnt)
				seen := dumpContent(t, mnt)
				umount()

				var diff bytes.Buffer
				must(t, sn.Diff(ctx, "c1", &diff))
				got := tarListing(t, diff.Bytes())
				if strings.Join(got, "\n") != strings.Join(tc.entries, "\n") {
					t.Errorf("%s: diff entries:\n%s\nwant:\n%s", kind, strings.Join(got, "\n"), strings.Join(tc.entries, "\n"))
				}
				if first == nil {
					first = diff.Bytes()
				} else if !bytes.Equal(first, diff.Bytes()) {
					t.Errorf("%s: diff bytes differ from %s's", kind, ks[0])
				}

				chs, err := sn.Changes(ctx, "c1")
				must(t, err)
				var cl []string
				for _, c := range chs {
					cl = append(cl, c.String())
				}
				if strings.Join(cl, "\n") != strings.Join(tc.changes, "\n") {
					t.Errorf("%s: changes:\n%s\nwant:\n%s", kind, strings.Join(cl, "\n"), strings.Join(tc.changes, "\n"))
				}

				// lower layers + diff == what the container saw (mountpoints aside)
				applied := t.TempDir()
				must(t, ApplyLayers(ctx, append(layers, layersFromTars(t, [][]byte{diff.Bytes()})...), applied, UnpackOptions{Devices: true}))
				if d := diffLines(withoutMountpoints(seen), dumpContent(t, applied)); d != "" {
					t.Errorf("%s: lower layers + diff differ from the container's tree:\n%s", kind, d)
				}

				l, err := sn.Commit(ctx, "c1")
				must(t, err)
				h, _ := l.Digest()
				d, _ := l.DiffID()
				rc, err := l.Uncompressed()
				must(t, err)
				stored, _ := io.ReadAll(rc)
				rc.Close()
				if h != d || !bytes.Equal(stored, diff.Bytes()) {
					t.Errorf("%s: committed layer %s (diffID %s) differs from Diff", kind, h, d)
				}
				must(t, sn.Remove(ctx, "c1"))
				must(t, sn.Remove(ctx, "c1")) // idempotent
				if keys, _ := sn.List(ctx); len(keys) != 0 {
					t.Errorf("%s: keys left after Remove: %v", kind, keys)
				}
			}
		})
	}
}

func withoutMountpoints(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "etc/hosts ") || strings.HasPrefix(l, "etc/resolv.conf ") || strings.HasPrefix(l, "proc ") ||
			strings.HasPrefix(l, "sock ") { // sockets are not carried by layers
			continue
		}
		out = append(out, l)
	}
	return out
}

func unmount(t *testing.T, mnt string) {
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Errorf("unmounting %s: %v", mnt, err)
	}
}

func init() {
	confCases = append(confCases, confCase{
		name: "hardlinks of a lower layer",
		change: func(t *testing.T, root string) {
			f, err := os.OpenFile(filepath.Join(root, "hl1"), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, err = f.WriteString(" and changed")
			must(t, err)
			must(t, f.Close())
			must(t, os.Link(filepath.Join(root, "hl2"), filepath.Join(root, "hl3")))
		},
		// As BuildKit's overlay differ: hl2, copied up for the new link but
		// unchanged, is no change, so hl3 is a file of its own in the layer.
		entries: []string{"hl1 f 0644 0:0 18", "hl3 f 0644 0:0 6"},
		changes: []string{"C /hl1", "A /hl3"},
	}, confCase{
		// As BuildKit's overlay differ: what overlayfs copied up for a
		// chown, chmod or utimes that changed nothing is no change.
		name: "metadata set to what it was",
		change: func(t *testing.T, root string) {
			for _, p := range []string{"usr/share/doc", "usr/share/doc/README", "etc/conf"} {
				must(t, os.Lchown(filepath.Join(root, p), 0, 0))
			}
			must(t, os.Chmod(filepath.Join(root, "var/lib/state"), 0o600))
			old := time.Unix(1700000000, 0)
			must(t, os.Chtimes(filepath.Join(root, "opt/d/y"), old, old))
		},
		entries: nil,
	}, confCase{
		// Same size and (second-precision) mtime, other bytes: the content
		// is compared, as BuildKit does when both mtimes lack nanoseconds.
		name: "content changed under the same size and mtime",
		change: func(t *testing.T, root string) {
			p := filepath.Join(root, "usr/share/doc/README")
			must(t, os.WriteFile(p, []byte("READ ME"), 0o644))
			old := time.Unix(1700000000, 0)
			must(t, os.Chtimes(p, old, old))
			q := filepath.Join(root, "etc/conf")
			must(t, os.WriteFile(q, []byte("a=1\n"), 0o644))
			must(t, os.Chtimes(q, old, old))
		},
		entries: []string{"usr/ d 0755 0:0", "usr/share/ d 0755 0:0", "usr/share/doc/ d 0755 0:0", "usr/share/doc/README f 0644 0:0 7"},
		changes: []string{"C /usr", "C /usr/share", "C /usr/share/doc", "C /usr/share/doc/README"},
	}, confCase{
		name: "mountpoints in an existing /etc leave it out",
		change: func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "etc/hosts"), nil, 0o644))
			must(t, os.WriteFile(filepath.Join(root, "etc/resolv.conf"), nil, 0o644))
		},
	}, confCase{
		name: "a changed /etc stays",
		change: func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "etc/hosts"), nil, 0o644))
			must(t, os.Chmod(filepath.Join(root, "etc"), 0o750))
		},
		entries: []string{"etc/ d 0750 0:0"},
		changes: []string{"C /etc"},
	})
}
