package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Hold keeps Prune away until release is called. Take it around a sequence
// that stores blobs and then pins them (or writes an image referencing them),
// so that no Prune can run in the gap. Holds are shared: any number of
// processes may hold the store at once; Prune waits for all of them.
// A SIGKILL releases the hold.
func (s *Store) Hold() (release func(), err error) {
	unlock, err := s.rlock()
	if err != nil {
		return nil, fmt.Errorf("locking store: %w", err)
	}
	return unlock, nil
}

// Pin records digests as GC roots under name, replacing whatever name pinned
// before. Prune keeps a pinned blob, and when it is a manifest or index, every
// blob it references. Pin is idempotent; the pin file is replaced atomically.
// Names are chosen by the caller ("cache", "container/ID", ...); any
// non-empty string is allowed.
func (s *Store) Pin(name string, digests []v1.Hash) error {
	p, err := s.pinPath(name)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	seen := map[v1.Hash]bool{}
	sorted := append([]v1.Hash(nil), digests...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].String() < sorted[j].String() })
	for _, h := range sorted {
		if h.Algorithm == "" || seen[h] {
			continue
		}
		if _, err := v1.NewHash(h.String()); err != nil {
			return fmt.Errorf("pinning %s: invalid digest %q", name, h)
		}
		seen[h] = true
		buf.WriteString(h.String())
		buf.WriteByte('\n')
	}
	unlock, err := s.rlock()
	if err != nil {
		return fmt.Errorf("pinning %s: %w", name, err)
	}
	defer unlock()
	if err := writeFileAtomic(p, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("pinning %s: %w", name, err)
	}
	return nil
}

// Unpin removes the pin name. Unpinning a name that is not pinned is not an
// error.
func (s *Store) Unpin(name string) error {
	p, err := s.pinPath(name)
	if err != nil {
		return err
	}
	unlock, err := s.rlock()
	if err != nil {
		return fmt.Errorf("unpinning %s: %w", name, err)
	}
	defer unlock()
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unpinning %s: %w", name, err)
	}
	if err := syncDir(s.path("pins")); err != nil {
		return fmt.Errorf("unpinning %s: %w", name, err)
	}
	return nil
}

// Pins returns every pin by name.
func (s *Store) Pins() (map[string][]v1.Hash, error) {
	ents, err := os.ReadDir(s.path("pins"))
	if err != nil {
		return nil, fmt.Errorf("reading pins: %w", err)
	}
	out := map[string][]v1.Hash{}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue // temp files of an interrupted Pin
		}
		name, ok := unescapePin(e.Name())
		if !ok {
			continue
		}
		hs, err := readDigestList(s.path("pins", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading pin %s: %w", name, err)
		}
		out[name] = hs
	}
	return out, nil
}

func readDigestList(path string) ([]v1.Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hs []v1.Hash
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		h, err := v1.NewHash(line)
		if err != nil {
			return nil, fmt.Errorf("invalid digest %q", line)
		}
		hs = append(hs, h)
	}
	return hs, sc.Err()
}

func (s *Store) pinPath(name string) (string, error) {
	if name == "" {
		return "", errors.New("pinning: empty pin name")
	}
	return s.path("pins", escapePin(name)), nil
}

// escapePin turns a pin name into one safe file name: bytes outside
// [A-Za-z0-9_-] and a leading '.' become %XX, so "/" and ".." cannot escape
// pins/ and temp files (".tmp-*") cannot collide with a pin.
func escapePin(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' && i > 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func unescapePin(file string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(file); i++ {
		if file[i] != '%' {
			b.WriteByte(file[i])
			continue
		}
		if i+2 >= len(file) {
			return "", false
		}
		var c byte
		if _, err := fmt.Sscanf(file[i+1:i+3], "%02X", &c); err != nil {
			return "", false
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), true
}
