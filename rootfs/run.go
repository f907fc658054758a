package rootfs

import (
	"context"
	"errors"
	"os"
)

// Run runs spec.Args in a new sandbox and waits for it to end.
//
// With a nil error, exitCode is the process's exit status (128+N when it
// was killed by signal N). With a non-nil error, exitCode is ExitSetup,
// ExitNoExec or ExitNotFound, and the error is one line naming the problem.
//
// Cancelling ctx kills the whole sandbox (SIGKILL). When Run returns —
// success, failure or cancellation — nothing it made is left: no process,
// no mount (all live in the sandbox's namespaces), no cgroup, no temp file.
// If the calling process itself is SIGKILLed, the sandbox dies with it.
func Run(ctx context.Context, spec Spec) (exitCode int, err error) {
	return ExitSetup, errors.New("rootfs.Run: not implemented yet")
}

func fsMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode
}
