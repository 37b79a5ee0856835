/* tsrun-exec: carries out an InitPlan (src/plan/ops.ts), one op after the other.
 *
 * tsrun (through libtsrun.so) execs this static binary from a sealed memfd, so a container's
 * init is never the tsrun binary: /proc/<pid>/exe is a read-only memfd (CVE-2019-5736).
 * TypeScript decides everything; this file only executes, and reports where it failed.
 *
 *   argv: tsrun-exec <plan fd> <sync fd>      fds 0-2 and the preserved fds are the container's
 *
 *   tsrun                                  stage 1 (this binary)          stage 2
 *     | spawn (clone, execveat memfd)  ->    |
 *     |                                      | ops: stage, setns, unshare ...
 *     | <------------------- SYNC(code) ---- |
 *     | (uid_map, cgroups, hooks ...)        |
 *     | ---- answer: status byte ----------> |
 *     |                                      | fork: clone(CLONE_PARENT|flags) ---> |  waits for
 *     | <------------------- PID(pid) ------ |                                      |  stage 1 to
 *     |                                      X exit 0 (tsrun reaps it)             |  exit (gate)
 *     | <----------------------------------- SYNC / FD(console, SCM_RIGHTS) ------ |
 *     | <----------------------------------- EXEC ------------------------------- |
 *     | EOF: the sync fd is CLOEXEC, so EOF after EXEC means execve succeeded;     | execve
 *     | ERROR(op index, errno, text) after it means execve failed.                  |
 *     | Any failure: ERROR(op index, errno, what/path), then exit 1.
 *
 * Message layouts are in wire.h. The executor never writes to the container's stdio. Stage 1
 * and 2 are single-threaded, so libc is safe here; still nothing is malloc'ed: strings point
 * into the mmapped plan, arrays live on the stack.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#ifndef MOUNT_ATTR_IDMAP /* musl: the new mount API lives only in the kernel headers */
#include <linux/mount.h>
#endif
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "wire.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the plan is little endian and decoded with memcpy"
#endif

struct mount_attr_ { uint64_t attr_set, attr_clr, propagation, userns_fd; };
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#define CLOSE_RANGE_CLOEXEC_ (1U << 2)
#define PROC_SUPER_MAGIC_ 0x9fa0
#define PROC_ROOT_INO 1

#define PROPAGATION (MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE)
/* Per-mount flags a bind mount only takes on a second, MS_REMOUNT|MS_BIND pass. */
#define BIND_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | \
		    MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW)
/* Flags the kernel locks on mounts inherited into a user namespace; statfs reports them. */
#define LOCKED_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME)

static int sync_fd = -1;
static int root_fd = -1;      /* setRoot: inRoot paths resolve below it */
static int fifo_fd = -1, fifo_wfd = -1;
static uint32_t cur_op = ERROR_OP_PLAN;
static const char *resolved; /* the program resolveExec found, for exec (in the plan) */

/* ---------------------------------------------------------------- messages to tsrun */

static void send_msg(uint32_t type, const void *body, size_t len, int fd)
{
	unsigned char buf[MSG_MAX];
	union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } ctl = { 0 };
	len = len > sizeof buf - 4 ? sizeof buf - 4 : len;
	memcpy(buf, &type, 4);
	memcpy(buf + 4, body, len);
	struct iovec iov = { buf, 4 + len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		mh.msg_control = ctl.b;
		mh.msg_controllen = sizeof ctl.b;
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	/* after waitFifo `tsrun create` is gone and `tsrun start` reads the exec fifo: it gets the
	 * error there (the fifo's "0" byte never starts a message: types are small numbers) */
	if (type == MSG_ERROR && fifo_wfd >= 0)
		(void)!write(fifo_wfd, buf, 4 + len);
	/* nothing to do if tsrun is gone: the next sync or the exit tells the story */
	while (sendmsg(sync_fd, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

/* Reports the failing op (its index, errno and what failed) and exits. */
static __attribute__((noreturn, format(printf, 2, 3))) void fail(int err, const char *fmt, ...)
{
	char body[MSG_MAX - 4];
	int32_t e = err;
	va_list ap;
	memcpy(body, &cur_op, 4);
	memcpy(body + 4, &e, 4);
	va_start(ap, fmt);
	vsnprintf(body + 8, sizeof body - 8, fmt, ap);
	va_end(ap);
	send_msg(MSG_ERROR, body, 8 + strlen(body + 8) + 1, -1);
	_exit(1);
}

/* A call that returns < 0 and sets errno on failure; reports what failed. */
#define TRY(call, ...) do { if ((call) < 0) fail(errno, __VA_ARGS__); } while (0)

static void send_fd(uint32_t kind, int fd, const char *text)
{
	char body[64] = { 0 };
	memcpy(body, &kind, 4);
	snprintf(body + 4, sizeof body - 4, "%s", text);
	send_msg(MSG_FD, body, 4 + strlen(body + 4) + 1, fd);
}

/* ---------------------------------------------------------------- plan decoding */

static const char *const op_format[OP_LAST + 1] = {
#define OP_FORMAT(name, code, format) [code] = format,
	OPS(OP_FORMAT)
};

struct cursor { const unsigned char *p, *end; };
struct strv { uint32_t n; const unsigned char *enc; };
/* One decoded op: fields land in these slots in order of appearance, per type. */
struct op {
	const char *s[4];
	uint32_t u[6];
	uint64_t q[6];
	struct strv v[3];
	const unsigned char *b; /* bytes */
	uint32_t nb;            /* byte count */
};

static int take(struct cursor *c, void *out, size_t n)
{
	if ((size_t)(c->end - c->p) < n)
		return -1;
	memcpy(out, c->p, n);
	c->p += n;
	return 0;
}

static int take_str(struct cursor *c, const char **out, int nullable)
{
	uint32_t n;
	if (take(c, &n, 4))
		return -1;
	if (nullable && n == 0xffffffffu)
		return *out = NULL, 0;
	if ((size_t)(c->end - c->p) <= n || c->p[n] != 0 || memchr(c->p, 0, n))
		return -1;
	*out = (const char *)c->p;
	c->p += (size_t)n + 1;
	return 0;
}

static int decode(uint32_t code, struct cursor *c, struct op *o)
{
	int ns = 0, nu = 0, nq = 0, nv = 0;
	uint32_t n;
	const char *x;
	memset(o, 0, sizeof *o);
	if (code == 0 || code > OP_LAST || !op_format[code])
		return -1;
	for (const char *f = op_format[code]; *f; f++) {
		switch (*f) {
		case 's': case 'n':
			if (take_str(c, &o->s[ns++], *f == 'n'))
				return -1;
			break;
		case 'u': if (take(c, &o->u[nu++], 4)) return -1; break;
		case 'x':
			if (take(c, &n, 4) || n > 6u - nq)
				return -1;
			while (n--)
				if (take(c, &o->q[nq++], 8))
					return -1;
			break;
		case 'v':
			if (take(c, &o->v[nv].n, 4))
				return -1;
			o->v[nv].enc = c->p;
			for (uint32_t i = 0; i < o->v[nv].n; i++)
				if (take_str(c, &x, 0))
					return -1;
			nv++;
			break;
		case 'b':
			if (take(c, &o->nb, 4) || (size_t)(c->end - c->p) < o->nb)
				return -1;
			o->b = c->p;
			c->p += o->nb;
			break;
		}
	}
	return c->p == c->end ? 0 : -1;
}

/* Fills out[0..n] (NULL-terminated) with a decoded string array; out has n+1 slots. */
static void strv_fill(const struct strv *v, char **out)
{
	const unsigned char *p = v->enc;
	for (uint32_t i = 0, n; i < v->n; i++, p += 4 + (size_t)n + 1) {
		memcpy(&n, p, 4);
		out[i] = (char *)p + 4;
	}
	out[v->n] = NULL;
}

/* Maps the plan and checks all of it before the first op runs: a bad plan has no side effect. */
static const unsigned char *load_plan(int fd, uint32_t *count)
{
	struct stat st;
	uint32_t h[4];
	TRY(fstat(fd, &st), "plan: fstat fd %d", fd);
	if (st.st_size < 16)
		fail(EINVAL, "plan: %lld bytes, too short", (long long)st.st_size);
	const unsigned char *plan = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (plan == MAP_FAILED)
		fail(errno, "plan: mmap");
	close(fd);
	memcpy(h, plan, 16);
	if (h[0] != PLAN_MAGIC)
		fail(EINVAL, "plan: bad magic %#x", h[0]);
	if (h[1] != PLAN_VERSION)
		fail(EPROTO, "plan: wire version %u, this executor reads version %u", h[1], PLAN_VERSION);
	if (h[3] != (uint64_t)st.st_size)
		fail(EINVAL, "plan: header says %u bytes, got %lld", h[3], (long long)st.st_size);
	struct cursor all = { plan + 16, plan + st.st_size };
	for (uint32_t i = 0, code, len; i < h[2]; i++, all.p += len) {
		struct op o;
		cur_op = i;
		if (take(&all, &code, 4) || take(&all, &len, 4) || (size_t)(all.end - all.p) < len)
			fail(EINVAL, "plan: op %u is truncated", i);
		if (decode(code & ~OP_CONT, &(struct cursor){ all.p, all.p + len }, &o))
			fail(EINVAL, "plan: op %u (code %u) is malformed", i, code);
	}
	cur_op = ERROR_OP_PLAN;
	if (all.p != all.end)
		fail(EINVAL, "plan: trailing bytes after %u ops", h[2]);
	*count = h[2];
	return plan + 16;
}

/* ---------------------------------------------------------------- paths inside the root */

enum { NO_CREATE, MAKE_DIR, MAKE_FILE };

static int openat2_in(const char *path, int flags)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC), .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	int fd, tries = 0;
	if (root_fd < 0)
		fail(EBADF, "%s: an inRoot path before setRoot", path);
	do /* EAGAIN: the kernel saw a concurrent rename and asks to retry */
		fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof how);
	while (fd < 0 && errno == EAGAIN && ++tries < 32);
	return fd;
}

/*
 * Opens `path` inside the root: every symlink, absolute or "..", is resolved as if the root were
 * "/", so nothing can lead out of it (CVE-2021-30465 class). With `create`, missing components
 * are made one by one, each with mkdirat/openat below a parent that was itself resolved inside
 * the root; the last one becomes a directory or an empty file (mode). A dangling symlink on the
 * way is followed by hand: its target, taken as a path inside the root, is made instead.
 */
static int in_root(const char *path, int flags, int create, mode_t mode, int depth)
{
	char buf[PATH_MAX], link[PATH_MAX], redirected[PATH_MAX];
	int fd = openat2_in(path, flags);
	if (fd >= 0 || errno != ENOENT || create == NO_CREATE)
		return fd;
	if (strlen(path) >= sizeof buf)
		return errno = ENAMETOOLONG, -1;
	strcpy(buf, path);
	int dir = openat2_in("/", O_PATH | O_DIRECTORY);
	for (char *comp = buf; dir >= 0;) {
		while (*comp == '/')
			comp++;
		if (!*comp)
			break;
		char *end = strchrnul(comp, '/'), *rest = end, save = *end;
		while (*rest == '/')
			rest++;
		int last = !*rest, kind = O_PATH | (last ? 0 : O_DIRECTORY), r;
		*end = 0;
		int next = openat2_in(buf, kind);
		if (next < 0 && errno == ENOENT) {
			if (last && create == MAKE_FILE) {
				if ((r = openat(dir, comp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, mode)) >= 0)
					close(r);
			} else {
				r = mkdirat(dir, comp, last ? mode : 0755);
			}
			ssize_t n;
			if (r < 0 && errno == EEXIST && (n = readlinkat(dir, comp, link, sizeof link - 1)) > 0) {
				/* a dangling symlink: make what it points to (from its directory, or from the
				 * root when absolute), then the rest of the path */
				link[n] = 0;
				*comp = 0;
				close(dir);
				if (depth >= 40)
					return errno = ELOOP, -1;
				if ((size_t)snprintf(redirected, sizeof redirected, "%s/%s/%s", link[0] == '/' ? "" : buf, link, rest) >= sizeof redirected)
					return errno = ENAMETOOLONG, -1;
				if ((next = in_root(redirected, O_PATH, create, mode, depth + 1)) < 0)
					return -1;
				close(next);
				return openat2_in(path, flags);
			}
			if (r < 0 && errno != EEXIST)
				return close(dir), -1;
			next = openat2_in(buf, kind);
		}
		close(dir);
		dir = next;
		*end = save;
		comp = end;
	}
	if (dir < 0)
		return -1;
	close(dir);
	return openat2_in(path, flags);
}

/* The directory that will hold `path`'s last component (made if missing), and that component. */
static int parent_of(const char *path, int inroot, const char **base)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	*base = slash ? slash + 1 : path;
	if (!**base || !strcmp(*base, ".") || !strcmp(*base, ".."))
		fail(EINVAL, "%s: not a name to create", path);
	if (!inroot)
		return AT_FDCWD;
	if (n >= sizeof dir)
		fail(ENAMETOOLONG, "%s", path);
	memcpy(dir, path, n);
	dir[n] = 0;
	int fd;
	TRY(fd = in_root(n ? dir : "/", O_PATH | O_DIRECTORY, MAKE_DIR, 0755, 0), "resolve %s in the root", n ? dir : "/");
	return fd;
}

/* A mount target: the path itself, or /proc/self/fd/N of the fd resolved inside the root. */
struct target { int fd; const char *name; char proc[40]; };

static const char *target(struct target *t, const char *path, int inroot, int create, mode_t mode)
{
	*t = (struct target){ -1, path, "" };
	if (!inroot)
		return path;
	TRY(t->fd = in_root(path, O_PATH, create, mode, 0), "resolve %s in the root", path);
	/* A path the plan does not place in /proc that lands on procfs went through a symlink (such
	 * as /data -> /proc/sys/net): a mount there would cover the kernel's files the runtime then
	 * writes (CVE-2019-19921 class). tsrun checked the paths it places in /proc itself. */
	struct statfs sf;
	if (strncmp(path, "proc", 4) != 0 || (path[4] && path[4] != '/'))
		if (fstatfs(t->fd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC_)
			fail(EPERM, "/%s resolves to a path inside /proc: mounting there is refused", path);
	snprintf(t->proc, sizeof t->proc, "/proc/self/fd/%d", t->fd);
	return t->proc;
}

/* After a mount the old fd still names the covered mountpoint: resolve again to reach the new
 * mount (for its remount and propagation passes). */
static const char *retarget(struct target *t)
{
	if (t->fd < 0)
		return t->name;
	close(t->fd);
	return target(t, t->name, 1, NO_CREATE, 0);
}

static void reopen_root(const char *path)
{
	int fd;
	TRY(fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC), "reopen the root %s", path);
	dup3(fd, root_fd, O_CLOEXEC);
	close(fd);
}

/* ---------------------------------------------------------------- mounts */

/* MS_REMOUNT|MS_BIND with `flags` plus what the mount already has of `keep`; when the kernel
 * refuses (flags locked in a user namespace), again with the locked flags kept. */
static int remount_bind(const char *tp, unsigned long flags, unsigned long keep)
{
	struct statfs sf;
	unsigned long have = statfs(tp, &sf) == 0 ? (unsigned long)sf.f_flags : 0;
	flags |= MS_REMOUNT | MS_BIND | (have & keep);
	if (mount(NULL, tp, NULL, flags, NULL) == 0)
		return 0;
	if (errno != EPERM || (flags | (have & LOCKED_FLAGS)) == flags)
		return -1;
	return mount(NULL, tp, NULL, flags | (have & LOCKED_FLAGS), NULL);
}

/* proc and sysfs go only on a directory reached without any symlink, as runc requires: a
 * symlink would choose where in the rootfs the kernel's own files appear. The mount then goes
 * through the fd checked here, not through a second resolution. */
static const char *ordinary_dir(struct target *t, const char *fstype)
{
	struct open_how how = { O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS };
	int fd = (int)syscall(SYS_openat2, root_fd, t->name, &how, sizeof how);
	if (fd < 0)
		fail(errno, "filesystem \"%s\" must be mounted on ordinary directory: /%s is %s", fstype, t->name,
		     errno == ELOOP ? "a symlink or below one" : errno == ENOTDIR ? "not a directory" : "unreachable");
	dup3(fd, t->fd, O_CLOEXEC);
	close(fd);
	return t->proc;
}

static void op_mount(const struct op *o)
{
	const char *src = o->s[0], *dst = o->s[1], *fstype = o->s[2], *data = o->s[3];
	unsigned long flags = o->u[0], prop = flags & PROPAGATION, base = flags & ~PROPAGATION;
	int inroot = o->u[1], file = o->u[2];
	struct target t;
	const char *tp = target(&t, dst, inroot, file ? MAKE_FILE : MAKE_DIR, file ? 0644 : 0755);
	if (inroot && fstype && (!strcmp(fstype, "proc") || !strcmp(fstype, "sysfs")))
		tp = ordinary_dir(&t, fstype);

	if (prop && !(base & ~MS_REC)) { /* a propagation change alone, such as "/" rslave */
		TRY(mount(NULL, tp, NULL, flags, NULL), "mount: set propagation %#lx on %s", prop, dst);
	} else if ((base & MS_BIND) && !(base & MS_REMOUNT)) {
		TRY(mount(src, tp, fstype, MS_BIND | (base & MS_REC), data), "mount: bind %s on %s", src ? src : "", dst);
		/* a new bind mount ignores ro, nosuid ...: they take a remount */
		if (base & BIND_FLAGS)
			TRY(remount_bind(tp = retarget(&t), base & BIND_FLAGS, 0), "mount: remount bind %s with %#lx", dst, base & BIND_FLAGS);
	} else {
		TRY(mount(src, tp, fstype, base, data), "mount: %s (%s) on %s", src ? src : "none", fstype ? fstype : "", dst);
	}
	if (prop && (base & ~MS_REC))
		TRY(mount(NULL, tp = retarget(&t), NULL, prop | (base & MS_REC), NULL), "mount: set propagation %#lx on %s", prop, dst);
	if (t.fd >= 0)
		close(t.fd);
}

static void op_mount_setattr(const struct op *o)
{
	struct mount_attr_ attr = { o->u[0], o->u[1], o->u[2], 0 };
	struct target t;
	const char *tp = target(&t, o->s[0], o->u[4], NO_CREATE, 0);
	int fd = t.fd;
	if (fd < 0)
		TRY(fd = open(tp, O_PATH | O_CLOEXEC), "mount_setattr: open %s", tp);
	TRY(syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (o->u[3] ? AT_RECURSIVE : 0), &attr, sizeof attr), "mount_setattr %s", o->s[0]);
	close(fd);
}

/*
 * An idmapped bind mount: a detached copy of the source tree (open_tree), given the user
 * namespace's mapping and the flags (mount_setattr), then moved onto the target in the root.
 */
/* Mounts a detached tree (open_tree) on dst and closes it. */
static void attach_tree(int tree, const char *what, const char *dst, int inroot, int file)
{
	struct target t;
	const char *tp = target(&t, dst, inroot, file ? MAKE_FILE : MAKE_DIR, file ? 0644 : 0755);
	if (t.fd >= 0)
		TRY(syscall(SYS_move_mount, tree, "", t.fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH), "move_mount %s onto %s", what, dst);
	else
		TRY(syscall(SYS_move_mount, tree, "", AT_FDCWD, tp, MOVE_MOUNT_F_EMPTY_PATH), "move_mount %s onto %s", what, dst);
	close(tree);
	if (t.fd >= 0)
		close(t.fd);
}

static void op_idmap_mount(const struct op *o)
{
	const char *src = o->s[0];
	unsigned int rec = o->u[1] ? AT_RECURSIVE : 0;
	struct mount_attr_ attr = { MOUNT_ATTR_IDMAP | o->u[2], 0, 0, o->u[0] };
	int tree;
	TRY(tree = (int)syscall(SYS_open_tree, AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec), "open_tree %s", src);
	TRY(syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | rec, &attr, sizeof attr), "mount_setattr idmap %s", src);
	attach_tree(tree, src, o->s[1], o->u[3], o->u[4]);
}

/* A bind source cloned (open_tree) before the user namespace is entered, as fd `fd` for a later
 * mountTree: a source the container's root may not reach still mounts, as with runc. */
static void op_open_tree(const char *path, uint32_t fd, uint32_t recursive)
{
	int f;
	TRY(f = (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0)), "open_tree %s", path);
	if (f != (int)fd) {
		TRY(dup3(f, (int)fd, O_CLOEXEC), "open_tree %s as fd %u", path, fd);
		close(f);
	}
}

static void op_mount_tree(const struct op *o)
{
	struct mount_attr_ attr = { o->u[1], 0, 0, 0 };
	char what[24];
	snprintf(what, sizeof what, "fd %u", o->u[0]);
	if (o->u[1])
		TRY(syscall(SYS_mount_setattr, (int)o->u[0], "", AT_EMPTY_PATH | (o->u[2] ? AT_RECURSIVE : 0), &attr, sizeof attr), "mount_setattr %s", what);
	attach_tree((int)o->u[0], what, o->s[0], o->u[3], o->u[4]);
}

static void op_pivot_root(const char *path)
{
	int oldroot, newroot;
	TRY(oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC), "pivot_root: open /");
	TRY(newroot = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC), "pivot_root: open %s", path);
	TRY(fchdir(newroot), "pivot_root: chdir %s", path);
	TRY(syscall(SYS_pivot_root, ".", "."), "pivot_root %s", path);
	/* The old root now sits on top of the new one. Make it a slave before detaching it, so that
	 * the unmount cannot propagate to the host even if the old root was shared. */
	TRY(fchdir(oldroot), "pivot_root: chdir to the old root");
	TRY(mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL), "pivot_root: make the old root rslave");
	TRY(umount2(".", MNT_DETACH), "pivot_root: detach the old root");
	TRY(chdir("/"), "chdir /");
	close(oldroot);
	close(newroot);
	if (root_fd >= 0)
		reopen_root("/");
}

/*
 * --no-pivot: a host proc or sysfs mount left in the container's mount namespace (under its
 * root) would let a nested user namespace mount a fresh, unmasked one. Detach it (made a slave
 * first, so that the unmount cannot reach the host), or cover it with a tmpfs where that is
 * refused (mounts locked by a user namespace). Gone already (under one detached before): fine.
 */
static void op_hide_mount(const char *path)
{
	if (mount(NULL, path, NULL, MS_SLAVE | MS_REC, NULL) < 0) {
		if (errno == ENOENT || errno == EINVAL)
			return;
		fail(errno, "no-pivot: make the host's %s rslave", path);
	}
	if (umount2(path, MNT_DETACH) < 0)
		TRY(mount("tmpfs", path, "tmpfs", 0, NULL), "no-pivot: cover the host's %s", path);
}

static void op_mask_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return;
		fail(errno, "maskPath: stat %s", path);
	}
	if (S_ISDIR(st.st_mode)) {
		TRY(mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0k,mode=0555"), "maskPath %s", path);
		return;
	}
	/* The container's /dev may come from its rootfs: /dev/null -> /proc/timer_list would mask
	 * nothing (CVE-2025-31133). Bind only the null device itself, from the fd checked. */
	int null, tree;
	TRY(null = open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC), "maskPath %s: open /dev/null", path);
	if (fstat(null, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
		fail(EPERM, "maskPath %s: the container's /dev/null is not the null device (char 1:3)", path);
	TRY(tree = (int)syscall(SYS_open_tree, null, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH), "maskPath %s: open_tree /dev/null", path);
	TRY(syscall(SYS_move_mount, tree, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH), "maskPath %s", path);
	close(tree);
	close(null);
}

static void op_readonly_path(const char *path)
{
	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
		if (errno == ENOENT)
			return;
		fail(errno, "readonlyPath: bind %s", path);
	}
	TRY(remount_bind(path, MS_RDONLY, LOCKED_FLAGS), "readonlyPath %s", path);
}

/* ---------------------------------------------------------------- files */

/*
 * Opens a file under /proc so that nothing can stand in for it (CVE-2025-52881 class): /proc
 * must be the root of a procfs, and the walk below it stays beneath it, on that mount (a bind
 * mount over /proc/sys/net is refused, not crossed) and off magic links; only procfs's own
 * symlinks (self) are followed. The file found must be on procfs too.
 */
static int proc_open(const char *path, int flags)
{
	struct statfs sf;
	struct stat st;
	struct open_how how = { (uint64_t)(flags | O_CLOEXEC), 0, RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS };
	int dir, fd = -1;
	if (strncmp(path, "/proc/", 6) != 0)
		return errno = EINVAL, -1;
	if ((dir = open("/proc", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	if (fstatfs(dir, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC_ && fstat(dir, &st) == 0 && st.st_ino == PROC_ROOT_INO)
		fd = (int)syscall(SYS_openat2, dir, path + 6, &how, sizeof how);
	else
		errno = EXDEV;
	close(dir);
	if (fd >= 0 && (fstatfs(fd, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC_))
		return close(fd), errno = EXDEV, -1;
	return fd;
}

static void op_write_file(const struct op *o)
{
	const char *path = o->s[0], *data = o->s[1];
	size_t n = strlen(data);
	int fd;
	TRY(fd = o->u[0] ? in_root(path, O_WRONLY, NO_CREATE, 0, 0) : proc_open(path, O_WRONLY),
	    "open %s%s", path, errno == EXDEV ? ": not the file of a procfs mounted at /proc (a mount or symlink in the way)" : "");
	/* one write: proc and sysfs files take their value in a single call */
	ssize_t w = write(fd, data, n);
	if (w < 0 || (size_t)w != n)
		fail(w < 0 ? errno : EIO, "write %s", path);
	close(fd);
}

static void op_mkdir(const char *path, mode_t mode, int inroot)
{
	int fd;
	if (!inroot) { /* a path after pivot_root: its parents exist */
		if (mkdir(path, mode) < 0 && errno != EEXIST)
			fail(errno, "mkdir %s", path);
		return;
	}
	TRY(fd = in_root(path, O_PATH | O_DIRECTORY, MAKE_DIR, mode, 0), "mkdir %s", path);
	close(fd);
}

static void op_mknod(const struct op *o)
{
	const char *path = o->s[0], *fallback = o->s[1], *name;
	int inroot = o->u[5], dir = parent_of(path, inroot, &name);
	if (mknodat(dir, name, o->u[0], makedev(o->u[1], o->u[2])) == 0) {
		TRY(fchownat(dir, name, o->u[3], o->u[4], AT_SYMLINK_NOFOLLOW), "chown %s", path);
	} else if (errno == EPERM && fallback) {
		/* no mknod in a user namespace: bind the host's node instead */
		struct target t;
		TRY(mount(fallback, target(&t, path, inroot, MAKE_FILE, 0644), NULL, MS_BIND, NULL), "bind %s on %s", fallback, path);
		if (t.fd >= 0)
			close(t.fd);
	} else if (errno != EEXIST) {
		fail(errno, "mknod %s", path);
	}
	if (dir != AT_FDCWD)
		close(dir);
}

static void op_symlink(const char *to, const char *path, int inroot)
{
	const char *name;
	int dir = parent_of(path, inroot, &name);
	if (symlinkat(to, dir, name) < 0 && errno != EEXIST)
		fail(errno, "symlink %s -> %s", path, to);
	if (dir != AT_FDCWD)
		close(dir);
}

/* ---------------------------------------------------------------- seccomp */

static void op_seccomp(const struct op *o)
{
	struct sock_fprog prog = { (unsigned short)(o->nb / 8), (struct sock_filter *)o->b };
	long fd;
	if (o->nb % 8 || o->nb / 8 > 0xffff || !o->nb)
		fail(EINVAL, "seccomp: %u bytes are not a list of sock_filter", o->nb);
	TRY(fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, o->u[0], &prog), "seccomp(SECCOMP_SET_MODE_FILTER, %#x)", o->u[0]);
	if (o->u[0] & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
		send_fd(FD_SECCOMP, (int)fd, "seccomp");
		close((int)fd);
	}
}

/* ---------------------------------------------------------------- terminal, fifo, fds */

static void op_console(uint32_t rows, uint32_t cols, int dev_console, uid_t uid)
{
	char name[32];
	int unlock = 0, n, master, peer;
	TRY(master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC), "open /dev/ptmx");
	TRY(ioctl(master, TIOCSPTLCK, &unlock), "unlock the pty");
	TRY(ioctl(master, TIOCGPTN, &n), "get the pty number");
	snprintf(name, sizeof name, "/dev/pts/%d", n);
	/* TIOCGPTPEER opens the peer through the master: no path lookup to steer */
	if ((peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
		TRY(peer = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC), "open %s", name);
	/* the process owns its terminal; the group stays tty. Like runc, a uid or owner the user
	 * namespace does not map (EINVAL, EPERM) leaves the peer as it is. */
	if (fchown(peer, uid, (gid_t)-1) < 0 && errno != EINVAL && errno != EPERM)
		fail(errno, "chown %s to uid %u", name, uid);
	struct winsize ws = { (unsigned short)rows, (unsigned short)cols, 0, 0 };
	if (rows || cols)
		TRY(ioctl(master, TIOCSWINSZ, &ws), "set the window size of %s", name);
	if (dev_console) { /* programs that write to /dev/console must reach the container's pty */
		struct stat st;
		int tree;
		if ((n = open("/dev/console", O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666)) >= 0)
			close(n);
		else if (errno != EEXIST)
			fail(errno, "create /dev/console");
		/* an existing /dev/console may be a symlink placed by the rootfs (CVE-2025-52565): the
		 * pty goes onto the node opened here without following one, and checked */
		TRY(n = open("/dev/console", O_PATH | O_NOFOLLOW | O_CLOEXEC), "open /dev/console");
		if (fstat(n, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)))
			fail(EPERM, "/dev/console is not a file or a character device (a symlink?): the terminal is not mounted there");
		TRY(tree = (int)syscall(SYS_open_tree, peer, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH), "open_tree %s", name);
		TRY(syscall(SYS_move_mount, tree, "", n, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH), "bind %s on /dev/console", name);
		close(tree);
		close(n);
	}
	send_fd(FD_CONSOLE, master, name);
	close(master);
	if (getsid(0) != getpid())
		TRY(setsid(), "setsid");
	TRY(ioctl(peer, TIOCSCTTY, 0), "make %s the controlling terminal", name);
	for (int i = 0; i < 3; i++)
		TRY(dup2(peer, i), "dup2 %s onto %d", name, i);
	if (peer > 2)
		close(peer);
}

static void op_wait_fifo(void)
{
	char p[40];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fifo_fd);
	/* Blocks until `tsrun start` opens the fifo for reading (after the startContainer hooks).
	 * The write end stays open (CLOEXEC) so that start sees EOF only once execve has happened. */
	while ((fifo_wfd = open(p, O_WRONLY | O_CLOEXEC)) < 0 && errno == EINTR)
		;
	TRY(fifo_wfd, "open the exec fifo %s", p);
	close(fifo_fd);
	fifo_fd = -1;
	TRY(write(fifo_wfd, "0", 1), "write the exec fifo"); /* the program is about to run */
}

static void op_close_fds(unsigned int first)
{
	/* the executor's own fds are CLOEXEC: they go at execve, not before */
	int keep[4] = { sync_fd, fifo_fd, fifo_wfd, root_fd };
	for (unsigned int lo = first, hi;; lo = hi + 1) {
		hi = ~0U; /* close [lo, hi): hi is the lowest fd to keep at or above lo */
		for (int i = 0; i < 4; i++)
			if (keep[i] >= 0 && (unsigned int)keep[i] >= lo && (unsigned int)keep[i] < hi)
				hi = (unsigned int)keep[i];
		if (hi > lo)
			TRY(syscall(SYS_close_range, lo, hi - 1, 0), "close_range %u-%u", lo, hi - 1);
		if (hi == ~0U)
			break;
	}
}

/* ---------------------------------------------------------------- processes */

static void op_sync(uint32_t code)
{
	unsigned char status = 1;
	ssize_t n;
	send_msg(MSG_SYNC, &code, 4, -1);
	while ((n = recv(sync_fd, &status, 1, 0)) < 0 && errno == EINTR)
		;
	if (n < 1 || status != 0)
		_exit(1); /* tsrun aborted, or is gone: it knows why, nothing to report */
}

static void op_fork(uint32_t flags)
{
	int gate[2];
	char c;
	if (flags & CSIGNAL)
		fail(EINVAL, "fork: flags %#x overlap the exit signal byte (CLONE_NEWTIME takes unshare)", flags);
	TRY(pipe2(gate, O_CLOEXEC), "fork: pipe");
	/* A raw clone like fork(2), with CLONE_PARENT: stage 2 becomes tsrun's child. It runs on a
	 * copy of this stack; glibc's cached tid is stale there, so it must not raise/abort. */
	long pid = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | flags | SIGCHLD), NULL, NULL, NULL, NULL);
	TRY(pid, "clone %#x", flags);
	if (pid == 0) {
		/* wait for stage 1 to report our pid and exit: tsrun reads PID before our messages */
		close(gate[1]);
		while (read(gate[0], &c, 1) < 0 && errno == EINTR)
			;
		close(gate[0]);
		return;
	}
	int32_t p = (int32_t)pid;
	send_msg(MSG_PID, &p, 4, -1);
	_exit(0);
}

/* Like execvp: each candidate (the paths TypeScript made of the file and PATH, in execvp's
 * order) until `attempt` returns 0, which leaves *found at it. EACCES wins over ENOENT, other
 * errors stop the search. */
static int search(const struct strv *paths, int (*attempt)(const char *, void *), void *arg, const char **found)
{
	char *list[paths->n + 1];
	int err = ENOENT, r;
	strv_fill(paths, list);
	for (uint32_t i = 0; i < paths->n; i++) {
		if (!(r = attempt(list[i], arg)))
			return *found = list[i], 0;
		if (r == EACCES)
			err = EACCES;
		else if (r != ENOENT && r != ENOTDIR)
			return r;
	}
	return err;
}

/* Would execve take `path`? 0, or the errno it would fail with. */
static int can_exec(const char *path, void *unused)
{
	struct stat st;
	(void)unused;
	if (stat(path, &st) < 0)
		return errno;
	if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111))
		return EACCES;
	/* The mode bits, not faccessat: a seccomp filter is already loaded here, and older
	 * profiles (Docker's before faccessat2) deny that syscall with EPERM. execve has the last
	 * word anyway. */
	return 0;
}

struct exec_args { char **argv, **envp; };

static int try_exec(const char *path, void *arg)
{
	struct exec_args *a = arg;
	execve(path, a->argv, a->envp);
	return errno;
}

static void op_resolve_exec(const struct op *o)
{
	int err = search(&o->v[0], can_exec, NULL, &resolved);
	if (err)
		fail(err, "exec %s: no such program (searched PATH=%s)", o->s[0], o->s[1]);
}

static void op_exec(const struct op *o)
{
	char *argv[o->v[0].n + 2], *envp[o->v[1].n + 1];
	struct exec_args a = { argv, envp };
	const char *tried = o->s[0];
	strv_fill(&o->v[0], argv);
	if (!o->v[0].n)
		argv[0] = (char *)o->s[0], argv[1] = NULL;
	strv_fill(&o->v[1], envp);
	send_msg(MSG_EXEC, "", 0, -1);
	int err = resolved ? try_exec(tried = resolved, &a) : search(&o->v[2], try_exec, &a, &tried);
	fail(err, "exec %s (searched PATH=%s)", tried, o->s[1]);
}

/* ---------------------------------------------------------------- the op loop */

/*
 * chdir, then make sure the result is inside the container: a cwd reached through a leaked
 * fd (/proc/self/fd/N, the CVE-2024-21626 class) has no path from the new root, and getcwd
 * says so (ENOENT, or a path that does not start with '/').
 */
static void op_chdir(const char *path, uint32_t before_user)
{
	static uint32_t entered; /* a beforeUser chdir succeeded: the later one has nothing to do */
	char buf[4096];
	if (entered && !before_user)
		return;
	if (chdir(path) < 0) {
		if (!before_user || (errno != EACCES && errno != EPERM))
			fail(errno, "chdir %s", path);
		return; /* refused to root: the chdir after the user change tries again, as runc's */
	}
	entered = before_user;
	errno = 0;
	if (!getcwd(buf, sizeof buf) || buf[0] != '/')
		fail(errno ? errno : ENOENT, "cwd %s is outside the container", path);
}

static void run(uint32_t code, struct op *o)
{
	const char *s = o->s[0];
	int fd;
	switch (code) {
	case OP_SETNS:
		TRY(fd = open(s, O_RDONLY | O_CLOEXEC), "setns %s", s);
		TRY(setns(fd, (int)o->u[0]), "setns %s", s);
		close(fd);
		break;
	case OP_SYNC: op_sync(o->u[0]); break;
	case OP_FORK: op_fork(o->u[0]); break;
	case OP_WRITE_FILE: op_write_file(o); break;
	case OP_SET_ROOT:
		TRY(fd = open(s, O_PATH | O_DIRECTORY | O_CLOEXEC), "open the root %s", s);
		if (root_fd >= 0)
			close(root_fd);
		root_fd = fd; /* the plan sets the root after binding it onto itself: no reopening */
		break;
	case OP_MOUNT: op_mount(o); break;
	case OP_MOUNT_SETATTR: op_mount_setattr(o); break;
	case OP_MKDIR: op_mkdir(s, o->u[0], o->u[1]); break;
	case OP_MKNOD: op_mknod(o); break;
	case OP_SYMLINK: op_symlink(s, o->s[1], o->u[0]); break;
	case OP_PIVOT_ROOT: op_pivot_root(s); break;
	case OP_HIDE_MOUNT: op_hide_mount(s); break;
	case OP_MASK_PATH: op_mask_path(s); break;
	case OP_READONLY_PATH: op_readonly_path(s); break;
	case OP_REMOUNT_ROOT_READONLY: TRY(remount_bind("/", MS_RDONLY, LOCKED_FLAGS), "remount / read-only"); break;
	case OP_SECCOMP: op_seccomp(o); break;
	case OP_CHDIR: op_chdir(s, o->u[0]); break;
	case OP_CONSOLE: op_console(o->u[0], o->u[1], o->u[2], o->u[3]); break;
	case OP_OPEN_FIFO: TRY(fifo_fd = open(s, O_PATH | O_CLOEXEC), "open the exec fifo %s", s); break;
	case OP_WAIT_FIFO: op_wait_fifo(); break;
	case OP_IDMAP_MOUNT: op_idmap_mount(o); break;
	case OP_OPEN_TREE: op_open_tree(s, o->u[0], o->u[1]); break;
	case OP_MOUNT_TREE: op_mount_tree(o); break;
	case OP_SESSION_KEYRING:
		/* a keyring of the container's own, not the caller's; no keys (ENOSYS) or the
		 * per-user quota (EDQUOT, under load) leave it sharing the caller's, like before */
		if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, s) < 0 && errno != ENOSYS && errno != EDQUOT)
			fail(errno, "join a new session keyring %s", s);
		break;
	case OP_CLOSE_FDS: op_close_fds(o->u[0]); break;
	case OP_SYSCALL: /* TypeScript chose the number and built any struct: the C only calls */
		for (int i = 0; i < 6; i++) /* the args of the bufArgs mask are offsets into the buffer */
			if (o->u[1] >> i & 1)
				o->q[i] += (uintptr_t)o->b;
		if (syscall((long)o->u[0], o->q[0], o->q[1], o->q[2], o->q[3], o->q[4], o->q[5]) < 0 && errno != (int)o->u[2])
			fail(errno, "%s", s); /* u[2]: an errno that counts as success (0: none) */
		break;
	case OP_BOUNDING_SET: /* all but the kept; one this kernel does not know is not there (EINVAL) */
		for (int cap = 0; cap < 64; cap++)
			if (!(o->q[0] >> cap & 1) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
				fail(errno, "drop capability %d from the bounding set", cap);
		break;
	case OP_EXEC: op_exec(o); break;
	case OP_RESOLVE_EXEC: op_resolve_exec(o); break;
	}
}

int main(int argc, char **argv)
{
	uint32_t count, code, len;
	sigset_t none;
	/* Nobody may ptrace the executor or open its /proc files; execve of the user's program
	 * makes the process dumpable again (if its credentials allow). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (argc != 3)
		return 125;
	sync_fd = atoi(argv[2]);
	/* the spawner cleared CLOEXEC to pass it; execve of the user's program must close it */
	if (fcntl(sync_fd, F_SETFD, FD_CLOEXEC) < 0)
		return 125;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	umask(0); /* modes in the plan are exact; the plan's umask op sets the container's */
	const unsigned char *p = load_plan(atoi(argv[1]), &count);
	for (uint32_t i = 0, step = 0; i < count; i++, p += 8 + len) {
		struct op o;
		memcpy(&code, p, 4);
		memcpy(&len, p + 4, 4);
		decode(code & ~OP_CONT, &(struct cursor){ p + 8, p + 8 + len }, &o); /* load_plan checked it */
		if (!(code & OP_CONT))
			cur_op = step++;
		run(code & ~OP_CONT, &o);
	}
	fail(EINVAL, "the plan ended without exec");
}
