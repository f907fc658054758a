package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupRoots are where the machine's cgroup hierarchies may be mounted: a
// pure v2 system has cgroup.controllers at the top; a hybrid one has its
// v2 tree at unified/ and a v1 tree per controller.
var cgroupRoots = struct{ v2, hybrid, v1 string }{
	v2: "/sys/fs/cgroup", hybrid: "/sys/fs/cgroup/unified", v1: "/sys/fs/cgroup",
}

// cgroupParent is the directory (in each hierarchy) holding the sandboxes'
// cgroups.
const cgroupParent = "strata"

// limit is one cgroup file setting for a controller.
type limit struct {
	controller string
	v1, v2     []fileValue
}

type fileValue struct{ file, value string }

// limitsOf turns the spec's resource limits into cgroup settings.
func limitsOf(spec *Spec) ([]limit, error) {
	var ls []limit
	if spec.Memory < 0 || spec.PidsLimit < 0 || spec.CPUs < 0 {
		return nil, errors.New("resource limits must not be negative")
	}
	if spec.Memory > 0 {
		if spec.Memory < 6<<20 {
			return nil, errors.New("minimum memory limit allowed is 6MB")
		}
		// As docker without --memory-swap: as much swap as memory.
		v := strconv.FormatInt(spec.Memory, 10)
		v2 := strconv.FormatInt(2*spec.Memory, 10)
		ls = append(ls, limit{"memory",
			[]fileValue{{"memory.limit_in_bytes", v}, {"memory.memsw.limit_in_bytes", v2}},
			[]fileValue{{"memory.max", v}, {"memory.swap.max", v}}})
	}
	if spec.PidsLimit > 0 {
		v := strconv.FormatInt(spec.PidsLimit, 10)
		ls = append(ls, limit{"pids", []fileValue{{"pids.max", v}}, []fileValue{{"pids.max", v}}})
	}
	if spec.CPUs > 0 {
		const period = 100000
		quota := int64(spec.CPUs * period)
		if quota < 1000 {
			return nil, fmt.Errorf("--cpus %g is below the minimum of 0.01", spec.CPUs)
		}
		q, p := strconv.FormatInt(quota, 10), strconv.Itoa(period)
		ls = append(ls, limit{"cpu",
			[]fileValue{{"cpu.cfs_period_us", p}, {"cpu.cfs_quota_us", q}},
			[]fileValue{{"cpu.max", q + " " + p}}})
	}
	return ls, nil
}

// cgroup is one sandbox's cgroup: a directory in each hierarchy used.
type cgroup struct {
	dirs  []string
	views []cgroupView
}

// cgroupView is one of the sandbox's cgroup directories as the container
// sees it: bound read-only at /sys/fs/cgroup/Name (or /sys/fs/cgroup itself
// for a pure v2 machine's unified hierarchy, Name ""), as docker shows a
// container its own cgroups, so that runtimes inside (Go, the JVM) find
// their CPU and memory limits.
type cgroupView struct {
	Dir  string // host path
	Name string
}

// newCgroup creates the cgroup directories for ls (v2 when the machine's
// unified hierarchy offers the controller, else the v1 hierarchy) and
// writes the limits. On error nothing is left.
func newCgroup(id string, ls []limit) (cg *cgroup, err error) {
	cg = &cgroup{}
	defer func() {
		if err != nil {
			cg.remove()
			cg = nil
		}
	}()
	v2root, v2ctrls := detectV2()
	byDir := map[string]bool{}
	for _, l := range ls {
		var dir, name string
		var files []fileValue
		if v2ctrls[l.controller] {
			if err := enableV2(v2root, l.controller); err != nil {
				return nil, err
			}
			dir, files = filepath.Join(v2root, cgroupParent, id), l.v2
			if v2root == cgroupRoots.hybrid {
				name = "unified"
			}
		} else if _, err := os.Stat(filepath.Join(cgroupRoots.v1, l.controller, "cgroup.procs")); err == nil {
			dir, files = filepath.Join(cgroupRoots.v1, l.controller, cgroupParent, id), l.v1
			name = l.controller
		} else {
			return nil, fmt.Errorf("cgroup controller %q is not available on this machine", l.controller)
		}
		if !byDir[dir] {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("creating cgroup: %w", err)
			}
			byDir[dir] = true
			cg.dirs = append(cg.dirs, dir)
			cg.views = append(cg.views, cgroupView{Dir: dir, Name: name})
		}
		for _, f := range files {
			err := os.WriteFile(filepath.Join(dir, f.file), []byte(f.value), 0)
			if err != nil && (f.file == "memory.swap.max" || f.file == "memory.memsw.limit_in_bytes") && errors.Is(err, os.ErrNotExist) {
				continue // no swap accounting
			}
			if err != nil {
				return nil, fmt.Errorf("setting cgroup %s to %s: %w", f.file, f.value, err)
			}
		}
	}
	return cg, nil
}

// detectV2 finds the unified hierarchy and the controllers it offers.
func detectV2() (string, map[string]bool) {
	for _, root := range []string{cgroupRoots.v2, cgroupRoots.hybrid} {
		b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
		if err != nil {
			continue
		}
		ctrls := map[string]bool{}
		for _, c := range strings.Fields(string(b)) {
			ctrls[c] = true
		}
		return root, ctrls
	}
	return "", nil
}

// enableV2 enables controller for the children of the root and of the
// strata parent cgroup.
func enableV2(root, controller string) error {
	parent := filepath.Join(root, cgroupParent)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("creating cgroup: %w", err)
	}
	for _, dir := range []string{root, parent} {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+controller), 0); err != nil {
			return fmt.Errorf("enabling cgroup controller %s in %s: %w", controller, dir, err)
		}
	}
	return nil
}

// add moves pid into the cgroup.
func (cg *cgroup) add(pid int) error {
	for _, d := range cg.dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("joining cgroup %s: %w", d, err)
		}
	}
	return nil
}

// remove deletes the cgroup directories. The sandbox's processes are gone
// by then, but the kernel may take a moment to notice that their cgroup is
// empty: EBUSY is retried for a while.
func (cg *cgroup) remove() error {
	var errs []error
	for _, d := range cg.dirs {
		var err error
		for delay := 100 * time.Microsecond; ; delay *= 2 {
			err = unix.Rmdir(d)
			if err != unix.EBUSY || delay > 500*time.Millisecond {
				break
			}
			time.Sleep(delay)
		}
		if err != nil && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
		}
	}
	cg.dirs = nil
	return errors.Join(errs...)
}
