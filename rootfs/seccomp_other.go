//go:build !amd64

package rootfs

// The seccomp tables are x86-64's: elsewhere no filter is installed.
const seccompSupported = false
