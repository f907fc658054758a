package snapshot

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWithMountpoints(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (owners, trusted xattrs)")
	}
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	mk := func(t *testing.T, root string, entries map[string]string) {
		// parents first: "etc" must be made (with its mode) before
		// "etc/passwd" would make it
		paths := make([]string, 0, len(entries))
		for p := range entries {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		for _, p := range paths {
			kind := entries[p]
			abs := filepath.Join(root, p)
			if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
				t.Fatal(err)
			}
			var err error
			switch kind {
			case "dir":
				err = os.Mkdir(abs, 0o755)
			case "file":
				err = os.WriteFile(abs, []byte("x"), 0o644)
			case "whiteout":
				err = unix.Mknod(abs, unix.S_IFCHR, 0)
			case "symlink":
				err = os.Symlink("elsewhere", abs)
			case "etc":
				// An /etc with its own mode, owner, xattr and time.
				if err = os.Mkdir(abs, 0o750); err == nil {
					err = os.Lchown(abs, 7, 8)
				}
				if err == nil {
					err = unix.Chmod(abs, 0o2750)
				}
				if err == nil {
					err = unix.Lsetxattr(abs, "user.k", []byte("v"), 0)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for p, kind := range entries {
			if kind == "etc" { // once what is in it is made
				if err := os.Chtimes(filepath.Join(root, p), mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	all := map[string]string{"proc": "dir", "sys": "dir", "dev": "dir", "etc/hosts": "file", "etc/hostname": "file", "etc/resolv.conf": "file"}
	for _, tc := range []struct {
		name         string
		lower, upper map[string]string
		want         []string // paths made in the mountpoints layer; nil: mounts unchanged
		etcAttrs     bool     // the layer's /etc copies the image's
	}{
		{name: "complete image", lower: all},
		{name: "bare image", lower: map[string]string{"bin/sh": "file"},
			want: []string{"dev", "etc", "etc/hostname", "etc/hosts", "etc/resolv.conf", "proc", "sys"}},
		{name: "etc without the files", lower: map[string]string{"etc": "etc", "etc/passwd": "file", "proc": "dir", "sys": "dir", "dev": "dir"},
			want: []string{"etc", "etc/hostname", "etc/hosts", "etc/resolv.conf"}, etcAttrs: true},
		{name: "upper has them", lower: map[string]string{"bin/sh": "file"}, upper: all},
		{name: "whiteout in upper", lower: all, upper: map[string]string{"etc/hosts": "whiteout", "proc": "whiteout"},
			want: []string{"etc", "etc/hosts", "proc"}},
		{name: "etc is a symlink", lower: map[string]string{"etc": "symlink", "proc": "dir", "sys": "dir", "dev": "dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			lower, upper, work, dir := filepath.Join(d, "lower"), filepath.Join(d, "upper"), filepath.Join(d, "work"), filepath.Join(d, "mp")
			for _, p := range []string{lower, upper, work} {
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			mk(t, lower, tc.lower)
			mk(t, upper, tc.upper)
			in := []Mount{{Type: "overlay", Source: "overlay", Options: []string{"index=off", "lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work}}}
			out, err := WithMountpoints(in, dir)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if !slices.EqualFunc(in, out, func(a, b Mount) bool { return a.Type == b.Type && slices.Equal(a.Options, b.Options) }) {
					t.Errorf("mounts changed: %v", out)
				}
				if _, err := os.Lstat(dir); !os.IsNotExist(err) {
					t.Errorf("%s made: %v", dir, err)
				}
				return
			}
			wantOpts := []string{"index=off", "lowerdir=" + dir + ":" + lower, "upperdir=" + upper, "workdir=" + work}
			if len(out) != 1 || !slices.Equal(out[0].Options, wantOpts) {
				t.Errorf("mounts = %v, want options %v", out, wantOpts)
			}
			var got []string
			filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(dir, p)
				if rel == "." {
					return nil
				}
				got = append(got, rel)
				st := fi.Sys().(*syscall.Stat_t)
				switch {
				case rel == "etc" && tc.etcAttrs:
					x := make([]byte, 8)
					n, _ := unix.Lgetxattr(p, "user.k", x)
					if fi.Mode() != os.ModeDir|os.ModeSetgid|0o750 || st.Uid != 7 || st.Gid != 8 || !fi.ModTime().Equal(mtime) || string(x[:n]) != "v" {
						t.Errorf("etc: mode %v owner %d:%d mtime %v xattr %q; want the image's", fi.Mode(), st.Uid, st.Gid, fi.ModTime(), x[:n])
					}
				case fi.IsDir():
					if fi.Mode() != os.ModeDir|0o755 || st.Uid != 0 {
						t.Errorf("%s: mode %v owner %d", rel, fi.Mode(), st.Uid)
					}
				case strings.HasPrefix(rel, "etc/"):
					if fi.Mode() != 0o644 || fi.Size() != 0 {
						t.Errorf("%s: mode %v size %d, want an empty 0644 file", rel, fi.Mode(), fi.Size())
					}
				}
				return nil
			})
			if !slices.Equal(got, tc.want) {
				t.Errorf("made %v, want %v", got, tc.want)
			}
		})
	}
}
