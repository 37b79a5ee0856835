// memory (v2): memory.max (hard), memory.low (the reservation: best-effort protection, the closest
// to v1's soft limit) and memory.swap.max, which counts swap only where OCI's memory.swap (v1's
// memsw) counts memory plus swap: swap.max = swap - limit (values.ts: swapV2).
//
// v2 has no swappiness, no separate TCP-buffer limit, no switch for the OOM killer and no flat
// accounting: those settings are never applicable here (memory.useHierarchy true is simply how
// v2 works). memory.kernel is ignored as on v1.

import { existsSync } from "node:fs";
import type { LinuxResources } from "@tsrun/ocispec/core";
import { writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { given, givenNonZero, RESOURCES, swapV2, v2Limit } from "../values.ts";

const P = `${RESOURCES}/memory`;

export const memoryV2 = controller({
  name: "memory",
  requested(r: LinuxResources): Requested[] {
    const m = r.memory;
    if (!given(m)) return [];
    const out: Requested[] = [];
    if (givenNonZero(m.limit)) out.push({ pointer: `${P}/limit`, files: ["memory.max"] });
    if (givenNonZero(m.reservation)) out.push({ pointer: `${P}/reservation`, files: ["memory.low"] });
    if (givenNonZero(m.swap)) out.push({ pointer: `${P}/swap`, files: ["memory.swap.max"], why: "swap accounting is off (no memory.swap.max)" });
    if (givenNonZero(m.kernelTCP)) out.push({ pointer: `${P}/kernelTCP`, files: [], why: "cgroup v2 has no separate TCP buffer limit (it counts in memory.max)" });
    if (given(m.swappiness)) out.push({ pointer: `${P}/swappiness`, files: [], why: "cgroup v2 has no per-cgroup swappiness" });
    if (m.disableOOMKiller === true) out.push({ pointer: `${P}/disableOOMKiller`, files: [], why: "cgroup v2 cannot turn the OOM killer off" });
    if (m.useHierarchy === false) out.push({ pointer: `${P}/useHierarchy`, files: [], why: "cgroup v2 accounting is always hierarchical" });
    return out;
  },
  apply(dir: string, r: LinuxResources, warn?: (message: string) => void): void {
    const m = r.memory;
    if (!given(m)) return;
    const f = (name: string) => `${dir}/${name}`;
    // Computed (and checked) before writing anything.
    const swap = swapV2(givenNonZero(m.limit) ? m.limit : undefined, givenNonZero(m.swap) ? m.swap : undefined);
    // Implied "max" (unlimited memory, swap not set) only where swap is accounted.
    const writeSwap = swap !== undefined && (givenNonZero(m.swap) || existsSync(f("memory.swap.max")));
    if (writeSwap) writeText(f("memory.swap.max"), swap);
    if (givenNonZero(m.limit)) writeText(f("memory.max"), v2Limit(m.limit, f("memory.max")));
    if (givenNonZero(m.reservation)) writeText(f("memory.low"), v2Limit(m.reservation, f("memory.low")));
    if (givenNonZero(m.kernel)) warn?.(`${P}/kernel is ignored: kernel memory limits are deprecated (kernel memory counts against memory.max)`);
  },
});

