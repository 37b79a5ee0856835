// cpu (v1): CFS shares, quota/period/burst, the real-time budget and SCHED_IDLE. The kernel
// checks each write against the current values (burst <= quota; the quota/period ratio against
// the parent's), so a write refused with EINVAL because of the old value of its partner is
// retried once the partner has its new value.

import type { LinuxResources } from "@tsrun/ocispec/core";
import { errnoCode } from "../errors.ts";
import { readText, writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { given, givenNonZero, intText, invalid, RESOURCES } from "../values.ts";

const P = `${RESOURCES}/cpu`;

export const cpuV1 = controller({
  name: "cpu",
  requested(r: LinuxResources): Requested[] {
    const c = r.cpu;
    if (!given(c)) return [];
    const out: Requested[] = [];
    if (givenNonZero(c.shares)) out.push({ pointer: `${P}/shares`, files: ["cpu.shares"] });
    if (givenNonZero(c.quota)) out.push({ pointer: `${P}/quota`, files: ["cpu.cfs_quota_us"] });
    if (givenNonZero(c.period)) out.push({ pointer: `${P}/period`, files: ["cpu.cfs_period_us"] });
    if (given(c.burst)) out.push({ pointer: `${P}/burst`, files: ["cpu.cfs_burst_us"], why: "the kernel has no CFS burst (Linux 5.14+)" });
    if (givenNonZero(c.realtimeRuntime)) out.push({ pointer: `${P}/realtimeRuntime`, files: ["cpu.rt_runtime_us"], why: "the kernel has no real-time group scheduling (CONFIG_RT_GROUP_SCHED)" });
    if (givenNonZero(c.realtimePeriod)) out.push({ pointer: `${P}/realtimePeriod`, files: ["cpu.rt_period_us"], why: "the kernel has no real-time group scheduling (CONFIG_RT_GROUP_SCHED)" });
    if (given(c.idle)) out.push({ pointer: `${P}/idle`, files: ["cpu.idle"], why: "the kernel has no cpu.idle (Linux 5.15+)" });
    return out;
  },
  apply(dir: string, r: LinuxResources): void {
    const c = r.cpu;
    if (!given(c)) return;
    const f = (name: string) => `${dir}/${name}`;
    if (givenNonZero(c.shares)) {
      const want = intText(c.shares, f("cpu.shares"));
      writeText(f("cpu.shares"), want);
      // The kernel clamps out-of-range shares silently; say so instead of running with another value.
      const got = readText(f("cpu.shares")).trim();
      if (got !== want) throw invalid(f("cpu.shares"), c.shares, `the kernel set ${got} instead (cpu.shares ranges 2…262144)`);
    }
    const writes: [string, string][] = [];
    if (givenNonZero(c.period)) writes.push([f("cpu.cfs_period_us"), intText(c.period, f("cpu.cfs_period_us"))]);
    if (given(c.burst)) writes.push([f("cpu.cfs_burst_us"), intText(c.burst, f("cpu.cfs_burst_us"))]);
    if (givenNonZero(c.quota)) writes.push([f("cpu.cfs_quota_us"), c.quota < 0 ? "-1" : intText(c.quota, f("cpu.cfs_quota_us"))]);
    writeInterdependent(writes);
    const rt: [string, string][] = [];
    if (givenNonZero(c.realtimePeriod)) rt.push([f("cpu.rt_period_us"), intText(c.realtimePeriod, f("cpu.rt_period_us"))]);
    if (givenNonZero(c.realtimeRuntime)) rt.push([f("cpu.rt_runtime_us"), c.realtimeRuntime < 0 ? "-1" : intText(c.realtimeRuntime, f("cpu.rt_runtime_us"))]);
    writeInterdependent(rt);
    if (given(c.idle)) writeText(f("cpu.idle"), intText(c.idle, f("cpu.idle")));
  },
});

/**
 * Writes in order; a write refused with EINVAL is retried after the others (the old value of a
 * later file may be what it conflicted with). Used by v2/cpu.ts too.
 */
export function writeInterdependent(writes: readonly [string, string][]): void {
  const retry: [string, string][] = [];
  for (const [file, value] of writes) {
    try {
      writeText(file, value);
    } catch (err) {
      if (errnoCode(err) !== "EINVAL" || writes.length === 1) throw err;
      retry.push([file, value]);
    }
  }
  for (const [file, value] of retry) writeText(file, value);
}
