// The seccomp compiler, checked by running its BPF programs in a small classic-BPF interpreter
// (the subset the compiler emits, with the kernel checker's rules on jumps) on synthetic seccomp_data.
import { describe, expect, test } from "bun:test";
import type { LinuxSeccomp, LinuxSyscall } from "@tsrun/ocispec/core";
import { TsrunError } from "../src/errors.ts";
import { AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, BPF, compileSeccomp, decode, SeccompError, syscallNames, type Insn } from "../src/seccomp/index.ts";
import { SYSCALLS_X86 } from "../src/seccomp/syscalls-x86.ts";
import { SYSCALLS_X86_64 } from "../src/seccomp/syscalls-x86_64.ts";
import { SYSCALLS_X32 } from "../src/seccomp/syscalls-x32.ts";

const ALLOW = 0x7fff0000;
const KILL_PROCESS = 0x80000000;
const KILL_THREAD = 0;
const TRAP = 0x00030000;
const LOG = 0x7ffc0000;
const USER_NOTIF = 0x7fc00000;
const NEW_LISTENER = 8;
const TSYNC_ESRCH = 16;
const WAIT_KILLABLE_RECV = 32;
const errno = (e: number): number => (0x00050000 | e) >>> 0;
const trace = (e: number): number => (0x7ff00000 | e) >>> 0;
const EPERM = 1;
const ENOSYS = 38;

interface Data {
  nr: number;
  arch?: number;
  args?: (number | bigint)[];
}

/** seccomp_data as the kernel lays it out on x86 (little endian). */
function seccompData(d: Data): DataView {
  const v = new DataView(new ArrayBuffer(64));
  v.setInt32(0, d.nr, true);
  v.setUint32(4, d.arch ?? AUDIT_ARCH_X86_64, true);
  v.setBigUint64(8, 0x401000n, true);
  (d.args ?? []).forEach((a, i) => v.setBigUint64(16 + 8 * i, BigInt.asUintN(64, BigInt(a)), true));
  return v;
}

/** Checks a program the way the kernel's checker would (the subset used), then runs it. */
function validate(prog: Insn[]): void {
  expect(prog.length).toBeGreaterThan(0);
  expect(prog.length).toBeLessThanOrEqual(4096);
  prog.forEach((ins, pc) => {
    switch (ins.code) {
      case BPF.LD_W_ABS:
        expect(ins.k % 4).toBe(0);
        expect(ins.k).toBeLessThan(64);
        break;
      case BPF.JA:
        expect(pc + 1 + ins.k).toBeLessThan(prog.length);
        break;
      case BPF.JEQ:
      case BPF.JGT:
      case BPF.JGE:
      case BPF.JSET:
        expect(ins.jt).toBeLessThanOrEqual(255);
        expect(ins.jf).toBeLessThanOrEqual(255);
        expect(pc + 1 + Math.max(ins.jt, ins.jf)).toBeLessThan(prog.length);
        break;
      case BPF.AND:
      case BPF.RET:
        break;
      default:
        throw new Error(`unexpected opcode 0x${ins.code.toString(16)} at ${pc}`);
    }
  });
  expect(prog[prog.length - 1]!.code).toBe(BPF.RET);
}

function run(program: Uint8Array, d: Data): number {
  const prog = decode(program);
  const data = seccompData(d);
  let A = 0;
  let pc = 0;
  for (let steps = 0; steps < 100000; steps++) {
    const ins = prog[pc];
    if (!ins) throw new Error(`pc ${pc} ran off the program`);
    pc++;
    switch (ins.code) {
      case BPF.LD_W_ABS:
        A = data.getUint32(ins.k, true);
        break;
      case BPF.AND:
        A = (A & ins.k) >>> 0;
        break;
      case BPF.JA:
        pc += ins.k;
        break;
      case BPF.JEQ:
        pc += A === ins.k ? ins.jt : ins.jf;
        break;
      case BPF.JGT:
        pc += A > ins.k ? ins.jt : ins.jf;
        break;
      case BPF.JGE:
        pc += A >= ins.k ? ins.jt : ins.jf;
        break;
      case BPF.JSET:
        pc += (A & ins.k) !== 0 ? ins.jt : ins.jf;
        break;
      case BPF.RET:
        return ins.k >>> 0;
      default:
        throw new Error(`unknown opcode ${ins.code}`);
    }
  }
  throw new Error("no verdict");
}

const NR = SYSCALLS_X86_64;
const nr = (name: string): number => {
  const n = NR[name];
  if (n === undefined) throw new Error(`no syscall ${name}`);
  return n;
};

function compile(p: LinuxSeccomp, arch?: string): { program: Uint8Array; flags: number; skipped: string[]; verdict(name: string, args?: (number | bigint)[]): number } {
  const c = arch === undefined ? compileSeccomp(p) : compileSeccomp(p, arch);
  validate(decode(c.program));
  return { ...c, verdict: (name, args) => run(c.program, { nr: nr(name), args }) };
}

describe("tables", () => {
  test("generated from the uapi headers", () => {
    expect(SYSCALLS_X86_64.read).toBe(0);
    expect(SYSCALLS_X86_64.getpid).toBe(39);
    expect(SYSCALLS_X86_64.clone3).toBe(435);
    expect(SYSCALLS_X86.getpid).toBe(20);
    expect(SYSCALLS_X86.socketcall).toBe(102);
    expect(SYSCALLS_X32.read).toBe(0x40000000);
    expect(SYSCALLS_X32.rt_sigaction).toBe(0x40000000 + 512);
    expect(syscallNames().length).toBeGreaterThan(340);
  });
});

describe("actions", () => {
  test("listed syscalls get their action, the others the default", () => {
    const c = compile({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [
        { names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" },
        { names: ["reboot"], action: "SCMP_ACT_KILL_PROCESS" },
        { names: ["kexec_load"], action: "SCMP_ACT_KILL" },
        { names: ["kexec_file_load"], action: "SCMP_ACT_KILL_THREAD" },
        { names: ["swapon"], action: "SCMP_ACT_TRAP" },
        { names: ["swapoff"], action: "SCMP_ACT_LOG" },
        { names: ["ptrace"], action: "SCMP_ACT_TRACE", errnoRet: 9 },
        { names: ["acct"], action: "SCMP_ACT_TRACE" },
      ],
    });
    expect(c.verdict("mkdir")).toBe(errno(EPERM));
    expect(c.verdict("mkdirat")).toBe(errno(EPERM));
    expect(c.verdict("reboot")).toBe(KILL_PROCESS);
    expect(c.verdict("kexec_load")).toBe(KILL_THREAD);
    expect(c.verdict("kexec_file_load")).toBe(KILL_THREAD);
    expect(c.verdict("swapon")).toBe(TRAP);
    expect(c.verdict("swapoff")).toBe(LOG);
    expect(c.verdict("ptrace")).toBe(trace(9));
    expect(c.verdict("acct")).toBe(trace(EPERM));
    for (const n of ["read", "write", "getpid", "openat", "rmdir", "clone3"]) expect(c.verdict(n)).toBe(ALLOW);
    expect(c.flags).toBe(0);
    expect(c.skipped).toEqual([]);
  });

  test("errnoRet and defaultErrnoRet", () => {
    const c = compile({
      defaultAction: "SCMP_ACT_ERRNO",
      defaultErrnoRet: ENOSYS,
      syscalls: [
        { names: ["read", "write"], action: "SCMP_ACT_ALLOW" },
        { names: ["getpid"], action: "SCMP_ACT_ERRNO", errnoRet: 42 },
        { names: ["uname"], action: "SCMP_ACT_ERRNO", errnoRet: 0 },
        { names: ["mkdir"], action: "SCMP_ACT_ERRNO" },
      ],
    });
    expect(c.verdict("read")).toBe(ALLOW);
    expect(c.verdict("getpid")).toBe(errno(42));
    expect(c.verdict("uname")).toBe(errno(0));
    // A rule's errno defaults to EPERM (runtime-spec), not to defaultErrnoRet.
    expect(c.verdict("mkdir")).toBe(errno(EPERM));
    expect(c.verdict("openat")).toBe(errno(ENOSYS));
    expect(compile({ defaultAction: "SCMP_ACT_ERRNO" }).verdict("openat")).toBe(errno(EPERM));
    expect(compile({ defaultAction: "SCMP_ACT_TRACE", defaultErrnoRet: 7 }).verdict("openat")).toBe(trace(7));
  });

  test("flags", () => {
    expect(compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", flags: ["SECCOMP_FILTER_FLAG_TSYNC"] }).flags).toBe(1);
    expect(compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", flags: ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"] }).flags).toBe(6);
    // Only meaningful with a listener (the kernel refuses it without one): dropped, like libseccomp.
    expect(compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", flags: ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"] }).flags).toBe(0);
    expect(() => compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", flags: ["BOGUS" as never] })).toThrow(SeccompError);
  });

  test("SCMP_ACT_NOTIFY returns USER_NOTIF and asks the kernel for a listener", () => {
    const profile: LinuxSeccomp = {
      defaultAction: "SCMP_ACT_ERRNO",
      listenerPath: "/run/agent.sock",
      syscalls: [
        { names: ["read", "write", "sendmsg", "exit_group"], action: "SCMP_ACT_ALLOW" },
        { names: ["mkdir", "mkdirat"], action: "SCMP_ACT_NOTIFY" },
        { names: ["chmod"], action: "SCMP_ACT_NOTIFY", args: [{ index: 1, value: 0o777, op: "SCMP_CMP_EQ" }] },
      ],
    };
    const c = compile(profile);
    expect(c.verdict("mkdir")).toBe(USER_NOTIF);
    expect(c.verdict("mkdirat")).toBe(USER_NOTIF);
    expect(c.verdict("chmod", [0, 0o777])).toBe(USER_NOTIF);
    expect(c.verdict("chmod", [0, 0o755])).toBe(errno(EPERM));
    expect(c.verdict("sendmsg")).toBe(ALLOW);
    expect(c.verdict("getpid")).toBe(errno(EPERM));
    expect(c.flags).toBe(NEW_LISTENER);
    // TSYNC with a listener needs TSYNC_ESRCH, else the kernel says EINVAL.
    expect(compileSeccomp({ ...profile, flags: ["SECCOMP_FILTER_FLAG_TSYNC"] }).flags).toBe(1 | NEW_LISTENER | TSYNC_ESRCH);
    expect(compileSeccomp({ ...profile, flags: ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"] }).flags).toBe(NEW_LISTENER | WAIT_KILLABLE_RECV);
    // No notifying rule: no listener, whatever listenerPath says (the spec: it is then ignored).
    expect(compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", listenerPath: "/run/agent.sock", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO" }] }).flags).toBe(0);
  });

  test("what cannot be compiled is a SeccompError naming the place", () => {
    const bad = (p: LinuxSeccomp, msg: string): void => {
      let err: unknown;
      try {
        compileSeccomp(p);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SeccompError);
      expect(err).toBeInstanceOf(TsrunError);
      expect((err as Error).message).toContain(msg);
    };
    bad({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO" }, { names: ["ioctl"], action: "SCMP_ACT_NOTIFY" }] }, "/linux/seccomp/listenerPath: is required when a rule uses SCMP_ACT_NOTIFY");
    bad({ defaultAction: "SCMP_ACT_NOTIFY", listenerPath: "/run/agent.sock" }, "/linux/seccomp/defaultAction: SCMP_ACT_NOTIFY cannot be the default action");
    bad({ defaultAction: "SCMP_ACT_ALLOW", listenerPath: "/run/agent.sock", syscalls: [{ names: ["mkdir", "sendmsg"], action: "SCMP_ACT_NOTIFY" }] }, "/linux/seccomp/syscalls/0/names/1: SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall");
    // runc refuses write for the same reason: the init writes the exec fifo after loading the filter.
    bad({ defaultAction: "SCMP_ACT_ALLOW", listenerPath: "/run/agent.sock", syscalls: [{ names: ["write"], action: "SCMP_ACT_NOTIFY" }] }, "/linux/seccomp/syscalls/0/names/0: SCMP_ACT_NOTIFY cannot be used for the write syscall");
    bad({ defaultAction: "SCMP_ACT_BOGUS" as never }, "/linux/seccomp/defaultAction: unknown action");
    bad({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW", errnoRet: 3 }] }, "/linux/seccomp/syscalls/0/errnoRet: only applies");
    bad({ defaultAction: "SCMP_ACT_ALLOW", defaultErrnoRet: 3 }, "/linux/seccomp/defaultErrnoRet: only applies");
    bad({ defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 70000 }, "/linux/seccomp/defaultErrnoRet: must be an errno");
    bad({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO", args: [{ index: 6, value: 0, op: "SCMP_CMP_EQ" }] }] }, "/linux/seccomp/syscalls/0/args/0/index: must be 0 to 5");
    bad({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: -1, op: "SCMP_CMP_EQ" }] }] }, "/linux/seccomp/syscalls/0/args/0/value: must be an unsigned 64-bit integer");
    bad({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 1, op: "SCMP_CMP_XX" as never }] }] }, "/linux/seccomp/syscalls/0/args/0/op: unknown comparison");
    expect(() => compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW" }, "aarch64")).toThrow(SeccompError);
  });

  test("unknown names are skipped and reported once", () => {
    const c = compile({
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: [
        { names: ["read", "no_such_call", "write"], action: "SCMP_ACT_ALLOW" },
        { names: ["no_such_call", "socketcall", "constructor", "toString"], action: "SCMP_ACT_ALLOW" },
      ],
    });
    // socketcall exists on i386 only: unknown for x86_64, the only arch here.
    expect(c.skipped).toEqual(["no_such_call", "socketcall", "constructor", "toString"]);
    expect(c.verdict("read")).toBe(ALLOW);
    expect(c.verdict("write")).toBe(ALLOW);
    expect(c.verdict("getpid")).toBe(errno(EPERM));
    // With SCMP_ARCH_X86 in the filter, socketcall is known somewhere: not reported.
    const both = compileSeccomp({ defaultAction: "SCMP_ACT_ERRNO", architectures: ["SCMP_ARCH_X86"], syscalls: [{ names: ["socketcall", "nope"], action: "SCMP_ACT_ALLOW" }] });
    expect(both.skipped).toEqual(["nope"]);
    expect(run(both.program, { nr: SYSCALLS_X86.socketcall!, arch: AUDIT_ARCH_I386 })).toBe(ALLOW);
  });

  test("an empty profile is just the default action", () => {
    const c = compile({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [] });
    expect(c.verdict("read")).toBe(ALLOW);
    expect(run(c.program, { nr: -1 })).toBe(ALLOW);
  });
});

describe("arguments", () => {
  const rule = (op: string, value: number | bigint, valueTwo?: number | bigint, index = 1): LinuxSeccomp => ({
    defaultAction: "SCMP_ACT_ALLOW",
    syscalls: [{ names: ["ioctl"], action: "SCMP_ACT_ERRNO", args: [{ index, op: op as never, value: value as number, ...(valueTwo === undefined ? {} : { valueTwo: valueTwo as number }) }] }],
  });
  const H = 0x1_0000_0000n; // one in the high word
  const cases: [string, bigint, bigint[], bigint[]][] = [
    // op, value, args that match, args that do not
    ["SCMP_CMP_EQ", 5n, [5n], [4n, 6n, 5n + H, H]],
    ["SCMP_CMP_EQ", 5n * H + 7n, [5n * H + 7n], [7n, 5n * H, 4n * H + 7n, 6n * H + 7n]],
    ["SCMP_CMP_NE", 5n, [4n, 6n, 5n + H, 0n, (1n << 64n) - 1n], [5n]],
    ["SCMP_CMP_NE", 2n * H + 1n, [1n, 2n * H, 3n * H + 1n], [2n * H + 1n]],
    ["SCMP_CMP_LT", 10n, [0n, 9n], [10n, 11n, H, H + 1n]],
    ["SCMP_CMP_LT", 3n * H + 10n, [0n, 10n, 0xffffffffn, 3n * H, 3n * H + 9n, 2n * H + 0xffffffffn], [3n * H + 10n, 3n * H + 11n, 4n * H]],
    ["SCMP_CMP_LE", 10n, [0n, 9n, 10n], [11n, H, H + 10n]],
    ["SCMP_CMP_LE", 3n * H + 10n, [3n * H + 10n, 3n * H, 2n * H + 0xffffffffn], [3n * H + 11n, 4n * H]],
    ["SCMP_CMP_GT", 10n, [11n, H, H + 1n, (1n << 64n) - 1n], [0n, 10n]],
    ["SCMP_CMP_GT", 3n * H + 10n, [3n * H + 11n, 4n * H, 4n * H + 1n], [3n * H + 10n, 3n * H + 9n, 0xffffffffn, 2n * H + 0xffffffffn]],
    ["SCMP_CMP_GE", 10n, [10n, 11n, H], [0n, 9n]],
    ["SCMP_CMP_GE", 3n * H + 10n, [3n * H + 10n, 3n * H + 11n, 4n * H], [3n * H + 9n, 2n * H + 0xffffffffn, 0xffffffffn]],
  ];
  for (const [op, value, yes, no] of cases) {
    test(`${op} ${value.toString(16)}`, () => {
      const c = compile(rule(op, value));
      for (const a of yes) expect([a, c.verdict("ioctl", [0, a])]).toEqual([a, errno(EPERM)]);
      for (const a of no) expect([a, c.verdict("ioctl", [0, a])]).toEqual([a, ALLOW]);
      // Only argument 1 is looked at.
      expect(c.verdict("ioctl", [value, no[0]!, value, value, value, value])).toBe(ALLOW);
    });
  }

  test("SCMP_CMP_MASKED_EQ: (arg & value) == valueTwo, both words", () => {
    const c = compile(rule("SCMP_CMP_MASKED_EQ", 0xff00n | (0xf0n * H), 0x1200n | (0x30n * H)));
    expect(c.verdict("ioctl", [0, 0x1200n | (0x30n * H)])).toBe(errno(EPERM));
    expect(c.verdict("ioctl", [0, 0x12abn | (0x3fn * H)])).toBe(errno(EPERM));
    expect(c.verdict("ioctl", [0, 0x1300n | (0x30n * H)])).toBe(ALLOW);
    expect(c.verdict("ioctl", [0, 0x1200n | (0x40n * H)])).toBe(ALLOW);
    expect(c.verdict("ioctl", [0, 0x1200n])).toBe(ALLOW);
    // Docker's clone rule: (flags & CLONE_NEWNS|…) == 0
    const ns = 0x7e020000;
    const d = compile({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["clone"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: ns, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }] }] });
    expect(d.verdict("clone", [0x01200011])).toBe(ALLOW);
    expect(d.verdict("clone", [0x01200011 | 0x20000000])).toBe(errno(EPERM));
    // A mask on a high-word only: low bits do not matter.
    const e = compile(rule("SCMP_CMP_MASKED_EQ", H, 0n));
    expect(e.verdict("ioctl", [0, 0xffffffffn])).toBe(errno(EPERM));
    expect(e.verdict("ioctl", [0, H])).toBe(ALLOW);
  });

  test("conditions of a rule are AND'ed; rules for one syscall are OR'ed, first match wins", () => {
    const c = compile({
      defaultAction: "SCMP_ACT_ERRNO",
      defaultErrnoRet: ENOSYS,
      syscalls: [
        { names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 0, op: "SCMP_CMP_EQ" }] },
        { names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 8, op: "SCMP_CMP_EQ" }] },
        { names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 0xffffffff, op: "SCMP_CMP_EQ" }] },
        { names: ["socket"], action: "SCMP_ACT_ERRNO", errnoRet: 97, args: [{ index: 0, value: 40, op: "SCMP_CMP_EQ" }] },
        {
          names: ["socket"],
          action: "SCMP_ACT_ALLOW",
          args: [
            { index: 0, value: 1, op: "SCMP_CMP_GE" },
            { index: 2, value: 10, op: "SCMP_CMP_LE" },
            { index: 1, value: 0xf, valueTwo: 1, op: "SCMP_CMP_MASKED_EQ" },
          ],
        },
        { names: ["socket"], action: "SCMP_ACT_LOG" },
        { names: ["socket"], action: "SCMP_ACT_KILL" }, // after an unconditional rule: never reached
        { names: ["read"], action: "SCMP_ACT_ALLOW" },
      ],
    });
    expect(c.verdict("personality", [0])).toBe(ALLOW);
    expect(c.verdict("personality", [8])).toBe(ALLOW);
    expect(c.verdict("personality", [0xffffffff])).toBe(ALLOW);
    expect(c.verdict("personality", [1])).toBe(errno(ENOSYS));
    expect(c.verdict("personality", [H])).toBe(errno(ENOSYS));
    expect(c.verdict("socket", [40, 1])).toBe(errno(97));
    expect(c.verdict("socket", [2, 1, 0])).toBe(ALLOW);
    expect(c.verdict("socket", [2, 0x801, 6])).toBe(ALLOW); // SOCK_STREAM | SOCK_CLOEXEC
    expect(c.verdict("socket", [2, 2, 0])).toBe(LOG); // SOCK_DGRAM: the masked condition fails
    expect(c.verdict("socket", [2, 1, 11])).toBe(LOG);
    expect(c.verdict("socket", [0, 1, 0])).toBe(LOG);
    expect(c.verdict("read")).toBe(ALLOW);
    expect(c.verdict("write")).toBe(errno(ENOSYS));
  });

  test("a syscall in an unconditional rule then in a conditional one: the first decides", () => {
    const c = compile({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [
        { names: ["ioctl"], action: "SCMP_ACT_ERRNO", args: [{ index: 1, value: 0x5412, op: "SCMP_CMP_EQ" }] },
        { names: ["ioctl", "mkdir"], action: "SCMP_ACT_ERRNO", errnoRet: 13 },
        { names: ["mkdir"], action: "SCMP_ACT_ALLOW", args: [{ index: 1, value: 0o755, op: "SCMP_CMP_EQ" }] },
      ],
    });
    expect(c.verdict("ioctl", [0, 0x5412])).toBe(errno(EPERM));
    expect(c.verdict("ioctl", [0, 0x5413])).toBe(errno(13));
    expect(c.verdict("mkdir", [0, 0o755])).toBe(errno(13));
  });
});

describe("architectures", () => {
  test("a foreign arch is killed; the native one is always in", () => {
    const c = compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO" }] });
    expect(run(c.program, { nr: 0 })).toBe(ALLOW);
    expect(run(c.program, { nr: 0, arch: AUDIT_ARCH_I386 })).toBe(KILL_PROCESS);
    expect(run(c.program, { nr: 0, arch: 0xc00000b7 /* aarch64 */ })).toBe(KILL_PROCESS);
    // x32 not listed: any nr with the x32 bit kills.
    expect(run(c.program, { nr: SYSCALLS_X32.mkdir! })).toBe(KILL_PROCESS);
    expect(run(c.program, { nr: 0x40000000 })).toBe(KILL_PROCESS);
    // nr -1 (syscall(-1), a syscall skipped by a tracer) is the default action.
    expect(run(c.program, { nr: -1 })).toBe(ALLOW);
    // Listing only foreign arches changes nothing; they are reported.
    const d = compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"] });
    expect(d.ignoredArches).toEqual(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
    expect(run(d.program, { nr: 0, arch: 0xc00000b7 })).toBe(KILL_PROCESS);
  });

  test("x86, x32 and x86_64, each with its own numbers", () => {
    const c = compileSeccomp({
      defaultAction: "SCMP_ACT_ALLOW",
      architectures: ["SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
      syscalls: [
        { names: ["mkdir", "_llseek", "rt_sigaction"], action: "SCMP_ACT_ERRNO", errnoRet: 5 },
        { names: ["personality"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 0x1_0000_0008, op: "SCMP_CMP_EQ" }] },
      ],
    });
    validate(decode(c.program));
    expect(c.skipped).toEqual([]);
    const i386 = (n: string, args?: number[]): number => run(c.program, { nr: SYSCALLS_X86[n]!, arch: AUDIT_ARCH_I386, args });
    const x32 = (n: string, args?: number[]): number => run(c.program, { nr: SYSCALLS_X32[n]!, args });
    expect(run(c.program, { nr: nr("mkdir") })).toBe(errno(5));
    expect(run(c.program, { nr: nr("rt_sigaction") })).toBe(errno(5));
    expect(i386("mkdir")).toBe(errno(5));
    expect(i386("_llseek")).toBe(errno(5));
    expect(i386("rt_sigaction")).toBe(errno(5));
    expect(i386("read")).toBe(ALLOW);
    // i386's mkdir is 39, x86_64's getpid: not confused across arches.
    expect(SYSCALLS_X86.mkdir).toBe(nr("getpid"));
    expect(run(c.program, { nr: nr("getpid") })).toBe(ALLOW);
    expect(x32("mkdir")).toBe(errno(5));
    expect(x32("rt_sigaction")).toBe(errno(5)); // 512 + bit: the x32 entry point
    expect(run(c.program, { nr: (0x40000000 | nr("rt_sigaction")) >>> 0 })).toBe(ALLOW); // x86_64's 13 with the bit: not x32's
    expect(x32("read")).toBe(ALLOW);
    // 32-bit ABIs compare the low word only.
    expect(i386("personality", [8])).toBe(errno(EPERM));
    expect(run(c.program, { nr: nr("personality"), args: [8] })).toBe(ALLOW);
    expect(run(c.program, { nr: nr("personality"), args: [0x1_0000_0008] })).toBe(errno(EPERM));
  });

  test("native x86", () => {
    const c = compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO" }] }, "x86");
    validate(decode(c.program));
    expect(run(c.program, { nr: SYSCALLS_X86.mkdir!, arch: AUDIT_ARCH_I386 })).toBe(errno(EPERM));
    expect(run(c.program, { nr: nr("mkdir") })).toBe(KILL_PROCESS);
  });
});

/** A profile like Docker's default for amd64: an allow-list with ERRNO default and argument rules. */
function dockerLikeProfile(): LinuxSeccomp {
  const denied = new Set([
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "clone", "clone3", "create_module", "delete_module", "finit_module",
    "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount", "mount_setattr", "move_mount", "move_pages",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "personality", "pivot_root",
    "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl", "quotactl_fd", "reboot", "request_key",
    "set_mempolicy", "setdomainname", "sethostname", "settimeofday", "socket", "swapoff", "swapon", "_sysctl", "sysfs",
    "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vhangup", "vm86", "vm86old", "afs_syscall", "tuxcall", "security",
    "putpmsg", "getpmsg", "create_module", "lookup_dcookie", "syslog", "chroot", "fanotify_init", "setns", "vserver",
  ]);
  // Names of every arch Docker lists (some only exist on i386: reported as skipped on x86_64 alone).
  const allowed = [...new Set([...Object.keys(SYSCALLS_X86_64), ...Object.keys(SYSCALLS_X86)])].filter((n) => !denied.has(n));
  const ns = 0x7e020000; // CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
  const rules: LinuxSyscall[] = [
    { names: allowed as [string, ...string[]], action: "SCMP_ACT_ALLOW" },
    ...[0, 8, 0x20000, 0x20008, 0xffffffff].map((v): LinuxSyscall => ({ names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: v, op: "SCMP_CMP_EQ" }] })),
    { names: ["socket"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 40, op: "SCMP_CMP_NE" }] },
    { names: ["clone"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: ns, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }] },
    { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
    { names: ["chroot", "setns", "mount", "umount2", "unshare", "pivot_root"], action: "SCMP_ACT_ALLOW", args: [{ index: 5, value: 0x1234, op: "SCMP_CMP_EQ" }] },
    { names: ["ptrace"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 16, op: "SCMP_CMP_LT" }, { index: 2, value: 1n << 40n as never, op: "SCMP_CMP_GE" }] },
    { names: ["syslog"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 3, op: "SCMP_CMP_LE" }] },
    { names: ["fanotify_init"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 4, op: "SCMP_CMP_GT" }] },
    { names: ["process_vm_readv", "process_vm_writev"], action: "SCMP_ACT_ALLOW", args: [{ index: 3, value: 0xff, valueTwo: 0x10, op: "SCMP_CMP_MASKED_EQ" }] },
    { names: ["sethostname"], action: "SCMP_ACT_ALLOW", args: [{ index: 1, value: 64, op: "SCMP_CMP_LE" }] },
  ];
  return { defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: EPERM, architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], syscalls: rules };
}

test("conditions on the same argument are ORed (one rule each), as runc does; on different ones ANDed", () => {
  const c = compile({
    defaultAction: "SCMP_ACT_ERRNO",
    syscalls: [
      { names: ["process_vm_readv"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 100, op: "SCMP_CMP_EQ" }, { index: 0, value: 9001, op: "SCMP_CMP_EQ" }] },
      { names: ["kill"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 1, op: "SCMP_CMP_EQ" }, { index: 1, value: 9, op: "SCMP_CMP_EQ" }] },
    ],
  });
  expect(c.verdict("process_vm_readv", [100])).toBe(ALLOW);
  expect(c.verdict("process_vm_readv", [9001])).toBe(ALLOW);
  expect(c.verdict("process_vm_readv", [7])).toBe(errno(1));
  expect(c.verdict("kill", [1, 9])).toBe(ALLOW);
  expect(c.verdict("kill", [1, 15])).toBe(errno(1));
});

describe("size", () => {
  test("every x86_64 syscall allowed plus 20 argument rules, one arch", () => {
    const rules: LinuxSyscall[] = [{ names: syscallNames() as [string, ...string[]], action: "SCMP_ACT_ALLOW" }];
    const names = syscallNames();
    for (let i = 0; i < 20; i++)
      rules.unshift({ names: [names[i * 15]!], action: "SCMP_ACT_ERRNO", errnoRet: 100 + i, args: [{ index: 1 + (i % 5), value: BigInt(i) << 33n as never, op: "SCMP_CMP_GE" }, { index: 0, value: 7, op: "SCMP_CMP_NE" }] });
    const c = compile({ defaultAction: "SCMP_ACT_KILL_PROCESS", syscalls: rules });
    const prog = decode(c.program);
    console.log(`all x86_64 allowed + 20 arg rules: ${prog.length} instructions`);
    expect(prog.length).toBeLessThan(4096);
    expect(prog.length).toBeLessThan(1000);
    // arg0 == 7 fails every rule's second condition.
    for (const n of names) expect(c.verdict(n, [7])).toBe(ALLOW);
    expect(c.verdict(names[0]!, [0])).toBe(errno(100));
    expect(c.verdict(names[15]!, [8, 0, 1n << 33n, 0, 0, 0])).toBe(errno(101));
    // A number in a hole of the table keeps the default; one above every known syscall is
    // ENOSYS (runc's stub), and -1 (no syscall) keeps the default too.
    expect(run(c.program, { nr: 400 })).toBe(KILL_PROCESS);
    expect(run(c.program, { nr: 999 })).toBe(errno(38));
    expect(run(c.program, { nr: 0xffffffff })).toBe(KILL_PROCESS);
    const allowAll = compile({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO" }] });
    expect(run(allowAll.program, { nr: 999 })).toBe(ALLOW);
  });

  test("docker-like default profile for x86_64, x86 and x32", () => {
    const p = dockerLikeProfile();
    const c = compileSeccomp(p);
    const prog = decode(c.program);
    validate(prog);
    console.log(`docker-like profile (3 arches): ${prog.length} instructions; x86_64 only: ${decode(compileSeccomp({ ...p, architectures: [] }).program).length}`);
    expect(prog.length).toBeLessThan(4096);
    expect(c.skipped).toEqual([]);
    const v = (name: string, args?: (number | bigint)[]): number => run(c.program, { nr: nr(name), args });
    expect(v("read")).toBe(ALLOW);
    expect(v("reboot")).toBe(errno(EPERM));
    expect(v("clone", [0x01200011])).toBe(ALLOW);
    expect(v("clone", [0x10000000])).toBe(errno(EPERM));
    expect(v("clone3")).toBe(errno(ENOSYS));
    expect(v("socket", [2])).toBe(ALLOW);
    expect(v("socket", [40])).toBe(errno(EPERM));
    expect(v("personality", [0xffffffff])).toBe(ALLOW);
    expect(v("personality", [1])).toBe(errno(EPERM));
    expect(v("ptrace", [1, 0, 1n << 41n])).toBe(ALLOW);
    expect(v("ptrace", [1, 0, 1n << 39n])).toBe(errno(EPERM));
    expect(run(c.program, { nr: SYSCALLS_X86.socketcall!, arch: AUDIT_ARCH_I386 })).toBe(ALLOW);
    expect(run(c.program, { nr: SYSCALLS_X86.clone!, arch: AUDIT_ARCH_I386, args: [0x20000000] })).toBe(errno(EPERM));
    expect(run(c.program, { nr: SYSCALLS_X32.read! })).toBe(ALLOW);
    expect(run(c.program, { nr: SYSCALLS_X32.reboot! })).toBe(errno(EPERM));
    expect(run(c.program, { nr: 0, arch: 0xc00000b7 })).toBe(KILL_PROCESS);
  });

  test("far jumps: thousands of conditional rules still give jt/jf ≤ 255 and right verdicts", () => {
    const names = syscallNames().slice(0, 150);
    const rules: LinuxSyscall[] = [];
    for (const n of names)
      for (let v = 0; v < 3; v++) rules.push({ names: [n], action: "SCMP_ACT_ERRNO", errnoRet: v + 1, args: [{ index: 0, value: v, op: "SCMP_CMP_EQ" }] });
    const c = compile({ defaultAction: "SCMP_ACT_ALLOW", syscalls: rules });
    const prog = decode(c.program);
    expect(prog.length).toBeGreaterThan(255 * 4);
    expect(prog.some((i) => i.code === BPF.JA && i.k > 255)).toBe(true);
    for (const n of names) {
      expect(c.verdict(n, [0])).toBe(errno(1));
      expect(c.verdict(n, [2])).toBe(errno(3));
      expect(c.verdict(n, [3])).toBe(ALLOW);
    }
    expect(() => compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [...rules, ...rules, ...rules] })).toThrow("more than the kernel's 4096");
  });
});
