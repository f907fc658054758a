package snapshot

import (
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

	mu  sync.Mutex
	err error
}

const (
	pipeBufSize = 4 << 20
	pipeBufs    = 4
)

func newPipelinedWriter(w io.Writer) *pipelinedWriter {
	p := &pipelinedWriter{
		w:    w,
		full: make(chan []byte, pipeBufs),
		free: make(chan []byte, pipeBufs),
		done: make(chan struct{}),
	}
	for range pipeBufs - 1 {
		p.free <- make([]byte, 0, pipeBufSize)
	}
	p.cur = make([]byte, 0, pipeBufSize)
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

func (p *pipelinedWriter) flush() {
	if len(p.cur) == 0 {
		return
	}
	p.full <- p.cur
	p.cur = <-p.free
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
	p.flush()
	close(p.full)
	<-p.done
	return p.error()
}

// bufferProvider is what a producer may read file data into directly.
type bufferProvider interface{ Buffer() []byte }
