/* The wire format shared by the executor (executor.c), the spawn library (libtsrun.c) and the
 * TypeScript encoder (src/plan/wire.ts, whose unit test checks these numbers against this file).
 *
 * Plan (little endian, tsrun -> executor, in a sealed memfd):
 *   u32 magic 'TSRP' | u32 version | u32 op count | u32 total bytes
 *   then per op: u32 code | u32 payload bytes | payload
 * Payload fields, in the order of the fields in ops.ts, typed by the op's format string:
 *   s str (u32 length, bytes, NUL)   n nullable str (a str, or u32 0xffffffff)
 *   u u32 (numbers; booleans 0/1)    v string array (u32 count, strs)
 *   b bytes (u32 length, bytes)      x u64 array (u32 count, u64s; at most 6 per op)
 */
#ifndef TSRUN_WIRE_H
#define TSRUN_WIRE_H

#define PLAN_MAGIC 0x50525354u /* "TSRP" read as a little-endian u32 */
#define PLAN_VERSION 5u

/* name, code, format: the fields of ops.ts in order */
#define OPS(X)                                                                              \
	X(SETNS, 2, "su")                 /* path nstype */                                 \
	X(SYNC, 4, "u")                   /* code */                                        \
	X(FORK, 5, "u")                   /* flags */                                       \
	X(WRITE_FILE, 6, "ssu")           /* path data inRoot */                            \
	X(SET_ROOT, 7, "s")               /* path */                                        \
	X(MOUNT, 8, "nsnunuu")            /* source target fstype flags data inRoot targetIsFile */ \
	X(MOUNT_SETATTR, 9, "suuuuu")     /* target attrSet attrClr propagation recursive inRoot */ \
	X(MKDIR, 10, "suu")               /* path mode inRoot */                            \
	X(MKNOD, 11, "suuuuuun")          /* path mode major minor uid gid inRoot bindFallback */ \
	X(SYMLINK, 12, "ssu")             /* target path inRoot */                          \
	X(PIVOT_ROOT, 13, "s")            /* path */                                        \
	X(MASK_PATH, 15, "s")             /* path */                                        \
	X(READONLY_PATH, 16, "s")         /* path */                                        \
	X(REMOUNT_ROOT_READONLY, 17, "")                                                    \
	X(SECCOMP, 24, "ub")              /* flags program */                               \
	X(CHDIR, 26, "su")                /* path beforeUser */                             \
	X(CONSOLE, 28, "uuuu")            /* rows cols devConsole uid */                    \
	X(OPEN_FIFO, 29, "s")             /* path */                                        \
	X(WAIT_FIFO, 30, "")                                                                \
	X(CLOSE_FDS, 31, "u")             /* first */                                       \
	X(EXEC, 33, "svvsv")              /* file argv env path candidates (wire.ts: as execvp tries) */ \
	X(RESOLVE_EXEC, 34, "ssv")        /* file path candidates */                        \
	X(IDMAP_MOUNT, 36, "ssuuuuu")     /* source target usernsFd recursive attrSet inRoot targetIsFile */ \
	X(SESSION_KEYRING, 37, "s")       /* name */                                        \
	X(OPEN_TREE, 38, "suu")           /* path fd recursive */                           \
	X(MOUNT_TREE, 39, "uusuuu")       /* fd attrSet target recursive inRoot targetIsFile */ \
	X(HIDE_MOUNT, 40, "s")            /* path */                                        \
	X(SYSCALL, 41, "suuuxb")          /* what nr bufArgs tolerate args buf (args in the bufArgs mask: offsets into buf) */ \
	X(BOUNDING_SET, 42, "x")          /* keep (one u64) */

#define OP_ENUM(name, code, format) OP_##name = code,
enum op_code { OPS(OP_ENUM) OP_LAST = 42 };
/* Set in a code: this wire op continues the plan step before it (wire.ts encodes some steps of
 * ops.ts as several syscall ops); errors report the step's index in the plan, not the wire's. */
#define OP_CONT 0x80000000u

/* Messages executor -> tsrun: one SOCK_SEQPACKET datagram each, u32 type first.
 * The answer to MSG_SYNC is one datagram tsrun -> executor: a status byte (0 = go on, anything
 * else = abort). */
enum msg_type {
	MSG_SYNC = 1,  /* u32 code */
	MSG_PID = 2,   /* i32 pid of stage 2, in tsrun's pid namespace */
	MSG_ERROR = 3, /* u32 op index (0xffffffff: the plan itself), i32 errno, text NUL */
	MSG_FD = 4,    /* u32 kind: 1 console (text: the peer's path), 2 seccomp listener; text NUL; the fd in SCM_RIGHTS */
	MSG_EXEC = 5,  /* nothing: execve comes next */
};

enum fd_kind { FD_CONSOLE = 1, FD_SECCOMP = 2 }; /* what an MSG_FD carries */
#define ERROR_OP_PLAN 0xffffffffu
#define MSG_MAX 1024 /* the largest datagram the executor sends */

#endif
