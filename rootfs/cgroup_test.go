package rootfs

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// TestCgroupLayout checks which hierarchy each limit lands in and what is
// written there, on a fake cgroup tree: a pure v2 machine, a hybrid one
// whose unified hierarchy offers some controllers (the rest from v1), and a
// v1-only one. (This machine's kernel has every controller bound to v1, so
// the e2e limits test covers v1 only.)
func TestCgroupLayout(t *testing.T) {
	spec := &Spec{Memory: 64 << 20, PidsLimit: 10, CPUs: 1.5}
	ls, err := limitsOf(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup map[string]string // files of the fake tree
		want  map[string]string // files written (path: content), relative to the tree
		views []cgroupView      // Dir relative to the tree
	}{
		{
			name:  "v2",
			setup: map[string]string{"cgroup.controllers": "cpuset cpu io memory pids"},
			want: map[string]string{
				"cgroup.subtree_control": "+cpu", "strata/cgroup.subtree_control": "+cpu",
				"strata/ID/memory.max": "67108864", "strata/ID/memory.swap.max": "67108864",
				"strata/ID/pids.max": "10", "strata/ID/cpu.max": "150000 100000", "strata/ID/cgroup.procs": "42",
			},
			views: []cgroupView{{Dir: "strata/ID", Name: ""}},
		},
		{
			name: "hybrid",
			setup: map[string]string{"unified/cgroup.controllers": "memory pids", "cpu/cgroup.procs": "",
				"memory/cgroup.procs": "", "pids/cgroup.procs": ""},
			want: map[string]string{
				"unified/cgroup.subtree_control": "+pids", "unified/strata/cgroup.subtree_control": "+pids",
				"unified/strata/ID/memory.max": "67108864", "unified/strata/ID/memory.swap.max": "67108864",
				"unified/strata/ID/pids.max": "10", "unified/strata/ID/cgroup.procs": "42",
				"cpu/strata/ID/cpu.cfs_period_us": "100000", "cpu/strata/ID/cpu.cfs_quota_us": "150000", "cpu/strata/ID/cgroup.procs": "42",
			},
			views: []cgroupView{{Dir: "unified/strata/ID", Name: "unified"}, {Dir: "cpu/strata/ID", Name: "cpu"}},
		},
		{
			name:  "v1",
			setup: map[string]string{"cpu/cgroup.procs": "", "memory/cgroup.procs": "", "pids/cgroup.procs": ""},
			want: map[string]string{
				"memory/strata/ID/memory.limit_in_bytes": "67108864", "memory/strata/ID/memory.memsw.limit_in_bytes": "134217728",
				"memory/strata/ID/cgroup.procs": "42", "pids/strata/ID/pids.max": "10", "pids/strata/ID/cgroup.procs": "42",
				"cpu/strata/ID/cpu.cfs_period_us": "100000", "cpu/strata/ID/cpu.cfs_quota_us": "150000", "cpu/strata/ID/cgroup.procs": "42",
			},
			views: []cgroupView{{Dir: "memory/strata/ID", Name: "memory"}, {Dir: "pids/strata/ID", Name: "pids"}, {Dir: "cpu/strata/ID", Name: "cpu"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for p, c := range tc.setup {
				os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
				if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			saved := cgroupRoots
			cgroupRoots.v2, cgroupRoots.hybrid, cgroupRoots.v1 = root, root+"/unified", root
			defer func() { cgroupRoots = saved }()
			cg, err := newCgroup("ID", ls)
			if err != nil {
				t.Fatal(err)
			}
			if err := cg.add(42); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
				rel, _ := filepath.Rel(root, p)
				if err == nil && fi.Mode().IsRegular() && tc.setup[rel] == "" && !strings.HasSuffix(rel, "cgroup.controllers") {
					b, _ := os.ReadFile(p)
					if _, set := tc.setup[rel]; !set {
						got[rel] = string(b)
					}
				}
				return nil
			})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("files written:\n got  %v\n want %v", sorted(got), sorted(tc.want))
			}
			var views []cgroupView
			for _, v := range cg.views {
				rel, _ := filepath.Rel(root, v.Dir)
				views = append(views, cgroupView{Dir: rel, Name: v.Name})
			}
			if !reflect.DeepEqual(views, tc.views) {
				t.Errorf("views %v, want %v", views, tc.views)
			}
		})
	}
}

func sorted(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
