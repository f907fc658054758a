package store

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
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

func TestRemoveDangling(t *testing.T) {
	s, ra, rb := twoImages(t)
	if err := s.Tag("a", "b"); err != nil { // b's image loses its only name
		t.Fatal(err)
	}
	if err := s.Pin("keep", []v1.Hash{rb.Digest}); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.RemoveDangling(); err != nil || len(ids) != 0 {
		t.Fatalf("pinned dangling image removed: %v %v", ids, err)
	}
	s.Unpin("keep")
	ids, err := s.RemoveDangling()
	if err != nil || len(ids) != 1 || ids[0] != rb.ID {
		t.Fatalf("removed %v, %v; want %s", ids, err, rb.ID)
	}
	recs, _ := s.Images()
	if len(recs) != 1 || recs[0].Digest != ra.Digest {
		t.Errorf("images left: %+v", recs)
	}
}
