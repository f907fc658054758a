//go:build !(linux && cgo)

package rootfs

// takePrestarted: without cgo there is no prestart (prestart.c).
func takePrestarted() (prestarted, bool) { return prestarted{}, false }
