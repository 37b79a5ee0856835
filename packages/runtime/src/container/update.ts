// `update`: new resource limits for a live container, from runc's flags or a LinuxResources JSON
// (-r FILE or -r - for stdin), applied all-or-nothing (cgroups/update.ts) and merged into the
// record's config so that later commands see the limits in force.
import type { LinuxResources } from "@tsrun/ocispec/core";
import { updateResources } from "../cgroups/update.ts";
import { ContainerError } from "./errors.ts";
import { containerCgroup, status, withLockedRecord } from "./lifecycle.ts";
import type { Store } from "./store.ts";

/** runc update's flags, as given on the command line (undefined: not given). */
export interface UpdateFlags {
  blkioWeight?: string | undefined;
  cpuPeriod?: string | undefined;
  cpuQuota?: string | undefined;
  cpuShare?: string | undefined;
  cpuRtPeriod?: string | undefined;
  cpuRtRuntime?: string | undefined;
  cpusetCpus?: string | undefined;
  cpusetMems?: string | undefined;
  memory?: string | undefined;
  memoryReservation?: string | undefined;
  memorySwap?: string | undefined;
  kernelMemory?: string | undefined;
  kernelMemoryTcp?: string | undefined;
  pidsLimit?: string | undefined;
  l3CacheSchema?: string | undefined;
  memBwSchema?: string | undefined;
}

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * A size as runc reads it (docker's RAMInBytes): a number with an optional binary unit
 * (k, m, g, t, p; b/ib suffix and case optional), or -1 for unlimited.
 */
export function parseSize(flag: string, text: string): number {
  if (text === "-1") return -1;
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i.exec(text);
  if (!m) throw new ContainerError(`invalid value for ${flag}: invalid size: '${text}'`);
  const n = Math.floor(Number(m[1]) * UNITS[(m[2] ?? "").toLowerCase()]!);
  if (!Number.isSafeInteger(n)) throw new ContainerError(`invalid value for ${flag}: ${text} is too large`);
  return n;
}

function parseInteger(flag: string, text: string, unsigned: boolean): number {
  if (!(unsigned ? /^\d+$/ : /^-?\d+$/).test(text) || !Number.isSafeInteger(Number(text)))
    throw new ContainerError(`invalid value for ${flag}: ${JSON.stringify(text)} is not ${unsigned ? "an unsigned" : "an"} integer`);
  return Number(text);
}

/**
 * The LinuxResources that runc's update flags ask for. As runc, 0 (and "") means "leave it": only
 * the other values are set. Kernel memory flags are accepted and ignored with a warning (runc 1.1).
 */
export function resourcesFromFlags(f: UpdateFlags, warn: (message: string) => void): LinuxResources {
  if (f.l3CacheSchema !== undefined || f.memBwSchema !== undefined)
    throw new ContainerError("Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported by tsrun: containers get no linux.intelRdt");
  const r: LinuxResources = {};
  const memory: NonNullable<LinuxResources["memory"]> = {};
  const cpu: NonNullable<LinuxResources["cpu"]> = {};
  const size = (flag: string, v: string | undefined) => (v === undefined || v === "" ? 0 : parseSize(flag, v));
  const int = (flag: string, v: string | undefined, unsigned: boolean) => (v === undefined || v === "" ? 0 : parseInteger(flag, v, unsigned));
  const limit = size("memory", f.memory);
  const swap = size("memory-swap", f.memorySwap);
  const reservation = size("memory-reservation", f.memoryReservation);
  if (size("kernel-memory", f.kernelMemory) !== 0 || size("kernel-memory-tcp", f.kernelMemoryTcp) !== 0) warn("kernel memory settings are ignored (as by runc 1.1: the kernel deprecates them)");
  if (limit !== 0) memory.limit = limit;
  if (swap !== 0) memory.swap = swap;
  if (reservation !== 0) memory.reservation = reservation;
  const shares = int("cpu-share", f.cpuShare, true);
  const quota = int("cpu-quota", f.cpuQuota, false);
  const period = int("cpu-period", f.cpuPeriod, true);
  const rtPeriod = int("cpu-rt-period", f.cpuRtPeriod, true);
  const rtRuntime = int("cpu-rt-runtime", f.cpuRtRuntime, false);
  if (shares !== 0) cpu.shares = shares;
  if (quota !== 0) cpu.quota = quota;
  if (period !== 0) cpu.period = period;
  if (rtPeriod !== 0) cpu.realtimePeriod = rtPeriod;
  if (rtRuntime !== 0) cpu.realtimeRuntime = rtRuntime;
  if (f.cpusetCpus) cpu.cpus = f.cpusetCpus;
  if (f.cpusetMems) cpu.mems = f.cpusetMems;
  if (Object.keys(memory).length > 0) r.memory = memory;
  if (Object.keys(cpu).length > 0) r.cpu = cpu;
  const weight = int("blkio-weight", f.blkioWeight, true);
  if (weight !== 0) {
    if (weight < 10 || weight > 1000) throw new ContainerError(`invalid value for blkio-weight: ${weight} (the range is 10 to 1000)`);
    r.blockIO = { weight };
  }
  const pids = int("pids-limit", f.pidsLimit, false);
  if (pids !== 0) r.pids = { limit: pids };
  if (Object.keys(r).length === 0) throw new ContainerError("nothing to update: give a resource flag or -r FILE");
  return r;
}

/** A LinuxResources document read by -r; devices are dropped, as runc's update skips them. */
export function resourcesFromJSON(text: string, source: string): LinuxResources {
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch (e) {
    throw new ContainerError(`${source}: not JSON: ${(e as Error).message}`);
  }
  if (typeof r !== "object" || r === null || Array.isArray(r)) throw new ContainerError(`${source}: expected a JSON object (a runtime-spec LinuxResources)`);
  const { devices: _devices, ...rest } = r as LinuxResources;
  for (const [key, value] of Object.entries(rest)) {
    if (value !== null && typeof value !== "object") throw new ContainerError(`${source}: ${key} must be an object${key === "hugepageLimits" ? " list" : ""}`);
  }
  return rest;
}

export function updateContainer(store: Store, id: string, resources: LinuxResources, warn: (message: string) => void): void {
  withLockedRecord(store, id, (rec) => {
    const st = status(store, rec);
    if (st === "stopped" || st === "creating") throw new ContainerError("container not running");
    updateResources(containerCgroup(rec), resources, warn);
    rec.config.linux ??= {};
    rec.config.linux.resources = mergeResources(rec.config.linux.resources ?? {}, resources);
    store.write(rec);
  });
}

/**
 * `base` with `change` laid over it: objects key by key; lists of per-device entries by
 * major:minor and hugepage limits by page size, so an update of one device keeps the others.
 */
export function mergeResources(base: LinuxResources, change: LinuxResources): LinuxResources {
  return merge(base, change) as LinuxResources;
}

function merge(base: unknown, change: unknown): unknown {
  if (change === undefined) return base;
  if (Array.isArray(change) && Array.isArray(base)) {
    const key = (e: unknown): string | undefined => {
      const o = e as Record<string, unknown>;
      if (typeof o?.major === "number") return `${o.major}:${o.minor}`;
      if (typeof o?.pageSize === "string") return o.pageSize;
      return undefined;
    };
    if (![...base, ...change].every((e) => key(e) !== undefined)) return change;
    const out = new Map(base.map((e) => [key(e)!, e]));
    for (const e of change) out.set(key(e)!, merge(out.get(key(e)!), e));
    return [...out.values()];
  }
  if (typeof change === "object" && change !== null && !Array.isArray(change) && typeof base === "object" && base !== null && !Array.isArray(base)) {
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const [k, v] of Object.entries(change)) out[k] = merge(out[k], v);
    return out;
  }
  return change;
}
