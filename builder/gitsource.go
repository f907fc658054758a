package builder

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// gitRef is an ADD source naming a git repository, URL#REF[:SUBDIR] as
// BuildKit reads it: the repository's tree at REF (default HEAD), or its
// SUBDIR, is what is added.
type gitRef struct {
	url, ref, subdir string
}

// scpLike reports whether s is git's scp-like form, USER@HOST:PATH.
func scpLike(s string) bool {
	user, rest, ok := strings.Cut(s, "@")
	if !ok || user == "" || strings.ContainsAny(user, "/:") {
		return false
	}
	host, _, ok := strings.Cut(rest, ":")
	return ok && host != "" && !strings.Contains(host, "/")
}

// parseGitRef reports whether s is a git source: a git:// or ssh:// URL, an
// scp-like git@host:path, or an http(s) URL whose path ends in .git.
func parseGitRef(s string) (gitRef, bool) {
	base, frag, _ := strings.Cut(s, "#")
	switch {
	case strings.HasPrefix(base, "git://"), strings.HasPrefix(base, "ssh://"), scpLike(base):
	case strings.HasPrefix(base, "http://"), strings.HasPrefix(base, "https://"):
		u, err := url.Parse(base)
		if err != nil || !strings.HasSuffix(u.Path, ".git") {
			return gitRef{}, false
		}
	default:
		return gitRef{}, false
	}
	ref, subdir, _ := strings.Cut(frag, ":")
	return gitRef{url: base, ref: ref, subdir: subdir}, true
}

func (g gitRef) String() string { return g.url + "#" + g.ref }

// isCommitID reports whether s is a full SHA-1 commit ID.
func isCommitID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// git runs git with a clean, non-interactive environment.
func git(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true", "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return nil, fmt.Errorf("git %s: %v: %s", args[0], err, msg)
	}
	return out, nil
}

// resolve returns the commit g.ref names in the remote repository, and the
// remote ref to fetch it by ("" when ref is itself a commit ID).
func (g gitRef) resolve(ctx context.Context) (commit, remoteRef string, err error) {
	if _, err := exec.LookPath("git"); err != nil {
		return "", "", fmt.Errorf("ADD %s: git is not installed", g)
	}
	if isCommitID(g.ref) {
		return g.ref, "", nil
	}
	ref := g.ref
	if ref == "" {
		ref = "HEAD"
	}
	// (ref^{} too: ls-remote matches the peeled entry of an annotated tag
	// only by its own name)
	out, err := git(ctx, "", "ls-remote", "--", g.url, ref, ref+"^{}")
	if err != nil {
		return "", "", fmt.Errorf("ADD %s: %w", g, err)
	}
	// Prefer HEAD, a branch, then a tag (peeled: an annotated tag's commit).
	found := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		sha, name, ok := strings.Cut(sc.Text(), "\t")
		if ok {
			found[name] = sha
		}
	}
	for _, name := range []string{ref, "refs/heads/" + ref, "refs/tags/" + ref} {
		if sha, ok := found[name+"^{}"]; ok {
			return sha, name, nil
		}
		if sha, ok := found[name]; ok {
			return sha, name, nil
		}
	}
	return "", "", fmt.Errorf("ADD %s: no ref %q in the repository", g, ref)
}

// checkout fetches commit (by remoteRef when it has one) into dir, a new
// directory, with its submodules; the .git directory is removed unless keep.
// It returns the directory to add: dir, or its subdirectory g.subdir.
func (g gitRef) checkout(ctx context.Context, dir, commit, remoteRef string, keep bool) (string, error) {
	fetch := remoteRef
	if fetch == "" {
		fetch = commit
	}
	steps := [][]string{
		{"init", "-q"},
		{"fetch", "-q", "--depth", "1", "--no-tags", "--", g.url, fetch},
		{"-c", "advice.detachedHead=false", "checkout", "-q", "FETCH_HEAD"},
	}
	for _, args := range steps {
		if _, err := git(ctx, dir, args...); err != nil {
			return "", fmt.Errorf("ADD %s: %w", g, err)
		}
	}
	head, err := git(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return "", fmt.Errorf("ADD %s: %w", g, err)
	}
	if got := strings.TrimSpace(string(head)); got != commit {
		return "", fmt.Errorf("ADD %s: fetched commit %s, want %s (the ref moved?)", g, got, commit)
	}
	if _, err := os.Stat(filepath.Join(dir, ".gitmodules")); err == nil {
		if _, err := git(ctx, dir, "submodule", "update", "-q", "--init", "--recursive", "--depth", "1"); err != nil {
			return "", fmt.Errorf("ADD %s: %w", g, err)
		}
	}
	if !keep {
		if err := os.RemoveAll(filepath.Join(dir, ".git")); err != nil {
			return "", err
		}
	}
	if g.subdir == "" || path.Clean("/"+g.subdir) == "/" {
		return dir, nil
	}
	sub, err := securejoin.SecureJoin(dir, g.subdir)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(sub); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("ADD %s: %s is not a directory of the repository", g, g.subdir)
	}
	return sub, nil
}
