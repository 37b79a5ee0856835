// A container's resource usage in runc's `events --stats` shape (runc's types/events.go: field
// names, order, and Go's omitempty), read from the v1 controllers or the cgroup2 directory.
// Counters are uint64 in the kernel: kept as bigint, and written by encodeJSON as plain digits.

import { readdirSync, readFileSync } from "node:fs";
import { UNIFIED } from "./paths.ts";

export type Json = bigint | number | string | boolean | null | Json[] | { [k: string]: Json | undefined };

const U64_MAX = (1n << 64n) - 1n;
/** USER_HZ: what cpuacct.stat counts in, everywhere Linux runs today. */
const CLK_TCK = 100n;

function text(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

function num(file: string): bigint {
  const t = text(file)?.trim();
  if (t === undefined || t === "" || t === "max") return 0n;
  try {
    return BigInt(t);
  } catch {
    return 0n;
  }
}

/** "key value" lines (memory.stat, cpu.stat, cpuacct.stat) as a map, in file order. */
function keyed(file: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of (text(file) ?? "").split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out.set(k, BigInt(v));
  }
  return out;
}

/** Go's omitempty: zero numbers, empty strings and empty lists are left out. */
function omit(o: Record<string, Json | undefined>, ...keys: string[]): Record<string, Json | undefined> {
  for (const k of keys) {
    const v = o[k];
    if (v === 0n || v === 0 || v === "" || (Array.isArray(v) && v.length === 0) || v === undefined) delete o[k];
  }
  return o;
}

function list(spec: string): number[] {
  const out: number[] = [];
  for (const part of spec.trim().split(",")) {
    if (part === "") continue;
    const [a, b] = part.split("-").map(Number);
    for (let i = a!; i <= (b ?? a!); i++) out.push(i);
  }
  return out;
}

export function containerStats(paths: Record<string, string>, mode: "v1" | "v2" | "hybrid"): Json {
  return mode === "v2" ? statsV2(paths[UNIFIED]!) : statsV1(paths);
}

function statsV1(p: Record<string, string>): Json {
  const acct = p.cpuacct;
  const cpu = p.cpu;
  const usage: Record<string, Json | undefined> = {};
  if (acct) {
    const st = keyed(`${acct}/cpuacct.stat`);
    const all = (text(`${acct}/cpuacct.usage_all`) ?? "").trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/).map((x) => BigInt(x)));
    Object.assign(usage, {
      total: num(`${acct}/cpuacct.usage`),
      percpu: (text(`${acct}/cpuacct.usage_percpu`) ?? "").trim().split(/\s+/).filter(Boolean).map((x) => BigInt(x)),
      percpu_kernel: all.map((r) => r[2] ?? 0n),
      percpu_user: all.map((r) => r[1] ?? 0n),
      kernel: ((st.get("system") ?? 0n) * 1_000_000_000n) / CLK_TCK,
      user: ((st.get("user") ?? 0n) * 1_000_000_000n) / CLK_TCK,
    });
    omit(usage, "total", "percpu", "percpu_kernel", "percpu_user");
  } else Object.assign(usage, { kernel: 0n, user: 0n });
  const cs = cpu ? keyed(`${cpu}/cpu.stat`) : new Map<string, bigint>();
  const throttling = omit({ periods: cs.get("nr_periods") ?? 0n, throttledPeriods: cs.get("nr_throttled") ?? 0n, throttledTime: cs.get("throttled_time") ?? 0n }, "periods", "throttledPeriods", "throttledTime");

  const cs1 = p.cpuset;
  const cpuset = omit(
    {
      cpus: cs1 ? list(text(`${cs1}/cpuset.cpus`) ?? "") : [],
      cpu_exclusive: cs1 ? num(`${cs1}/cpuset.cpu_exclusive`) : 0n,
      mems: cs1 ? list(text(`${cs1}/cpuset.mems`) ?? "") : [],
      mem_hardwall: cs1 ? num(`${cs1}/cpuset.mem_hardwall`) : 0n,
      mem_exclusive: cs1 ? num(`${cs1}/cpuset.mem_exclusive`) : 0n,
      memory_migrate: cs1 ? num(`${cs1}/cpuset.memory_migrate`) : 0n,
      memory_spread_page: cs1 ? num(`${cs1}/cpuset.memory_spread_page`) : 0n,
      memory_spread_slab: cs1 ? num(`${cs1}/cpuset.memory_spread_slab`) : 0n,
      memory_pressure: cs1 ? num(`${cs1}/cpuset.memory_pressure`) : 0n,
      sched_load_balance: cs1 ? num(`${cs1}/cpuset.sched_load_balance`) : 0n,
      sched_relax_domain_level: cs1 ? num(`${cs1}/cpuset.sched_relax_domain_level`) : 0n,
    },
    "cpus",
    "mems",
  );

  const m = p.memory;
  const entry = (prefix: string): Json => {
    if (!m || text(`${m}/memory.${prefix}usage_in_bytes`) === undefined) return { limit: 0n, failcnt: 0n };
    return omit({ limit: num(`${m}/memory.${prefix}limit_in_bytes`), usage: num(`${m}/memory.${prefix}usage_in_bytes`), max: num(`${m}/memory.${prefix}max_usage_in_bytes`), failcnt: num(`${m}/memory.${prefix}failcnt`) }, "usage", "max");
  };
  const raw = m ? Object.fromEntries([...keyed(`${m}/memory.stat`)].sort(([a], [b]) => (a < b ? -1 : 1))) : {};
  const memory = omit({ cache: (raw.cache as bigint | undefined) ?? 0n, usage: entry(""), swap: entry("memsw."), kernel: entry("kmem."), kernelTCP: entry("kmem.tcp."), raw: Object.keys(raw).length ? raw : undefined }, "cache", "raw");

  const pids = p.pids ? omit({ current: num(`${p.pids}/pids.current`), limit: num(`${p.pids}/pids.max`) }, "current", "limit") : {};

  const blkio: Record<string, Json | undefined> = {};
  if (p.blkio) {
    const pick = (...names: string[]) => names.map((n) => text(`${p.blkio}/${n}`)).find((t) => t !== undefined && /^\d+:\d+ /m.test(t));
    blkio.ioServiceBytesRecursive = blkioEntries(pick("blkio.bfq.io_service_bytes_recursive", "blkio.io_service_bytes_recursive", "blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes"));
    blkio.ioServicedRecursive = blkioEntries(pick("blkio.bfq.io_serviced_recursive", "blkio.io_serviced_recursive", "blkio.throttle.io_serviced_recursive", "blkio.throttle.io_serviced"));
    omit(blkio, "ioServiceBytesRecursive", "ioServicedRecursive");
  }

  const hugetlb: Record<string, Json> = {};
  const h = p.hugetlb;
  if (h) {
    for (const f of safeList(h)) {
      const size = /^hugetlb\.([^.]+)\.usage_in_bytes$/.exec(f)?.[1];
      if (size) hugetlb[size] = omit({ usage: num(`${h}/hugetlb.${size}.usage_in_bytes`), max: num(`${h}/hugetlb.${size}.max_usage_in_bytes`), failcnt: num(`${h}/hugetlb.${size}.failcnt`) }, "usage", "max");
    }
  }
  return { cpu: { usage, throttling }, cpuset, memory, pids, blkio, hugetlb, intel_rdt: {}, network_interfaces: null };
}

function blkioEntries(t: string | undefined): Json[] {
  const out: Json[] = [];
  for (const line of (t ?? "").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 3) continue;
    const [maj, min] = f[0]!.split(":");
    out.push(omit({ major: BigInt(maj!), minor: BigInt(min!), op: f[1]!, value: BigInt(f[2]!) }, "major", "minor", "op", "value"));
  }
  return out;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function statsV2(d: string): Json {
  const cs = keyed(`${d}/cpu.stat`);
  const usage = omit({ total: (cs.get("usage_usec") ?? 0n) * 1000n, kernel: (cs.get("system_usec") ?? 0n) * 1000n, user: (cs.get("user_usec") ?? 0n) * 1000n }, "total");
  const throttling = omit({ periods: cs.get("nr_periods") ?? 0n, throttledPeriods: cs.get("nr_throttled") ?? 0n, throttledTime: (cs.get("throttled_usec") ?? 0n) * 1000n }, "periods", "throttledPeriods", "throttledTime");
  const limit = (f: string) => (text(`${d}/${f}`)?.trim() === "max" ? U64_MAX : num(`${d}/${f}`));
  const raw = Object.fromEntries([...keyed(`${d}/memory.stat`)].sort(([a], [b]) => (a < b ? -1 : 1)));
  const memUsage = num(`${d}/memory.current`);
  const memLimit = limit("memory.max");
  const swapLimit = limit("memory.swap.max");
  // As runc: v1 reported memory+swap, so swap is reported with the memory added.
  const memory = omit(
    {
      cache: (raw.file as bigint | undefined) ?? 0n,
      usage: omit({ limit: memLimit, usage: memUsage, failcnt: 0n }, "usage"),
      swap: omit({ limit: swapLimit === U64_MAX ? U64_MAX : swapLimit + memLimit, usage: num(`${d}/memory.swap.current`) + memUsage, failcnt: 0n }, "usage"),
      kernel: { limit: 0n, failcnt: 0n },
      kernelTCP: { limit: 0n, failcnt: 0n },
      raw: Object.keys(raw).length ? raw : undefined,
    },
    "cache",
    "raw",
  );
  const pids = omit({ current: num(`${d}/pids.current`), limit: num(`${d}/pids.max`) }, "current", "limit");
  const bytes: Json[] = [];
  const ios: Json[] = [];
  for (const line of (text(`${d}/io.stat`) ?? "").split("\n")) {
    const [dev, ...kv] = line.trim().split(/\s+/);
    if (!dev || !/^\d+:\d+$/.test(dev)) continue;
    const [maj, min] = dev.split(":").map((x) => BigInt(x));
    const v = Object.fromEntries(kv.map((x) => x.split("=")).map(([k, n]) => [k, BigInt(n ?? "0")]));
    const e = (op: string, value: bigint | undefined) => omit({ major: maj!, minor: min!, op, value: value ?? 0n }, "major", "minor", "op", "value");
    bytes.push(e("Read", v.rbytes), e("Write", v.wbytes));
    ios.push(e("Read", v.rios), e("Write", v.wios));
  }
  const blkio = omit({ ioServiceBytesRecursive: bytes, ioServicedRecursive: ios }, "ioServiceBytesRecursive", "ioServicedRecursive");
  const hugetlb: Record<string, Json> = {};
  for (const f of safeList(d)) {
    const size = /^hugetlb\.([^.]+)\.current$/.exec(f)?.[1];
    if (size) hugetlb[size] = omit({ usage: num(`${d}/hugetlb.${size}.current`), failcnt: keyed(`${d}/hugetlb.${size}.events`).get("max") ?? 0n }, "usage");
  }
  const cpuset = { cpu_exclusive: 0n, mem_hardwall: 0n, mem_exclusive: 0n, memory_migrate: 0n, memory_spread_page: 0n, memory_spread_slab: 0n, memory_pressure: 0n, sched_load_balance: 0n, sched_relax_domain_level: 0n };
  return { cpu: { usage, throttling }, cpuset, memory, pids, blkio, hugetlb, intel_rdt: {}, network_interfaces: null };
}

/** JSON.stringify for Json with bigints written as digits (uint64 counters exceed 2^53). */
export function encodeJSON(v: Json | undefined): string {
  if (typeof v === "bigint") return v.toString();
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return `[${v.map(encodeJSON).join(",")}]`;
  if (typeof v === "object") return `{${Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => `${JSON.stringify(k)}:${encodeJSON(x)}`).join(",")}}`;
  return JSON.stringify(v);
}
