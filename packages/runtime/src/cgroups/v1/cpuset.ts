// cpuset (v1): a new cgroup starts with empty cpuset.cpus and cpuset.mems, and the kernel refuses
// to move a task into it (ENOSPC) until both are set. So every level we create gets its parent's
// values, top-down, like runc's fs driver (it copies rather than setting clone_children, which
// would also copy cpu_exclusive-related constraints into new children).
//
// Resources: linux.resources.cpu.cpus and .mems replace those inherited values (cpusetV1).

import { existsSync } from "node:fs";
import { posix } from "node:path";
import type { LinuxResources } from "@tsrun/ocispec/core";
import { readText, writeText } from "../fs.ts";
import type { V1Hierarchy } from "../detect.ts";
import { controller, type Requested } from "../controller.ts";
import { given, RESOURCES } from "../values.ts";

/**
 * Makes `dir` (and its ancestors up to the mount, as needed) usable. `firstCreated` is the
 * topmost directory create() made, if any: the levels below it are new and certainly empty.
 */
export function prepareCpuset(hier: V1Hierarchy, dir: string, firstCreated: string | undefined): void {
  const file = (d: string, f: "cpus" | "mems") => `${d}/${hier.noprefix ? f : `cpuset.${f}`}`;
  const empty = (d: string) => readText(file(d, "cpus")).trim() === "" || readText(file(d, "mems")).trim() === "";

  // The levels to fill, top-down: from the first new one (or the leaf when nothing was created),
  // extended upwards over existing-but-empty ancestors (left so by someone else).
  let top = firstCreated ?? dir;
  while (top !== hier.mountpoint && posix.dirname(top) !== hier.mountpoint && empty(posix.dirname(top))) top = posix.dirname(top);
  const levels: string[] = [];
  for (let d = dir; ; d = posix.dirname(d)) {
    levels.unshift(d);
    if (d === top || d === hier.mountpoint || d === "/") break;
  }
  for (const d of levels) {
    if (d === hier.mountpoint) continue;
    const parent = posix.dirname(d);
    for (const f of ["cpus", "mems"] as const) {
      if (readText(file(d, f)).trim() === "") writeText(file(d, f), readText(file(parent, f)).trim());
    }
  }
}

export const cpusetV1 = controller({
  name: "cpuset",
  requested(r: LinuxResources): Requested[] {
    const c = r.cpu;
    if (!given(c)) return [];
    const out: Requested[] = [];
    // An empty string is "not set" (runc's rule): an empty cpuset would refuse every task.
    if (given(c.cpus) && c.cpus !== "") out.push({ pointer: `${RESOURCES}/cpu/cpus`, files: ["cpuset.cpus", "cpus"] });
    if (given(c.mems) && c.mems !== "") out.push({ pointer: `${RESOURCES}/cpu/mems`, files: ["cpuset.mems", "mems"] });
    return out;
  },
  apply(dir: string, r: LinuxResources): void {
    const c = r.cpu;
    if (!given(c)) return;
    // A noprefix mount (old Android/cpuset-only set-ups) names the files "cpus" and "mems".
    const prefix = existsSync(`${dir}/cpuset.cpus`) ? "cpuset." : "";
    if (given(c.cpus) && c.cpus !== "") writeText(`${dir}/${prefix}cpus`, c.cpus);
    if (given(c.mems) && c.mems !== "") writeText(`${dir}/${prefix}mems`, c.mems);
  },
});
