package cache

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLineage checks that a lineage records the last layer it produced,
// that an unreadable record is no hint, and that prune forgets the records
// whose layer no kept entry holds.
func TestLineage(t *testing.T) {
	idx, err := OpenIndex(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	la, lb := NewKey("lineage").Add("a").Sum(), NewKey("lineage").Add("b").Sum()
	d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	if _, ok := idx.Previous(la); ok {
		t.Fatal("a hint before any was recorded")
	}
	for _, d := range []string{d1, d2} {
		if err := idx.SetPrevious(la, d); err != nil {
			t.Fatal(err)
		}
		if got, ok := idx.Previous(la); !ok || got != d {
			t.Fatalf("Previous = %q %v, want %q", got, ok, d)
		}
	}
	if err := idx.SetPrevious(lb, "sha256:nothex"); err == nil {
		t.Error("an invalid digest was recorded")
	}
	// a damaged record (e.g. cut short by a power loss) is no hint
	if err := writeAtomic(idx.lineagePath(lb), []byte("sha256:12")); err != nil {
		t.Fatal(err)
	}
	if got, ok := idx.Previous(lb); ok {
		t.Errorf("damaged record gave %q", got)
	}

	// prune keeps the lineage whose layer an entry keeps
	if err := idx.SetPrevious(lb, d1); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := idx.Put("k2", Entry{DiffID: d2, Size: 1, Created: now}); err != nil {
		t.Fatal(err)
	}
	if err := idx.Put("k1", Entry{DiffID: d1, Size: 1, Created: now.Add(-48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := idx.Prune(PruneOptions{Until: 24 * time.Hour, Now: now}); err != nil {
		t.Fatal(err)
	}
	if got, ok := idx.Previous(la); !ok || got != d2 {
		t.Errorf("kept lineage: %q %v", got, ok)
	}
	if _, ok := idx.Previous(lb); ok {
		t.Error("a lineage whose layer went was kept")
	}
	if _, err := idx.Prune(PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(idx.Dir(), "lineage", la[:2])); len(ents) != 0 {
		t.Errorf("prune --all left %d lineage records", len(ents))
	}
}
