/* libtsrun.so: the few things tsrun's multithreaded Bun process cannot do safely through plain
 * bun:ffi calls into libc. Above all tsrun_spawn: start the executor (executor.c) without ever
 * running Bun code, or anything that takes a lock, in the child. Errors come back as -errno. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wire.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#define CLOSE_RANGE_CLOEXEC_ (1U << 2)
#define MAX_PRESERVE 1024
#define STACK_SIZE (256 * 1024)

struct spawn {
	int exe_fd;
	int src[3 + MAX_PRESERVE + 2]; /* what becomes fd 0, 1, 2, 3 ... in the child; -1: /dev/null */
	int nfds;
	char *argv[4];
	volatile int err; /* set by the child when it fails (shared memory: CLONE_VM) */
};

/*
 * The child shares the parent's memory (CLONE_VM, like posix_spawn) while the parent thread is
 * suspended (CLONE_VFORK), and has its own stack and its own copies of the fd and signal
 * handler tables. It makes plain syscalls only: no Bun code, no malloc, no lock.
 */
static int child(void *arg)
{
	struct spawn *s = arg;
	int tmp[3 + MAX_PRESERVE + 2], hi = s->nfds, exe;
	/* Every signal is blocked (since before clone); every handler goes back to SIG_DFL before
	 * any is unblocked, so no handler of Bun's can ever run here. A zeroed kernel sigaction is
	 * SIG_DFL, no flags, empty mask. */
	uint64_t dfl[4] = { 0 }, none = 0;
	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, dfl, NULL, 8);
	/* Move every source above all targets and sources first, then dup2 each into place: a
	 * source may sit on another's target. dup2 clears CLOEXEC on the targets. */
	for (int i = 0; i < s->nfds; i++)
		hi = s->src[i] > hi ? s->src[i] : hi;
	hi = s->exe_fd > hi ? s->exe_fd : hi;
	if ((exe = fcntl(s->exe_fd, F_DUPFD_CLOEXEC, hi + 1)) < 0)
		goto fail;
	for (int i = 0; i < s->nfds; i++)
		if ((tmp[i] = s->src[i] >= 0 ? fcntl(s->src[i], F_DUPFD_CLOEXEC, hi + 1)
					     : (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC)) < 0)
			goto fail;
	for (int i = 0; i < s->nfds; i++)
		if (dup2(tmp[i], i) < 0)
			goto fail;
	/* every other fd of tsrun's is closed by execveat (the exe memfd serves until then) */
	if (syscall(SYS_close_range, s->nfds, ~0U, CLOSE_RANGE_CLOEXEC_) < 0)
		goto fail;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, 8);
	char *envp[] = { NULL };
	syscall(SYS_execveat, exe, "", s->argv, envp, AT_EMPTY_PATH);
fail:
	s->err = errno;
	_exit(127);
}

/* Clones the child of struct spawn; its pid, or -errno (the child is reaped then). */
static int start(struct spawn *sp)
{
	uint64_t all = ~0ULL, old;
	char *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -errno;
	/* Block everything, glibc's internal signals too (hence the raw syscall): the child starts
	 * with all blocked and has no chance to run a handler before it resets them. */
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);
	pid_t pid = clone(child, stack + STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, sp);
	int err = errno;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
	munmap(stack, STACK_SIZE);
	if (pid < 0)
		return -err;
	if (sp->err) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return -sp->err;
	}
	return pid;
}

/*
 * Starts the executor from the memfd exe_fd with fds: 0-2 = stdio[0..2] (-1: /dev/null),
 * 3..3+n-1 = preserve[0..n-1], then the plan fd and the sync socket (their numbers go in
 * argv). Returns the child's pid, or -errno (the child is reaped then).
 */
int tsrun_spawn(int exe_fd, int plan_fd, int sync_fd, const int *stdio, const int *preserve, int npreserve)
{
	struct spawn s = { .exe_fd = exe_fd, .nfds = 5 + npreserve };
	char plan_arg[16], sync_arg[16];
	if (npreserve < 0 || npreserve > MAX_PRESERVE)
		return -EINVAL;
	for (int i = 0; i < 3; i++)
		s.src[i] = stdio ? stdio[i] : i;
	for (int i = 0; i < npreserve; i++)
		s.src[3 + i] = preserve[i];
	s.src[3 + npreserve] = plan_fd;
	s.src[4 + npreserve] = sync_fd;
	snprintf(plan_arg, sizeof plan_arg, "%d", 3 + npreserve);
	snprintf(sync_arg, sizeof sync_arg, "%d", 4 + npreserve);
	s.argv[0] = "tsrun-exec", s.argv[1] = plan_arg, s.argv[2] = sync_arg, s.argv[3] = NULL;
	return start(&s);
}

/* The wire version this library was built with, checked against a plan before a spawn. */
unsigned int tsrun_wire_version(void)
{
	return PLAN_VERSION;
}
