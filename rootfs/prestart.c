//go:build linux && cgo

// Prestart: `strata run` starts the container's init before the Go runtime
// of strata itself starts (this constructor runs first, in a process that is
// still single-threaded), so that init's own start-up — a re-exec of this
// binary, some milliseconds — overlaps strata's instead of following it.
// rootfs.Start adopts the init when its network mode matches (see
// prestart.go); otherwise it kills it. runc's nsexec runs the same way.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int strata_prestart_pid = -1;
int strata_prestart_pidfd = -1;
int strata_prestart_conn = -1;
int strata_prestart_status = -1;
int strata_prestart_newnet = 0;

#define SCRATCH "/run/strata-sandbox"

// prestart_mode returns 1 for `strata [--root DIR] [--debug] run ...` that
// wants a new network namespace, 2 for one with --network host, 0 when the
// command is not a foreground run (or cannot be told from here).
int strata_prestart_mode(int argc, char **argv) {
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--root") == 0) {
			i++;
		} else if (strncmp(argv[i], "--root=", 7) != 0 && strcmp(argv[i], "--debug") != 0) {
			return 0;
		}
	}
	if (i >= argc || strcmp(argv[i], "run") != 0) {
		return 0;
	}
	int mode = 1;
	for (i++; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-d") == 0 || strcmp(a, "--detach") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			return 0;
		}
		if (strcmp(a, "--network") == 0 && i + 1 < argc) {
			a = argv[++i];
			mode = strcmp(a, "host") == 0 ? 2 : 1;
		} else if (strncmp(a, "--network=", 10) == 0) {
			mode = strcmp(a + 10, "host") == 0 ? 2 : 1;
		}
	}
	return mode;
}

static int cpu_count(void) {
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0) {
		return 1;
	}
	int n = CPU_COUNT(&set);
	return n > 0 ? n : 1;
}

__attribute__((constructor)) static void strata_prestart(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 2 || geteuid() != 0) {
		return;
	}
	int mode = strata_prestart_mode(argc, argv);
	if (mode == 0) {
		return;
	}
	if (mkdir(SCRATCH, 0700) != 0 && errno != EEXIST) {
		return;
	}
	int sp[2], st[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
		return;
	}
	if (pipe2(st, O_CLOEXEC) != 0) {
		close(sp[0]);
		close(sp[1]);
		return;
	}
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0) {
		goto fail;
	}
	if (sp[0] < 3 || sp[1] < 3 || st[0] < 3 || st[1] < 3 || null < 3) {
		// strata started without its stdio: the child's dup3s onto 0-2
		// would clobber these; leave the start to rootfs.Start.
		close(null);
		goto fail;
	}
	char envInit[64 + sizeof(SCRATCH)], envProcs[32];
	snprintf(envInit, sizeof envInit, "_STRATA_SANDBOX_INIT=%s:%s", mode == 1 ? "newnet" : "hostnet", SCRATCH);
	snprintf(envProcs, sizeof envProcs, "GOMAXPROCS=%d", cpu_count());
	char *env[4] = {envInit, envProcs, NULL, NULL};
	const char *trace = getenv("STRATA_SANDBOX_TRACE");
	if (trace != NULL && trace[0] != '\0') {
		env[2] = "STRATA_SANDBOX_TRACE=1";
	}
	char *args[] = {"strata-init", NULL};
	int pidfd = -1;
	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_PIDFD;
	if (mode == 1) {
		ca.flags |= CLONE_NEWNET;
	}
	ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
	ca.exit_signal = SIGCHLD;
	long pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid < 0) {
		close(null);
		goto fail;
	}
	if (pid == 0) {
		// The child: init's descriptors are /dev/null for 0-2 (until Run
		// passes the process's own), the config socket 3 and the status
		// pipe 4; it dies with strata.
		// (Should strata die before this, the config socket's EOF ends init.)
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
			_exit(125);
		}
		if (dup3(null, 0, 0) < 0 || dup3(null, 1, 0) < 0 || dup3(null, 2, 0) < 0 ||
		    dup3(sp[1], 3, 0) < 0 || dup3(st[1], 4, 0) < 0) {
			_exit(125);
		}
		execve("/proc/self/exe", args, env);
		_exit(125);
	}
	close(null);
	close(sp[1]);
	close(st[1]);
	// As Start makes them: the config socket blocking (Run reads the
	// terminal's master from it with recvmsg), the status pipe non-blocking
	// (read through Go's poller).
	fcntl(st[0], F_SETFL, fcntl(st[0], F_GETFL) | O_NONBLOCK);
	strata_prestart_pid = (int)pid;
	strata_prestart_pidfd = pidfd;
	strata_prestart_conn = sp[0];
	strata_prestart_status = st[0];
	strata_prestart_newnet = mode == 1;
	return;
fail:
	close(sp[0]);
	close(sp[1]);
	close(st[0]);
	close(st[1]);
}
