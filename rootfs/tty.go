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

// pty is a pseudo-terminal allocated on the host for a TTY sandbox: the
// slave becomes the container process's stdin, stdout and stderr; Run copies
// between the master and the caller's streams.
type pty struct {
	master, slave *os.File
	masterFD      int // master's descriptor (os.File.Fd would make it blocking)
	slavePath     string
}

func openPty() (*pty, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("allocating a terminal: %w", err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, fmt.Errorf("unlocking the terminal: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("naming the terminal: %w", err)
	}
	path := fmt.Sprintf("/dev/pts/%d", n)
	sfd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("opening the terminal: %w", err)
	}
	return &pty{master: master, masterFD: fd, slave: os.NewFile(uintptr(sfd), path), slavePath: path}, nil
}

// attach connects the pty to the caller's streams until the sandbox ends:
// stdin is put in raw mode and its window size followed when it is a
// terminal. done is closed once all output was copied to stdout; detach
// restores the terminal.
func (p *pty) attach(stdin io.Reader, stdout io.Writer) (done <-chan struct{}, detach func()) {
	restore := func() {}
	stopWinch := func() {}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		if st, err := term.MakeRaw(fd); err == nil {
			restore = func() { _ = term.Restore(fd, st) }
		}
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
