package rootfs

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The sandbox re-executes the strata binary (/proc/self/exe) as the
// container's init with this variable set and argv[0] initArg0; the init
// reads its initConfig as JSON from fd configFD and reports a failure to
// start the process as one "CODE MESSAGE" line on fd statusFD.
const (
	initEnv  = "_STRATA_SANDBOX_INIT"
	initArg0 = "strata-init"
	configFD = 3
	statusFD = 4
)

// initConfig is what Run hands to init: the Spec without its streams, plus
// what Run decided on the host side.
type initConfig struct {
	Rootfs     []Mount `json:",omitempty"`
	RootfsDir  string  `json:",omitempty"`
	ReadOnly   bool    `json:",omitempty"`
	Args       []string
	Env        []string `json:",omitempty"`
	WorkingDir string   `json:",omitempty"`
	User       string   `json:",omitempty"`
	Hostname   string
	NewNet     bool    `json:",omitempty"`
	Hosts      []byte  `json:",omitempty"`
	ResolvConf []byte  `json:",omitempty"`
	Binds      []Bind  `json:",omitempty"`
	Tmpfs      []Tmpfs `json:",omitempty"`
	TTY        bool    `json:",omitempty"`
	// Console is the host path of the pty slave, bound on /dev/console.
	Console string `json:",omitempty"`
	// Scratch is an empty host directory on which init mounts its private
	// tmpfs (the container root's mount point and the /etc files).
	Scratch string
}

// IsInit reports whether this process was started by the sandbox as a
// container's init (the strata binary re-executed inside new namespaces).
// Call it first thing in main (and in TestMain of tests that call Run).
func IsInit() bool {
	return len(os.Args) > 0 && os.Args[0] == initArg0 && os.Getenv(initEnv) == "1"
}

// InitMain runs the container init and exits the process; it never returns.
func InitMain() {
	// Capabilities, the bounding set and fork are per thread: everything
	// below runs on this one.
	runtime.LockOSThread()
	tr("init start")
	// ps shows PID 1 as strata-init rather than "exe" (/proc/self/exe).
	name := []byte(initArg0 + "\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
	code, err := initMain()
	if err != nil {
		status := os.NewFile(statusFD, "status")
		fmt.Fprintf(status, "%d %s\n", code, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	os.Exit(code)
}

func initMain() (int, error) {
	syscall.CloseOnExec(statusFD)
	sigs, sigsReady := notifySignals()
	f := os.NewFile(configFD, "config")
	var cfg initConfig
	err := json.NewDecoder(f).Decode(&cfg)
	f.Close()
	if err != nil {
		return ExitSetup, fmt.Errorf("sandbox: reading the init config: %w", err)
	}
	tr("config read")
	if err := setupRoot(&cfg); err != nil {
		return ExitSetup, fmt.Errorf("sandbox: %w", err)
	}
	tr("root set up")
	p, code, err := prepareProcess(&cfg)
	if err != nil {
		return code, err
	}
	if err := dropCaps(DefaultCaps); err != nil {
		return ExitSetup, fmt.Errorf("sandbox: %w", err)
	}
	tr("caps dropped")
	unix.Umask(0o022)
	<-sigsReady
	tr("sigs ready")
	return supervise(p, sigs)
}
