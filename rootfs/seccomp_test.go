package rootfs

import (
	"testing"

	"golang.org/x/sys/unix"
)

// runBPF interprets the subset of classic BPF seccompFilter emits over a
// seccomp_data of (nr, arch, arg0).
func runBPF(t *testing.T, prog []unix.SockFilter, nr, arch, arg0 uint32) uint32 {
	t.Helper()
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case bpfLdW:
			switch in.K {
			case offNr:
				acc = nr
			case offArch:
				acc = arch
			case offArg0:
				acc = arg0
			default:
				t.Fatalf("load of offset %d", in.K)
			}
		case bpfJeq, bpfJge, bpfJset:
			var ok bool
			switch in.Code {
			case bpfJeq:
				ok = acc == in.K
			case bpfJge:
				ok = acc >= in.K
			default:
				ok = acc&in.K != 0
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfRet:
			return in.K
		default:
			t.Fatalf("instruction %#x", in.Code)
		}
	}
	t.Fatal("fell off the end of the program")
	return 0
}

func TestSeccompFilter(t *testing.T) {
	prog, err := seccompFilter(seccompTables)
	if err != nil {
		t.Fatal(err)
	}
	const (
		allow  = unix.SECCOMP_RET_ALLOW
		eperm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		enosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
		x86    = unix.AUDIT_ARCH_X86_64
		i386   = unix.AUDIT_ARCH_I386
	)
	tests := []struct {
		name           string
		arch, nr, arg0 uint32
		want           uint32
	}{
		{"read", x86, 0, 0, allow},
		{"execve", x86, 59, 0, allow},
		{"clone thread", x86, 56, unix.CLONE_VM | unix.CLONE_THREAD, allow},
		{"clone newuser", x86, 56, unix.CLONE_NEWUSER | unix.CLONE_NEWNS, eperm},
		{"unshare newns", x86, 272, unix.CLONE_NEWNS, allow},
		{"unshare newuser", x86, 272, unix.CLONE_NEWUSER, eperm},
		{"clone3", x86, 435, 0, enosys},
		{"keyctl", x86, 250, 0, eperm},
		{"add_key", x86, 248, 0, eperm},
		{"bpf", x86, 321, 0, eperm},
		{"perf_event_open", x86, 298, 0, eperm},
		{"userfaultfd", x86, 323, 0, eperm},
		{"io_uring_setup", x86, 425, 0, eperm},
		{"init_module", x86, 175, 0, eperm},
		{"x32 read", x86, x32SyscallBit, 0, enosys},
		{"i386 read", i386, 3, 0, allow},
		{"i386 keyctl", i386, 288, 0, eperm},
		{"i386 unshare newuser", i386, 310, unix.CLONE_NEWUSER, eperm},
		{"i386 clone plain", i386, 120, 0, allow},
		{"i386 fork", i386, 2, 0, allow},
		{"other arch", 0xdeadbeef, 0, 0, enosys},
	}
	for _, tt := range tests {
		if got := runBPF(t, prog, tt.nr, tt.arch, tt.arg0); got != tt.want {
			t.Errorf("%s: %#x, want %#x", tt.name, got, tt.want)
		}
	}
	// The x86-64 numbers are the ones unix uses on this architecture.
	if seccompSupported {
		for nr, name := range map[uint32]string{unix.SYS_KEYCTL: "keyctl", unix.SYS_UNSHARE: "unshare", unix.SYS_CLONE: "clone", unix.SYS_BPF: "bpf", unix.SYS_USERFAULTFD: "userfaultfd", unix.SYS_PERF_EVENT_OPEN: "perf_event_open", unix.SYS_IO_URING_SETUP: "io_uring_setup", unix.SYS_OPEN_BY_HANDLE_AT: "open_by_handle_at", unix.SYS_KEXEC_FILE_LOAD: "kexec_file_load"} {
			found := false
			for _, n := range append(seccompTables[0].denied, seccompTables[0].newUser...) {
				found = found || n == nr
			}
			if !found {
				t.Errorf("%s (%d) missing from the x86-64 table", name, nr)
			}
		}
	}
}
