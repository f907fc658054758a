//go:build linux && cgo

package rootfs

/*
extern int strata_prestart_pid;
extern int strata_prestart_pidfd;
extern int strata_prestart_conn;
extern int strata_prestart_status;
extern int strata_prestart_newnet;
extern int strata_prestart_mode(int argc, char **argv);
#include <stdlib.h>
*/
import "C"

import (
	"sync"
	"unsafe"
)

var prestartOnce sync.Once

// takePrestarted returns the init prestart.c started for this `strata run`
// (at most once per process), or ok false.
func takePrestarted() (p prestarted, ok bool) {
	prestartOnce.Do(func() {
		if C.strata_prestart_pid > 0 {
			p = prestarted{
				pid:    int(C.strata_prestart_pid),
				pidfd:  int(C.strata_prestart_pidfd),
				conn:   int(C.strata_prestart_conn),
				status: int(C.strata_prestart_status),
				newNet: C.strata_prestart_newnet != 0,
			}
			ok = true
		}
	})
	return p, ok
}

// prestartMode is prestart.c's reading of a command line (argv, program
// name first): 0 no prestart, 1 a run with a new network namespace, 2 with
// the host's.
func prestartMode(argv []string) int {
	cargs := make([]*C.char, len(argv)+1)
	for i, a := range argv {
		cargs[i] = C.CString(a)
		defer C.free(unsafe.Pointer(cargs[i]))
	}
	return int(C.strata_prestart_mode(C.int(len(argv)), &cargs[0]))
}
