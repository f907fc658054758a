package builder

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/strata-dev/strata/rootfs"
)

// SSH is one --ssh ID[=SOCKET|KEY[,KEY...]]: the SSH agent a
// RUN --mount=type=ssh,id=ID reaches. Paths is an agent's socket or
// unencrypted private key files; none means $SSH_AUTH_SOCK.
type SSH struct {
	ID    string
	Paths []string
}

// ParseSSH parses the value of --ssh (docker buildx's form).
func ParseSSH(s string) (SSH, error) {
	id, paths, _ := strings.Cut(s, "=")
	if id == "" {
		return SSH{}, fmt.Errorf("invalid --ssh %q: want ID[=SOCKET|KEY[,KEY]]", s)
	}
	out := SSH{ID: id}
	if paths != "" {
		out.Paths = strings.Split(paths, ",")
	}
	return out, nil
}

// prepareSSH serves the agent of --ssh m.CacheID (default "default") on a
// socket of its own, bound into the RUN at m.Target (default
// /run/buildkit/ssh_agent.N, N counting the RUN's ssh mounts) with m's mode
// (default 0600) and owner. The socket forwards to the given agent, or
// answers itself from the given keys; nothing of it reaches the layer (the
// bind's mountpoint is removed afterwards) or the cache key.
func (st *stage) prepareSSH(m *instructions.Mount, n int) (runMount, error) {
	id := m.CacheID
	if id == "" {
		id = "default"
	}
	target := m.Target
	if target == "" {
		target = fmt.Sprintf("/run/buildkit/ssh_agent.%d", n)
	}
	var src *SSH
	for i := range st.b.opts.SSH {
		if st.b.opts.SSH[i].ID == id {
			src = &st.b.opts.SSH[i]
		}
	}
	if src == nil {
		if m.Required {
			return runMount{}, fmt.Errorf("ssh %s: not provided (--ssh %s[=SOCKET|KEY])", id, id)
		}
		return runMount{}, nil
	}
	serve, err := agentServer(*src)
	if err != nil {
		return runMount{}, err
	}
	dir, err := st.b.tempDir("ssh-")
	if err != nil {
		return runMount{}, err
	}
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		return runMount{}, fmt.Errorf("ssh %s: %w", id, err)
	}
	mode := os.FileMode(0o600)
	if m.Mode != nil {
		mode = os.FileMode(*m.Mode) & 0o777
	}
	uid, gid := mountOwner(m)
	if err = os.Chown(sock, uid, gid); err == nil {
		err = os.Chmod(sock, mode)
	}
	if err != nil {
		l.Close()
		return runMount{}, fmt.Errorf("ssh %s: %w", id, err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
		}
	}()
	rm := runMount{bind: &rootfs.Bind{Source: sock, Target: target, ReadOnly: true}}
	if n == 0 {
		rm.env = "SSH_AUTH_SOCK=" + target
	}
	rm.unlock = func() { // the RUN is over: end what it left open
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	return rm, nil
}

// agentServer returns what serves one connection to the RUN's agent socket:
// a relay to src's agent socket, or an agent holding src's keys.
func agentServer(src SSH) (func(net.Conn), error) {
	paths := src.Paths
	if len(paths) == 0 {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, fmt.Errorf("ssh %s: no SSH_AUTH_SOCK (start an ssh-agent, or give --ssh %s=KEY)", src.ID, src.ID)
		}
		paths = []string{sock}
	}
	if fi, err := os.Stat(paths[0]); err == nil && fi.Mode().Type() == os.ModeSocket && len(paths) == 1 {
		sock := paths[0]
		return func(c net.Conn) {
			up, err := net.Dial("unix", sock)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{})
			go func() {
				io.Copy(up, c)
				up.(*net.UnixConn).CloseWrite()
				close(done)
			}()
			io.Copy(c, up)
			c.(*net.UnixConn).CloseWrite()
			<-done
		}, nil
	}
	keys := agent.NewKeyring()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("ssh %s: %w", src.ID, err)
		}
		k, err := ssh.ParseRawPrivateKey(b)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("ssh %s: %s is encrypted: add it to an ssh-agent and pass --ssh %s=$SSH_AUTH_SOCK", src.ID, p, src.ID)
		}
		if err != nil {
			return nil, fmt.Errorf("ssh %s: %s: %w", src.ID, p, err)
		}
		if err := keys.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			return nil, fmt.Errorf("ssh %s: %s: %w", src.ID, p, err)
		}
	}
	return func(c net.Conn) { _ = agent.ServeAgent(keys, c) }, nil
}
