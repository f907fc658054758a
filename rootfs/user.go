package rootfs

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	Name     string
	UID, GID int
	Home     string
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	Name    string
	GID     int
	Members []string
}

// parsePasswd reads /etc/passwd lines (name:password:uid:gid:gecos:home:shell),
// skipping blank, comment, NIS (+/-) and malformed lines as libc does.
func parsePasswd(r io.Reader) ([]passwdEntry, error) {
	var out []passwdEntry
	err := eachLine(r, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := parseID(f[2])
		gid, err2 := parseID(f[3])
		if err1 != nil || err2 != nil {
			return
		}
		e := passwdEntry{Name: f[0], UID: uid, GID: gid}
		if len(f) > 5 {
			e.Home = f[5]
		}
		out = append(out, e)
	})
	return out, err
}

// parseGroup reads /etc/group lines (name:password:gid:member,member...).
func parseGroup(r io.Reader) ([]groupEntry, error) {
	var out []groupEntry
	err := eachLine(r, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, err := parseID(f[2])
		if err != nil {
			return
		}
		e := groupEntry{Name: f[0], GID: gid}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					e.Members = append(e.Members, m)
				}
			}
		}
		out = append(out, e)
	})
	return out, err
}

func eachLine(r io.Reader, fn func([]string)) error {
	if r == nil {
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	return sc.Err()
}

// parseID parses a uid or gid: a decimal in [0, 2^31-1].
func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > math.MaxInt32 {
		return 0, fmt.Errorf("invalid id %q", s)
	}
	return int(n), nil
}

// execUser is who the container's process runs as.
type execUser struct {
	UID, GID int
	Groups   []int // supplementary groups (setgroups)
	Home     string
}

// resolveUser resolves docker's USER syntax (NAME, UID, NAME:GROUP, UID:GID,
// or "" for root) against the image's passwd and group entries, as runc
// does: a numeric user or group missing from the files is used as is (gid 0
// and home "/" by default); a missing name is an error. Without an explicit
// group, the supplementary groups are the primary group and every group
// that lists the user.
func resolveUser(spec string, passwd []passwdEntry, groups []groupEntry) (execUser, error) {
	userArg, groupArg, hasGroup := strings.Cut(spec, ":")
	if userArg == "" {
		if hasGroup {
			return execUser{}, fmt.Errorf("invalid user %q: empty user name", spec)
		}
		userArg = "0"
	}
	if hasGroup && groupArg == "" {
		return execUser{}, fmt.Errorf("invalid user %q: empty group name", spec)
	}
	u := execUser{Home: "/"}
	name := ""
	uid, numErr := parseID(userArg)
	found := false
	for _, p := range passwd {
		if p.Name == userArg || (numErr == nil && p.UID == uid) {
			u.UID, u.GID, name, found = p.UID, p.GID, p.Name, true
			if p.Home != "" {
				u.Home = p.Home
			}
			break
		}
	}
	if !found {
		if numErr != nil {
			if _, err := strconv.Atoi(userArg); err == nil {
				return execUser{}, fmt.Errorf("invalid user %q: uid out of range", userArg)
			}
			return execUser{}, fmt.Errorf("unable to find user %s: no matching entries in passwd file", userArg)
		}
		u.UID = uid
	}
	if hasGroup {
		gid, gErr := parseID(groupArg)
		found := false
		for _, g := range groups {
			if g.Name == groupArg || (gErr == nil && g.GID == gid) {
				u.GID, found = g.GID, true
				break
			}
		}
		if !found {
			if gErr != nil {
				if _, err := strconv.Atoi(groupArg); err == nil {
					return execUser{}, fmt.Errorf("invalid group %q: gid out of range", groupArg)
				}
				return execUser{}, fmt.Errorf("unable to find group %s: no matching entries in group file", groupArg)
			}
			u.GID = gid
		}
		u.Groups = []int{u.GID}
		return u, nil
	}
	u.Groups = []int{u.GID}
	if name == "" {
		return u, nil
	}
	for _, g := range groups {
		for _, m := range g.Members {
			if m == name && !containsInt(u.Groups, g.GID) {
				u.Groups = append(u.Groups, g.GID)
			}
		}
	}
	return u, nil
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// processEnv is the environment the container's process gets: docker's
// defaults (PATH, HOSTNAME, TERM with a tty) first, then env (later entries
// win over earlier ones with the same key), then HOME when env has none.
func processEnv(env []string, hostname, home string, tty bool) []string {
	has := func(k string) bool {
		for _, e := range env {
			if key, _, _ := strings.Cut(e, "="); key == k {
				return true
			}
		}
		return false
	}
	out := make([]string, 0, len(env)+4)
	if !has("PATH") {
		out = append(out, "PATH="+DefaultPath)
	}
	out = append(out, "HOSTNAME="+hostname)
	if tty && !has("TERM") {
		out = append(out, "TERM=xterm")
	}
	out = append(out, env...)
	if !has("HOME") {
		out = append(out, "HOME="+home)
	}
	return dedupEnv(out)
}

// dedupEnv keeps the last value of each key, at the position of its first
// occurrence.
func dedupEnv(env []string) []string {
	idx := make(map[string]int, len(env))
	out := env[:0:0]
	for _, e := range env {
		k, _, _ := strings.Cut(e, "=")
		if i, ok := idx[k]; ok {
			out[i] = e
			continue
		}
		idx[k] = len(out)
		out = append(out, e)
	}
	return out
}
