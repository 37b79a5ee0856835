// Compiled seccomp programs on the real kernel: each test runs a throwaway executor plan
// (seccomp op, then exec of the host's busybox sh) and checks that the kernel accepts the
// program and enforces it. Needs root, x86_64, gcc and busybox (scripts/setup.sh).
import { describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LinuxSeccomp, LinuxSyscall } from "@tsrun/ocispec/core";
import { buildNative } from "../../../scripts/build-native.ts";
import type { Op } from "../src/plan/ops.ts";
import { encodePlan } from "../src/plan/wire.ts";
import { compileSeccomp, decode, syscallNames } from "../src/seccomp/index.ts";
import { tempDir } from "./helpers.ts";

const busybox = ["/usr/bin/busybox", "/bin/busybox"].find((p) => existsSync(p));
const enabled = process.getuid?.() === 0 && process.arch === "x64" && busybox !== undefined;
if (enabled) buildNative({ quiet: true });
const linux = enabled ? await import("../src/linux/index.ts") : (undefined as never);
type WaitStatus = import("../src/linux/index.ts").WaitStatus;

const PR_SET_NO_NEW_PRIVS = 38;
const work = enabled ? tempDir("tsrun-seccomp-") : "";
let seq = 0;

interface Result {
  status: WaitStatus;
  out: string;
  error?: { op: number; errno: number; text: string };
}

/** no_new_privs, the filter, then busybox sh -c script; stdout+stderr captured. */
function runFiltered(profile: LinuxSeccomp, script: string, opts: { newPrivs?: boolean } = {}): Result {
  const { program, flags } = compileSeccomp(profile);
  const ops: Op[] = [
    ...(opts.newPrivs ? [] : [{ op: "prctl", option: PR_SET_NO_NEW_PRIVS, arg: 1n } as Op]),
    { op: "seccomp", flags, program },
    { op: "exec", file: busybox!, argv: ["sh", "-c", script], env: ["PATH=/nonexistent", "HOME=/"], path: "" },
  ];
  const outPath = join(work, `run-${seq++}.out`);
  const fd = openSync(outPath, "w+");
  try {
    const { pid, sync } = linux.spawnExecutor(encodePlan(ops), { stdio: [-1, fd, fd] });
    let error: Result["error"];
    try {
      for (;;) {
        const m = sync.recv(5000);
        if (m.type === "eof") break;
        if (m.type === "error") error = { op: m.op, errno: m.errno, text: m.text };
        if (m.type === "sync") sync.answer(true);
      }
    } finally {
      sync.close();
    }
    let status = linux.waitpidTimeout(pid, 5000);
    if (!status) {
      linux.kill(pid, 9);
      linux.waitpid(pid);
      throw new Error(`executor ${pid} did not exit`);
    }
    return { status, out: readFileSync(outPath, "utf8"), ...(error ? { error } : {}) };
  } finally {
    closeSync(fd);
  }
}

const bb = (applet: string): string => `${busybox} ${applet}`;
const UNAME = ["/usr/bin/uname", "/bin/uname"].find((p) => existsSync(p)) ?? "uname";

describe("seccomp on the kernel", () => {
  test("these tests need root, x86_64 and busybox", () => expect(enabled).toBe(true));
  test("default ALLOW, mkdir denied with EPERM; the filter is in place (Seccomp: 2)", () => {
    const dir = join(work, "mk");
    const r = runFiltered(
      { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" }] },
      `${bb("mkdir")} ${dir}; echo rc=$?; ${bb("grep")} Seccomp: /proc/self/status`,
    );
    expect(r.error).toBeUndefined();
    expect(r.status.code).toBe(0);
    expect(r.out).toContain("Operation not permitted");
    expect(r.out).toMatch(/rc=1\nSeccomp:\s+2/);
    expect(existsSync(dir)).toBe(false);
  });

  test("errnoRet: uname fails with the errno asked for, getpid answers -errno", () => {
    const r = runFiltered(
      {
        defaultAction: "SCMP_ACT_ALLOW",
        syscalls: [
          { names: ["uname"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
          { names: ["getpid"], action: "SCMP_ACT_ERRNO", errnoRet: 42 },
        ],
      },
      // busybox's uname ignores a failing uname(2); coreutils' reports it.
      `${UNAME} -s; echo rc=$?; echo pid=$$`,
    );
    expect(r.status.code).toBe(0);
    expect(r.out).toContain("cannot get system name: Function not implemented"); // ENOSYS
    expect(r.out).toContain("rc=1");
    // getpid(2) cannot fail, so libc passes the raw -42 on: the shell's $$.
    expect(r.out).toContain("pid=-42");
  });

  test("defaultErrnoRet and a default ERRNO allow-list: the shell still runs, the rest gets the errno", () => {
    const denied = new Set(["mkdir", "mkdirat", "uname", "reboot", "mount", "umount2", "unshare", "setns", "pivot_root", "chroot"]);
    const allowed = syscallNames().filter((n) => !denied.has(n));
    const base: LinuxSeccomp = {
      defaultAction: "SCMP_ACT_ERRNO",
      defaultErrnoRet: 13, // EACCES
      architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
      flags: ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
      syscalls: [{ names: allowed as [string, ...string[]], action: "SCMP_ACT_ALLOW" }],
    };
    expect(runFiltered(base, "true").status.code).toBe(0);
    const r = runFiltered(base, `${UNAME} -s; echo rc=$?; ${bb("mkdir")} ${join(work, "nope")}; echo rc=$?; ${bb("echo")} still here`);
    expect(r.status.code).toBe(0);
    expect(r.out).toContain("cannot get system name: Permission denied");
    expect(r.out).toContain("can't create directory");
    expect(r.out).toMatch(/rc=1\n[\s\S]*rc=1\nstill here\n$/);
    console.log(`allow-list of ${allowed.length} syscalls, 3 arches: ${decode(compileSeccomp(base).program).length} instructions`);
  });

  test("argument rules: a 64-bit EQ (high word checked), MASKED_EQ on the open flags, EQ on a mode", () => {
    const dir = join(work, "args");
    mkdirSync(dir);
    writeFileSync(join(dir, "old"), "kept\n");
    const O_CREAT = 0o100;
    const rules: LinuxSyscall[] = [
      // 2^32 + 1: the low word alone would also refuse a length of 1.
      { names: ["ftruncate", "truncate"], action: "SCMP_ACT_ERRNO", errnoRet: 27, args: [{ index: 1, value: 2 ** 32 + 1, op: "SCMP_CMP_EQ" }] },
      { names: ["ftruncate", "truncate"], action: "SCMP_ACT_ERRNO", errnoRet: 28, args: [{ index: 1, value: 2 ** 33, op: "SCMP_CMP_GE" }] },
      { names: ["open", "openat"], action: "SCMP_ACT_ERRNO", errnoRet: 30, args: [{ index: 2, value: O_CREAT, valueTwo: O_CREAT, op: "SCMP_CMP_MASKED_EQ" }] },
      { names: ["chmod", "fchmodat"], action: "SCMP_ACT_ERRNO", errnoRet: 1, args: [{ index: 1, value: 0o700, op: "SCMP_CMP_EQ" }] },
    ];
    const r = runFiltered(
      { defaultAction: "SCMP_ACT_ALLOW", syscalls: rules },
      [
        `${bb("cat")} ${dir}/old`,
        `${bb("touch")} ${dir}/new; echo touch=$?`,
        `${bb("chmod")} 700 ${dir}/old; echo chmod700=$?`,
        `${bb("chmod")} 640 ${dir}/old; echo chmod640=$?`,
        `${bb("truncate")} -c -s 1 ${dir}/old; echo t1=$?`,
        `${bb("truncate")} -c -s 4294967297 ${dir}/old; echo t2=$?`,
        `${bb("truncate")} -c -s 4294967298 ${dir}/old; echo t3=$?`,
        `${bb("truncate")} -c -s 8589934593 ${dir}/old; echo t4=$?`,
        `${bb("truncate")} -c -s 3 ${dir}/old; echo t5=$?`,
      ].join("; "),
    );
    expect(r.status.code).toBe(0);
    expect(r.out).toStartWith("kept\n");
    expect(r.out).toContain("Read-only file system"); // EROFS: touch's openat(…, O_CREAT)
    expect(r.out).toContain("File too large"); // EFBIG
    expect(r.out).toContain("No space left on device"); // ENOSPC
    expect(r.out).toMatch(/touch=1\n[\s\S]*chmod700=1\nchmod640=0\nt1=0\n[\s\S]*t2=1\nt3=0\n[\s\S]*t4=1\nt5=0\n$/);
    expect(existsSync(join(dir, "new"))).toBe(false);
  });

  test("clone with namespace flags is refused (Docker's MASKED_EQ rule), plain fork works", () => {
    const ns = 0x7e020000;
    const allowed = syscallNames().filter((n) => n !== "clone" && n !== "clone3" && n !== "unshare");
    const profile: LinuxSeccomp = {
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: [
        { names: allowed as [string, ...string[]], action: "SCMP_ACT_ALLOW" },
        { names: ["clone"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: ns, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }] },
        { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
      ],
    };
    const r = runFiltered(profile, `${bb("sh")} -c 'echo child'; echo fork=$?; ${bb("unshare")} -n ${bb("true")}; echo unshare=$?`);
    expect(r.status.code).toBe(0);
    expect(r.out).toContain("child\nfork=0");
    expect(r.out).toMatch(/unshare=[1-9]/);
  });

  test("KILL_PROCESS ends the process with SIGSYS; LOG and TSYNC flags are accepted", () => {
    const r = runFiltered({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["uname"], action: "SCMP_ACT_KILL_PROCESS" }] }, `${UNAME}`);
    expect(r.status.signal).toBe(31); // SIGSYS
    const f = runFiltered({ defaultAction: "SCMP_ACT_ALLOW", flags: ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"], syscalls: [{ names: ["uname"], action: "SCMP_ACT_LOG" }] }, `${UNAME} -s`);
    expect(f.status.code).toBe(0);
    expect(f.out).toBe("Linux\n");
  });

  test("arches: i386 (int 0x80) and x32 syscalls from a 64-bit process are killed unless listed, and use their own numbers", () => {
    // getpid through each ABI: x86_64 39, i386 20 (int $0x80), x32 0x40000000|39.
    const src = join(work, "abi.c");
    writeFileSync(
      src,
      `#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  long r, nr = 39;
  if (argc > 1 && strcmp(argv[1], "i386") == 0) { nr = 20; __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr) : "memory"); }
  else { if (argc > 1 && strcmp(argv[1], "x32") == 0) nr |= 0x40000000L; __asm__ volatile("syscall" : "=a"(r) : "a"(nr) : "rcx", "r11", "memory"); }
  printf("%s=%ld\\n", argc > 1 ? argv[1] : "x86_64", r);
  return 0;
}
`,
    );
    const abi = join(work, "abi");
    const cc = Bun.spawnSync(["gcc", "-O1", "-o", abi, src], { stderr: "pipe" });
    if (!cc.success) throw new Error(`gcc: ${cc.stderr.toString()}`);
    const script = `for a in x86_64 i386 x32; do ${abi} $a; echo rc=$?; done`;
    const lines = (p: LinuxSeccomp): string[] => {
      const r = runFiltered(p, script);
      expect(r.status.code).toBe(0);
      return r.out.trim().split("\n").filter((l) => !l.includes("Bad system call")); // the shell's note on SIGSYS
    };
    const getpid5: LinuxSyscall = { names: ["getpid"], action: "SCMP_ACT_ERRNO", errnoRet: 5 };
    // Native only: the other ABIs are killed (128 + SIGSYS).
    expect(lines({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [getpid5] })).toEqual(["x86_64=-5", "rc=0", "rc=159", "rc=159"]);
    // All three listed: each ABI's getpid is found under its own number.
    expect(lines({ defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"], syscalls: [getpid5] })).toEqual([
      "x86_64=-5",
      "rc=0",
      "i386=-5",
      "rc=0",
      "x32=-5",
      "rc=0",
    ]);
    // mkdir is i386's 39 (x86_64's getpid): only the i386 number is denied; x32 calls go on to the
    // kernel (ENOSYS, or a pid where the x32 ABI is enabled).
    const out = lines({ defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"], syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO", errnoRet: 5 }] });
    expect(out[0]).toMatch(/^x86_64=[1-9]\d*$/);
    expect(out[2]).toMatch(/^i386=[1-9]\d*$/);
    expect(out[4]).toMatch(/^x32=(-38|[1-9]\d*)$/);
  });
});
