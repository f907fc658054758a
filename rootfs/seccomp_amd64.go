package rootfs

// The seccomp tables are x86-64's.
const seccompSupported = true
