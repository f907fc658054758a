package rootfs

// IsInit reports whether this process was started by the sandbox as a
// container's init (the strata binary re-executed inside new namespaces).
func IsInit() bool { return false }

// InitMain runs the container init and exits the process; it never returns.
func InitMain() {}
