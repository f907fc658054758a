package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/strata-dev/strata/store"
	"golang.org/x/sys/unix"
)

// TestRandomChanges runs the same random sequences of filesystem operations
// in an overlay and a native snapshot over the same lowers and requires the
// same diff bytes from both, and lowers + diff == what the container saw.
func TestRandomChanges(t *testing.T) {
	ks := kinds(t)
	if len(ks) < 2 {
		t.Skip("needs both snapshotters")
	}
	ctx := context.Background()
	lowers := confLowers(t)
	seeds := 25
	if testing.Short() {
		seeds = 5
	}
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			var diffs [][]byte
			var logs []string
			for _, kind := range ks {
				s, err := store.Open(t.TempDir())
				must(t, err)
				sn, err := New(s, kind, WithSourceDateEpoch(confEpoch))
				must(t, err)
				layers := layersFromTars(t, lowers)
				ms, err := sn.Prepare(ctx, "r", layers)
				must(t, err)
				mnt, umount := mountForTest(t, ms)
				log := randomOps(t, mnt, rand.New(rand.NewSource(int64(seed))), 30)
				seen := dumpContent(t, mnt)
				umount()
				var diff bytes.Buffer
				must(t, sn.Diff(ctx, "r", &diff))
				diffs = append(diffs, diff.Bytes())
				logs = append(logs, log)
				applied := t.TempDir()
				must(t, ApplyLayers(ctx, append(layers, layersFromTars(t, [][]byte{diff.Bytes()})...), applied, UnpackOptions{Devices: true}))
				if d := diffLines(withoutMountpoints(seen), dumpContent(t, applied)); d != "" {
					t.Errorf("%s: lowers + diff differ from the container's tree:\n%s\nops:\n%s", kind, d, log)
				}
				if seed <= 10 {
					// CommitRemove's kept layer == the layer extracted afresh
					// (even seeds: stored in the background)
					var l v1.Layer
					if seed%2 == 0 {
						saved := asyncMinBytes
						asyncMinBytes = 0
						p, err := sn.CommitRemoveAsync(ctx, "r")
						asyncMinBytes = saved
						must(t, err)
						must(t, p.Stored())
						l = p
					} else {
						l, err = sn.CommitRemove(ctx, "r")
						must(t, err)
					}
					if d, _ := l.Digest(); d.Hex != fmt.Sprintf("%x", sha256.Sum256(diff.Bytes())) {
						t.Errorf("%s: committed layer %s is not the diff", kind, d)
					}
					all := append(append([]v1.Layer{}, layers...), l)
					got := preparedTree(t, sn, all)
					s2, err := store.Open(t.TempDir())
					must(t, err)
					sn2, err := New(s2, kind)
					must(t, err)
					if d := diffLines(preparedTree(t, sn2, all), got); d != "" {
						t.Errorf("%s: kept layer differs from the extracted one:\n%s\nops:\n%s", kind, d, log)
					}
				}
				must(t, sn.Remove(ctx, "r"))
			}
			if logs[0] != logs[1] {
				t.Fatalf("the operations went differently:\n--- %s\n%s\n--- %s\n%s", ks[0], logs[0], ks[1], logs[1])
			}
			if !bytes.Equal(diffs[0], diffs[1]) {
				t.Errorf("diffs differ:\n--- %s\n%s\n--- %s\n%s\nops:\n%s", ks[0], strings.Join(tarListing(t, diffs[0]), "\n"),
					ks[1], strings.Join(tarListing(t, diffs[1]), "\n"), logs[0])
			}
		})
	}
}

// randomOps applies n random operations under root and returns their log
// (with each one's error, which must be the same on every snapshotter).
func randomOps(t *testing.T, root string, r *rand.Rand, n int) string {
	var log strings.Builder
	for i := 0; i < n; i++ {
		var files, dirs, all []string
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == root {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			all = append(all, rel)
			if d.Type().IsRegular() {
				files = append(files, rel)
			} else if d.IsDir() {
				dirs = append(dirs, rel)
			}
			return nil
		})
		sort.Strings(files)
		sort.Strings(dirs)
		pick := func(l []string) string {
			if len(l) == 0 {
				return ""
			}
			return l[r.Intn(len(l))]
		}
		anyDir := func() string {
			if d := pick(dirs); d != "" && r.Intn(4) > 0 {
				return d
			}
			return "."
		}
		p := func(rel string) string { return filepath.Join(root, rel) }
		newName := fmt.Sprintf("n%d", i)
		var op string
		var err error
		switch r.Intn(14) {
		case 0:
			rel := filepath.Join(anyDir(), newName)
			op = "create " + rel
			err = os.WriteFile(p(rel), []byte(rel), 0o644)
		case 1:
			rel := pick(files)
			op = "append " + rel
			if rel != "" {
				var f *os.File
				if f, err = os.OpenFile(p(rel), os.O_APPEND|os.O_WRONLY, 0); err == nil {
					f.WriteString("+")
					err = f.Close()
				}
			}
		case 2:
			rel := pick(files)
			op = "rm " + rel
			if rel != "" {
				err = os.Remove(p(rel))
			}
		case 3:
			rel := pick(dirs)
			op = "rm -rf " + rel
			if rel != "" {
				err = os.RemoveAll(p(rel))
			}
		case 4:
			rel := filepath.Join(anyDir(), newName)
			op = "mkdir " + rel
			err = os.Mkdir(p(rel), 0o755)
		case 5:
			// (a no-op chmod, chown or truncate still copies up in overlayfs,
			// which records it: the diffs then differ by an unchanged entry)
			rel := pick(append(files, dirs...))
			mode := []os.FileMode{0o700, 0o755 | os.ModeSetgid, 0o777 | os.ModeSticky, 0o755 | os.ModeSetuid}[r.Intn(4)]
			op = fmt.Sprintf("chmod %v %s", mode, rel)
			if fi, serr := os.Lstat(p(rel)); rel != "" && serr == nil && fi.Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != mode {
				err = os.Chmod(p(rel), mode)
			}
		case 6:
			rel := pick(all)
			op = "chown 7:8 " + rel
			var st unix.Stat_t
			if rel != "" && unix.Lstat(p(rel), &st) == nil && st.Uid != 7 {
				err = os.Lchown(p(rel), 7, 8)
			}
		case 7:
			rel := filepath.Join(anyDir(), newName)
			op = "symlink " + rel
			err = os.Symlink("../target", p(rel))
		case 8:
			// (linking a lower file copies it up; unlinking the new name
			// later would leave an unchanged copy-up behind)
			var mine []string
			for _, f := range files {
				if strings.HasPrefix(filepath.Base(f), "n") {
					mine = append(mine, f)
				}
			}
			src, rel := pick(mine), filepath.Join(anyDir(), newName)
			op = "link " + src + " " + rel
			if src != "" {
				err = os.Link(p(src), p(rel))
			}
		case 9:
			rel := pick(append(files, dirs...))
			op = "setxattr " + rel
			if rel != "" {
				err = unix.Lsetxattr(p(rel), "user.k", []byte(fmt.Sprint(i)), 0)
			}
		case 10:
			src, rel := pick(files), filepath.Join(anyDir(), newName)
			op = "mv " + src + " " + rel
			if src != "" {
				err = os.Rename(p(src), p(rel))
			}
		case 11:
			rel := pick(dirs)
			op = "rm -rf+mkdir " + rel
			if rel != "" {
				if err = os.RemoveAll(p(rel)); err == nil {
					err = os.Mkdir(p(rel), 0o711)
				}
			}
		case 13:
			// (overlayfs without redirect_dir renames only directories that
			// live in the upper layer alone; mv copies the others)
			var mine []string
			for _, d := range dirs {
				if strings.HasPrefix(filepath.Base(d), "n") {
					mine = append(mine, d)
				}
			}
			src, rel := pick(mine), filepath.Join(anyDir(), newName)
			op = "mv dir " + src + " " + rel
			if src != "" && !strings.HasPrefix(rel+"/", src+"/") {
				err = os.Rename(p(src), p(rel))
			}
		case 12:
			rel := pick(files)
			op = "truncate " + rel
			if fi, serr := os.Lstat(p(rel)); rel != "" && serr == nil && fi.Size() > 0 {
				err = os.Truncate(p(rel), 0)
			}
		}
		fmt.Fprintf(&log, "%s: %v\n", op, err != nil)
	}
	return log.String()
}

// preparedTree prepares a snapshot over layers and dumps its tree, times
// included.
func preparedTree(t *testing.T, sn Snapshotter, layers []v1.Layer) []string {
	ctx := context.Background()
	ms, err := sn.Prepare(ctx, "tree", layers)
	must(t, err)
	mnt, umount := mountForTest(t, ms)
	defer func() {
		umount()
		must(t, sn.Remove(ctx, "tree"))
	}()
	return dumpTree(t, mnt, "", true)
}
