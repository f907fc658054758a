package store

import (
	"strings"
	"testing"
)

func TestFilterImages(t *testing.T) {
	recs := []Record{
		{Names: []string{"docker.io/library/a:1", "docker.io/library/a:2", "docker.io/library/b:latest"}},
		{Names: []string{"localhost:5000/a:1"}},
		{},
	}
	for _, tc := range []struct{ pattern, want string }{
		{"a", "a:1 a:2"},
		{"a:2", "a:2"},
		{"docker.io/library/a:1", "a:1"},
		{"b", "b:latest"},
		{"localhost:5000/a", "localhost:5000/a:1"},
		{"c", ""},
		{"a:3", ""},
	} {
		got, err := FilterImages(recs, tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range got {
			names = append(names, familiarAll(r.Names)...)
		}
		if strings.Join(names, " ") != tc.want {
			t.Errorf("%s: %v, want %s", tc.pattern, names, tc.want)
		}
	}
	if _, err := FilterImages(recs, "A"); err == nil {
		t.Error("invalid pattern accepted")
	}
}
