//go:build linux && cgo

package rootfs

import (
	"strings"
	"testing"
)

func TestPrestartMode(t *testing.T) {
	for _, tc := range []struct {
		args string
		want int
	}{
		{"strata run img", 1},
		{"strata run --rm img true", 1},
		{"strata --root /x --debug run -it img sh", 1},
		{"strata --root=/x run --network host img", 2},
		{"strata run --network=host img", 2},
		{"strata run --network none img", 1},
		{"strata run --network=none img", 1},
		{"strata run --network host --network none img", 1},
		{"strata run -d img", 0},
		{"strata run --detach img", 0},
		{"strata run --help", 0},
		{"strata build .", 0},
		{"strata create img", 0},
		{"strata --unknown run img", 0},
		{"strata --root", 0},
		{"strata", 0},
		{"strata-init", 0},
	} {
		if got := prestartMode(strings.Fields(tc.args)); got != tc.want {
			t.Errorf("prestartMode(%q) = %d, want %d", tc.args, got, tc.want)
		}
	}
}
