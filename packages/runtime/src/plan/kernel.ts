// The runtime-spec 1.3 process settings that are one kernel call each: the scheduler
// (sched_setattr), the I/O priority (ioprio_set), the personality, the NUMA memory policy
// (set_mempolicy) and CPU affinity (sched_setaffinity). Each becomes a generic `syscall` op:
// TypeScript checks the values (refusing by JSON pointer), picks the syscall number and builds
// the struct bytes; the executor only makes the call. Pure.
import type { CPUAffinity, LinuxIOPriority, LinuxMemoryPolicy, LinuxPersonality, Scheduler } from "@tsrun/ocispec/core";
import { PlanError } from "./compile.ts";
import type { Op } from "./ops.ts";

/**
 * Syscall numbers of the architecture the executor runs on. The seccomp compiler's tables are
 * the source; loaded only when a config uses one of these settings (they are start-up cost).
 */
function syscallNumber(name: string, pointer: string): number {
  const tables: Record<string, () => Readonly<Record<string, number>>> = {
    x64: () => (require("../seccomp/syscalls-x86_64.ts") as typeof import("../seccomp/syscalls-x86_64.ts")).SYSCALLS_X86_64,
    ia32: () => (require("../seccomp/syscalls-x86.ts") as typeof import("../seccomp/syscalls-x86.ts")).SYSCALLS_X86,
  };
  const nr = tables[process.arch]?.()[name];
  if (nr === undefined) throw new PlanError(pointer, `tsrun has no syscall table for ${process.arch} to call ${name} with`);
  return nr;
}

function call(what: string, name: string, pointer: string, args: bigint[], buf?: { bytes: Uint8Array; arg: number }): Op {
  // the buffer goes at offset 0 of its argument: the executor adds the buffer's address
  return { op: "syscall", what, nr: syscallNumber(name, pointer), bufArgs: buf ? 1 << buf.arg : 0, args, buf: buf?.bytes ?? new Uint8Array() };
}

/** The most CPUs or memory nodes a list may name: the kernel's own limit (CONFIG_NR_CPUS max). */
const MAX_BITS = 8192;

/**
 * "0-3,7" → the bit mask in unsigned longs (little endian), as sched_setaffinity and
 * set_mempolicy take it. An empty string is an empty set.
 */
export function parseIdList(list: string, pointer: string, what: "CPU" | "node"): { mask: Uint8Array; count: number; max: number } {
  const ids = new Set<number>();
  const s = list.trim();
  if (s !== "")
    for (const part of s.split(",")) {
      const m = /^\s*(\d+)(?:\s*-\s*(\d+))?\s*$/.exec(part);
      if (!m) throw new PlanError(pointer, `${JSON.stringify(list)} is not a ${what} list such as 0-3,7`);
      const lo = Number(m[1]);
      const hi = m[2] === undefined ? lo : Number(m[2]);
      if (hi < lo) throw new PlanError(pointer, `${JSON.stringify(part.trim())}: a range must go up (${hi} < ${lo})`);
      if (hi >= MAX_BITS) throw new PlanError(pointer, `${what} ${hi} is beyond the kernel's limit of ${MAX_BITS}`);
      for (let i = lo; i <= hi; i++) ids.add(i);
    }
  const max = ids.size ? Math.max(...ids) : -1;
  const mask = new Uint8Array(Math.max(1, Math.ceil((max + 1) / 64)) * 8);
  for (const i of ids) mask[i >> 3]! |= 1 << (i & 7);
  return { mask, count: ids.size, max };
}

const SCHED_POLICY = { SCHED_OTHER: 0, SCHED_FIFO: 1, SCHED_RR: 2, SCHED_BATCH: 3, SCHED_ISO: 4, SCHED_IDLE: 5, SCHED_DEADLINE: 6 } as const;
const SCHED_FLAG = {
  SCHED_FLAG_RESET_ON_FORK: 0x01,
  SCHED_FLAG_RECLAIM: 0x02,
  SCHED_FLAG_DL_OVERRUN: 0x04,
  SCHED_FLAG_KEEP_POLICY: 0x08,
  SCHED_FLAG_KEEP_PARAMS: 0x10,
  SCHED_FLAG_UTIL_CLAMP_MIN: 0x20,
  SCHED_FLAG_UTIL_CLAMP_MAX: 0x40,
} as const;
/** struct sched_attr with the utilization clamps (SCHED_ATTR_SIZE_VER1), as runc passes it. */
const SCHED_ATTR_SIZE = 56;

/** sched_setattr(0, attr, 0), checked as runc's validator does and as the kernel would refuse. */
export function schedulerOp(s: Scheduler): Op {
  const p = "/process/scheduler";
  const policy = SCHED_POLICY[s.policy];
  if (policy === undefined) throw new PlanError(`${p}/policy`, `unknown policy ${JSON.stringify(s.policy)}`);
  // SCHED_ISO is reserved in the kernel's headers but no Linux implements it (EINVAL).
  if (s.policy === "SCHED_ISO") throw new PlanError(`${p}/policy`, "SCHED_ISO is not implemented by Linux");
  const nice = s.nice ?? 0;
  const priority = s.priority ?? 0;
  const rt = s.policy === "SCHED_FIFO" || s.policy === "SCHED_RR";
  if (!Number.isInteger(nice) || nice < -20 || nice > 19) throw new PlanError(`${p}/nice`, `must be -20..19, got ${nice}`);
  if (rt && (priority < 1 || priority > 99)) throw new PlanError(`${p}/priority`, `${s.policy} takes a priority of 1..99, got ${priority}`);
  if (!rt && priority !== 0) throw new PlanError(`${p}/priority`, `only SCHED_FIFO and SCHED_RR have a priority (${s.policy} must have 0)`);
  const dl = [s.runtime ?? 0, s.deadline ?? 0, s.period ?? 0];
  if (s.policy !== "SCHED_DEADLINE" && dl.some((v) => v !== 0)) throw new PlanError(p, "runtime, deadline and period are for SCHED_DEADLINE only");
  if (s.policy === "SCHED_DEADLINE" && !(dl[0]! > 0 && dl[0]! <= dl[1]! && (dl[2] === 0 || dl[1]! <= dl[2]!)))
    throw new PlanError(p, "SCHED_DEADLINE needs 0 < runtime <= deadline <= period (period 0: the deadline)");
  let flags = 0;
  for (const [i, f] of (s.flags ?? []).entries()) {
    const bit = SCHED_FLAG[f];
    if (bit === undefined) throw new PlanError(`${p}/flags/${i}`, `unknown flag ${JSON.stringify(f)}`);
    flags |= bit;
  }
  const attr = new DataView(new ArrayBuffer(SCHED_ATTR_SIZE));
  attr.setUint32(0, SCHED_ATTR_SIZE, true);
  attr.setUint32(4, policy, true);
  attr.setBigUint64(8, BigInt(flags), true);
  attr.setInt32(16, nice, true);
  attr.setUint32(20, priority, true);
  attr.setBigUint64(24, BigInt(dl[0]!), true);
  attr.setBigUint64(32, BigInt(dl[1]!), true);
  attr.setBigUint64(40, BigInt(dl[2]!), true);
  const detail = rt ? `${s.policy} priority ${priority}` : s.policy === "SCHED_DEADLINE" ? `SCHED_DEADLINE runtime ${dl[0]} deadline ${dl[1]} period ${dl[2]}` : `${s.policy} nice ${nice}`;
  // With real-time group scheduling (cgroup v1 cpu.rt_runtime_us), a cgroup without real-time
  // runtime refuses real-time policies with EPERM: say where the fix is.
  const hint = rt ? "; in a cpu cgroup a real-time policy needs linux.resources.cpu.realtimeRuntime" : "";
  return call(`set the scheduler (${p}: sched_setattr ${detail}${hint})`, "sched_setattr", p, [0n, 0n, 0n], { bytes: new Uint8Array(attr.buffer), arg: 1 });
}

const IOPRIO_CLASS = { IOPRIO_CLASS_RT: 1, IOPRIO_CLASS_BE: 2, IOPRIO_CLASS_IDLE: 3 } as const;
const IOPRIO_WHO_PGRP = 2;

/**
 * ioprio_set(IOPRIO_WHO_PGRP, 0, class << 13 | level): the spec sets it for the process group,
 * which is the process's own (it has just made a new session), and its children inherit it.
 */
export function ioPriorityOp(io: LinuxIOPriority): Op {
  const p = "/process/ioPriority";
  const cls = IOPRIO_CLASS[io.class];
  if (cls === undefined) throw new PlanError(`${p}/class`, `unknown class ${JSON.stringify(io.class)}`);
  if (!Number.isInteger(io.priority) || io.priority < 0 || io.priority > 7) throw new PlanError(`${p}/priority`, `must be 0 (highest)..7 (lowest), got ${io.priority}`);
  const value = BigInt((cls << 13) | io.priority);
  return call(`set the I/O priority (${p}: ioprio_set ${io.class} level ${io.priority})`, "ioprio_set", p, [BigInt(IOPRIO_WHO_PGRP), 0n, value]);
}

const PERSONALITY = { LINUX: 0x0000, LINUX32: 0x0008 } as const;

/** personality(PER_LINUX or PER_LINUX32): LINUX32 makes uname report a 32-bit machine (i686). */
export function personalityOp(per: LinuxPersonality): Op {
  const p = "/linux/personality";
  const domain = PERSONALITY[per.domain];
  if (domain === undefined) throw new PlanError(`${p}/domain`, `unknown domain ${JSON.stringify(per.domain)} (LINUX or LINUX32)`);
  // The spec defines no flag yet; one tsrun does not know would be silently dropped.
  if (per.flags?.length) throw new PlanError(`${p}/flags`, `the runtime spec defines no personality flags, got ${JSON.stringify(per.flags)}`);
  return call(`set the personality (${p}: ${per.domain})`, "personality", p, [BigInt(domain)]);
}

export const MPOL_MODE = {
  MPOL_DEFAULT: 0,
  MPOL_PREFERRED: 1,
  MPOL_BIND: 2,
  MPOL_INTERLEAVE: 3,
  MPOL_LOCAL: 4,
  MPOL_PREFERRED_MANY: 5,
  MPOL_WEIGHTED_INTERLEAVE: 6,
} as const;
export const MPOL_FLAG = { MPOL_F_STATIC_NODES: 1 << 15, MPOL_F_RELATIVE_NODES: 1 << 14, MPOL_F_NUMA_BALANCING: 1 << 13 } as const;

/** set_mempolicy(mode | flags, nodemask, maxnode), with the node rules of set_mempolicy(2). */
export function memoryPolicyOp(mp: LinuxMemoryPolicy): Op {
  const p = "/linux/memoryPolicy";
  const mode = MPOL_MODE[mp.mode];
  if (mode === undefined) throw new PlanError(`${p}/mode`, `unknown mode ${JSON.stringify(mp.mode)}`);
  let flags = 0;
  for (const [i, f] of (mp.flags ?? []).entries()) {
    const bit = MPOL_FLAG[f];
    if (bit === undefined) throw new PlanError(`${p}/flags/${i}`, `unknown flag ${JSON.stringify(f)}`);
    flags |= bit;
  }
  if (flags & MPOL_FLAG.MPOL_F_STATIC_NODES && flags & MPOL_FLAG.MPOL_F_RELATIVE_NODES)
    throw new PlanError(`${p}/flags`, "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other");
  if (flags & MPOL_FLAG.MPOL_F_NUMA_BALANCING && mp.mode !== "MPOL_BIND" && mp.mode !== "MPOL_PREFERRED_MANY")
    throw new PlanError(`${p}/flags`, `MPOL_F_NUMA_BALANCING goes with MPOL_BIND or MPOL_PREFERRED_MANY only, not ${mp.mode}`);
  const nodes = parseIdList(mp.nodes ?? "", `${p}/nodes`, "node");
  if ((mp.mode === "MPOL_DEFAULT" || mp.mode === "MPOL_LOCAL") && nodes.count > 0) throw new PlanError(`${p}/nodes`, `${mp.mode} takes no nodes, got ${JSON.stringify(mp.nodes)}`);
  if (mp.mode !== "MPOL_DEFAULT" && mp.mode !== "MPOL_LOCAL" && mp.mode !== "MPOL_PREFERRED" && nodes.count === 0)
    throw new PlanError(`${p}/nodes`, `${mp.mode} needs at least one node`);
  if ((mp.mode === "MPOL_DEFAULT" || mp.mode === "MPOL_LOCAL") && flags) throw new PlanError(`${p}/flags`, `${mp.mode} takes no flags`);
  const what = `set the memory policy (${p}: set_mempolicy ${[mp.mode, ...(mp.flags ?? [])].join("|")}${nodes.count ? ` nodes ${mp.nodes}` : ""})`;
  // The kernel reads maxnode - 1 bits (a historical off-by-one that every caller follows).
  if (nodes.count === 0) return call(what, "set_mempolicy", p, [BigInt(mode | flags), 0n, 0n]);
  return call(what, "set_mempolicy", p, [BigInt(mode | flags), 0n, BigInt(nodes.mask.length * 8 + 1)], { bytes: nodes.mask, arg: 1 });
}

/**
 * sched_setaffinity(0, len, mask) for one of execCPUAffinity's lists, or none when it is absent
 * or empty ("the runtime SHOULD NOT change" the affinity then).
 */
export function affinityOp(aff: CPUAffinity | undefined, which: "initial" | "final"): Op | undefined {
  const list = aff?.[which];
  if (list === undefined || list.trim() === "") return undefined;
  const p = `/process/execCPUAffinity/${which}`;
  const { mask } = parseIdList(list, p, "CPU");
  const when = which === "initial" ? "before it joins the container's cgroup" : "before exec";
  return call(`set the CPU affinity ${when} (${p}: CPUs ${list})`, "sched_setaffinity", p, [0n, BigInt(mask.length), 0n], { bytes: mask, arg: 2 });
}
