package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/rootfs"
)

// Status is a container's lifecycle state, as docker names it.
type Status string

const (
	Created Status = "created"
	Running Status = "running"
	Exited  Status = "exited"
)

// Container is a container's record (root/containers/<id>/config.json).
type Container struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Image   string    `json:"image"` // the reference the user gave
	Digest  v1.Hash   `json:"imageDigest"`
	ImageID v1.Hash   `json:"imageID"` // config digest
	Created time.Time `json:"created"`

	// Config is the image's config merged with the run options; commit
	// starts the new image's config from it, as docker commit does.
	Config v1.Config `json:"config"`
	// Path and Args are the process: ENTRYPOINT + CMD resolved.
	Path string   `json:"path"`
	Args []string `json:"args"`

	Host HostConfig `json:"hostConfig"`

	// Snapshotter ("overlay" or "native") holds the container's writable
	// layer, under the container's ID.
	Snapshotter string `json:"snapshotter"`
	// mounts are the snapshot's mounts when this process prepared it.
	mounts []rootfs.Mount

	// Transient marks a container Run made and has not finished with. With
	// --rm it is reaped once its lock is free (its strata died); without,
	// Run clears it when the process ends.
	Transient bool `json:"transient,omitempty"`

	State State `json:"state"`
}

// HostConfig is what a container's process gets from the host, which never
// goes into an image.
type HostConfig struct {
	Network    string         `json:"network"` // "none" or "host"
	Binds      []rootfs.Bind  `json:"binds,omitempty"`
	Tmpfs      []rootfs.Tmpfs `json:"tmpfs,omitempty"`
	Memory     int64          `json:"memory,omitempty"`    // bytes
	PidsLimit  int64          `json:"pidsLimit,omitempty"` // 0: no limit
	CPUs       float64        `json:"cpus,omitempty"`
	AutoRemove bool           `json:"autoRemove,omitempty"`
	ReadOnly   bool           `json:"readOnly,omitempty"`
	// NoNewPrivileges sets no_new_privs on the process.
	NoNewPrivileges bool `json:"noNewPrivileges,omitempty"`
}

// State is where the container is in its life.
type State struct {
	Status Status `json:"status"`
	// Pid is the strata process that runs the container (its sandbox dies
	// with it); it holds the container's lock while it lives.
	Pid        int       `json:"pid,omitempty"`
	ExitCode   int       `json:"exitCode"`
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

const recordFile = "config.json"

func (m *Manager) dir(id string) string { return filepath.Join(m.root, id) }

func (m *Manager) load(id string) (*Container, error) {
	b, err := os.ReadFile(filepath.Join(m.dir(id), recordFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %s: %w", ShortID(id), ErrNotFound)
		}
		return nil, fmt.Errorf("reading container %s: %w", ShortID(id), err)
	}
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("reading container %s: %w", ShortID(id), err)
	}
	return &c, nil
}

// save replaces the record atomically (temp file + rename). With durable it
// also fsyncs the file and directory; state changes of a running container
// skip that, since a record that lost its last update after a power cut
// reads as "running", which the lock check turns into "exited" anyway.
func (m *Manager) save(c *Container, durable bool) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	dir := m.dir(c.ID)
	tmp := filepath.Join(dir, ".config.json.tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("writing container %s: %w", ShortID(c.ID), err)
	}
	_, err = f.Write(b)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, recordFile))
	}
	if err == nil && durable {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing container %s: %w", ShortID(c.ID), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lock is a held container lock.
type lock struct{ f *os.File }

func (m *Manager) lockPath(id string) string { return filepath.Join(m.dir(id), "lock") }

// tryLock takes the container's lock without waiting; ok is false when
// another process holds it.
func (m *Manager) tryLock(id string) (l *lock, ok bool, err error) {
	return flock(m.lockPath(id), unix.LOCK_EX|unix.LOCK_NB)
}

// lockHolder returns the PID of the process holding the flock on path
// (from /proc/locks), or 0.
func lockHolder(path string) int {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0
	}
	// /proc/locks names a file MAJOR:MINOR:INODE, device numbers in hex.
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// "1: FLOCK  ADVISORY  WRITE 20354 fe:00:9978018 0 EOF"; blocked
		// waiters have "->" after the number.
		if len(f) < 6 || f[1] != "FLOCK" || f[5] != want {
			continue
		}
		if pid, err := strconv.Atoi(f[4]); err == nil {
			return pid
		}
	}
	return 0
}

func flock(path string, how int) (*lock, bool, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.EWOULDBLOCK {
		f.Close()
		return nil, false, nil
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("locking %s: %w", path, err)
	}
	return &lock{f}, true, nil
}

func (l *lock) release() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the only descriptor drops the flock
		l.f = nil
	}
}
