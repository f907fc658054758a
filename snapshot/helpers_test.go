package snapshot

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ent is one tar entry of a test layer.
type ent struct {
	hdr  tar.Header
	body string
}

func dir(name string, mode int64) ent {
	return ent{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}}
}
func file(name, body string, mode int64) ent {
	return ent{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(body))}, body: body}
}
func symlink(name, target string) ent {
	return ent{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}
func hardlink(name, target string) ent {
	return ent{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}

func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if h.ModTime.IsZero() && h.Typeflag != tar.TypeXGlobalHeader {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dumpTree describes every entry below root, one sorted line each:
// "path type perm uid:gid extra" where extra is the content of a file, the
// target of a symlink, the device numbers or the xattrs. skip is a path
// below root left out (with everything under it).
func dumpTree(t testing.TB, root string, skip string, times bool) []string {
	t.Helper()
	return dumpTreeOpt(t, root, skip, times, true)
}

// dumpContent is dumpTree without times and without hardlink identity
// (which files share an inode): the contents a process reads.
func dumpContent(t testing.TB, root string) []string {
	t.Helper()
	return dumpTreeOpt(t, root, "", false, false)
}

func dumpTreeOpt(t testing.TB, root string, skip string, times, links bool) []string {
	t.Helper()
	var out []string
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s %s %04o %d:%d", rel, typeLetter(st.Mode), st.Mode&0o7777, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if first, ok := inodes[st.Ino]; ok && st.Nlink > 1 && links {
				line += " link=" + first
			} else {
				inodes[st.Ino] = rel
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				line += fmt.Sprintf(" %q", b)
			}
		case unix.S_IFLNK:
			tg, _ := os.Readlink(p)
			line += " -> " + tg
			if rel == "." {
				break
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		xs, _ := readXattrsAll(p)
		if len(xs) > 0 {
			line += " xattrs=" + strings.Join(xs, ",")
		}
		if times && rel != "." {
			line += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// readXattrsAll lists every xattr (trusted.* included) as name=value.
func readXattrsAll(p string) ([]string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return nil, err
	}
	var out []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if strings.HasPrefix(name, "trusted.strata.") {
			continue // the native snapshotter's bookkeeping
		}
		v, err := getXattr(p, name)
		if err != nil {
			continue
		}
		out = append(out, fmt.Sprintf("%s=%q", name, v))
	}
	sort.Strings(out)
	return out, nil
}

func typeLetter(m uint32) string {
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		return "d"
	case unix.S_IFREG:
		return "f"
	case unix.S_IFLNK:
		return "l"
	case unix.S_IFCHR:
		return "c"
	case unix.S_IFBLK:
		return "b"
	case unix.S_IFIFO:
		return "p"
	}
	return "?"
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func diffLines(want, got []string) string {
	w := map[string]bool{}
	for _, l := range want {
		w[l] = true
	}
	g := map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	var b strings.Builder
	for _, l := range want {
		if !g[l] {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range got {
		if !w[l] {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}
