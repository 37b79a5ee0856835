// Compiles the OCI runtime-spec `linux.seccomp` object into a classic BPF program for
// seccomp(SECCOMP_SET_MODE_FILTER) — the executor's `seccomp` op loads it as is.
//
// The filter works on struct seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; }
// (little endian on x86). Its shape:
//
//   A = arch
//   arch == AUDIT_ARCH_X86_64 → x86_64 section      (the native arch is always in the filter)
//   arch == AUDIT_ARCH_I386   → x86 section         (when SCMP_ARCH_X86 is listed)
//   return KILL_PROCESS                             (any other arch)
//   x86_64 section: A = nr; nr ≥ 0x40000000 (x32 ABI) → x32 section, or KILL_PROCESS when SCMP_ARCH_X32 is not listed
//   each section: syscalls whose first rule has no argument condition share `nr == N → return action`
//   chains; the others jump to a block that tries their rules in profile order (the first rule whose
//   conditions all hold decides; a rule's conditions are AND'ed), then returns the default action.
//   A syscall nothing matched returns the default action.
//
// 64-bit arguments are compared as two 32-bit words, high word first (unsigned, like libseccomp);
// on the 32-bit ABIs (x86, x32) only the low word is compared. Names the arch does not know are
// skipped (like libseccomp/runc) and reported.
//
// SCMP_ACT_NOTIFY returns SECCOMP_RET_USER_NOTIF and makes the filter a listener
// (SECCOMP_FILTER_FLAG_NEW_LISTENER): the init sends the listener fd to tsrun, which passes it
// on to the agent at listenerPath (container/create.ts).
import type { LinuxSeccomp, LinuxSeccompArg, LinuxSyscall } from "@tsrun/ocispec/core";
import { TsrunError } from "../errors.ts";
import { Assembler, BPF, BPF_MAXINSNS, encode, type Target } from "./bpf.ts";
import { SYSCALLS_X86 } from "./syscalls-x86.ts";
import { SYSCALLS_X86_64 } from "./syscalls-x86_64.ts";
import { SYSCALLS_X32 } from "./syscalls-x32.ts";

// The syscall tables (name → number) per architecture, for callers that check a profile by hand.
export { SYSCALLS_X86, SYSCALLS_X86_64, SYSCALLS_X32 };

export class SeccompError extends TsrunError {
  override name = "SeccompError";
}

/** SECCOMP_RET_* (linux/seccomp.h). */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

/** SECCOMP_FILTER_FLAG_* a profile may list. */
export const SECCOMP_FILTER_FLAG = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
  /** Only meaningful with a listener: applied when a rule uses SCMP_ACT_NOTIFY (as libseccomp does). */
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 32,
} as const;

/** Flags the compiler sets itself; a profile cannot list them. */
export const SECCOMP_FILTER_FLAG_NEW_LISTENER = 8;
export const SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 16;

/**
 * The syscall tsrun's init hands the listener fd to tsrun with, right after loading the filter:
 * were it notified, it would wait for an agent that can only get the fd through it. (runc
 * refuses `write` for the same reason: that is the call its init uses.)
 */
export const LISTENER_HANDOVER_SYSCALL = "sendmsg";

/**
 * Syscalls a NOTIFY rule may not name: the handover above, and `write`, which the init uses on
 * the exec fifo after the filter is loaded (an agent that does not answer would hang `start`),
 * and which runc refuses too.
 */
const NOT_NOTIFIABLE = [LISTENER_HANDOVER_SYSCALL, "write"];

export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const AUDIT_ARCH_I386 = 0x40000003;
export const X32_SYSCALL_BIT = 0x40000000;
const EPERM = 1;

/** Offsets into struct seccomp_data. */
export const SECCOMP_DATA = {
  nr: 0,
  arch: 4,
  instructionPointer: 8,
  /** low word of args[i]; the high word is at +4 (little endian) */
  arg: (i: number): number => 16 + 8 * i,
} as const;

type ArchToken = "SCMP_ARCH_X86_64" | "SCMP_ARCH_X86" | "SCMP_ARCH_X32";

interface ArchInfo {
  token: ArchToken;
  table: Readonly<Record<string, number>>;
  /** arguments are 32-bit: compare the low word only */
  bits32: boolean;
}

const ARCHES: Record<ArchToken, ArchInfo> = {
  SCMP_ARCH_X86_64: { token: "SCMP_ARCH_X86_64", table: SYSCALLS_X86_64, bits32: false },
  SCMP_ARCH_X86: { token: "SCMP_ARCH_X86", table: SYSCALLS_X86, bits32: true },
  SCMP_ARCH_X32: { token: "SCMP_ARCH_X32", table: SYSCALLS_X32, bits32: true },
};

/** The native-arch names compileSeccomp takes (Go / uname / libseccomp spellings). */
const NATIVE: Record<string, ArchToken> = {
  x86_64: "SCMP_ARCH_X86_64",
  amd64: "SCMP_ARCH_X86_64",
  SCMP_ARCH_X86_64: "SCMP_ARCH_X86_64",
  x86: "SCMP_ARCH_X86",
  i386: "SCMP_ARCH_X86",
  i686: "SCMP_ARCH_X86",
  "386": "SCMP_ARCH_X86",
  SCMP_ARCH_X86: "SCMP_ARCH_X86",
};

export interface CompiledSeccomp {
  /** struct sock_filter[] (8 bytes each, little endian), for the executor's `seccomp` op. */
  program: Uint8Array;
  /** SECCOMP_FILTER_FLAG_* bits for seccomp(2); with NEW_LISTENER the init sends tsrun the listener fd. */
  flags: number;
  /** Syscall names no arch of the filter knows (ignored), in profile order, once each. */
  skipped: string[];
  /** Listed architectures tsrun has no syscall table for (their syscalls hit KILL_PROCESS). */
  ignoredArches: string[];
}

/** Syscall names of an arch's table (for tests and tooling). */
export function syscallNames(arch: "x86_64" | "x86" | "x32" = "x86_64"): string[] {
  const t = arch === "x86_64" ? SYSCALLS_X86_64 : arch === "x86" ? SYSCALLS_X86 : SYSCALLS_X32;
  return Object.keys(t);
}

const P = "/linux/seccomp";
const fail = (pointer: string, message: string): never => {
  throw new SeccompError(`${pointer}: ${message}`);
};

function errnoValue(pointer: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff) return fail(pointer, `must be an errno between 0 and 65535, not ${JSON.stringify(v)}`);
  return v;
}

/** The SECCOMP_RET_* value of an action; `errno` is used by ERRNO and TRACE. */
function actionValue(pointer: string, action: string, errno: number | undefined, errnoPointer: string): number {
  const carriesErrno = action === "SCMP_ACT_ERRNO" || action === "SCMP_ACT_TRACE";
  if (errno !== undefined && !carriesErrno) fail(errnoPointer, `only applies to SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not ${action}`);
  const data = errno === undefined ? EPERM : errnoValue(errnoPointer, errno);
  switch (action) {
    case "SCMP_ACT_KILL":
    case "SCMP_ACT_KILL_THREAD":
      return SECCOMP_RET.KILL_THREAD;
    case "SCMP_ACT_KILL_PROCESS":
      return SECCOMP_RET.KILL_PROCESS;
    case "SCMP_ACT_TRAP":
      return SECCOMP_RET.TRAP;
    case "SCMP_ACT_ERRNO":
      return (SECCOMP_RET.ERRNO | (data & 0xffff)) >>> 0;
    case "SCMP_ACT_TRACE":
      return (SECCOMP_RET.TRACE | (data & 0xffff)) >>> 0;
    case "SCMP_ACT_LOG":
      return SECCOMP_RET.LOG;
    case "SCMP_ACT_ALLOW":
      return SECCOMP_RET.ALLOW;
    case "SCMP_ACT_NOTIFY":
      return SECCOMP_RET.USER_NOTIF;
    default:
      return fail(pointer, `unknown action ${JSON.stringify(action)}`);
  }
}

const U64_MAX = (1n << 64n) - 1n;

function u64(pointer: string, v: unknown): bigint {
  // JSON numbers above 2^53 lose precision before they get here; bigints (from a custom parser) are exact.
  if (typeof v === "bigint") {
    if (v < 0n || v > U64_MAX) fail(pointer, `must be an unsigned 64-bit integer, not ${v}`);
    return v;
  }
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > Number(U64_MAX))
    return fail(pointer, `must be an unsigned 64-bit integer, not ${JSON.stringify(v)}`);
  return BigInt(v);
}

interface Cond {
  index: number;
  op: LinuxSeccompArg["op"];
  value: bigint;
  valueTwo: bigint;
}

interface Rule {
  conds: Cond[];
  ret: number;
}

const MAX_CONDS = 32;

/**
 * A syscall entry's rules. Conditions are ANDed, except that conditions on the same argument
 * make one rule each (ORed), as runc does it: libseccomp cannot AND two on one argument, and
 * profiles written for runc (e.g. "arg0 == 100 or arg0 == 9001") mean either.
 */
function parseRules(i: number, s: LinuxSyscall): Rule[] {
  const rule = parseRule(i, s);
  const indexes = rule.conds.map((c) => c.index);
  if (new Set(indexes).size === indexes.length) return [rule];
  return rule.conds.map((c) => ({ conds: [c], ret: rule.ret }));
}

function parseRule(i: number, s: LinuxSyscall): Rule {
  const at = `${P}/syscalls/${i}`;
  const ret = actionValue(`${at}/action`, s.action, s.errnoRet, `${at}/errnoRet`);
  if (ret === SECCOMP_RET.USER_NOTIF) {
    const j = (s.names as string[]).findIndex((n) => NOT_NOTIFIABLE.includes(n));
    if (j >= 0) {
      const name = (s.names as string[])[j]!;
      fail(`${at}/names/${j}`, `SCMP_ACT_NOTIFY cannot be used for the ${name} syscall: tsrun's init ${name === "write" ? "writes the exec fifo with it after the filter is loaded" : "passes the listener on with it, before any agent can answer"}`);
    }
  }
  const args = s.args ?? [];
  if (args.length > MAX_CONDS) fail(`${at}/args`, `at most ${MAX_CONDS} conditions per rule`);
  const conds = args.map((a, j): Cond => {
    const ap = `${at}/args/${j}`;
    if (!Number.isInteger(a.index) || a.index < 0 || a.index > 5) fail(`${ap}/index`, `must be 0 to 5 (seccomp sees six arguments), not ${JSON.stringify(a.index)}`);
    if (!["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"].includes(a.op))
      fail(`${ap}/op`, `unknown comparison ${JSON.stringify(a.op)}`);
    return { index: a.index, op: a.op, value: u64(`${ap}/value`, a.value), valueTwo: a.valueTwo === undefined ? 0n : u64(`${ap}/valueTwo`, a.valueTwo) };
  });
  return { conds, ret };
}

const hi = (v: bigint): number => Number((v >> 32n) & 0xffffffffn);
const lo = (v: bigint): number => Number(v & 0xffffffffn);

/**
 * One condition: falls through (or jumps to `pass`) when it holds, jumps to `no` when not.
 * 64-bit: decide on the high word when it differs, else on the low word.
 */
function emitCond(asm: Assembler, c: Cond, bits32: boolean, no: string): void {
  const off = SECCOMP_DATA.arg(c.index);
  const pass = asm.label("pass");
  const v = c.value;
  if (c.op === "SCMP_CMP_MASKED_EQ") {
    if (!bits32) {
      asm.load(off + 4);
      asm.and(hi(v));
      asm.jump(BPF.JEQ, hi(c.valueTwo), null, no);
    }
    asm.load(off);
    asm.and(lo(v));
    asm.jump(BPF.JEQ, lo(c.valueTwo), pass, no);
    asm.place(pass);
    return;
  }
  // The high-word step: [on hi > vh, on hi < vh]; equal high words go on to the low word.
  // The low-word step: [opcode, when true, when false].
  let high: [Target, Target];
  let low: [number, Target, Target];
  switch (c.op) {
    case "SCMP_CMP_EQ":
      high = [no, no];
      low = [BPF.JEQ, pass, no];
      break;
    case "SCMP_CMP_NE":
      high = [pass, pass];
      low = [BPF.JEQ, no, pass];
      break;
    case "SCMP_CMP_GT":
      high = [pass, no];
      low = [BPF.JGT, pass, no];
      break;
    case "SCMP_CMP_GE":
      high = [pass, no];
      low = [BPF.JGE, pass, no];
      break;
    case "SCMP_CMP_LT":
      high = [no, pass];
      low = [BPF.JGE, no, pass];
      break;
    case "SCMP_CMP_LE":
      high = [no, pass];
      low = [BPF.JGT, no, pass];
      break;
  }
  if (!bits32) {
    asm.load(off + 4);
    const vh = hi(v);
    if (high[0] === high[1]) {
      // EQ / NE: only equality of the high words matters.
      asm.jump(BPF.JEQ, vh, null, high[0]);
    } else {
      asm.jump(BPF.JGT, vh, high[0], null);
      asm.jump(BPF.JEQ, vh, null, high[1]);
    }
  }
  asm.load(off);
  asm.jump(low[0], lo(v), low[1], low[2]);
  asm.place(pass);
}

/** The syscall numbers of one arch with their rules (profile order), and the names it did not know. */
function groupRules(rules: { names: string[]; rule: Rule }[], arch: ArchInfo, defaultRet: number): { groups: Map<number, Rule[]>; unknown: Set<string> } {
  const groups = new Map<number, Rule[]>();
  const unknown = new Set<string>();
  for (const { names, rule } of rules) {
    for (const name of names) {
      if (!Object.hasOwn(arch.table, name)) {
        unknown.add(name);
        continue;
      }
      const nr = arch.table[name]!;
      let g = groups.get(nr);
      if (!g) groups.set(nr, (g = []));
      // A rule after an unconditional one can never match.
      if (g.length > 0 && g[g.length - 1]!.conds.length === 0) continue;
      g.push(rule);
    }
  }
  // Rules at the end of a group that return the default action anyway change nothing.
  for (const [nr, g] of groups) {
    while (g.length > 0 && g[g.length - 1]!.ret === defaultRet) g.pop();
    if (g.length === 0) groups.delete(nr);
  }
  return { groups, unknown };
}

/** Longest run of `nr == N → ret` jumps sharing one `ret` (each jt must stay ≤ 255). */
const CHAIN = 250;

const ENOSYS = 38;

/**
 * The default action for a syscall no rule named (A holds its number). As runc does it: one
 * newer than every syscall in tsrun's tables gets ENOSYS, as on an older kernel, so that a
 * libc falls back to an older call instead of failing with the profile's errno (EPERM); nr -1
 * (no syscall) keeps the default.
 */
function emitDefault(asm: Assembler, arch: ArchInfo, defaultRet: number): void {
  if (defaultRet === SECCOMP_RET.ALLOW || defaultRet === SECCOMP_RET.LOG) return asm.ret(defaultRet);
  const known = asm.label("known");
  asm.jump(BPF.JGT, Math.max(...Object.values(arch.table)), null, known);
  asm.jump(BPF.JEQ, 0xffffffff, known, null);
  asm.ret(SECCOMP_RET.ERRNO | ENOSYS);
  asm.place(known);
  asm.ret(defaultRet);
}

/** One arch's section: A is not assumed; ends in returns only. */
function emitSection(asm: Assembler, arch: ArchInfo, groups: Map<number, Rule[]>, defaultRet: number, x32: string | null): void {
  asm.load(SECCOMP_DATA.nr);
  if (arch.token === "SCMP_ARCH_X86_64") {
    // x32 syscalls come in with AUDIT_ARCH_X86_64 and the x32 bit set in nr. nr == -1 (a skipped
    // syscall, or syscall(-1)) is left to the default action, as it has no number in any table.
    const dispatch = asm.label("dispatch");
    asm.jump(BPF.JGE, X32_SYSCALL_BIT, null, dispatch);
    asm.jump(BPF.JEQ, 0xffffffff, dispatch, null);
    if (x32) asm.ja(x32);
    else asm.ret(SECCOMP_RET.KILL_PROCESS);
    asm.place(dispatch);
  }
  // Syscalls decided by their first rule alone, by action; the others need their block.
  const simple = new Map<number, number[]>();
  const complex: [number, Rule[]][] = [];
  for (const [nr, g] of [...groups].sort((a, b) => a[0] - b[0])) {
    if (g.length === 1 && g[0]!.conds.length === 0) {
      const list = simple.get(g[0]!.ret) ?? [];
      list.push(nr);
      simple.set(g[0]!.ret, list);
    } else complex.push([nr, g]);
  }
  // Biggest class first: an allow-list profile checks its allowed syscalls first.
  for (const [ret, nrs] of [...simple].sort((a, b) => b[1].length - a[1].length)) {
    for (let i = 0; i < nrs.length; i += CHAIN) {
      const chunk = nrs.slice(i, i + CHAIN);
      const hit = asm.label("hit");
      const skip = asm.label("skip");
      chunk.forEach((nr, j) => {
        if (j < chunk.length - 1) asm.jump(BPF.JEQ, nr, hit, null);
        else asm.jump(BPF.JEQ, nr, hit, skip);
      });
      asm.place(hit);
      asm.ret(ret);
      asm.place(skip);
    }
  }
  const blocks = complex.map(([nr, rules]) => ({ nr, rules, label: asm.label(`nr${nr}`) }));
  for (const b of blocks) asm.jump(BPF.JEQ, b.nr, b.label, null);
  emitDefault(asm, arch, defaultRet);
  for (const b of blocks) {
    asm.place(b.label);
    for (const rule of b.rules) {
      const next = asm.label("next");
      for (const c of rule.conds) emitCond(asm, c, arch.bits32, next);
      asm.ret(rule.ret);
      asm.place(next);
    }
    asm.ret(defaultRet);
  }
}

/**
 * Compiles `linux.seccomp` for `arch` (the native arch: "x86_64", or "x86"); the native arch is
 * always in the filter, other listed x86 ABIs are added, other arches are ignored (and killed).
 */
export function compileSeccomp(profile: LinuxSeccomp, arch = "x86_64"): CompiledSeccomp {
  const native = NATIVE[arch];
  if (!native) throw new SeccompError(`seccomp: no syscall table for the native arch ${JSON.stringify(arch)} (x86_64 and x86 are supported)`);

  const defaultErrno = profile.defaultErrnoRet;
  const defaultRet = actionValue(`${P}/defaultAction`, profile.defaultAction, defaultErrno, `${P}/defaultErrnoRet`);
  // A notifying default would catch the init's own handover of the listener (and every call
  // before an agent has it).
  if (defaultRet === SECCOMP_RET.USER_NOTIF) fail(`${P}/defaultAction`, "SCMP_ACT_NOTIFY cannot be the default action");

  let flags = 0;
  (profile.flags ?? []).forEach((f, i) => {
    const bit = Object.hasOwn(SECCOMP_FILTER_FLAG, f) ? SECCOMP_FILTER_FLAG[f as keyof typeof SECCOMP_FILTER_FLAG] : undefined;
    if (bit === undefined) fail(`${P}/flags/${i}`, `${JSON.stringify(f)} is not supported (only ${Object.keys(SECCOMP_FILTER_FLAG).join(", ")})`);
    else flags |= bit;
  });

  const tokens: ArchToken[] = [native];
  const ignoredArches: string[] = [];
  for (const a of profile.architectures ?? []) {
    if (Object.hasOwn(ARCHES, a)) {
      if (!tokens.includes(a as ArchToken)) tokens.push(a as ArchToken);
    } else if (!ignoredArches.includes(a)) ignoredArches.push(a);
  }
  const arches = tokens.map((t) => ARCHES[t]);

  const rules = (profile.syscalls ?? []).flatMap((s, i) => parseRules(i, s).map((rule) => ({ names: s.names as string[], rule })));

  if (rules.some((r) => r.rule.ret === SECCOMP_RET.USER_NOTIF)) {
    if (!profile.listenerPath) fail(`${P}/listenerPath`, "is required when a rule uses SCMP_ACT_NOTIFY (the seccomp agent's unix socket)");
    flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
    // The kernel refuses TSYNC with a listener unless a thread it cannot sync fails the call
    // with ESRCH instead of returning that thread's id in place of the listener fd.
    if (flags & SECCOMP_FILTER_FLAG.SECCOMP_FILTER_FLAG_TSYNC) flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
  } else {
    // Without a listener it would change nothing, and the kernel refuses it: dropped, as libseccomp does.
    flags &= ~SECCOMP_FILTER_FLAG.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
  }

  const asm = new Assembler();
  const sections = new Map<ArchToken, string>(arches.map((a) => [a.token, asm.label(a.token)]));
  const x32 = sections.get("SCMP_ARCH_X32") ?? null;

  asm.load(SECCOMP_DATA.arch);
  if (sections.has("SCMP_ARCH_X86_64")) asm.jump(BPF.JEQ, AUDIT_ARCH_X86_64, sections.get("SCMP_ARCH_X86_64")!, null);
  if (sections.has("SCMP_ARCH_X86")) asm.jump(BPF.JEQ, AUDIT_ARCH_I386, sections.get("SCMP_ARCH_X86")!, null);
  asm.ret(SECCOMP_RET.KILL_PROCESS);

  // x32 syscalls arrive as AUDIT_ARCH_X86_64: without the x86_64 section they are never seen.
  // Its section comes after the x86_64 one, which jumps there (BPF only jumps forward).
  const emitted = arches.filter((a) => a.token !== "SCMP_ARCH_X32");
  if (x32 && sections.has("SCMP_ARCH_X86_64")) emitted.push(ARCHES.SCMP_ARCH_X32);
  // name → how many of the emitted arches did not know it
  const unknownIn = new Map<string, number>();
  for (const a of emitted) {
    const { groups, unknown } = groupRules(rules, a, defaultRet);
    for (const n of unknown) unknownIn.set(n, (unknownIn.get(n) ?? 0) + 1);
    asm.place(sections.get(a.token)!);
    emitSection(asm, a, groups, defaultRet, a.token === "SCMP_ARCH_X86_64" ? x32 : null);
  }

  const prog = asm.assemble();
  if (prog.length > BPF_MAXINSNS) throw new SeccompError(`${P}: the filter needs ${prog.length} BPF instructions, more than the kernel's ${BPF_MAXINSNS}`);
  const seen = new Set<string>();
  const skipped: string[] = [];
  for (const { names } of rules)
    for (const n of names)
      if (unknownIn.get(n) === emitted.length && !seen.has(n)) {
        seen.add(n);
        skipped.push(n);
      }
  return { program: encode(prog), flags, skipped, ignoredArches };
}

export { BPF, BPF_MAXINSNS, decode, encode, type Insn } from "./bpf.ts";
