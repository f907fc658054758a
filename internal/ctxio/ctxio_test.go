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
