package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	data := make([]byte, 300<<10) // more than one copy buffer
	for i := range data {
		data[i] = byte(i * 13)
	}
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	defer unix.Umask(unix.Umask(0))
	dst := filepath.Join(dir, "dst")
	if err := CopyFile(src, dst, 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data) {
		t.Fatalf("dst differs from src (%d vs %d bytes)", len(got), len(data))
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o640 {
		t.Errorf("dst mode %v, want -rw-r-----", fi.Mode())
	}
	if err := CopyFile(src, dst, 0o640); !errors.Is(err, fs.ErrExist) {
		t.Errorf("copying onto an existing file: %v, want it refused", err)
	}
	if err := CopyFile(filepath.Join(dir, "missing"), filepath.Join(dir, "new"), 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("copying a missing file: %v, want not exist", err)
	}
}
