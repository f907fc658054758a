package rootfs

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// pty is the host side of a TTY sandbox's terminal: the master, which init
// allocated in the container's own devpts instance (so that the process's
// terminal is /dev/pts/N and /dev/console inside the container, as with
// runc) and passed back to Run. Run copies between it and the caller's
// streams.
type pty struct {
	master   *os.File
	masterFD int // master's descriptor (os.File.Fd would make it blocking)
}

// openContainerPty allocates a terminal in the devpts instance mounted on
// devpts, sizes it, and makes its slave init's fds 0, 1 and 2. It returns
// the master and the slave's path.
func openContainerPty(devpts string, ws *unix.Winsize) (*os.File, string, error) {
	fd, err := unix.Open(devpts+"/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("allocating a terminal: %w", err)
	}
	master := os.NewFile(uintptr(fd), "ptmx")
	fail := func(what string, err error) (*os.File, string, error) {
		master.Close()
		return nil, "", fmt.Errorf("%s the terminal: %w", what, err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return fail("unlocking", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		return fail("naming", err)
	}
	if ws != nil {
		if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws); err != nil {
			return fail("sizing", err)
		}
	}
	path := fmt.Sprintf("%s/%d", devpts, n)
	slave, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("opening", err)
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup3(slave, i, 0); err != nil {
			unix.Close(slave)
			return fail("attaching", err)
		}
	}
	unix.Close(slave)
	return master, path, nil
}

// termFD is the descriptor of the caller's terminal: stdin's when it is
// one, else stdout's (`run -t` without -i), as docker takes the size.
func termFD(stdin io.Reader, stdout io.Writer) (int, bool) {
	for _, s := range []any{stdin, stdout} {
		if f, ok := s.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return int(f.Fd()), true
		}
	}
	return -1, false
}

// termSize is the window size of the caller's terminal (termFD), if any.
func termSize(stdin io.Reader, stdout io.Writer) *unix.Winsize {
	if fd, ok := termFD(stdin, stdout); ok {
		if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil {
			return ws
		}
	}
	return nil
}

// attach connects the pty to the caller's streams until the sandbox ends:
// stdin is put in raw mode when it is a terminal, and the window size of
// the caller's terminal (termFD) is followed. done is closed once all
// output was copied to stdout; detach restores the terminal.
func (p *pty) attach(stdin io.Reader, stdout io.Writer) (done <-chan struct{}, detach func()) {
	restore := func() {}
	stopWinch := func() {}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		if st, err := term.MakeRaw(fd); err == nil {
			restore = func() { _ = term.Restore(fd, st) }
		}
	}
	if fd, ok := termFD(stdin, stdout); ok {
		resize := func() {
			if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil {
				_ = unix.IoctlSetWinsize(p.masterFD, unix.TIOCSWINSZ, ws)
			}
		}
		resize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		quit := make(chan struct{})
		go func() {
			for {
				select {
				case <-winch:
					resize()
				case <-quit:
					return
				}
			}
		}()
		stopWinch = func() { signal.Stop(winch); close(quit) }
	}
	if stdin != nil {
		go func() { _, _ = io.Copy(p.master, stdin) }()
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		if stdout == nil {
			stdout = io.Discard
		}
		// The master reads EIO once every slave is closed: the end of output.
		_, _ = io.Copy(stdout, p.master)
	}()
	return ch, func() { stopWinch(); restore() }
}
