package rootfs

import (
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/docker/go-units"
)

// ParseBind parses docker's -v syntax HOST:CTR[:OPTS], where OPTS is a
// comma-separated list of "ro" or "rw". HOST and CTR must be absolute.
func ParseBind(s string) (Bind, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Bind{}, fmt.Errorf("invalid volume %q: want HOST:CONTAINER[:ro]", s)
	}
	b := Bind{Source: parts[0], Target: parts[1]}
	if !path.IsAbs(b.Source) {
		return Bind{}, fmt.Errorf("invalid volume %q: host path %q is not absolute", s, b.Source)
	}
	if !path.IsAbs(b.Target) {
		return Bind{}, fmt.Errorf("invalid volume %q: container path %q is not absolute", s, b.Target)
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				b.ReadOnly = true
			case "rw":
				b.ReadOnly = false
			default:
				return Bind{}, fmt.Errorf("invalid volume %q: unknown option %q", s, o)
			}
		}
	}
	b.Target = path.Clean(b.Target)
	return b, nil
}

// ParseTmpfs parses docker's --tmpfs syntax CTR[:OPTS], where OPTS is a
// comma-separated list of size=SIZE (bytes, or with a k/m/g suffix) and
// mode=OCTAL.
func ParseTmpfs(s string) (Tmpfs, error) {
	target, opts, _ := strings.Cut(s, ":")
	if !path.IsAbs(target) {
		return Tmpfs{}, fmt.Errorf("invalid tmpfs %q: path %q is not absolute", s, target)
	}
	t := Tmpfs{Target: path.Clean(target)}
	if opts == "" {
		return t, nil
	}
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "size":
			n, err := units.RAMInBytes(v)
			if err != nil || n < 0 {
				return Tmpfs{}, fmt.Errorf("invalid tmpfs %q: bad size %q", s, v)
			}
			t.Size = n
		case "mode":
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil || m > 07777 {
				return Tmpfs{}, fmt.Errorf("invalid tmpfs %q: bad mode %q", s, v)
			}
			t.Mode = fsMode(uint32(m))
		case "rw", "nosuid", "nodev", "noexec", "exec", "suid", "dev":
			// tmpfs mounts are always nosuid,nodev; the rest is accepted for
			// docker compatibility.
		default:
			return Tmpfs{}, fmt.Errorf("invalid tmpfs %q: unknown option %q", s, o)
		}
	}
	return t, nil
}

// fsMode converts unix permission bits (with setuid, setgid, sticky) to an
// os.FileMode.
func fsMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode
}
