package rootfs

import (
	"fmt"
	"os"
	"time"
)

// traceEnv, when set, makes Run and init print a timestamped line at each
// step of a sandbox's start to stderr: how startup time is measured.
const traceEnv = "STRATA_SANDBOX_TRACE"

var traceOn = os.Getenv(traceEnv) != ""

func tr(what string) {
	if traceOn {
		fmt.Fprintf(os.Stderr, "trace %d.%06d pid %d: %s\n", time.Now().Unix()%100, time.Now().Nanosecond()/1000, os.Getpid(), what)
	}
}
