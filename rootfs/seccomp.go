package rootfs

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A seccomp filter closes, as docker's default profile does, the kernel
// interfaces a container has no business with and that no capability
// guards: creating user namespaces (where a process gets every capability
// back, and with it the kernel's whole namespaced attack surface), the
// kernel keyring (not namespaced), userfaultfd, bpf, perf events and
// io_uring. clone3 answers ENOSYS so that libc falls back to clone, whose
// flags a filter can see. Calls that need a capability outside
// DefaultCaps (module loading, kexec, open_by_handle_at, ...) are denied
// too, for depth. Blocked calls fail with EPERM; everything else is allowed.
//
// The tables are x86-64's, with its i386 entry point (int 0x80 from a
// 64-bit process must not be a way around the filter); x32 calls are
// refused. On other architectures no filter is installed.

// syscallTable is one audit architecture's numbers.
type syscallTable struct {
	arch    uint32
	denied  []uint32 // EPERM
	newUser []uint32 // EPERM when arg0 has CLONE_NEWUSER (clone, unshare)
	clone3  uint32   // ENOSYS
}

var seccompTables = []syscallTable{
	{
		arch: unix.AUDIT_ARCH_X86_64,
		// keyctl add_key request_key userfaultfd bpf perf_event_open
		// io_uring_setup/enter/register kexec_load kexec_file_load
		// open_by_handle_at init_module finit_module delete_module
		denied:  []uint32{250, 248, 249, 323, 321, 298, 425, 426, 427, 246, 320, 304, 175, 313, 176},
		newUser: []uint32{56, 272}, // clone unshare
		clone3:  435,
	},
	{
		arch:    unix.AUDIT_ARCH_I386,
		denied:  []uint32{288, 286, 287, 374, 357, 336, 425, 426, 427, 283, 342, 128, 350, 129},
		newUser: []uint32{120, 310},
		clone3:  435,
	},
}

const x32SyscallBit = 0x40000000

// bpfProg assembles a classic BPF program with forward jumps to labels.
type bpfProg struct {
	insns  []unix.SockFilter
	labels map[string]int
	fixups []fixup
}

type fixup struct {
	at     int
	jt, jf string // label names ("" = next instruction)
}

func (p *bpfProg) stmt(code uint16, k uint32) {
	p.insns = append(p.insns, unix.SockFilter{Code: code, K: k})
}

// jump adds a conditional jump to labels jt (true) and jf (false).
func (p *bpfProg) jump(code uint16, k uint32, jt, jf string) {
	p.fixups = append(p.fixups, fixup{at: len(p.insns), jt: jt, jf: jf})
	p.insns = append(p.insns, unix.SockFilter{Code: code, K: k})
}

func (p *bpfProg) label(name string) {
	if p.labels == nil {
		p.labels = map[string]int{}
	}
	p.labels[name] = len(p.insns)
}

func (p *bpfProg) resolve() ([]unix.SockFilter, error) {
	off := func(from int, name string) (uint8, error) {
		if name == "" {
			return 0, nil
		}
		to, ok := p.labels[name]
		d := to - from - 1
		if !ok || d < 0 || d > 255 {
			return 0, fmt.Errorf("seccomp filter: bad jump to %q", name)
		}
		return uint8(d), nil
	}
	for _, f := range p.fixups {
		jt, err := off(f.at, f.jt)
		if err != nil {
			return nil, err
		}
		jf, err := off(f.at, f.jf)
		if err != nil {
			return nil, err
		}
		p.insns[f.at].Jt, p.insns[f.at].Jf = jt, jf
	}
	return p.insns, nil
}

const (
	bpfLdW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfJset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfRet  = unix.BPF_RET | unix.BPF_K

	// Offsets in struct seccomp_data.
	offNr   = 0
	offArch = 4
	offArg0 = 16 // low 32 bits on little-endian
)

// seccompFilter builds the filter from tables.
func seccompFilter(tables []syscallTable) ([]unix.SockFilter, error) {
	var p bpfProg
	p.stmt(bpfLdW, offArch)
	for i, t := range tables {
		p.jump(bpfJeq, t.arch, fmt.Sprintf("arch%d", i), "")
	}
	p.stmt(bpfRet, unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS)) // an ABI we do not know
	for i, t := range tables {
		p.label(fmt.Sprintf("arch%d", i))
		p.stmt(bpfLdW, offNr)
		if t.arch == unix.AUDIT_ARCH_X86_64 {
			p.jump(bpfJge, x32SyscallBit, "enosys", "")
		}
		for _, nr := range t.denied {
			p.jump(bpfJeq, nr, "eperm", "")
		}
		p.jump(bpfJeq, t.clone3, "enosys", "")
		for _, nr := range t.newUser {
			p.jump(bpfJeq, nr, "newuser", "")
		}
		p.stmt(bpfRet, unix.SECCOMP_RET_ALLOW)
	}
	p.label("newuser")
	p.stmt(bpfLdW, offArg0)
	p.jump(bpfJset, unix.CLONE_NEWUSER, "eperm", "")
	p.stmt(bpfRet, unix.SECCOMP_RET_ALLOW)
	p.label("eperm")
	p.stmt(bpfRet, unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM))
	p.label("enosys")
	p.stmt(bpfRet, unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS))
	return p.resolve()
}

// installSeccomp installs the filter on the calling thread (inherited by
// the processes it forks). It needs CAP_SYS_ADMIN or no_new_privs, and a
// locked OS thread.
func installSeccomp() error {
	if !seccompSupported {
		return nil
	}
	insns, err := seccompFilter(seccompTables)
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(insns)), Filter: &insns[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		return fmt.Errorf("installing the seccomp filter: %w", err)
	}
	return nil
}
