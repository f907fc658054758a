package registry

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportBoundaries: registry/ moves images; it must never reach into
// the sandbox or the CLI.
func TestImportBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/strata-dev/strata/rootfs", "github.com/strata-dev/strata/cmd/", "github.com/strata-dev/strata/container"} {
			if dep == banned || strings.HasPrefix(dep, banned) {
				t.Errorf("registry depends on %s", dep)
			}
		}
	}
}
