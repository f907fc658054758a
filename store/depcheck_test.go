package store

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportBoundaries: the store is the bottom of strata; it must not
// depend on any other strata package (and never on cmd/), but for the leaf
// helpers under internal/.
func TestImportBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/strata-dev/strata/") && p != "github.com/strata-dev/strata/store" &&
			!strings.HasPrefix(p, "github.com/strata-dev/strata/internal/") {
			t.Errorf("store imports %s", p)
		}
	}
}
