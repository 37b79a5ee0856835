// Pure conversions from OCI resource values to what cgroupfs files take. No I/O here, so every
// rule (-1 meaning unlimited, v1's memory+swap total against v2's swap-only limit, cpu.shares to
// cpu.weight) is unit-tested without root.

import { CgroupError } from "./errors.ts";

/** Where resources live in config.json, as a JSON pointer. */
export const RESOURCES = "/linux/resources";

/** A setting counts as requested when present and not null (JSON null is "not set" too). */
export function given<T>(v: T | null | undefined): v is T {
  return v !== undefined && v !== null;
}

/**
 * Settings where runc (1.1's libcontainer/cgroups/fs and fs2: `if r.X != 0`) and every engine
 * writing configs for it use 0 for "not set": memory limit/reservation/swap/kernelTCP, cpu
 * quota/period/realtime and shares, blockIO weight/leafWeight (also per device) and
 * network.classID. Docker sends `blockIO.weight: 0` and `cpu.shares: 0` for every container. A
 * limit of 0 there would be unusable anyway.
 */
export function givenNonZero(v: number | null | undefined): v is number {
  return given(v) && v !== 0;
}

/** An integer as decimal text (never "1e+21"); anything else is refused naming the file. */
export function intText(n: number, file: string): string {
  if (typeof n !== "number" || !Number.isInteger(n)) throw invalid(file, n, "not an integer");
  return BigInt(n).toString();
}

/** v1 limit files (memory.*limit_in_bytes, hugetlb.*.limit_in_bytes): -1 (any negative) is unlimited. */
export function v1Limit(n: number, file: string): string {
  return n < 0 ? "-1" : intText(n, file);
}

/** v2 limit files (memory.max, memory.low, pids.max, hugetlb.*.max, …): -1 (any negative) is "max". */
export function v2Limit(n: number, file: string): string {
  return n < 0 ? "max" : intText(n, file);
}

/**
 * pids.max (v1 and v2). runtime-spec 1.2.1 (and runc 1.4, and this project's schema): -1 (any
 * negative) is "max" and 0 is a real limit (no new tasks); an absent limit means "do nothing".
 */
export function pidsMax(limit: number): string {
  return v2Limit(limit, "pids.max");
}

export const SHARES_MIN = 2;
export const SHARES_MAX = 262144;

/**
 * cpu.shares (v1, 2…262144, default 1024) → cpu.weight (v2, 1…10000, default 100): the
 * log-quadratic curve runc and crun use since 2025, which maps the ends and the default onto each
 * other (2 → 1, 1024 → 100, 262144 → 10000). 0 means "not set" and gives 0.
 */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  if (shares <= SHARES_MIN) return 1;
  if (shares >= SHARES_MAX) return 10000;
  const l = Math.log2(shares);
  const exponent = (l * l + 125 * l) / 612 - 7 / 34;
  return Math.ceil(10 ** exponent);
}

/** blkio.weight (10…1000) → io.weight (1…10000), linearly (runc's fallback when BFQ is absent). */
export function blkioToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

/**
 * memory.swap.max (v2: swap only) from the OCI memory.swap (memory + swap, as v1's memsw), or
 * undefined for "leave it". -1 is unlimited; a swap total below the memory limit, or a finite
 * swap total without a finite memory limit, cannot be expressed and is refused.
 */
export function swapV2(limit: number | undefined, swap: number | undefined): string | undefined {
  const lim = limit === 0 ? undefined : limit;
  const sw = swap === 0 ? undefined : swap;
  // As on v1: an unlimited memory limit with no swap setting means unlimited swap as well.
  if (lim !== undefined && lim < 0 && sw === undefined) return "max";
  if (sw === undefined) return undefined;
  if (sw < 0) return "max";
  if (lim === undefined || lim < 0) throw invalid("memory.swap.max", sw, "memory.swap (memory+swap) needs a finite memory.limit to turn into a swap-only limit");
  if (sw < lim) throw invalid("memory.swap.max", sw, `memory.swap (memory+swap, ${sw}) is below memory.limit (${lim})`);
  return intText(sw - lim, "memory.swap.max");
}

/**
 * v1 keeps memory.memsw.limit_in_bytes >= memory.limit_in_bytes at every moment, so with both
 * changing, the order of the two writes matters: memsw first when the new total is unlimited or
 * not below the current limit (raising), else the limit first (lowering).
 */
export function memswFirst(currentLimit: bigint, newSwap: number): boolean {
  return newSwap < 0 || BigInt(newSwap) >= currentLimit;
}

/** The kernel's name for a huge page size in hugetlb file names ("2MB", "1GB", "64KB"). */
export function hugepageName(pageSize: string): string {
  if (!/^[1-9][0-9]*[KMG]B$/.test(pageSize)) throw invalid("hugetlb", pageSize, `not a page size like 2MB or 1GB`);
  return pageSize;
}

/** "maj:min" as blkio/io files take it. */
export function devNumber(d: { major: number; minor: number }, file: string): string {
  return `${intText(d.major, file)}:${intText(d.minor, file)}`;
}

export function invalid(file: string, value: unknown, why: string): CgroupError {
  return new CgroupError("apply", file, "EINVAL", `${JSON.stringify(value)}: ${why}`);
}
