package registry

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"testing"
)

// recorder is a Progress that keeps what it was told.
type recorder struct {
	mu     sync.Mutex
	total  map[string]int64
	done   map[string]int64 // the last Update
	status map[string]string
}

func newRecorder() *recorder {
	return &recorder{total: map[string]int64{}, done: map[string]int64{}, status: map[string]string{}}
}

func (r *recorder) Start(id string, total int64) { r.mu.Lock(); r.total[id] = total; r.mu.Unlock() }
func (r *recorder) Update(id string, done int64) { r.mu.Lock(); r.done[id] = done; r.mu.Unlock() }
func (r *recorder) Done(id, status string)       { r.mu.Lock(); r.status[id] = status; r.mu.Unlock() }

func (r *recorder) lines() []string {
	var out []string
	for id, st := range r.status {
		out = append(out, fmt.Sprintf("%s %s %d/%d", id, st, r.done[id], r.total[id]))
	}
	sort.Strings(out)
	return out
}

// Layers read from store files reach net/http as files (syscall.Conn, so
// that plain-HTTP uploads go by sendfile) and still report every byte; a
// re-push reports them as existing.
func TestPushProgressFromFiles(t *testing.T) {
	ctx := context.Background()
	host := testRegistry(t, nil)
	s, _ := newLocal(t, "img:1", 3)
	img, err := localImage(ctx, s, "img:1", &Options{})
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	var want []string
	for _, l := range ls {
		d, _ := l.Digest()
		size, _ := l.Size()
		want = append(want, fmt.Sprintf("%s pushed %d/%d", shortID(d.Hex), size, size))
	}
	sort.Strings(want)

	rec := newRecorder()
	pt := newPushTracker(rec)
	pls, _ := pt.image(img).Layers()
	rc, err := pls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rc.(syscall.Conn); !ok {
		t.Errorf("a store layer's upload body is a %T, not a syscall.Conn: net/http cannot sendfile it", rc)
	}
	rc.Close()
	pt.close()

	o := testOptions()
	rec = newRecorder()
	o.Progress = rec
	if _, err := Push(ctx, s, "img:1", host+"/a/img:1", o); err != nil {
		t.Fatal(err)
	}
	if got := rec.lines(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("push progress:\n%q\nwant\n%q", got, want)
	}

	rec = newRecorder()
	o.Progress = rec
	if _, err := Push(ctx, s, "img:1", host+"/a/img:1", o); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		want[i] = want[i][:12] + " exists 0/0"
	}
	if got := rec.lines(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("re-push progress:\n%q\nwant\n%q", got, want)
	}
}
