// The runtime-spec 1.3 settings that become generic syscall ops (plan/kernel.ts): the numbers,
// the struct bytes, where in the plan they go, and bad input refused by JSON pointer. Pure.
import { describe, expect, test } from "bun:test";
import { defaultSpec } from "@tsrun/ocispec/defaults";
import { compilePlan, PlanError, type PlanInput } from "../src/plan/compile.ts";
import { compileExecPlan } from "../src/plan/exec.ts";
import { parseIdList } from "../src/plan/kernel.ts";
import type { Op } from "../src/plan/ops.ts";
import { SYSCALLS_X86_64 } from "../src/seccomp/syscalls-x86_64.ts";

type Json = any;
const spec = (patch: (s: Json) => void = () => {}): Json => {
  const s: Json = JSON.parse(JSON.stringify(defaultSpec()));
  s.process.terminal = false;
  patch(s);
  return s;
};
const input = (patch?: (s: Json) => void): PlanInput => ({
  spec: spec(patch),
  bundle: "/b",
  rootfs: "/b/rootfs",
  execFifo: "/run/tsrun/c1/exec.fifo",
  preserveFds: 0,
  noPivot: false,
  hostPathKind: () => "dir",
});
const syscalls = (ops: Op[]) => ops.filter((o): o is Extract<Op, { op: "syscall" }> => o.op === "syscall");
const nr = (name: string) => SYSCALLS_X86_64[name]!;
const pointerOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    if (e instanceof PlanError) return e.pointer;
    throw e;
  }
  throw new Error("no PlanError");
};

describe("syscall ops", () => {
  // The numbers below are x86_64's: elsewhere these tests fail visibly rather than skip.
  test("these tests are written for x86_64", () => expect(process.arch).toBe("x64"));
  test("scheduler: sched_setattr(0, struct sched_attr, 0) with policy, flags, nice, priority, deadline fields", () => {
    const [op] = syscalls(compilePlan(input((s) => (s.process.scheduler = { policy: "SCHED_FIFO", priority: 10, flags: ["SCHED_FLAG_RESET_ON_FORK"] }))).ops);
    expect(op!.nr).toBe(nr("sched_setattr"));
    expect(op!.bufArgs).toBe(0b10); // the struct's address is args[1]
    expect(op!.args).toEqual([0n, 0n, 0n]);
    expect(op!.what).toContain("set the scheduler (/process/scheduler: sched_setattr SCHED_FIFO priority 10");
    const v = new DataView(op!.buf.buffer, op!.buf.byteOffset, op!.buf.byteLength);
    expect([v.getUint32(0, true), v.getUint32(4, true), v.getBigUint64(8, true), v.getInt32(16, true), v.getUint32(20, true)]).toEqual([56, 1, 1n, 0, 10]);
    const [dl] = syscalls(compilePlan(input((s) => (s.process.scheduler = { policy: "SCHED_DEADLINE", runtime: 10_000_000, deadline: 30_000_000, period: 30_000_000 }))).ops);
    const d = new DataView(dl!.buf.buffer, dl!.buf.byteOffset);
    expect([d.getUint32(4, true), d.getBigUint64(24, true), d.getBigUint64(32, true), d.getBigUint64(40, true)]).toEqual([6, 10_000_000n, 30_000_000n, 30_000_000n]);
    const [batch] = syscalls(compilePlan(input((s) => (s.process.scheduler = { policy: "SCHED_BATCH", nice: -7 }))).ops);
    expect(new DataView(batch!.buf.buffer, batch!.buf.byteOffset).getInt32(16, true)).toBe(-7);
  });

  test("ioPriority: ioprio_set(IOPRIO_WHO_PGRP, 0, class << 13 | level)", () => {
    const [op] = syscalls(compilePlan(input((s) => (s.process.ioPriority = { class: "IOPRIO_CLASS_BE", priority: 6 }))).ops);
    expect(op).toEqual({ op: "syscall", what: "set the I/O priority (/process/ioPriority: ioprio_set IOPRIO_CLASS_BE level 6)", nr: nr("ioprio_set"), bufArgs: 0, args: [2n, 0n, BigInt((2 << 13) | 6)], buf: new Uint8Array() });
  });

  test("personality: PER_LINUX32 is 8, PER_LINUX 0", () => {
    for (const [domain, value] of [["LINUX32", 8n], ["LINUX", 0n]] as const) {
      const [op] = syscalls(compilePlan(input((s) => (s.linux.personality = { domain }))).ops);
      expect([op!.nr, op!.args]).toEqual([nr("personality"), [value]]);
    }
  });

  test("memoryPolicy: set_mempolicy(mode | flags, node mask, bits + 1)", () => {
    const [op] = syscalls(compilePlan(input((s) => (s.linux.memoryPolicy = { mode: "MPOL_INTERLEAVE", nodes: "0-2,65", flags: ["MPOL_F_STATIC_NODES"] }))).ops);
    expect(op!.nr).toBe(nr("set_mempolicy"));
    expect(op!.args).toEqual([BigInt(3 | (1 << 15)), 0n, 129n]);
    expect(op!.bufArgs).toBe(0b10);
    expect(Array.from(op!.buf)).toEqual([7, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    const [local] = syscalls(compilePlan(input((s) => (s.linux.memoryPolicy = { mode: "MPOL_LOCAL" }))).ops);
    expect([local!.args, local!.bufArgs]).toEqual([[4n, 0n, 0n], 0]);
  });

  test("they run after no_new_privs, before closeFds, any seccomp filter and the user change; init and exec alike", () => {
    const patch = (s: Json) => {
      s.process.scheduler = { policy: "SCHED_BATCH" };
      s.process.ioPriority = { class: "IOPRIO_CLASS_IDLE", priority: 0 };
      s.linux.personality = { domain: "LINUX32" };
      s.linux.memoryPolicy = { mode: "MPOL_BIND", nodes: "0" };
      s.process.noNewPrivileges = false;
      s.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW" };
      s.process.execCPUAffinity = { initial: "0", final: "1" };
    };
    const init = compilePlan(input(patch)).ops;
    const exec = compileExecPlan({ spec: spec(patch), process: spec(patch).process, initPid: 1, preserveFds: 0 }).ops;
    for (const ops of [init, exec]) {
      const names = ops.map((o) => o.op);
      const fork = names.lastIndexOf("fork");
      const first = names.indexOf("syscall", fork);
      const last = names.lastIndexOf("syscall");
      expect(first).toBeGreaterThan(fork);
      expect(last).toBeLessThan(names.indexOf("closeFds"));
      expect(last).toBeLessThan(names.indexOf("seccomp"));
      expect(last).toBeLessThan(names.lastIndexOf("setUser"));
    }
    const nnp = compilePlan(input((s) => (s.process.scheduler = { policy: "SCHED_BATCH" }) && (s.process.noNewPrivileges = true))).ops;
    const sched = nnp.findIndex((o) => o.op === "syscall");
    expect(nnp[sched - 1]).toEqual({ op: "prctl", option: 38, arg: 1n });
    // execCPUAffinity is not for the init (config.md); an exec'd process gets the initial
    // affinity in stage 1, before tsrun moves it into the cgroups, and the final one in stage 2.
    // The init's affinity is reset to its cpuset last (resetAffinityOp); the exec's final one replaces that.
    expect(syscalls(init).map((o) => o.nr)).toEqual([nr("sched_setattr"), nr("ioprio_set"), nr("personality"), nr("set_mempolicy"), nr("sched_setaffinity")]);
    expect(syscalls(init).at(-1)).toMatchObject({ tolerate: 22, args: [0n, 1024n, 0n], buf: new Uint8Array(1024).fill(0xff) });
    expect(syscalls(exec).map((o) => o.nr)).toEqual([nr("sched_setaffinity"), nr("sched_setattr"), nr("ioprio_set"), nr("personality"), nr("set_mempolicy"), nr("sched_setaffinity")]);
    const names = exec.map((o) => o.op);
    expect(names.indexOf("syscall")).toBeLessThan(names.indexOf("sync"));
    const [initial, , , , , final] = syscalls(exec);
    expect([initial!.args, Array.from(initial!.buf), initial!.bufArgs]).toEqual([[0n, 8n, 0n], [1, 0, 0, 0, 0, 0, 0, 0], 0b100]);
    expect(Array.from(final!.buf)[0]).toBe(2);
    expect(final!.what).toBe("set the CPU affinity before exec (/process/execCPUAffinity/final: CPUs 1)");
    // absent or empty: no affinity of the config's, only the reset to the cpuset
    const none = compileExecPlan({ spec: spec(), process: { ...spec().process, execCPUAffinity: { initial: "", final: " " } }, initPid: 1, preserveFds: 0 }).ops;
    expect(syscalls(none).map((o) => o.what)).toEqual(["reset the CPU affinity to the container's cpuset"]);
  });

  test("a config without these settings has one syscall op: the affinity reset to the cpuset, init and exec alike", () => {
    const reset = { what: "reset the CPU affinity to the container's cpuset", nr: nr("sched_setaffinity"), tolerate: 22, bufArgs: 1 << 2 };
    expect(syscalls(compilePlan(input()).ops)).toMatchObject([reset]);
    expect(syscalls(compileExecPlan({ spec: spec(), process: spec().process, initPid: 1, preserveFds: 0 }).ops)).toMatchObject([reset]);
    // An exec with only an initial affinity: that one in stage 1, the reset after the cgroup move.
    const initialOnly = (s: Json) => (s.process.execCPUAffinity = { initial: "0" });
    const ops = compileExecPlan({ spec: spec(initialOnly), process: spec(initialOnly).process, initPid: 1, preserveFds: 0 }).ops;
    expect(syscalls(ops).map((o) => o.what)).toEqual([expect.stringContaining("initial"), reset.what]);
  });
});

describe("bad input is refused by JSON pointer before anything runs", () => {
  const cases: [string, (s: Json) => void][] = [
    ["/process/scheduler/priority", (s) => (s.process.scheduler = { policy: "SCHED_FIFO" })],
    ["/process/scheduler/priority", (s) => (s.process.scheduler = { policy: "SCHED_RR", priority: 100 })],
    ["/process/scheduler/priority", (s) => (s.process.scheduler = { policy: "SCHED_OTHER", priority: 3 })],
    ["/process/scheduler/nice", (s) => (s.process.scheduler = { policy: "SCHED_OTHER", nice: 20 })],
    ["/process/scheduler/policy", (s) => (s.process.scheduler = { policy: "SCHED_ISO" })],
    ["/process/scheduler/policy", (s) => (s.process.scheduler = { policy: "SCHED_WHATEVER" })],
    ["/process/scheduler/flags/1", (s) => (s.process.scheduler = { policy: "SCHED_OTHER", flags: ["SCHED_FLAG_RECLAIM", "SCHED_FLAG_NOPE"] })],
    ["/process/scheduler", (s) => (s.process.scheduler = { policy: "SCHED_OTHER", runtime: 5 })],
    ["/process/scheduler", (s) => (s.process.scheduler = { policy: "SCHED_DEADLINE", runtime: 5, deadline: 4, period: 10 })],
    ["/process/ioPriority/priority", (s) => (s.process.ioPriority = { class: "IOPRIO_CLASS_BE", priority: 8 })],
    ["/process/ioPriority/class", (s) => (s.process.ioPriority = { class: "IOPRIO_CLASS_NONE", priority: 0 })],
    ["/linux/personality/domain", (s) => (s.linux.personality = { domain: "BSD" })],
    ["/linux/personality/flags", (s) => (s.linux.personality = { domain: "LINUX", flags: ["ADDR_NO_RANDOMIZE"] })],
    ["/linux/memoryPolicy/nodes", (s) => (s.linux.memoryPolicy = { mode: "MPOL_BIND" })],
    ["/linux/memoryPolicy/nodes", (s) => (s.linux.memoryPolicy = { mode: "MPOL_DEFAULT", nodes: "0" })],
    ["/linux/memoryPolicy/nodes", (s) => (s.linux.memoryPolicy = { mode: "MPOL_BIND", nodes: "1-x" })],
    ["/linux/memoryPolicy/nodes", (s) => (s.linux.memoryPolicy = { mode: "MPOL_BIND", nodes: "3-1" })],
    ["/linux/memoryPolicy/nodes", (s) => (s.linux.memoryPolicy = { mode: "MPOL_BIND", nodes: "0-99999" })],
    ["/linux/memoryPolicy/mode", (s) => (s.linux.memoryPolicy = { mode: "MPOL_NOPE" })],
    ["/linux/memoryPolicy/flags", (s) => (s.linux.memoryPolicy = { mode: "MPOL_BIND", nodes: "0", flags: ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"] })],
    ["/linux/memoryPolicy/flags", (s) => (s.linux.memoryPolicy = { mode: "MPOL_INTERLEAVE", nodes: "0", flags: ["MPOL_F_NUMA_BALANCING"] })],
    ["/linux/memoryPolicy/flags/0", (s) => (s.linux.memoryPolicy = { mode: "MPOL_BIND", nodes: "0", flags: ["MPOL_F_NOPE"] })],
    ["/linux/intelRdt", (s) => (s.linux.intelRdt = { closID: "x", l3CacheSchema: "L3:0=f" })],
    ["/linux/netDevices", (s) => (s.linux.namespaces = s.linux.namespaces.filter((n: Json) => n.type !== "network")) && (s.linux.netDevices = { eth0: {} })],
    ["/linux/netDevices/a:b", (s) => (s.linux.netDevices = { "a:b": {} })],
    ["/linux/netDevices/eth0/name", (s) => (s.linux.netDevices = { eth0: { name: "a-very-long-interface-name" } })],
    ["/linux/netDevices/eth1/name", (s) => (s.linux.netDevices = { eth0: { name: "net0" }, eth1: { name: "net0" } })],
  ];
  for (const [pointer, patch] of cases)
    test(`${pointer}: ${JSON.stringify(spec(patch).process.scheduler ?? spec(patch).process.ioPriority ?? spec(patch).linux.personality ?? spec(patch).linux.memoryPolicy ?? spec(patch).linux.intelRdt ?? spec(patch).linux.netDevices)}`, () => {
      expect(pointerOf(() => compilePlan(input(patch)))).toBe(pointer);
    });

  test("execCPUAffinity lists are checked for exec", () => {
    const p = (aff: Json) => pointerOf(() => compileExecPlan({ spec: spec(), process: { ...spec().process, execCPUAffinity: aff }, initPid: 1, preserveFds: 0 }));
    expect(p({ initial: "0-" })).toBe("/process/execCPUAffinity/initial");
    expect(p({ final: "a" })).toBe("/process/execCPUAffinity/final");
  });

  test("%d templates may share a name (the kernel numbers them)", () => {
    expect(() => compilePlan(input((s) => (s.linux.netDevices = { eth0: { name: "net%d" }, eth1: { name: "net%d" } })))).not.toThrow();
  });
});

test("parseIdList: ranges and single ids into a little-endian mask of unsigned longs", () => {
  expect(parseIdList("", "/p", "CPU")).toEqual({ mask: new Uint8Array(8), count: 0, max: -1 });
  const m = parseIdList("0-3, 7,9-9", "/p", "CPU");
  expect([Array.from(m.mask), m.count, m.max]).toEqual([[0x8f, 0x02, 0, 0, 0, 0, 0, 0], 6, 9]);
  expect(parseIdList("64", "/p", "node").mask.length).toBe(16);
});
