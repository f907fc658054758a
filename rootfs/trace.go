package rootfs

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// traceEnv, when set, makes Run and init print a timestamped line at each
// step of a sandbox's start to stderr: how startup time is measured.
const traceEnv = "STRATA_SANDBOX_TRACE"

var (
	traceOn = os.Getenv(traceEnv) != ""
	// traceBuf holds init's lines until its stderr is the process's.
	traceBuf *strings.Builder
)

func tr(what string) {
	if !traceOn {
		return
	}
	now := time.Now()
	line := fmt.Sprintf("trace %d.%06d pid %d: %s\n", now.Unix()%100, now.Nanosecond()/1000, os.Getpid(), what)
	if traceBuf != nil {
		traceBuf.WriteString(line)
		return
	}
	os.Stderr.WriteString(line)
}

// traceFlush prints what init traced before it had a stderr.
func traceFlush() {
	if traceBuf != nil {
		os.Stderr.WriteString(traceBuf.String())
		traceBuf = nil
	}
}

// Trace prints a timestamped line when STRATA_SANDBOX_TRACE is set: for
// callers timing their own steps around a sandbox's start.
func Trace(what string) { tr(what) }
