package rootfs

import (
	"reflect"
	"strings"
	"testing"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
+nisuser::::::

daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:app:/home/app:/bin/sh
nohome:x:1001:1001::
short:x:1002
badid:x:abc:1:::
42:x:4200:4200:numeric name:/n:/bin/sh
`

const testGroup = `root:x:0:
daemon:x:1:
wheel:x:10:root,app
app:x:1000:
staff:x:50: app , other
empty:x:60:
bad:x:zz:app
`

func TestParsePasswd(t *testing.T) {
	got, err := parsePasswd(strings.NewReader(testPasswd))
	if err != nil {
		t.Fatal(err)
	}
	want := []passwdEntry{
		{"root", 0, 0, "/root"},
		{"daemon", 1, 1, "/usr/sbin"},
		{"app", 1000, 1000, "/home/app"},
		{"nohome", 1001, 1001, ""},
		{"42", 4200, 4200, "/n"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parsePasswd:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseGroup(t *testing.T) {
	got, err := parseGroup(strings.NewReader(testGroup))
	if err != nil {
		t.Fatal(err)
	}
	want := []groupEntry{
		{"root", 0, nil},
		{"daemon", 1, nil},
		{"wheel", 10, []string{"root", "app"}},
		{"app", 1000, nil},
		{"staff", 50, []string{"app", "other"}},
		{"empty", 60, nil},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseGroup:\n got %+v\nwant %+v", got, want)
	}
}

func TestResolveUser(t *testing.T) {
	passwd, _ := parsePasswd(strings.NewReader(testPasswd))
	groups, _ := parseGroup(strings.NewReader(testGroup))
	tests := []struct {
		spec    string
		want    execUser
		wantErr string
	}{
		{"", execUser{0, 0, []int{0, 10}, "/root"}, ""},
		{"root", execUser{0, 0, []int{0, 10}, "/root"}, ""},
		{"0", execUser{0, 0, []int{0, 10}, "/root"}, ""},
		{"app", execUser{1000, 1000, []int{1000, 10, 50}, "/home/app"}, ""},
		{"1000", execUser{1000, 1000, []int{1000, 10, 50}, "/home/app"}, ""},
		{"app:staff", execUser{1000, 50, []int{50}, "/home/app"}, ""},
		{"app:0", execUser{1000, 0, []int{0}, "/home/app"}, ""},
		{"app:777", execUser{1000, 777, []int{777}, "/home/app"}, ""},
		{"1000:1000", execUser{1000, 1000, []int{1000}, "/home/app"}, ""},
		{"nohome", execUser{1001, 1001, []int{1001}, "/"}, ""},
		{"4242", execUser{4242, 0, []int{0}, "/"}, ""},
		{"4242:4343", execUser{4242, 4343, []int{4343}, "/"}, ""},
		{"42", execUser{4200, 4200, []int{4200}, "/n"}, ""}, // a name first, as runc
		{"daemon", execUser{1, 1, []int{1}, "/usr/sbin"}, ""},
		{"nosuch", execUser{}, "unable to find user nosuch: no matching entries in passwd file"},
		{"app:nosuch", execUser{}, "unable to find group nosuch: no matching entries in group file"},
		{"99999999999", execUser{}, `invalid user "99999999999": uid out of range`},
		{"app:99999999999", execUser{}, `invalid group "99999999999": gid out of range`},
		{":1", execUser{}, `invalid user ":1": empty user name`},
		{"app:", execUser{}, `invalid user "app:": empty group name`},
	}
	for _, tt := range tests {
		got, err := resolveUser(tt.spec, passwd, groups)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("resolveUser(%q) error = %v, want %q", tt.spec, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("resolveUser(%q): %v", tt.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("resolveUser(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
	}
}

func TestResolveUserNoFiles(t *testing.T) {
	tests := []struct {
		spec    string
		want    execUser
		wantErr string
	}{
		{"", execUser{0, 0, []int{0}, "/"}, ""},
		{"1000:1000", execUser{1000, 1000, []int{1000}, "/"}, ""},
		{"root", execUser{}, "unable to find user root: no matching entries in passwd file"},
	}
	for _, tt := range tests {
		got, err := resolveUser(tt.spec, nil, nil)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("resolveUser(%q) error = %v, want %q", tt.spec, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("resolveUser(%q) = %+v, %v; want %+v", tt.spec, got, err, tt.want)
		}
	}
}

func TestProcessEnv(t *testing.T) {
	tests := []struct {
		env      []string
		tty      bool
		want     []string
		hostname string
	}{
		{nil, false, []string{"PATH=" + DefaultPath, "HOSTNAME=h", "HOME=/root"}, "h"},
		{nil, true, []string{"PATH=" + DefaultPath, "HOSTNAME=h", "TERM=xterm", "HOME=/root"}, "h"},
		{[]string{"PATH=/bin", "A=1"}, false, []string{"HOSTNAME=h", "PATH=/bin", "A=1", "HOME=/root"}, "h"},
		{[]string{"HOME=/x", "TERM=dumb", "A=1", "A=2"}, true, []string{"PATH=" + DefaultPath, "HOSTNAME=h", "HOME=/x", "TERM=dumb", "A=2"}, "h"},
		{[]string{"HOSTNAME=mine"}, false, []string{"PATH=" + DefaultPath, "HOSTNAME=mine", "HOME=/root"}, "h"},
	}
	for _, tt := range tests {
		got := processEnv(tt.env, tt.hostname, "/root", tt.tty)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("processEnv(%q, tty=%v) =\n %q\nwant\n %q", tt.env, tt.tty, got, tt.want)
		}
	}
}
