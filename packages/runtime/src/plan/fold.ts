// Steps of ops.ts that are plain system calls whose arguments are known when the plan is made.
// The encoder (wire.ts) writes each as one or more generic `syscall` ops, so that the executor
// has a single code path for all of them: TypeScript picks the numbers (for the architecture
// the executor runs on), lays out the buffers (strings, struct rlimit, the group list) and words
// what each call reports when it fails. The plan keeps the named step, so errors still name it
// (container/errors.ts): the executor reports the step's index, not the wire op's (OP_CONT).
// Pure: no FFI, no file system.
import type { Op } from "./ops.ts";

export type SyscallOp = Extract<Op, { op: "syscall" }>;

/** The steps encoded as syscalls. */
export type FoldedOpName = "stage" | "unshare" | "chrootMove" | "sethostname" | "setdomainname" | "setrlimit" | "prctl" | "setUser" | "umask" | "setsid";

/** Checks an op field, throwing the encoder's PlanEncodeError (op index and field) when it cannot be carried. */
export interface FieldCheck {
  u32(v: unknown, field: string, k?: number): number;
  u64(v: unknown, field: string): bigint;
  str(v: unknown, field: string): string;
  list(v: unknown, field: string): unknown[];
}

type Name = "chdir" | "chroot" | "mount" | "prctl" | "prlimit64" | "sethostname" | "setdomainname" | "setgroups" | "setresgid" | "setresuid" | "setsid" | "umask" | "unshare";

/**
 * The numbers of the calls above on the architectures the executor is built for: x86_64's own
 * table, and the asm-generic one of arm64 (test/plan-fold.test.ts checks both against their
 * sources). Kept here, not taken from the seccomp tables: those are start-up cost.
 */
export const FOLD_SYSCALLS: Readonly<Record<"x64" | "arm64", Readonly<Record<Name, number>>>> = {
  x64: { chdir: 80, chroot: 161, mount: 165, prctl: 157, prlimit64: 302, sethostname: 170, setdomainname: 171, setgroups: 116, setresgid: 119, setresuid: 117, setsid: 112, umask: 95, unshare: 272 },
  arm64: { chdir: 49, chroot: 51, mount: 40, prctl: 167, prlimit64: 261, sethostname: 161, setdomainname: 162, setgroups: 159, setresgid: 149, setresuid: 147, setsid: 157, umask: 166, unshare: 97 },
};

const PR_SET_NAME = 15;
const PR_SET_KEEPCAPS = 8;
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
