package registry

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress receives what happens to each blob of a transfer. Calls come
// from several goroutines at once. id is a short blob digest.
type Progress interface {
	// Start says a blob of total bytes (-1: unknown) begins to move.
	Start(id string, total int64)
	// Update says done bytes of the blob have moved so far.
	Update(id string, done int64)
	// Done says the blob is finished: status is "pulled", "pushed",
	// "exists", "mounted"...
	Done(id, status string)
}

type nopProgress struct{}

func (nopProgress) Start(string, int64)  {}
func (nopProgress) Update(string, int64) {}
func (nopProgress) Done(string, string)  {}

// LineProgress prints one line per finished blob: for logs and CI.
func LineProgress(w io.Writer) Progress { return &lineProgress{w: w, size: map[string]int64{}} }

type lineProgress struct {
	mu   sync.Mutex
	w    io.Writer
	size map[string]int64
}

func (p *lineProgress) Start(id string, total int64) {
	p.mu.Lock()
	p.size[id] = total
	p.mu.Unlock()
}
func (p *lineProgress) Update(string, int64) {}
func (p *lineProgress) Done(id, status string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.size[id]; ok && n >= 0 && status != "exists" {
		fmt.Fprintf(p.w, "%s: %s %s\n", id, status, humanSize(n))
		return
	}
	fmt.Fprintf(p.w, "%s: %s\n", id, status)
}

// BarProgress draws a bar per blob on a terminal, redrawn a few times a
// second until Close.
func BarProgress(w io.Writer) *Bars {
	b := &Bars{w: w, stop: make(chan struct{}), stopped: make(chan struct{})}
	go b.loop()
	return b
}

// Bars is the terminal progress display; Close stops it and draws the end.
type Bars struct {
	mu      sync.Mutex
	w       io.Writer
	order   []string
	rows    map[string]*bar
	drawn   int
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

type bar struct {
	done, total int64
	status      string
}

func (b *Bars) row(id string) *bar {
	if b.rows == nil {
		b.rows = map[string]*bar{}
	}
	r := b.rows[id]
	if r == nil {
		r = &bar{total: -1}
		b.rows[id] = r
		b.order = append(b.order, id)
	}
	return r
}

func (b *Bars) Start(id string, total int64) {
	b.mu.Lock()
	b.row(id).total = total
	b.mu.Unlock()
}

func (b *Bars) Update(id string, done int64) {
	b.mu.Lock()
	b.row(id).done = done
	b.mu.Unlock()
}

func (b *Bars) Done(id, status string) {
	b.mu.Lock()
	b.row(id).status = status
	b.mu.Unlock()
}

func (b *Bars) loop() {
	defer close(b.stopped)
	t := time.NewTicker(150 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			b.draw()
			return
		case <-t.C:
			b.draw()
		}
	}
}

func (b *Bars) draw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	if b.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", b.drawn)
	}
	for _, id := range b.order {
		r := b.rows[id]
		sb.WriteString("\x1b[2K")
		switch {
		case r.status != "":
			fmt.Fprintf(&sb, "%s: %s\n", id, r.status)
		case r.total > 0:
			const width = 30
			n := int(r.done * width / r.total)
			if n > width {
				n = width
			}
			fmt.Fprintf(&sb, "%s: [%s>%s] %s/%s\n", id, strings.Repeat("=", n), strings.Repeat(" ", width-n),
				humanSize(r.done), humanSize(r.total))
		default:
			fmt.Fprintf(&sb, "%s: waiting\n", id)
		}
	}
	b.drawn = len(b.order)
	io.WriteString(b.w, sb.String())
}

// Close draws the final state and stops redrawing.
func (b *Bars) Close() error {
	b.once.Do(func() { close(b.stop) })
	<-b.stopped
	return nil
}

func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// shortID is how progress names a blob: the first 12 hex digits.
func shortID(d string) string {
	if i := strings.Index(d, ":"); i >= 0 {
		d = d[i+1:]
	}
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// countingReader reports bytes read to a Progress.
type countingReader struct {
	r    io.Reader
	p    Progress
	id   string
	n    int64
	last time.Time
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if now := time.Now(); now.Sub(c.last) > 50*time.Millisecond || err != nil {
		c.last = now
		c.p.Update(c.id, c.n)
	}
	return n, err
}
