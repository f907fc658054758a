package snapshot

import (
	"errors"
	"io"
	"sync"
)

// pipelinedWriter overlaps producing a layer (reading files, tar framing)
// with consuming it (the store's writer: file write + sha256): writes fill
// big buffers that a second goroutine hands to w. A producer that reads
// straight into Buffer() avoids even the copy into the pipeline.
type pipelinedWriter struct {
	w    io.Writer
	cur  []byte
	full chan []byte
	free chan []byte
	done chan struct{}
	// bufs is how many buffers the pipeline holds (at most pipeBufs).
	bufs int

	mu  sync.Mutex
	err error
}

const (
	pipeBufSize = 4 << 20
	pipeBufs    = 4
)

// pipeBufPool keeps pipeline buffers between layers: a build commits many
// small layers, and 16 MiB of fresh buffers (zeroed, then faulted in page
// by page) would cost each of them milliseconds.
var pipeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, pipeBufSize); return &b }}

func getPipeBuf() []byte  { return (*pipeBufPool.Get().(*[]byte))[:0] }
func putPipeBuf(b []byte) { b = b[:0]; pipeBufPool.Put(&b) }

func newPipelinedWriter(w io.Writer) *pipelinedWriter {
	p := &pipelinedWriter{
		w:    w,
		full: make(chan []byte, pipeBufs),
		free: make(chan []byte, pipeBufs),
		done: make(chan struct{}),
		cur:  getPipeBuf(),
		bufs: 1,
	}
	go p.consume()
	return p
}

// writeBehind is what the store's blob writer offers: start writing what it
// holds to disk now, so that its final fsync finds little left to do.
type writeBehind interface{ WriteBehind() error }

const writeBehindEvery = 32 << 20

func (p *pipelinedWriter) consume() {
	defer close(p.done)
	wb, _ := p.w.(writeBehind)
	var pending int
	for b := range p.full {
		if p.error() == nil {
			if _, err := p.w.Write(b); err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
			}
			if pending += len(b); wb != nil && pending >= writeBehindEvery {
				pending = 0
				_ = wb.WriteBehind() // a hint: Commit's fsync makes it durable
			}
		}
		p.free <- b[:0]
	}
}

func (p *pipelinedWriter) error() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// flush hands the current buffer over and takes a free one: a returned
// one, a new one while the pipeline holds fewer than pipeBufs, else the
// next the consumer returns.
func (p *pipelinedWriter) flush() {
	if len(p.cur) == 0 {
		return
	}
	p.full <- p.cur
	select {
	case p.cur = <-p.free:
	default:
		if p.bufs < pipeBufs {
			p.bufs++
			p.cur = getPipeBuf()
		} else {
			p.cur = <-p.free
		}
	}
}

// Buffer returns the free tail of the current buffer. Data written into it
// and then passed to Write (the same slice, or a prefix of it) is taken
// without a copy.
func (p *pipelinedWriter) Buffer() []byte {
	if len(p.cur) == cap(p.cur) {
		p.flush()
	}
	return p.cur[len(p.cur):cap(p.cur)]
}

func (p *pipelinedWriter) Write(b []byte) (int, error) {
	if err := p.error(); err != nil {
		return 0, err
	}
	n := len(b)
	if n > 0 && len(p.cur) < cap(p.cur) && &b[0] == &p.cur[:len(p.cur)+1][len(p.cur)] && n <= cap(p.cur)-len(p.cur) {
		p.cur = p.cur[:len(p.cur)+n]
		if len(p.cur) == cap(p.cur) {
			p.flush()
		}
		return n, nil
	}
	for len(b) > 0 {
		if len(p.cur) == cap(p.cur) {
			p.flush()
		}
		m := copy(p.cur[len(p.cur):cap(p.cur)], b)
		p.cur = p.cur[:len(p.cur)+m]
		b = b[m:]
	}
	if len(p.cur) == cap(p.cur) {
		p.flush()
	}
	return n, nil
}

// Close hands over what is pending, waits for the consumer and returns its
// first error. The pipeline cannot be used afterwards.
func (p *pipelinedWriter) Close() error {
	if len(p.cur) > 0 {
		p.full <- p.cur
	} else {
		putPipeBuf(p.cur)
	}
	p.cur = nil
	close(p.full)
	<-p.done
	for len(p.free) > 0 {
		putPipeBuf(<-p.free)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.err
	if err == nil {
		p.err = errPipeClosed // a later Write fails
	}
	return err
}

var errPipeClosed = errors.New("write to a closed pipeline")

// bufferProvider is what a producer may read file data into directly.
type bufferProvider interface{ Buffer() []byte }
