// The plain steps the encoder writes as generic syscall ops (plan/fold.ts): their numbers against
// the kernel's tables, their buffers and texts. Pure; the executor runs them in native.test.ts.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { execCandidates, FOLD, FOLD_SYSCALLS, type FieldCheck } from "../src/plan/fold.ts";
import type { Op } from "../src/plan/ops.ts";
import { SYSCALLS_X86_64 } from "../src/seccomp/syscalls-x86_64.ts";

const check: FieldCheck = { u32: (v) => v as number, u64: (v) => v as bigint, bool: (v) => v === true, str: (v) => v as string, list: (v) => v as unknown[] };
const fold = (op: Op) => (FOLD as unknown as Record<string, (o: Op, c: FieldCheck) => Extract<Op, { op: "syscall" }>[]>)[op.op]!(op, check);
const nr = (name: keyof (typeof FOLD_SYSCALLS)["x64"]) => FOLD_SYSCALLS[process.arch as "x64"][name];
const cstr = (buf: Uint8Array, at: bigint) => new TextDecoder().decode(buf.subarray(Number(at), buf.indexOf(0, Number(at))));

describe("syscall numbers", () => {
  test("x86_64's agree with the seccomp compiler's table", () => {
    for (const [name, n] of Object.entries(FOLD_SYSCALLS.x64)) expect([name, n]).toEqual([name, SYSCALLS_X86_64[name]!]);
  });

  test("arm64's agree with the kernel's asm-generic table", () => {
    const header = readFileSync("/usr/include/asm-generic/unistd.h", "utf8");
    for (const [name, n] of Object.entries(FOLD_SYSCALLS.arm64)) expect([name, n]).toEqual([name, Number(header.match(new RegExp(`#define __NR_${name} (\\d+)`))?.[1])]);
  });
});

describe("exec's candidates, as execvp tries them", () => {
  test("a path with a slash alone; else each PATH entry joined with the file, an empty one the cwd; none beyond PATH_MAX", () => {
    expect(execCandidates("./run", "/bin")).toEqual(["./run"]);
    expect(execCandidates("/bin/sh", "")).toEqual(["/bin/sh"]);
    expect(execCandidates("sh", "/usr/bin::/bin")).toEqual(["/usr/bin/sh", "sh", "/bin/sh"]);
    expect(execCandidates("sh", "")).toEqual(["sh"]);
    // 4095 bytes and the NUL fit in PATH_MAX (4096), one more does not
    expect(execCandidates("sh", `/${"x".repeat(4091)}:/bin`)).toEqual([`/${"x".repeat(4091)}/sh`, "/bin/sh"]);
    expect(execCandidates("sh", `/${"x".repeat(4092)}:/bin`)).toEqual(["/bin/sh"]);
  });
});

describe("steps as syscalls", () => {
  test("stage, sethostname, setrlimit, prctl, umask, unshare: one call each, with the executor's old texts", () => {
    const [stage] = fold({ op: "stage", name: "tsrun:[2:INIT]" });
    expect([stage!.nr, stage!.args[0], stage!.bufArgs, cstr(stage!.buf, stage!.args[1]!)]).toEqual([nr("prctl"), 15n, 0b10, "tsrun:[2:INIT]"]);
    const [host] = fold({ op: "sethostname", name: "höst" });
    expect([host!.what, host!.nr, host!.args, host!.bufArgs, Array.from(host!.buf)]).toEqual(["sethostname höst", nr("sethostname"), [0n, 5n], 0b1, [0x68, 0xc3, 0xb6, 0x73, 0x74]]);
    const [rl] = fold({ op: "setrlimit", resource: 7, soft: 1024n, hard: (1n << 64n) - 1n });
    const v = new DataView(rl!.buf.buffer);
    expect([rl!.what, rl!.nr, rl!.args, rl!.bufArgs, v.getBigUint64(0, true), v.getBigUint64(8, true)]).toEqual(["setrlimit 7", nr("prlimit64"), [0n, 7n, 0n, 0n], 0b100, 1024n, (1n << 64n) - 1n]);
    expect(fold({ op: "prctl", option: 38, arg: 1n })).toEqual([{ op: "syscall", what: "prctl 38", nr: nr("prctl"), bufArgs: 0, args: [38n, 1n, 0n, 0n, 0n], buf: new Uint8Array() }]);
    expect(fold({ op: "umask", mask: 0o27 })[0]!.args).toEqual([0o27n]);
    expect(fold({ op: "unshare", flags: 0x10000000 })[0]!.what).toBe("unshare 0x10000000");
  });

  test("setUser: setgroups (when asked) with the u32 list, keepcaps, setresgid, setresuid", () => {
    const calls = fold({ op: "setUser", uid: 1000, gid: 100, groups: [5, 4294967294], setgroups: true });
    expect(calls.map((c) => [c.what, c.nr])).toEqual([
      ["setgroups", nr("setgroups")],
      ["prctl(PR_SET_KEEPCAPS)", nr("prctl")],
      ["setresgid 100", nr("setresgid")],
      ["setresuid 1000", nr("setresuid")],
    ]);
    expect([calls[0]!.args, calls[0]!.bufArgs, Array.from(calls[0]!.buf)]).toEqual([[2n, 0n], 0b10, [5, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]]);
    expect(calls[3]!.args).toEqual([1000n, 1000n, 1000n]);
    expect(fold({ op: "setUser", uid: 0, gid: 0, groups: [], setgroups: false }).map((c) => c.what)).toEqual(["prctl(PR_SET_KEEPCAPS)", "setresgid 0", "setresuid 0"]);
  });

  test("caps: capset with the v3 header and both words of each set, the ambient set cleared, then each raised", () => {
    const calls = fold({ op: "caps", effective: 1n << 40n, permitted: (1n << 40n) | 1n, inheritable: 0n, ambient: (1n << 40n) | (1n << 5n) });
    expect(calls.map((c) => c.what)).toEqual(["capset effective=0x10000000000 permitted=0x10000000001 inheritable=0", "clear the ambient set", "raise ambient capability 5", "raise ambient capability 40"]);
    const set = calls[0]!;
    const v = new DataView(set.buf.buffer);
    expect([set.nr, set.args, set.bufArgs]).toEqual([nr("capset"), [0n, 8n], 0b11]);
    // header: version 3, pid 0; data[0] low words, data[1] high words: effective, permitted, inheritable
    expect(Array.from({ length: 8 }, (_, k) => v.getUint32(k * 4, true))).toEqual([0x20080522, 0, 0, 1, 0, 1 << 8, 1 << 8, 0]);
    expect(calls[1]!.args).toEqual([47n, 4n, 0n, 0n, 0n]);
    expect([calls[3]!.args, calls[3]!.tolerate]).toEqual([[47n, 2n, 40n, 0n, 0n], 22]);
  });

  test("chrootMove: chdir, mount MS_MOVE onto /, chroot ., chdir /, the strings in one buffer", () => {
    const calls = fold({ op: "chrootMove", path: "/r/fs" });
    expect(calls.map((c) => c.what)).toEqual(["chdir /r/fs", "move /r/fs onto /", "chroot /r/fs", "chdir /"]);
    const mount = calls[1]!;
    expect([mount.bufArgs, cstr(mount.buf, mount.args[0]!), cstr(mount.buf, mount.args[1]!), mount.args[3]]).toEqual([0b11, "/r/fs", "/", 0x2000n]);
    expect(cstr(calls[2]!.buf, calls[2]!.args[0]!)).toBe(".");
    expect(cstr(calls[3]!.buf, calls[3]!.args[0]!)).toBe("/");
  });
});
