package registry

import (
	"io"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pushPollEvery is how often the progress of blobs sent by the kernel is read.
const pushPollEvery = 100 * time.Millisecond

// pushTracker reports the blobs of a push to a Progress: each one read is
// "pushed" once read to its end, and those never read (the registry had
// them) are "exists" in reportSkipped.
//
// A blob that is a file goes to a plain-HTTP registry by sendfile(2):
// net/http hands the kernel any request body that exposes its file
// descriptor (syscall.Conn), and its bytes then never pass through Read. So
// a file is not counted by Read, which would force every byte through user
// space (a tenth slower here, where a push is bound by the registry's share
// of the CPUs); its progress is its offset, which sendfile and Read both
// advance, polled a few times a second. Other blobs (and every blob over
// TLS) are counted as they are read.
type pushTracker struct {
	p Progress

	mu     sync.Mutex
	pushed map[v1.Hash]bool
	files  map[*pBlob]bool // file blobs being sent, polled

	stop     chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
}

// newPushTracker starts reporting to p; nil when p reports nothing. Call
// close when the push is over.
func newPushTracker(p Progress) *pushTracker {
	if _, ok := p.(nopProgress); ok {
		return nil
	}
	t := &pushTracker{p: p, pushed: map[v1.Hash]bool{}, files: map[*pBlob]bool{},
		stop: make(chan struct{}), stopped: make(chan struct{})}
	go t.poll()
	return t
}

// image is img with its layers reporting to t.
func (t *pushTracker) image(img v1.Image) v1.Image {
	if t == nil {
		return img
	}
	return &pImage{Image: img, t: t}
}

func (t *pushTracker) poll() {
	defer close(t.stopped)
	tick := time.NewTicker(pushPollEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.mu.Lock()
			for b := range t.files {
				if n, ok := b.offset(); ok {
					t.p.Update(b.id, n)
				}
			}
			t.mu.Unlock()
		}
	}
}

// close stops the polling; it may be called more than once.
func (t *pushTracker) close() {
	if t == nil {
		return
	}
	t.stopOnce.Do(func() { close(t.stop) })
	<-t.stopped
}

// reportSkipped reports the layers of a pushed image that were never
// uploaded: the registry had them (or mounted them).
func (t *pushTracker) reportSkipped(img v1.Image) {
	if t == nil {
		return
	}
	ls, err := img.Layers()
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range ls {
		if d, err := l.Digest(); err == nil && !t.pushed[d] {
			t.p.Done(shortID(d.Hex), "exists")
		}
	}
}

type pImage struct {
	v1.Image
	t *pushTracker
}

func (i *pImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for n, l := range ls {
		out[n] = &pLayer{Layer: l, t: i.t}
	}
	return out, nil
}

func (i *pImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return &pLayer{Layer: l, t: i.t}, nil
}

type pLayer struct {
	v1.Layer
	t *pushTracker
}

// Compressed is the blob, reporting its progress; a file stays visible to
// sendfile as a syscall.Conn.
func (l *pLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	d, _ := l.Layer.Digest()
	size, _ := l.Layer.Size()
	b := &pBlob{rc: rc, t: l.t, digest: d, id: shortID(d.Hex), size: size}
	l.t.p.Start(b.id, size)
	if f, ok := rc.(sendfileSource); ok {
		b.file = f
		l.t.mu.Lock()
		l.t.files[b] = true
		l.t.mu.Unlock()
		return &pFileBlob{pBlob: b, sc: f}, nil
	}
	b.counter = countingReader{r: rc, p: l.t.p, id: b.id}
	return b, nil
}

// sendfileSource is what net/http's sendfile path needs (an *os.File) and
// what progress reads the offset of.
type sendfileSource interface {
	io.Seeker
	syscall.Conn
}

// pBlob is one blob being uploaded.
type pBlob struct {
	rc      io.ReadCloser
	file    sendfileSource // rc, when it is a file: progress is its offset
	counter countingReader // otherwise: progress is what Read returned
	t       *pushTracker
	digest  v1.Hash
	id      string
	size    int64
	once    sync.Once
}

func (b *pBlob) Read(p []byte) (int, error) {
	var n int
	var err error
	if b.file != nil {
		n, err = b.rc.Read(p)
	} else {
		n, err = b.counter.Read(p)
	}
	if err == io.EOF {
		b.finish()
	}
	return n, err
}

// Close reports a file pushed when all of it was sent, however it was.
func (b *pBlob) Close() error {
	if b.file != nil {
		b.finish()
		b.t.mu.Lock()
		delete(b.t.files, b)
		b.t.mu.Unlock()
	}
	return b.rc.Close()
}

// offset is how much of the blob has been sent.
func (b *pBlob) offset() (int64, bool) {
	if b.file == nil {
		return b.counter.n, true
	}
	n, err := b.file.Seek(0, io.SeekCurrent)
	return n, err == nil
}

func (b *pBlob) finish() {
	if n, ok := b.offset(); !ok || n != b.size {
		return
	}
	b.once.Do(func() {
		b.t.mu.Lock()
		b.t.pushed[b.digest] = true
		b.t.mu.Unlock()
		b.t.p.Update(b.id, b.size)
		b.t.p.Done(b.id, "pushed")
	})
}

// pFileBlob is a pBlob over a file, which sendfile can send by itself.
type pFileBlob struct {
	*pBlob
	sc syscall.Conn
}

func (f *pFileBlob) SyscallConn() (syscall.RawConn, error) { return f.sc.SyscallConn() }
