// Steps of ops.ts that are plain system calls whose arguments are known when the plan is made.
// The encoder (wire.ts) writes each as one or more generic `syscall` ops, so that the executor
// has a single code path for all of them: TypeScript picks the numbers (for the architecture
// the executor runs on), lays out the buffers (strings, struct rlimit, the group list) and words
// what each call reports when it fails. The plan keeps the named step, so errors still name it
// (container/errors.ts): the executor reports the step's index, not the wire op's (OP_CONT).
// Pure.
import type { Op } from "./ops.ts";

export type SyscallOp = Extract<Op, { op: "syscall" }>;

/** The steps encoded as syscalls. */
export type FoldedOpName = "stage" | "unshare" | "chrootMove" | "sethostname" | "setdomainname" | "setrlimit" | "prctl" | "setUser" | "umask" | "setsid" | "caps";

/** Checks an op field, throwing the encoder's PlanEncodeError (op index and field) when it cannot be carried. */
export interface FieldCheck {
  u32(v: unknown, field: string, k?: number): number;
  u64(v: unknown, field: string): bigint;
  bool(v: unknown, field: string): boolean;
  str(v: unknown, field: string): string;
  list(v: unknown, field: string): unknown[];
}

type Name = "close" | "write" | "capset" | "exit_group" | "sched_setaffinity" | "setns" | "chdir" | "chroot" | "mount" | "prctl" | "prlimit64" | "sethostname" | "setdomainname" | "setgroups" | "setresgid" | "setresuid" | "setsid" | "umask" | "unshare";

/**
 * The numbers of the calls above on the architectures the executor is built for: x86_64's own
 * table, and the asm-generic one of arm64 (test/plan-fold.test.ts checks both against their
 * sources). Kept here, not taken from the seccomp tables: those are start-up cost.
 */
export const FOLD_SYSCALLS: Readonly<Record<"x64" | "arm64", Readonly<Record<Name, number>>>> = {
  x64: { close: 3, write: 1, capset: 126, exit_group: 231, sched_setaffinity: 203, setns: 308, chdir: 80, chroot: 161, mount: 165, prctl: 157, prlimit64: 302, sethostname: 170, setdomainname: 171, setgroups: 116, setresgid: 119, setresuid: 117, setsid: 112, umask: 95, unshare: 272 },
  arm64: { close: 57, write: 64, capset: 91, exit_group: 94, sched_setaffinity: 122, setns: 268, chdir: 49, chroot: 51, mount: 40, prctl: 167, prlimit64: 261, sethostname: 161, setdomainname: 162, setgroups: 159, setresgid: 149, setresuid: 147, setsid: 157, umask: 166, unshare: 97 },
};

const PR_SET_NAME = 15;
const PR_SET_KEEPCAPS = 8;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_RAISE = 2;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;
const _LINUX_CAPABILITY_VERSION_3 = 0x20080522;
const EINVAL = 22;
const MS_MOVE = 0x2000;
const utf8 = new TextEncoder();

function nr(name: Name): number {
  const table = FOLD_SYSCALLS[process.arch as "x64" | "arm64"];
  if (!table) throw new Error(`tsrun's executor runs on x64 and arm64 only, not ${process.arch}`);
  return table[name];
}

/**
 * One call: `args` as numbers or bigints; `bufArgs` the mask of the args that are offsets into
 * `buf` (the executor adds the buffer's address to them).
 */
function call(what: string, name: Name, args: (number | bigint)[], buf: Uint8Array = new Uint8Array(), bufArgs = 0): SyscallOp {
  return { op: "syscall", what, nr: nr(name), bufArgs, args: args.map((a) => BigInt(a)), buf };
}

/**
 * setns(pidfd, flags): every namespace of `flags` of the process behind the pidfd, at once (the
 * kernel joins the user namespace first). Unlike opening /proc/<pid>/ns/…, it takes no ptrace
 * access to that process: a rootless tsrun may join its container's init while the init is not
 * dumpable yet (hooks).
 */
export function setnsPidfdOp(pidfd: number, flags: number): SyscallOp {
  return call(`join the namespaces 0x${flags.toString(16)} of the init (setns of its pidfd)`, "setns", [pidfd, flags]);
}

/**
 * sched_setaffinity(0, …, every CPU): the process's affinity becomes what its cpuset allows. A
 * process moved into a cgroup keeps the affinity it had (Linux 6.2 and later remember a mask set
 * by the user), so a tsrun started under `taskset` or a systemd CPUAffinity would hand that mask
 * on to the container, whatever its cpuset says. runc 1.2.7/1.3.1 and crun reset it the same way;
 * the kernel narrows an all-set mask to the allowed CPUs. EINVAL (no allowed CPU in the mask) is
 * taken as nothing to do.
 */
export function resetAffinityOp(): SyscallOp {
  // 8192 CPUs: the kernel's largest NR_CPUS; a longer mask than the kernel's is cut to its size.
  const mask = new Uint8Array(1024).fill(0xff);
  return { ...call("reset the CPU affinity to the container's cpuset", "sched_setaffinity", [0, mask.length, 0], mask, 1 << 2), tolerate: EINVAL };
}

/**
 * write(fd, "0"), then close(fd): `fd` is a cgroup v1 `tasks` file tsrun opened, and the process
 * moves its one thread into that cgroup. A thread moving itself takes only the cgroup mutex; a
 * move written by another process (or a whole thread group through cgroup.procs) also takes the
 * kernel's global migration lock, whose first taking after a quiet spell waits for an RCU grace
 * period (about 10 ms here). The permission check uses the opener's credentials (tsrun's).
 */
export function moveSelfToCgroupOps(fd: number, dir: string): SyscallOp[] {
  return [call(moveSelfText(dir), "write", [fd, 0, 1], utf8.encode("0"), 0b10), call(`close the tasks file of ${dir}`, "close", [fd])];
}

/** moveSelfToCgroupOps for each of `dirs`, whose `tasks` files are the fds from `firstFd` on, in order. */
export function moveSelfToCgroupsOps(firstFd: number, dirs: readonly string[] = []): SyscallOp[] {
  return dirs.flatMap((dir, k) => moveSelfToCgroupOps(firstFd + k, dir));
}

/** The text of moveSelfToCgroupOps's write, by which tsrun tells its failure from others'. */
export const moveSelfText = (dir: string): string => `move into the cgroup ${dir} (write 0 to its tasks file)`;

/** exit_group(code): where a plan that has done its work ends, without exec (the cgroup warm-up). */
export function exitOp(code: number): SyscallOp {
  return call(`exit ${code}`, "exit_group", [code]);
}

/** The capabilities of a mask, by number (the kernel knows at most 64). */
function capsOf(mask: bigint): number[] {
  const caps: number[] = [];
  for (let cap = 0; cap < 64; cap++) if ((mask >> BigInt(cap)) & 1n) caps.push(cap);
  return caps;
}

/** "0x24" as C's %#llx prints a mask ("0" for none). */
const hex = (v: bigint): string => (v ? `0x${v.toString(16)}` : "0");

/** NUL-terminated strings one after the other, and the offset of each. */
function strings(...list: string[]): { buf: Uint8Array; at: number[] } {
  const parts = list.map((s) => utf8.encode(`${s}\0`));
  const buf = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  const at: number[] = [];
  let off = 0;
  for (const p of parts) {
    at.push(off);
    buf.set(p, off);
    off += p.length;
  }
  return { buf, at };
}

/**
 * The paths execvp would try for `file`, in order: the file itself when it has a slash, else each
 * entry of `path` (the container's PATH) joined with it, an empty entry meaning the cwd; those
 * beyond PATH_MAX are left out, as execvp leaves them. The executor tries them (exec, resolveExec).
 */
export function execCandidates(file: string, path: string): string[] {
  if (file.includes("/")) return [file];
  const fits = (p: string) => Buffer.byteLength(p) + 1 <= 4096;
  return path.split(":").map((dir) => (dir ? `${dir}/${file}` : file)).filter(fits);
}

type Folded<K extends FoldedOpName> = (op: Extract<Op, { op: K }>, check: FieldCheck) => SyscallOp[];

/** The syscalls of each folded step, in order; `what` is the executor's text when one fails. */
export const FOLD: { readonly [K in FoldedOpName]: Folded<K> } = {
  // prctl(PR_SET_NAME): names the stage in ps and /proc/<pid>/comm
  stage: (o, c) => [call("stage", "prctl", [PR_SET_NAME, 0], strings(c.str(o.name, "name")).buf, 0b10)],
  unshare: (o, c) => [call(`unshare 0x${c.u32(o.flags, "flags").toString(16)}`, "unshare", [o.flags])],
  sethostname: (o, c) => {
    const name = utf8.encode(c.str(o.name, "name"));
    return [call(`sethostname ${o.name}`, "sethostname", [0, name.length], name, 0b1)];
  },
  setdomainname: (o, c) => {
    const name = utf8.encode(c.str(o.name, "name"));
    return [call(`setdomainname ${o.name}`, "setdomainname", [0, name.length], name, 0b1)];
  },
  // prlimit64(0, resource, &{soft, hard}, NULL)
  setrlimit: (o, c) => {
    const rlim = new DataView(new ArrayBuffer(16));
    rlim.setBigUint64(0, c.u64(o.soft, "soft"), true);
    rlim.setBigUint64(8, c.u64(o.hard, "hard"), true);
    return [call(`setrlimit ${c.u32(o.resource, "resource")}`, "prlimit64", [0, o.resource, 0, 0], new Uint8Array(rlim.buffer), 0b100)];
  },
  prctl: (o, c) => [call(`prctl ${c.u32(o.option, "option")}`, "prctl", [o.option, c.u64(o.arg, "arg"), 0, 0, 0])],
  umask: (o, c) => [call("umask", "umask", [c.u32(o.mask, "mask")])],
  setsid: () => [call("setsid", "setsid", [])],
  // setgroups, then keep the permitted set across the uid change (the caps op then sets every
  // set), setresgid, setresuid
  setUser: (o, c) => {
    const uid = c.u32(o.uid, "uid");
    const gid = c.u32(o.gid, "gid");
    const list = c.list(o.groups, "groups");
    const groups = new DataView(new ArrayBuffer(list.length * 4));
    list.forEach((g, k) => groups.setUint32(k * 4, c.u32(g, "groups", k), true));
    const calls: SyscallOp[] = [];
    if (o.setgroups) calls.push(call("setgroups", "setgroups", [list.length, 0], new Uint8Array(groups.buffer), 0b10));
    calls.push(call("prctl(PR_SET_KEEPCAPS)", "prctl", [PR_SET_KEEPCAPS, 1, 0, 0, 0]));
    calls.push(call(`setresgid ${gid}`, "setresgid", [gid, gid, gid]));
    calls.push(call(`setresuid ${uid}`, "setresuid", [uid, uid, uid]));
    return calls;
  },
  // capset (the kernel keeps the capabilities it knows), then the ambient set: cleared, and each
  // one raised (one the kernel does not know: EINVAL, left out as capset left it out)
  caps: (o, c) => {
    const [eff, perm, inh] = [c.u64(o.effective, "effective"), c.u64(o.permitted, "permitted"), c.u64(o.inheritable, "inheritable")];
    const set = new DataView(new ArrayBuffer(32)); // struct __user_cap_header_struct, then __user_cap_data_struct[2]
    set.setUint32(0, _LINUX_CAPABILITY_VERSION_3, true);
    [eff, perm, inh].forEach((m, k) => {
      set.setUint32(8 + k * 4, Number(m & 0xffffffffn), true);
      set.setUint32(20 + k * 4, Number(m >> 32n), true);
    });
    return [
      call(`capset effective=${hex(eff)} permitted=${hex(perm)} inheritable=${hex(inh)}`, "capset", [0, 8], new Uint8Array(set.buffer), 0b11),
      call("clear the ambient set", "prctl", [PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0]),
      ...capsOf(c.u64(o.ambient, "ambient")).map((cap) => ({ ...call(`raise ambient capability ${cap}`, "prctl", [PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0]), tolerate: EINVAL })),
    ];
  },
  // --no-pivot: chdir there, move it onto /, chroot into it, chdir /
  chrootMove: (o, c) => {
    const path = c.str(o.path, "path");
    const s = strings(path, "/", ".");
    return [
      call(`chdir ${path}`, "chdir", [s.at[0]!], s.buf, 0b1),
      call(`move ${path} onto /`, "mount", [s.at[0]!, s.at[1]!, 0, MS_MOVE, 0], s.buf, 0b11),
      call(`chroot ${path}`, "chroot", [s.at[2]!], s.buf, 0b1),
      call("chdir /", "chdir", [s.at[1]!], s.buf, 0b1),
    ];
  },
};
