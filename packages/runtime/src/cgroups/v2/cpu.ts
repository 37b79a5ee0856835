// cpu (v2): cpu.weight (from OCI's cpu.shares, values.ts: sharesToWeight), cpu.max ("quota
// period", quota "max" for unlimited), cpu.max.burst and cpu.idle. cgroup v2 has no real-time
// group budget, so realtimeRuntime/realtimePeriod are never applicable here.

import type { LinuxResources } from "@tsrun/ocispec/core";
import { readText, writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { writeInterdependent } from "../v1/cpu.ts";
import { given, givenNonZero, intText, RESOURCES, sharesToWeight } from "../values.ts";

const P = `${RESOURCES}/cpu`;
const NO_RT = "cgroup v2 has no real-time group scheduling budget";

export const cpuV2 = controller({
  name: "cpu",
  requested(r: LinuxResources): Requested[] {
    const c = r.cpu;
    if (!given(c)) return [];
    const out: Requested[] = [];
    if (givenNonZero(c.shares)) out.push({ pointer: `${P}/shares`, files: ["cpu.weight"] });
    if (givenNonZero(c.quota)) out.push({ pointer: `${P}/quota`, files: ["cpu.max"] });
    if (givenNonZero(c.period)) out.push({ pointer: `${P}/period`, files: ["cpu.max"] });
    if (given(c.burst)) out.push({ pointer: `${P}/burst`, files: ["cpu.max.burst"], why: "the kernel has no CFS burst (Linux 5.14+)" });
    if (givenNonZero(c.realtimeRuntime)) out.push({ pointer: `${P}/realtimeRuntime`, files: [], why: NO_RT });
    if (givenNonZero(c.realtimePeriod)) out.push({ pointer: `${P}/realtimePeriod`, files: [], why: NO_RT });
    if (given(c.idle)) out.push({ pointer: `${P}/idle`, files: ["cpu.idle"], why: "the kernel has no cpu.idle (Linux 5.15+)" });
    return out;
  },
  apply(dir: string, r: LinuxResources): void {
    const c = r.cpu;
    if (!given(c)) return;
    const f = (name: string) => `${dir}/${name}`;
    const writes: [string, string][] = [];
    if (givenNonZero(c.shares)) writes.push([f("cpu.weight"), String(sharesToWeight(c.shares))]);
    if (given(c.burst)) writes.push([f("cpu.max.burst"), intText(c.burst, f("cpu.max.burst"))]);
    const max = cpuMax(c.quota, c.period, () => readText(f("cpu.max")));
    if (max !== undefined) writes.push([f("cpu.max"), max]);
    // burst must stay <= quota: written before cpu.max, retried after it when that was the conflict.
    writeInterdependent(writes);
    if (given(c.idle)) writeText(f("cpu.idle"), intText(c.idle, f("cpu.idle")));
  },
});

/**
 * The cpu.max line for an OCI quota/period (0 or absent: not set), or undefined to leave it. A
 * period alone keeps the current quota; a quota alone keeps the current period.
 */
export function cpuMax(quota: number | null | undefined, period: number | null | undefined, current: () => string): string | undefined {
  const q = givenNonZero(quota) ? (quota < 0 ? "max" : intText(quota, "cpu.max")) : undefined;
  const p = givenNonZero(period) ? intText(period, "cpu.max") : undefined;
  if (q === undefined && p === undefined) return undefined;
  if (p === undefined) return q;
  return `${q ?? current().trim().split(/\s+/)[0] ?? "max"} ${p}`;
}
