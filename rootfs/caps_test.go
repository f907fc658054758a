package rootfs

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestDefaultCapsMask(t *testing.T) {
	// Docker's default bounding set as /proc/self/status shows it (CapBnd).
	const docker = 0x00000000a80425fb
	if got := capMask(DefaultCaps); got != docker {
		t.Fatalf("capMask(DefaultCaps) = %016x, want %016x", got, docker)
	}
}

func TestCapMask(t *testing.T) {
	tests := []struct {
		caps []uintptr
		want uint64
	}{
		{nil, 0},
		{[]uintptr{unix.CAP_CHOWN}, 1},
		{[]uintptr{unix.CAP_KILL, unix.CAP_SETUID}, 1<<5 | 1<<7},
		{[]uintptr{unix.CAP_CHECKPOINT_RESTORE}, 1 << 40},
		{[]uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SYS_ADMIN}, 1 << 21},
	}
	for _, tt := range tests {
		if got := capMask(tt.caps); got != tt.want {
			t.Errorf("capMask(%v) = %x, want %x", tt.caps, got, tt.want)
		}
	}
}
