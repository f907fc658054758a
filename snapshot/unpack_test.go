package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUnpackHostile extracts hostile layers into P/root next to P/outside
// and requires that nothing outside P/root was created or changed, and that
// P/root holds exactly the expected tree (or that Unpack failed with the
// expected error).
func TestUnpackHostile(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name    string
		mode    WhiteoutMode
		devices bool
		pre     func(root string) // content already in root (apply mode)
		ents    func(p string) []ent
		want    []string // tree of root, without "."
		wantErr string
	}{
		{
			name: "dotdot name",
			ents: func(p string) []ent { return []ent{file("../outside/victim", "pwned", 0o644)} },
			want: []string{"outside d 0755 0:0", `outside/victim f 0644 0:0 "pwned"`},
		},
		{
			name: "deep dotdot name",
			ents: func(p string) []ent { return []ent{file("a/../../../../../../outside/new", "pwned", 0o644)} },
			want: []string{"outside d 0755 0:0", `outside/new f 0644 0:0 "pwned"`},
		},
		{
			name: "absolute name",
			ents: func(p string) []ent { return []ent{file(p+"/outside/victim", "pwned", 0o644)} },
			want: nil, // checked by wantAbs below
		},
		{
			name: "write through relative symlink to outside dir",
			ents: func(p string) []ent {
				return []ent{symlink("evil", "../outside"), file("evil/victim", "pwned", 0o644)}
			},
			// the symlink resolves inside the root to a missing directory
			wantErr: "not a directory",
		},
		{
			name: "write through relative symlink to existing dir",
			ents: func(p string) []ent {
				return []ent{dir("outside", 0o700), symlink("evil", "../../../outside"), file("evil/victim", "pwned", 0o644)}
			},
			want: []string{"evil l 0777 0:0 -> ../../../outside", "outside d 0700 0:0", `outside/victim f 0644 0:0 "pwned"`},
		},
		{
			name: "write through absolute symlink",
			ents: func(p string) []ent {
				return []ent{symlink("evil", p+"/outside"), file("evil/new", "pwned", 0o600)}
			},
			wantErr: "not a directory",
		},
		{
			name: "write through absolute symlink to existing dir",
			ents: func(p string) []ent {
				return []ent{dir(p+"/outside", 0o700), symlink("evil", p+"/outside"), file("evil/new", "pwned", 0o600)}
			},
		},
		{
			name: "overwrite symlink to outside file",
			ents: func(p string) []ent {
				return []ent{symlink("link", p+"/outside/victim"), file("link", "pwned", 0o644)}
			},
			want: []string{`link f 0644 0:0 "pwned"`},
		},
		{
			name: "chmod through symlink",
			ents: func(p string) []ent {
				return []ent{symlink("link", p+"/outside/victim"), dir("link", 0o777)}
			},
			want: []string{"link d 0777 0:0"},
		},
		{
			name: "hardlink to outside file",
			ents: func(p string) []ent {
				return []ent{hardlink("hl", "../outside/victim")}
			},
			wantErr: "no such file or directory",
		},
		{
			name: "hardlink to absolute outside file",
			ents: func(p string) []ent {
				return []ent{hardlink("hl", p+"/outside/victim")}
			},
			wantErr: "no such file or directory",
		},
		{
			name: "hardlink through symlinked parent",
			ents: func(p string) []ent {
				return []ent{symlink("evil", p+"/outside"), hardlink("hl", "evil/victim")}
			},
			wantErr: "no such file or directory",
		},
		{
			name: "hardlink to symlink links the symlink, then overwrite",
			ents: func(p string) []ent {
				return []ent{symlink("s", p+"/outside/victim"), hardlink("hl", "s"), file("hl", "pwned", 0o644)}
			},
			want: []string{`hl f 0644 0:0 "pwned"`, "s l 0777 0:0 -> " + "P/outside/victim"},
		},
		{
			name: "symlink loop",
			ents: func(p string) []ent {
				return []ent{symlink("l1", "l2"), symlink("l2", "l1"), file("l1/x", "x", 0o644)}
			},
			wantErr: "too many levels of symbolic links",
		},
		{
			name: "parent is a file",
			ents: func(p string) []ent {
				return []ent{file("f", "x", 0o644), file("f/x", "y", 0o644)}
			},
			wantErr: "not a directory",
		},
		{
			name: "device nodes skipped without Devices",
			ents: func(p string) []ent {
				return []ent{{hdr: tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}},
					{hdr: tar.Header{Name: "sda", Typeflag: tar.TypeBlock, Devmajor: 8, Devminor: 0, Mode: 0o660}},
					{hdr: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o644}}}
			},
			want: []string{"fifo p 0644 0:0"},
		},
		{
			name:    "device nodes with Devices",
			devices: true,
			ents: func(p string) []ent {
				return []ent{{hdr: tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}},
					{hdr: tar.Header{Name: "sda", Typeflag: tar.TypeBlock, Devmajor: 8, Devminor: 0, Mode: 0o660}}}
			},
			want: []string{"null c 0666 0:0 1:3", "sda b 0660 0:0 8:0"},
		},
		{
			name: "duplicates: later wins, dir over file, file over dir, dirs merge",
			ents: func(p string) []ent {
				return []ent{
					file("f", "one", 0o644), file("f", "two", 0o600),
					file("x", "file", 0o644), dir("x", 0o755), file("x/in", "in", 0o644),
					dir("y", 0o755), file("y/z", "z", 0o644), file("y", "now a file", 0o644),
					dir("d", 0o700), file("d/k", "k", 0o644), dir("d", 0o750),
					symlink("s", "f"), file("s", "replaced", 0o644),
				}
			},
			want: []string{
				"d d 0750 0:0", `d/k f 0644 0:0 "k"`, `f f 0600 0:0 "two"`, `s f 0644 0:0 "replaced"`,
				"x d 0755 0:0", `x/in f 0644 0:0 "in"`, `y f 0644 0:0 "now a file"`,
			},
		},
		{
			name: "whiteout of dotdot",
			mode: WhiteoutApply,
			ents: func(p string) []ent { return []ent{file("../.wh.outside", "", 0)} },
			pre:  func(root string) {},
			want: nil,
		},
		{
			name:    "invalid whiteout name",
			mode:    WhiteoutApply,
			ents:    func(p string) []ent { return []ent{file("a/.wh..", "", 0)} },
			wantErr: "invalid whiteout",
		},
		{
			name: "whiteout through symlinked parent (apply)",
			mode: WhiteoutApply,
			ents: func(p string) []ent {
				return []ent{symlink("evil", p+"/outside"), file("evil/.wh.victim", "", 0), file("evil/.wh..wh..opq", "", 0)}
			},
			want: []string{"evil l 0777 0:0 -> P/outside"},
		},
		{
			name: "opaque through symlinked parent (overlay)",
			ents: func(p string) []ent {
				return []ent{dir("outside", 0o755), symlink("evil", "../outside"), file("evil/.wh..wh..opq", "", 0), file("evil/.wh.victim", "", 0)}
			},
			want: []string{"evil l 0777 0:0 -> ../outside", `outside d 0755 0:0 xattrs=trusted.overlay.opaque="y"`, "outside/victim c 0000 0:0 0:0"},
		},
		{
			name: "overlay xattrs in the tar are dropped",
			ents: func(p string) []ent {
				e := dir("d", 0o755)
				e.hdr.PAXRecords = map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.trusted.overlay.redirect": "/etc", "SCHILY.xattr.user.ok": "1"}
				return []ent{e}
			},
			want: []string{`d d 0755 0:0 xattrs=user.ok="1"`},
		},
		{
			name: "whiteouts become overlay whiteouts",
			ents: func(p string) []ent {
				return []ent{dir("d", 0o755), file("d/.wh..wh..opq", "", 0), file("d/new", "n", 0o644), file(".wh.gone", "", 0)}
			},
			want: []string{`d d 0755 0:0 xattrs=trusted.overlay.opaque="y"`, `d/new f 0644 0:0 "n"`, "gone c 0000 0:0 0:0"},
		},
		{
			name: "whiteouts applied, opaque keeps this layer's entries",
			mode: WhiteoutApply,
			pre: func(root string) {
				os.MkdirAll(filepath.Join(root, "d/sub"), 0o755)
				os.WriteFile(filepath.Join(root, "d/old"), []byte("old"), 0o644)
				os.WriteFile(filepath.Join(root, "d/sub/old"), []byte("old"), 0o644)
				os.WriteFile(filepath.Join(root, "gone"), []byte("x"), 0o644)
				os.MkdirAll(filepath.Join(root, "gonedir/x"), 0o755)
			},
			ents: func(p string) []ent {
				return []ent{dir("d", 0o755), file("d/kept", "k", 0o644), dir("d/sub", 0o755), file("d/sub/new", "n", 0o644), file("d/.wh..wh..opq", "", 0),
					file(".wh.gone", "", 0), file(".wh.gonedir", "", 0), file(".wh.neverwas", "", 0), file("nodir/.wh.x", "", 0)}
			},
			want: []string{"d d 0755 0:0", `d/kept f 0644 0:0 "k"`, "d/sub d 0755 0:0", `d/sub/new f 0644 0:0 "n"`},
		},
		{
			name:    "hardlink to itself is harmless",
			ents:    func(p string) []ent { return []ent{file("a", "a", 0o644), hardlink("a", "a")} },
			want:    []string{`a f 0644 0:0 "a"`},
			wantErr: "",
		},
		{
			name:    "hardlink to the root",
			ents:    func(p string) []ent { return []ent{hardlink("a", "../")} },
			wantErr: "hardlink to the root directory",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := t.TempDir()
			root := filepath.Join(p, "root")
			outside := filepath.Join(p, "outside")
			for _, d := range []string{root, outside} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("orig"), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.pre != nil {
				tc.pre(root)
			}
			before := dumpTree(t, p, root, true)
			layer := mkTar(t, tc.ents(p)...)
			err := Unpack(context.Background(), bytes.NewReader(layer), root, UnpackOptions{Whiteouts: tc.mode, Devices: tc.devices})
			after := dumpTree(t, p, root, true)
			if d := diffLines(before, after); d != "" {
				t.Fatalf("outside of the root changed:\n%s", d)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := dumpTree(t, root, "", false)[1:] // drop "."
			for i := range got {
				got[i] = strings.ReplaceAll(got[i], p, "P")
			}
			if strings.Contains(tc.name, "absolute") {
				// the absolute path is recreated inside the root
				found := false
				for _, l := range got {
					if strings.HasPrefix(l, strings.TrimPrefix("P/outside/", "/")) || strings.Contains(l, "outside/victim f") || strings.Contains(l, "outside/new f") {
						found = true
					}
				}
				if !found {
					t.Fatalf("absolute name not extracted inside the root:\n%s", strings.Join(got, "\n"))
				}
				return
			}
			if d := diffLines(tc.want, got); d != "" {
				t.Fatalf("tree differs:\n%s", d)
			}
		})
	}
}

// TestUnpackMetadata checks owners, modes with setuid/setgid/sticky, xattrs
// (security.capability too), mtimes and hardlinks.
func TestUnpackMetadata(t *testing.T) {
	requireRoot(t)
	mt := time.Unix(1600000000, 0)
	capv := "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	suid := file("bin/ping", "elf", 0o4755)
	suid.hdr.Uid, suid.hdr.Gid = 0, 0
	suid.hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": capv, "SCHILY.xattr.user.note": "hi"}
	suid.hdr.ModTime = mt
	owned := file("home/u/f", "data", 0o640)
	owned.hdr.Uid, owned.hdr.Gid = 1000, 1001
	owned.hdr.ModTime = mt
	sticky := dir("tmp", 0o1777)
	sticky.hdr.ModTime = mt
	sgid := dir("srv", 0o2775)
	sgid.hdr.Uid, sgid.hdr.Gid = 5, 6
	sgid.hdr.ModTime = mt
	ents := []ent{dir("bin", 0o755), suid, hardlink("bin/ping6", "bin/ping"), sticky, sgid, file("srv/x", "x", 0o644), owned}
	root := t.TempDir()
	if err := Unpack(context.Background(), bytes.NewReader(mkTar(t, ents...)), root, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	got := dumpTree(t, root, "", true)
	want := []string{
		"bin d 0755 0:0 mtime=1700000000",
		`bin/ping f 4755 0:0 "elf" xattrs=security.capability="\x01\x00\x00\x02\x00 \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",user.note="hi" mtime=1600000000`,
		"bin/ping6 f 4755 0:0 link=bin/ping xattrs=security.capability=\"\\x01\\x00\\x00\\x02\\x00 \\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\",user.note=\"hi\" mtime=1600000000",
		"home d 0755 0:0 mtime=" + itoa(int(dirMtime(t, root, "home"))),
		"home/u d 0755 0:0 mtime=" + itoa(int(dirMtime(t, root, "home/u"))),
		`home/u/f f 0640 1000:1001 "data" mtime=1600000000`,
		"srv d 2775 5:6 mtime=1600000000",
		`srv/x f 0644 0:0 "x" mtime=1700000000`,
		"tmp d 1777 0:0 mtime=1600000000",
	}
	if d := diffLines(want, got[1:]); d != "" {
		t.Fatalf("tree differs:\n%s\ngot:\n%s", d, strings.Join(got, "\n"))
	}
}

func dirMtime(t *testing.T, root, rel string) int64 {
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, rel), &st); err != nil {
		t.Fatal(err)
	}
	return st.Mtim.Sec
}

func TestUnpackCorrupt(t *testing.T) {
	good := mkTar(t, file("a", strings.Repeat("x", 5000), 0o644), file("b", "b", 0o644))
	garbage := bytes.Repeat([]byte{0xff}, 1024)
	cases := map[string][]byte{
		"truncated in content": good[:512+1000],
		"truncated in header":  good[:100],
		"garbage":              garbage,
		"cut at an entry":      good[:512+5120],
		"no trailer":           good[:len(good)-1024],
		"bad checksum":         append(append([]byte{}, good[:148]...), append([]byte("99999999"), good[156:]...)...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			err := Unpack(context.Background(), bytes.NewReader(data), t.TempDir(), UnpackOptions{NoChown: true})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestUnpackSparse extracts 4 GiB sparse files (GNU and PAX formats, made
// by GNU tar) as sparse files: quickly, using almost no disk.
func TestUnpackSparse(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	src := t.TempDir()
	big := filepath.Join(src, "big")
	f, err := os.Create(big)
	must(t, err)
	must(t, f.Truncate(1<<32))
	_, err = f.WriteAt([]byte("end"), 1<<32)
	must(t, err)
	f.Close()
	for _, format := range []string{"gnu", "pax"} {
		t.Run(format, func(t *testing.T) {
			out, err := exec.Command("tar", "--format="+format, "-S", "-C", src, "-cf", "-", "big").Output()
			must(t, err)
			dst := t.TempDir()
			must(t, Unpack(context.Background(), bytes.NewReader(out), dst, UnpackOptions{NoChown: true}))
			var st unix.Stat_t
			must(t, unix.Stat(filepath.Join(dst, "big"), &st))
			if st.Size != 1<<32+3 || st.Blocks > 1024 {
				t.Fatalf("size %d, %d blocks: want 4 GiB+3, sparse", st.Size, st.Blocks)
			}
			g, err := os.Open(filepath.Join(dst, "big"))
			must(t, err)
			defer g.Close()
			b := make([]byte, 3)
			_, err = g.ReadAt(b, 1<<32)
			must(t, err)
			if string(b) != "end" {
				t.Fatalf("tail %q", b)
			}
		})
	}
}

func TestUnpackFilter(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "app"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "app/old"), nil, 0o644))
	must(t, os.WriteFile(filepath.Join(root, "keep"), nil, 0o644))
	layer := mkTar(t, dir("app", 0o755), file("app/bin", "b", 0o755), file("app/.wh.old", "", 0), file(".wh.keep", "", 0), file("other", "o", 0o644))
	err := Unpack(context.Background(), bytes.NewReader(layer), root, UnpackOptions{Whiteouts: WhiteoutApply, NoChown: true,
		Filter: func(name string) bool { return name == "app" || strings.HasPrefix(name, "app/") }})
	must(t, err)
	got := dumpContent(t, root)[1:]
	want := []string{"app d 0755 0:0", `app/bin f 0755 0:0 "b"`, `keep f 0644 0:0 ""`}
	if d := diffLines(want, got); d != "" {
		t.Fatalf("tree differs:\n%s", d)
	}
}

func TestUnpackGitArchive(t *testing.T) {
	ents := []ent{{hdr: tar.Header{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "abc"}}}, file("README", "hi", 0o644)}
	root := t.TempDir()
	must(t, Unpack(context.Background(), bytes.NewReader(mkTar(t, ents...)), root, UnpackOptions{NoChown: true}))
	if got := dumpContent(t, root)[1:]; strings.Join(got, "|") != `README f 0644 0:0 "hi"` {
		t.Fatalf("got %v", got)
	}
}

func TestUnpackCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Unpack(ctx, bytes.NewReader(mkTar(t, file("a", "x", 0o644))), t.TempDir(), UnpackOptions{NoChown: true})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want context.Canceled only", err)
	}
}

func TestUnpackEmpty(t *testing.T) {
	for name, data := range map[string][]byte{"empty stream": nil, "only the trailer": make([]byte, 1024), "one zero block": make([]byte, 512)} {
		if err := Unpack(context.Background(), bytes.NewReader(data), t.TempDir(), UnpackOptions{NoChown: true}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzUnpack(f *testing.F) {
	f.Add(mkTar(f, dir("a", 0o755), file("a/b", "x", 0o644), symlink("l", "../../x"), hardlink("h", "a/b")))
	f.Add(mkTar(f, symlink("evil", "/"), file("evil/etc/passwd", "x", 0o644), file("../../x", "y", 0o644)))
	f.Add(mkTar(f, dir("d", 0o755), file("d/.wh..wh..opq", "", 0), file(".wh.d", "", 0)))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := t.TempDir()
		root := filepath.Join(p, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, mode := range []WhiteoutMode{WhiteoutOverlay, WhiteoutApply} {
			_ = Unpack(context.Background(), bytes.NewReader(data), root, UnpackOptions{Whiteouts: mode, NoChown: os.Geteuid() != 0})
			ents, err := os.ReadDir(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 1 || ents[0].Name() != "root" {
				t.Fatalf("Unpack created %v next to the root", ents)
			}
		}
	})
}

// TestUnpackLinkFrom checks that an entry becomes a hard link to the file
// LinkFrom names only when that file is exactly what the entry extracts to
// (type, size, mode, owner, mtime, no xattrs on either side), never through
// a symlink or out of the layer's directory, and that the tree is the
// extraction's in every case.
func TestUnpackLinkFrom(t *testing.T) {
	requireRoot(t)
	mt := time.Unix(1700000000, 0)
	src := t.TempDir()
	outside := t.TempDir()
	mk := func(dir, name, body string, mode os.FileMode, uid int, mtime time.Time) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		must(t, os.Chmod(p, mode))
		must(t, os.Lchown(p, uid, uid))
		must(t, os.Chtimes(p, mtime, mtime))
	}
	// same metadata as the entries below unless the name says otherwise
	mk(src, "same", "s", 0o644, 0, mt)
	mk(src, "sub/same", "t", 0o755, 7, mt)
	mk(src, "mode", "m", 0o600, 0, mt)
	mk(src, "owner", "o", 0o644, 5, mt)
	mk(src, "mtime", "t", 0o644, 0, mt.Add(time.Second))
	mk(src, "nsec", "n", 0o644, 0, mt.Add(time.Millisecond))
	mk(src, "size", "longer", 0o644, 0, mt)
	mk(src, "xattr", "x", 0o644, 0, mt)
	must(t, unix.Lsetxattr(filepath.Join(src, "xattr"), "user.k", []byte("v"), 0))
	mk(src, "hdrxattr", "h", 0o644, 0, mt)
	mk(outside, "secret", "S", 0o644, 0, mt)
	must(t, os.Symlink(outside, filepath.Join(src, "viasym")))
	ents := []ent{}
	add := func(name, body string, mode int64, uid int) *ent {
		e := file(name, body, mode)
		e.hdr.Uid, e.hdr.Gid, e.hdr.ModTime = uid, uid, mt
		ents = append(ents, e)
		return &ents[len(ents)-1]
	}
	add("same", "s", 0o644, 0)
	add("d/same", "t", 0o755, 7)
	add("mode", "m", 0o644, 0)
	add("owner", "o", 0o644, 0)
	add("mtime", "t", 0o644, 0)
	add("nsec", "n", 0o644, 0)
	add("size", "short", 0o644, 0)
	add("xattr", "x", 0o644, 0)
	add("hdrxattr", "h", 0o644, 0).hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.k": "v"}
	add("escape", "S", 0o644, 0)
	add("missing", "M", 0o644, 0)
	sources := map[string]string{"same": "same", "d/same": "sub/same", "mode": "mode", "owner": "owner", "mtime": "mtime",
		"nsec": "nsec", "size": "size", "xattr": "xattr", "hdrxattr": "hdrxattr", "escape": "viasym/secret", "missing": "nope"}
	tarball := mkTar(t, ents...)

	plain := t.TempDir()
	must(t, Unpack(context.Background(), bytes.NewReader(tarball), plain, UnpackOptions{}))
	linked := t.TempDir()
	must(t, Unpack(context.Background(), bytes.NewReader(tarball), linked, UnpackOptions{
		LinkFrom: func(h *tar.Header) (string, string) { return src, sources[h.Name] },
	}))
	if d := diffLines(dumpTreeOpt(t, plain, "", true, false), dumpTreeOpt(t, linked, "", true, false)); d != "" {
		t.Errorf("linked extraction differs from the plain one:\n%s", d)
	}
	var got []string
	for name, s := range sources {
		var a, b unix.Stat_t
		must(t, unix.Lstat(filepath.Join(linked, name), &a))
		if unix.Lstat(filepath.Join(src, s), &b) == nil && a.Ino == b.Ino {
			got = append(got, name)
		}
	}
	sort.Strings(got)
	if want := []string{"d/same", "same"}; !slices.Equal(got, want) {
		t.Errorf("linked %q, want %q", got, want)
	}
}
