package container

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// readyEnv names the descriptor on which a detached start's worker reports
// that the container runs ("ok") or why it could not start.
const readyEnv = "STRATA_START_READY_FD"

// ReadyPipe returns the pipe a detached start's worker must report on (see
// IO.Ready), or nil when this process is not such a worker.
func ReadyPipe() *os.File {
	v := os.Getenv(readyEnv)
	if v == "" {
		return nil
	}
	os.Unsetenv(readyEnv)
	if v != "3" {
		return nil
	}
	return os.NewFile(3, "ready")
}

// StartDetached starts a container in the background, as `docker start`
// does, and returns once it runs. With no daemon to keep it, a worker
// process runs it: worker(id) is the command line of a strata that runs the
// container attached (`strata start -a ID`); it gets a new session, no
// terminal, its output in the container's directory (container.log), and
// reports through ReadyPipe.
func (m *Manager) StartDetached(ctx context.Context, ref string, worker func(id string) []string) (*Container, error) {
	c, err := m.Get(ref)
	if err != nil {
		return nil, err
	}
	if m.locked(c.ID) {
		return nil, fmt.Errorf("container %s: %w", ref, ErrRunning)
	}
	argv := worker(c.ID)
	log, err := os.OpenFile(filepath.Join(m.dir(c.ID), "container.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("starting container %s: %w", ref, err)
	}
	defer log.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), readyEnv+"=3")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return nil, fmt.Errorf("starting container %s: %w", ref, err)
	}
	go cmd.Wait() // reaps the worker if it ends before we do
	line, err := bufio.NewReader(pr).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == "ok":
		return c, nil
	case line != "":
		return nil, errors.New(line)
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("starting container %s: the worker exited early (see %s)", ref, log.Name())
	default:
		return nil, fmt.Errorf("starting container %s: %w", ref, err)
	}
}

// ready reports to a detached start (if any) and closes the pipe.
func ready(w io.WriteCloser, err error) {
	if w == nil {
		return
	}
	if err != nil {
		fmt.Fprintf(w, "%s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	} else {
		io.WriteString(w, "ok\n")
	}
	w.Close()
}

// Logs opens the output of a container's detached runs (start without -a,
// run -d): stdout and stderr as they came, oldest first.
func (m *Manager) Logs(ref string) (*os.File, error) {
	c, err := m.Get(ref)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(m.dir(c.ID), "container.log"))
	if errors.Is(err, os.ErrNotExist) {
		return os.Open(os.DevNull) // never started detached: no output kept
	}
	return f, err
}
