package ctxio

import (
	"context"
	"io"
	"strings"
	"testing"
)

func TestReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := Reader(ctx, strings.NewReader("abcdef"))
	b := make([]byte, 3)
	if n, err := r.Read(b); n != 3 || err != nil || string(b) != "abc" {
		t.Fatalf("Read = %d %v %q", n, err, b)
	}
	cancel()
	if _, err := io.ReadAll(r); err != context.Canceled {
		t.Fatalf("after cancel: %v, want context.Canceled", err)
	}
}

func TestWriter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var b strings.Builder
	w := Writer(ctx, &b)
	if n, err := w.Write([]byte("abc")); n != 3 || err != nil || b.String() != "abc" {
		t.Fatalf("Write = %d %v %q", n, err, b.String())
	}
	cancel()
	if n, err := w.Write([]byte("def")); n != 0 || err != context.Canceled || b.String() != "abc" {
		t.Fatalf("after cancel: %d %v %q, want 0, context.Canceled, abc", n, err, b.String())
	}
}
