// memory (v1): hard and soft limits, memory+swap total, TCP buffers, swappiness, the OOM killer
// switch and hierarchical accounting. memory.kernel (memory.kmem.limit_in_bytes) is ignored, as
// runc does since 1.1: kernels since 5.4 deprecate it and 6.x accept and ignore writes, and the
// kernel's own memory is charged to memory.limit_in_bytes anyway. checkBeforeUpdate only
// concerns updating a running container, never creating one.

import { existsSync } from "node:fs";
import type { LinuxResources } from "@tsrun/ocispec/core";
import { readText, writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { given, givenNonZero, invalid, memswFirst, RESOURCES, v1Limit } from "../values.ts";

const P = `${RESOURCES}/memory`;
const LIMIT = "memory.limit_in_bytes";
const MEMSW = "memory.memsw.limit_in_bytes";

export const memoryV1 = controller({
  name: "memory",
  requested(r: LinuxResources): Requested[] {
    const m = r.memory;
    if (!given(m)) return [];
    const out: Requested[] = [];
    if (givenNonZero(m.limit)) out.push({ pointer: `${P}/limit`, files: [LIMIT] });
    if (givenNonZero(m.reservation)) out.push({ pointer: `${P}/reservation`, files: ["memory.soft_limit_in_bytes"] });
    if (givenNonZero(m.swap)) out.push({ pointer: `${P}/swap`, files: [MEMSW], why: "swap accounting is off (no memory.memsw.limit_in_bytes; boot with swapaccount=1)" });
    if (givenNonZero(m.kernelTCP)) out.push({ pointer: `${P}/kernelTCP`, files: ["memory.kmem.tcp.limit_in_bytes"] });
    if (given(m.swappiness)) out.push({ pointer: `${P}/swappiness`, files: ["memory.swappiness"] });
    if (m.disableOOMKiller === true) out.push({ pointer: `${P}/disableOOMKiller`, files: ["memory.oom_control"] });
    if (given(m.useHierarchy)) {
      // Since Linux 5.16 use_hierarchy is always 1; on any kernel a child of a hierarchical
      // parent cannot turn it off.
      const want = m.useHierarchy;
      out.push({ pointer: `${P}/useHierarchy`, files: ["memory.use_hierarchy"], why: "the parent cgroup is hierarchical, so this one cannot be made flat", ok: (p) => want || p.read("memory.use_hierarchy") !== "1" || !p.has("memory.use_hierarchy") });
    }
    return out;
  },
  apply(dir: string, r: LinuxResources, warn?: (message: string) => void): void {
    const m = r.memory;
    if (!given(m)) return;
    const f = (name: string) => `${dir}/${name}`;
    setLimitAndSwap(dir, m.limit, m.swap);
    if (givenNonZero(m.reservation)) writeText(f("memory.soft_limit_in_bytes"), v1Limit(m.reservation, f("memory.soft_limit_in_bytes")));
    if (givenNonZero(m.kernel)) warn?.(`${P}/kernel is ignored: kernel memory limits are deprecated (kernel memory counts against memory.limit)`);
    if (givenNonZero(m.kernelTCP)) writeText(f("memory.kmem.tcp.limit_in_bytes"), v1Limit(m.kernelTCP, f("memory.kmem.tcp.limit_in_bytes")));
    if (given(m.swappiness)) {
      if (!Number.isInteger(m.swappiness) || m.swappiness < 0 || m.swappiness > 100) throw invalid(f("memory.swappiness"), m.swappiness, "swappiness must be 0…100");
      writeText(f("memory.swappiness"), String(m.swappiness));
    }
    if (m.disableOOMKiller === true) writeText(f("memory.oom_control"), "1");
    if (given(m.useHierarchy)) {
      const want = m.useHierarchy ? "1" : "0";
      if (readText(f("memory.use_hierarchy")).trim() !== want) writeText(f("memory.use_hierarchy"), want);
    }
  },
});

/** memory.limit_in_bytes and memory.memsw.limit_in_bytes, in the order the kernel accepts. */
function setLimitAndSwap(dir: string, limit: number | undefined, swap: number | undefined): void {
  const lim = `${dir}/${LIMIT}`;
  const sw = `${dir}/${MEMSW}`;
  let total = givenNonZero(swap) ? swap : undefined;
  const mem = givenNonZero(limit) ? limit : undefined;
  // Unlimited memory and no swap setting: unlimited swap too (runc's rule), where swap is accounted.
  if (mem !== undefined && mem < 0 && total === undefined && existsSync(sw)) total = -1;
  if (mem !== undefined && total !== undefined && mem >= 0 && total >= 0 && total < mem) {
    throw invalid(sw, total, `memory.swap (memory+swap) must not be below memory.limit (${mem})`);
  }
  if (mem === undefined) {
    if (total !== undefined) writeText(sw, v1Limit(total, sw));
    return;
  }
  if (total === undefined) {
    writeText(lim, v1Limit(mem, lim));
    return;
  }
  const current = BigInt(readText(lim).trim());
  if (memswFirst(current, total)) {
    writeText(sw, v1Limit(total, sw));
    writeText(lim, v1Limit(mem, lim));
  } else {
    writeText(lim, v1Limit(mem, lim));
    writeText(sw, v1Limit(total, sw));
  }
}


