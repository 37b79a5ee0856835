// The plan boundary: an InitPlan is a flat, ordered list of primitive steps that the C executor
// (packages/runtime/native) carries out in the container's processes with raw syscalls.
// TypeScript decides everything; C only executes. `wire.ts` encodes these ops into the
// versioned binary form the executor reads.
//
// Paths marked `inRoot` are resolved inside the container's root filesystem (set by `setRoot`)
// with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): symlinks in the rootfs can never lead
// out of it. Missing parents are created (as directories, mode 0755) the same safe way.
//
// Processes: the executor starts as "stage 1" (a child of tsrun). `fork` starts "stage 2" with
// CLONE_PARENT (so it is tsrun's child too, and becomes pid 1 of a new pid namespace when
// asked) and stage 1 reports the new pid and exits. Everything after `fork` runs in stage 2.

export type Op =
  /** prctl(PR_SET_NAME): names the stage in ps and in error reports. */
  | { op: "stage"; name: string }
  /** open(path) and setns(fd, nstype); nstype is a CLONE_NEW* flag. */
  | { op: "setns"; path: string; nstype: number }
  /** unshare(flags). */
  | { op: "unshare"; flags: number }
  /**
   * Tell tsrun that `code` was reached and wait for its go-ahead (it writes uid/gid maps, runs
   * hooks, moves the process into cgroups … in between). An abort answer ends the executor.
   */
  | { op: "sync"; code: number }
  /** clone(CLONE_PARENT | flags): stage 1 reports the child's pid to tsrun and exits. */
  | { op: "fork"; flags: number }
  /** open(path, O_WRONLY) and write data: timens_offsets, oom_score_adj, /proc/sys/…, attr/… */
  | { op: "writeFile"; path: string; data: string; inRoot?: boolean }
  /** Opens the container's root directory; later `inRoot` paths are resolved inside it. */
  | { op: "setRoot"; path: string }
  /**
   * mount(2). With inRoot, `target` is relative to the root and made to exist first: a directory,
   * or an empty file when `targetIsFile` (bind mounts of files).
   */
  | { op: "mount"; source: string | null; target: string; fstype: string | null; flags: number; data: string | null; inRoot?: boolean; targetIsFile?: boolean }
  /** mount_setattr(2) on target (recursive when AT_RECURSIVE is wanted): the r* options. */
  | { op: "mountSetattr"; target: string; attrSet: number; attrClr: number; propagation: number; recursive: boolean; inRoot?: boolean }
  | { op: "mkdir"; path: string; mode: number; inRoot?: boolean }
  /** mknod(2) then chown; with `bindFallback`, bind-mount the host's node when mknod is refused (user namespaces). */
  | { op: "mknod"; path: string; mode: number; major: number; minor: number; uid: number; gid: number; inRoot?: boolean; bindFallback?: string }
  | { op: "symlink"; target: string; path: string; inRoot?: boolean }
  /** chdir(root), pivot_root(".", "."), umount2(".", MNT_DETACH), chdir("/"). */
  | { op: "pivotRoot"; path: string }
  /** --no-pivot: mount --move root onto /, chroot("."), chdir("/"). */
  | { op: "chrootMove"; path: string }
  /** --no-pivot: detach (or cover) a host proc/sysfs mount left in the container's namespace. */
  | { op: "hideMount"; path: string }
  /** After pivot: hide path (bind /dev/null over a file, a read-only empty tmpfs over a directory); missing paths are skipped. */
  | { op: "maskPath"; path: string }
  /** After pivot: bind path onto itself and remount it read-only; missing paths are skipped. */
  | { op: "readonlyPath"; path: string }
  /** remount "/" read-only (readonly root), keeping its other flags. */
  | { op: "remountRootReadonly" }
  | { op: "sethostname"; name: string }
  | { op: "setdomainname"; name: string }
  | { op: "setrlimit"; resource: number; soft: bigint; hard: bigint }
  | { op: "prctl"; option: number; arg: bigint }
  /** setgroups, setresgid, setresuid, keeping capabilities across the uid change (PR_SET_KEEPCAPS). */
  | { op: "setUser"; uid: number; gid: number; groups: number[]; setgroups: boolean }
  /**
   * Drop from the bounding set every capability not in `keep`, while the process still has
   * CAP_SETPCAP (before setUser): the executor tries all 64 (one already gone drops again
   * without error; one the kernel does not know fails EINVAL and is skipped). One op, not a
   * syscall op per capability: about 38 of those made a third of the plan and most of its
   * encoding time in a cold tsrun.
   */
  | { op: "boundingSet"; keep: bigint }
  /** Capability sets as bit masks (after setUser): capset, then the ambient set cleared and raised. */
  | { op: "caps"; effective: bigint; permitted: bigint; inheritable: bigint; ambient: bigint }
  /** seccomp(SECCOMP_SET_MODE_FILTER, flags, program); the program is sock_filter records. */
  | { op: "seccomp"; flags: number; program: Uint8Array }
  | { op: "umask"; mask: number }
  /**
   * chdir(path), then getcwd must give a path from the root (a cwd reached through a leaked fd,
   * the CVE-2024-21626 class, has none). `beforeUser`: an attempt before the user change (as
   * root, and before a seccomp filter that could block the check): EACCES/EPERM leave the chdir
   * to the next chdir op, which is skipped when this one succeeded (runc's finalizeNamespace).
   */
  | { op: "chdir"; path: string; beforeUser?: boolean }
  | { op: "setsid" }
  /**
   * Allocate a pty in the container (/dev/ptmx), send the master to tsrun over the sync socket
   * (SCM_RIGHTS), make the peer the controlling terminal and stdin/stdout/stderr. The peer is
   * chowned to `uid` (default 0; its group stays tty), as runc does: the process owns its terminal.
   */
  | { op: "console"; rows: number; cols: number; /** also bind the peer onto /dev/console (create; not exec) */ devConsole?: boolean; uid?: number }
  /** Open the exec fifo O_PATH now (it lives on the host, unreachable after pivot). */
  | { op: "openFifo"; path: string }
  /** Clones the mount at `path` (open_tree) as fd `fd`: a bind source taken before the user namespace. */
  | { op: "openTree"; path: string; fd: number; recursive: boolean }
  /** Mounts the tree of fd `fd` (from openTree) on `target`, with MOUNT_ATTR_* `attrSet`. */
  | { op: "mountTree"; fd: number; attrSet: number; target: string; recursive: boolean; inRoot: boolean; targetIsFile: boolean }
  /**
   * Wait for `start`: open the fifo (via /proc/self/fd) for writing, which blocks until `start`
   * opens it for reading (after the startContainer hooks), then write its byte: `start` reads
   * it, then waits for EOF, which comes when execve closes the write end (CLOEXEC): start
   * returns once the program runs.
   */
  | { op: "waitFifo" }
  /** keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a session keyring of the container's own. */
  | { op: "sessionKeyring"; name: string }
  /**
   * An idmapped bind mount (open_tree, mount_setattr(MOUNT_ATTR_IDMAP | attrSet), move_mount):
   * `usernsFd` is an fd the executor inherited (a user namespace holding the mount's mapping).
   */
  | { op: "idmapMount"; source: string; target: string; usernsFd: number; recursive: boolean; attrSet: number; inRoot?: boolean; targetIsFile?: boolean }
  /** Close every fd from `first` up, except the sync socket (closed on exec) and the fifo. */
  | { op: "closeFds"; first: number }
  /**
   * Find the `exec` op's program (the same `file` and `path`) now: PATH search, exists,
   * executable, as the current user in the current root, like runc's LookPath before "created":
   * a missing program fails `create`, not a later `start`. `exec` then uses the path found.
   * Errors name it as the exec (container/errors.ts).
   */
  | { op: "resolveExec"; file: string; path: string }
  /**
   * syscall(nr, args…): a kernel call that needs no decision in C. TypeScript picks the number
   * (for the executor's architecture) and builds any struct in `buf` (sched_attr, a cpu or node
   * mask, strings); each argument whose bit is set in `bufArgs` is an offset into the buffer,
   * and the executor adds the buffer's address to it. The buffer is read-only. `what` names the
   * step in errors ("set the scheduler (…)"). wire.ts also encodes the plain steps of fold.ts so.
   */
  | { op: "syscall"; what: string; nr: number; bufArgs: number; args: bigint[]; buf: Uint8Array; /** an errno that counts as success */ tolerate?: number }
  /**
   * execve(2); a file without a slash is searched in `path` (the container's PATH) like execvp.
   * wire.ts gives the executor the candidate paths (fold.ts execCandidates).
   */
  | { op: "exec"; file: string; argv: string[]; env: string[]; path: string };

/** Sync codes: where the executor stops and waits for tsrun. */
export const SYNC = {
  /** Stage 1 has unshared the user namespace: write uid_map/gid_map for it. */
  USERNS: 1,
  /** Namespaces exist, before any mount: createRuntime/prestart hooks, cgroup placement. */
  NAMESPACES: 2,
  /** Mounts are done, before pivot_root: createContainer hooks. */
  MOUNTS: 3,
  /** Setup finished; about to wait on the exec fifo (the container is "created"). */
  CREATED: 4,
} as const;

export interface InitPlan {
  ops: Op[];
}
