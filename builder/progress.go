package builder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// progress prints the build log like BuildKit: numbered steps ("#5 [2/3]
// RUN ..."), their output, and "#5 DONE 0.3s" or "#5 CACHED".
//
// Modes: plain (line by line, for CI logs), tty (a live view redrawn in
// place: the steps with their times, and the last lines of running ones),
// json (one event object per line), quiet (nothing).
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	mode    string
	n       int
	start   time.Time
	all     []*vertex
	drawn   int // lines of the last tty frame
	stop    chan struct{}
	stopped chan struct{}
	width   int // terminal columns (tty mode)
}

// vertex is one step of the build.
type vertex struct {
	p      *progress
	id     int
	name   string
	start  time.Time
	end    time.Time
	state  string // "running", "done", "cached", "error"
	tail   []string
	buf    []byte
	failed error
}

const tailLines = 10

func newProgress(w io.Writer, mode string) *progress {
	if w == nil {
		w = io.Discard
		mode = "quiet"
	}
	if mode == "" || mode == "auto" {
		mode = "plain"
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			mode = "tty"
		}
	}
	p := &progress{w: w, mode: mode, start: time.Now(), width: 80}
	if f, ok := w.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col >= 40 {
			p.width = int(ws.Col)
		}
	}
	if mode == "tty" {
		p.stop, p.stopped = make(chan struct{}), make(chan struct{})
		go p.ticker()
	}
	return p
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func (p *progress) close() {
	if p.stop != nil {
		close(p.stop)
		<-p.stopped
		p.mu.Lock()
		p.redraw()
		p.mu.Unlock()
	}
}

func (p *progress) ticker() {
	defer close(p.stopped)
	t := time.NewTicker(150 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.redraw()
			p.mu.Unlock()
		}
	}
}

type event struct {
	Time     time.Time `json:"time"`
	Vertex   int       `json:"vertex,omitempty"`
	Name     string    `json:"name,omitempty"`
	Status   string    `json:"status"`
	Duration float64   `json:"duration,omitempty"`
	Log      string    `json:"log,omitempty"`
	Error    string    `json:"error,omitempty"`
}

func (p *progress) emit(e event) {
	e.Time = time.Now().UTC()
	b, _ := json.Marshal(e)
	p.w.Write(append(b, '\n'))
}

// vertex starts a step.
func (p *progress) vertex(name string) *vertex {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	v := &vertex{p: p, id: p.n, name: name, start: time.Now(), state: "running"}
	p.all = append(p.all, v)
	switch p.mode {
	case "plain":
		fmt.Fprintf(p.w, "#%d %s\n", v.id, name)
	case "json":
		p.emit(event{Vertex: v.id, Name: name, Status: "start"})
	}
	return v
}

func (p *progress) warn(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case "plain", "tty":
		if p.mode == "tty" {
			p.clear()
		}
		fmt.Fprintf(p.w, "WARNING: %s\n", msg)
	case "json":
		p.emit(event{Status: "warning", Log: msg})
	}
}

// Write receives the step's output (RUN's stdout and stderr).
func (v *vertex) Write(b []byte) (int, error) {
	p := v.p
	p.mu.Lock()
	defer p.mu.Unlock()
	v.buf = append(v.buf, b...)
	for {
		i := bytes.IndexByte(v.buf, '\n')
		if i < 0 {
			break
		}
		v.line(string(v.buf[:i]))
		v.buf = v.buf[i+1:]
	}
	return len(b), nil
}

func (v *vertex) line(s string) {
	p := v.p
	s = strings.TrimRight(s, "\r")
	v.tail = append(v.tail, s)
	if len(v.tail) > tailLines {
		v.tail = v.tail[len(v.tail)-tailLines:]
	}
	switch p.mode {
	case "plain":
		fmt.Fprintf(p.w, "#%d %.3f %s\n", v.id, time.Since(v.start).Seconds(), s)
	case "json":
		p.emit(event{Vertex: v.id, Status: "log", Log: s})
	}
}

func (v *vertex) flush() {
	if len(v.buf) > 0 {
		v.line(string(v.buf))
		v.buf = nil
	}
}

func (v *vertex) finish(state string, err error) {
	p := v.p
	p.mu.Lock()
	defer p.mu.Unlock()
	v.flush()
	v.end, v.state, v.failed = time.Now(), state, err
	d := v.end.Sub(v.start).Seconds()
	switch p.mode {
	case "plain":
		switch state {
		case "done":
			fmt.Fprintf(p.w, "#%d DONE %.1fs\n", v.id, d)
		case "cached":
			fmt.Fprintf(p.w, "#%d CACHED\n", v.id)
		case "error":
			fmt.Fprintf(p.w, "#%d ERROR: %v\n", v.id, oneLine(err.Error()))
		}
	case "json":
		e := event{Vertex: v.id, Status: state, Duration: d}
		if err != nil {
			e.Error = oneLine(err.Error())
		}
		p.emit(e)
	}
}

func (v *vertex) done()          { v.finish("done", nil) }
func (v *vertex) cached()        { v.finish("cached", nil) }
func (v *vertex) fail(err error) { v.finish("error", err) }

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// clear erases the last tty frame (caller holds mu).
func (p *progress) clear() {
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\x1b[%dA\x1b[J", p.drawn)
		p.drawn = 0
	}
}

// redraw paints the tty view (caller holds mu).
func (p *progress) redraw() {
	if p.mode != "tty" {
		return
	}
	var sb strings.Builder
	finished := 0
	for _, v := range p.all {
		if v.state != "running" {
			finished++
		}
	}
	fmt.Fprintf(&sb, "[+] Building %.1fs (%d/%d)\n", time.Since(p.start).Seconds(), finished, len(p.all))
	lines := 1
	for _, v := range p.all {
		end := v.end
		if v.state == "running" {
			end = time.Now()
		}
		status := fmt.Sprintf("%.1fs", end.Sub(v.start).Seconds())
		switch v.state {
		case "cached":
			status = "CACHED"
		case "error":
			status = "ERROR"
		}
		nameW := p.width - 12 // " => " + name + " " + status (up to 7)
		name := v.name
		if len(name) > nameW {
			name = name[:nameW-3] + "..."
		}
		fmt.Fprintf(&sb, " => %-*s %s\n", nameW, name, status)
		lines++
		if v.state == "running" || v.state == "error" {
			t := v.tail
			if len(t) > 6 {
				t = t[len(t)-6:]
			}
			for _, l := range t {
				if len(l) > p.width-10 {
					l = l[:p.width-10]
				}
				fmt.Fprintf(&sb, " => => # %s\n", l)
				lines++
			}
		}
	}
	p.clear()
	io.WriteString(p.w, sb.String())
	p.drawn = lines
}

// failure prints the failing step's last output lines and the Dockerfile
// lines around the instruction, as BuildKit does.
func (p *progress) failure(v *vertex, file string, src []byte, line int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "json" || p.mode == "quiet" {
		return
	}
	if p.mode == "tty" {
		p.drawn = 0 // keep the last frame on screen
	}
	var sb strings.Builder
	if v != nil {
		fmt.Fprintf(&sb, "------\n > %s:\n", v.name)
		for _, l := range v.tail {
			fmt.Fprintf(&sb, "%s\n", l)
		}
		sb.WriteString("------\n")
	}
	if line > 0 && src != nil {
		lines := strings.Split(string(src), "\n")
		fmt.Fprintf(&sb, "%s:%d\n--------------------\n", file, line)
		for i := max(1, line-2); i <= min(len(lines), line+2); i++ {
			mark := "   "
			if i == line {
				mark = ">>>"
			}
			fmt.Fprintf(&sb, " %3d | %s %s\n", i, mark, lines[i-1])
		}
		sb.WriteString("--------------------\n")
	}
	io.WriteString(p.w, sb.String())
}

func (p *progress) failedVertex() *vertex {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, v := range p.all {
		if v.state == "error" {
			return v
		}
	}
	return nil
}
