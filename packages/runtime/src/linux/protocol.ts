// The executor's side of the sync protocol, declared once for TypeScript: the message types the
// executor sends (native/wire.h, enum msg_type; wire.test.ts checks that the two agree). The
// sync codes, which only the plan gives meaning to, are in plan/ops.ts (SYNC).

/** Executor -> tsrun: one SOCK_SEQPACKET datagram each, this u32 first. */
export const MSG = {
  /** u32 sync code; tsrun answers with a status byte and an optional payload. */
  SYNC: 1,
  /** i32 pid of stage 2, in tsrun's pid namespace. */
  PID: 2,
  /** u32 op index (ERROR_OP_PLAN: the plan itself), i32 errno, text. */
  ERROR: 3,
  /** u32 kind (FD_KIND), text; the fd in SCM_RIGHTS. */
  FD: 4,
  /** Nothing: execve comes next. */
  EXEC: 5,
} as const;

/** What an MSG.FD carries. */
export const FD_KIND = { CONSOLE: 1, SECCOMP: 2 } as const;

/** The op index of an error in the plan itself, not in one of its ops. */
export const ERROR_OP_PLAN = 0xffffffff;
