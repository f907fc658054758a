package builder

import "testing"

func TestParseGitRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want gitRef
	}{
		{"https://github.com/moby/buildkit.git#v0.10.1", true, gitRef{url: "https://github.com/moby/buildkit.git", ref: "v0.10.1"}},
		{"https://host/r.git#main:sub/dir", true, gitRef{url: "https://host/r.git", ref: "main", subdir: "sub/dir"}},
		{"git@github.com:moby/buildkit.git", true, gitRef{url: "git@github.com:moby/buildkit.git"}},
		{"git://host/repo#abc", true, gitRef{url: "git://host/repo", ref: "abc"}},
		{"ssh://git@host/repo.git", true, gitRef{url: "ssh://git@host/repo.git"}},
		{"https://host/file.tar.gz", false, gitRef{}},
		{"https://host/a.git/file", false, gitRef{}},
		{"dir/user@host:x", false, gitRef{}},
		{"local.txt", false, gitRef{}},
	} {
		got, ok := parseGitRef(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseGitRef(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if !isCommitID("0123456789abcdef0123456789abcdef01234567") || isCommitID("0123456789abcdef") || isCommitID("0123456789ABCDEF0123456789abcdef01234567") {
		t.Error("isCommitID")
	}
}
