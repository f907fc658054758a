package store

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A path that is not a regular file is written in place, never replaced:
// `save -o /dev/null` once turned the machine's /dev/null into a plain file.
func TestCreateAtomicNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan string)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(f)
		f.Close()
		got <- string(b)
	}()
	a, err := CreateAtomic(fifo)
	if err != nil {
		t.Fatal(err)
	}
	a.WriteString("through the fifo")
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "through the fifo" {
		t.Errorf("reader got %q", s)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the fifo was replaced: %v %v", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(filepath.Dir(fifo))
	if len(ents) != 1 {
		t.Errorf("left beside the fifo: %v", ents)
	}

	if fi, err := os.Stat(os.DevNull); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Skip("/dev/null is not a character device here")
	}
	for _, commit := range []bool{true, false} {
		a, err := CreateAtomic(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		a.WriteString("discarded")
		if commit {
			err = a.Commit()
		} else {
			a.Abort()
		}
		if fi, serr := os.Stat(os.DevNull); err != nil || serr != nil || fi.Mode()&os.ModeCharDevice == 0 {
			t.Fatalf("after writing /dev/null (commit %v): %v %v %v", commit, err, serr, fi.Mode())
		}
	}
}
