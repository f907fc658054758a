package rootfs

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseBind(t *testing.T) {
	tests := []struct {
		in      string
		want    Bind
		wantErr string
	}{
		{"/a:/b", Bind{Source: "/a", Target: "/b"}, ""},
		{"/a:/b/:ro", Bind{Source: "/a", Target: "/b", ReadOnly: true}, ""},
		{"/a:/b:rw", Bind{Source: "/a", Target: "/b"}, ""},
		{"/a:/b:ro,rw", Bind{Source: "/a", Target: "/b"}, ""},
		{"/a", Bind{}, `invalid volume "/a": want HOST:CONTAINER[:ro]`},
		{"/a:/b:ro:x", Bind{}, `invalid volume "/a:/b:ro:x": want HOST:CONTAINER[:ro]`},
		{"a:/b", Bind{}, `invalid volume "a:/b": host path "a" is not absolute`},
		{"/a:b", Bind{}, `invalid volume "/a:b": container path "b" is not absolute`},
		{"/a:/b:z", Bind{}, `invalid volume "/a:/b:z": unknown option "z"`},
	}
	for _, tt := range tests {
		got, err := ParseBind(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseBind(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseBind(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseTmpfs(t *testing.T) {
	tests := []struct {
		in      string
		want    Tmpfs
		wantErr string
	}{
		{"/run", Tmpfs{Target: "/run"}, ""},
		{"/run/:size=64m", Tmpfs{Target: "/run", Size: 64 << 20}, ""},
		{"/x:size=1000,mode=1777,noexec", Tmpfs{Target: "/x", Size: 1000, Mode: os.ModeSticky | 0o777}, ""},
		{"/x:mode=0700", Tmpfs{Target: "/x", Mode: 0o700}, ""},
		{"x", Tmpfs{}, `invalid tmpfs "x": path "x" is not absolute`},
		{"/x:size=lots", Tmpfs{}, `invalid tmpfs "/x:size=lots": bad size "lots"`},
		{"/x:mode=9", Tmpfs{}, `invalid tmpfs "/x:mode=9": bad mode "9"`},
		{"/x:uid=1", Tmpfs{}, `invalid tmpfs "/x:uid=1": unknown option "uid=1"`},
	}
	for _, tt := range tests {
		got, err := ParseTmpfs(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseTmpfs(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseTmpfs(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestModeRoundTrip(t *testing.T) {
	for _, m := range []uint32{0, 0o755, 0o1777, 0o4711, 0o2750} {
		if got := unixMode(fsMode(m)); got != m {
			t.Errorf("unixMode(fsMode(%o)) = %o", m, got)
		}
	}
}

// The mountinfo walk remounts /sys's submounts read-only before Linux 5.12
// (mount_setattr): it must find a mount point by its escaped name, and list
// parents before children.
func TestMountsUnder(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/tab\011x`: "/tab\tx", `/plain`: "/plain", `/back\134slash`: `/back\slash`, `/short\04`: `/short\04`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
	mps, err := mountsUnder("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if len(mps) == 0 || mps[0] != "/proc" {
		t.Fatalf("mountsUnder(/proc) = %q, want /proc first", mps)
	}
	for _, mp := range mps {
		if mp != "/proc" && !strings.HasPrefix(mp, "/proc/") {
			t.Errorf("mountsUnder(/proc) lists %q", mp)
		}
	}
}
