// Package rootfs is the sandbox a container's process runs in: namespaces, pivot_root, /proc /dev /sys, capabilities, PID-1 init and cgroups.
package rootfs
