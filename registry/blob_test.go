package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// blobServer serves one blob, breaking the first `breaks` responses half
// way; with ranges false it ignores Range headers (answers 200 from byte 0).
type blobServer struct {
	data   []byte
	ranges bool
	breaks int
	extra  []byte // appended to every body (a body longer than announced)

	mu   sync.Mutex
	seen []string // Range header of each request
}

func (b *blobServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.seen = append(b.seen, r.Header.Get("Range"))
	brk := b.breaks > 0
	b.breaks--
	b.mu.Unlock()
	body := append(append([]byte(nil), b.data...), b.extra...)
	status := http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" && b.ranges {
		start, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"+strconv.Itoa(len(b.data)-1)))
		w.Header().Set("Content-Range", "bytes "+strconv.Itoa(start)+"-"+strconv.Itoa(len(b.data)-1)+"/"+strconv.Itoa(len(b.data)))
		body, status = body[start:], http.StatusPartialContent
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if brk {
		w.Write(body[:len(body)/2])
		panic(http.ErrAbortHandler)
	}
	w.Write(body)
}

func readBlob(t *testing.T, srv *blobServer) ([]byte, error) {
	t.Helper()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	repo, err := name.NewRepository(strings.TrimPrefix(hs.URL, "http://") + "/r")
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := v1.SHA256(bytes.NewReader(srv.data))
	o := &Options{Retries: 4, RetryBase: time.Millisecond}
	br := newBlobReader(context.Background(), hs.Client(), repo, h, int64(len(srv.data)), o)
	defer br.Close()
	return io.ReadAll(br)
}

func TestBlobReaderResumes(t *testing.T) {
	data := make([]byte, 1<<20)
	rand.Read(data)
	for _, tc := range []struct {
		name      string
		srv       *blobServer
		wantErr   string
		wantRange bool
	}{
		{"ranges", &blobServer{data: data, ranges: true, breaks: 2}, "", true},
		{"range ignored", &blobServer{data: data, ranges: false, breaks: 2}, "", true},
		{"no faults", &blobServer{data: data, ranges: true}, "", false},
		{"always broken", &blobServer{data: data, ranges: true, breaks: 100}, "unexpected EOF", true},
		{"too long", &blobServer{data: data, ranges: true, extra: []byte("xx")}, "larger than its announced size", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readBlob(t, tc.srv)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, not the blob", len(got))
			}
			ranged := false
			for _, r := range tc.srv.seen {
				ranged = ranged || strings.HasPrefix(r, "bytes=")
			}
			if ranged != tc.wantRange {
				t.Fatalf("Range requests %q, want ranged=%v", tc.srv.seen, tc.wantRange)
			}
		})
	}
}
