package rootfs

import (
	"io"
	"os"
)

// stdio is the process's stdin, stdout and stderr as Run hands them to
// init: the caller's files themselves where it gave *os.File, else pipes
// with copying goroutines, or a pty with TTY.
type stdio struct {
	files  [3]*os.File
	child  []*os.File      // ends only the sandbox keeps (closed once passed)
	ours   []io.Closer     // closed when Run returns
	copies []chan struct{} // output copies to wait for
	pty    *pty
}

func (s *stdio) open(spec *Spec, cfg *initConfig) error {
	if spec.TTY {
		// init allocates the terminal inside the container and sends its
		// master back (Sandbox.recvMaster); the descriptors passed are
		// placeholders.
		f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		s.child = append(s.child, f)
		s.files = [3]*os.File{f, f, f}
		cfg.Winsize = termSize(spec.Stdin, spec.Stdout)
		return nil
	}
	var devnull *os.File
	null := func() (*os.File, error) {
		if devnull == nil {
			f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				return nil, err
			}
			devnull = f
			s.child = append(s.child, f)
		}
		return devnull, nil
	}
	var err error
	switch in := spec.Stdin.(type) {
	case nil:
		s.files[0], err = null()
	case *os.File:
		s.files[0] = in
	default:
		r, w, perr := os.Pipe()
		if perr != nil {
			return perr
		}
		s.child = append(s.child, r)
		s.files[0] = r
		// Not waited for: a reader may block for ever (a terminal); the
		// copy ends at its next write once the sandbox is gone.
		go func() { _, _ = io.Copy(w, in); w.Close() }()
	}
	if err != nil {
		return err
	}
	for i, out := range []io.Writer{spec.Stdout, spec.Stderr} {
		switch o := out.(type) {
		case nil:
			s.files[1+i], err = null()
		case *os.File:
			s.files[1+i] = o
		default:
			if i == 1 && spec.Stderr == spec.Stdout {
				s.files[2] = s.files[1] // one pipe keeps the interleaving
				continue
			}
			r, w, perr := os.Pipe()
			if perr != nil {
				return perr
			}
			s.child = append(s.child, w)
			s.files[1+i] = w
			done := make(chan struct{})
			s.copies = append(s.copies, done)
			go func() { _, _ = io.Copy(o, r); r.Close(); close(done) }()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// closeChildEnds closes our copies of the ends init now holds, so that
// output copies see EOF when the sandbox ends.
func (s *stdio) closeChildEnds() {
	for _, f := range s.child {
		f.Close()
	}
	s.child = nil
}

func (s *stdio) waitCopies() {
	for _, c := range s.copies {
		<-c
	}
}

func (s *stdio) close() {
	s.closeChildEnds()
	for _, c := range s.ours {
		c.Close()
	}
}
