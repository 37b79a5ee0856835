// cpuset (v1): a new cgroup starts with empty cpuset.cpus and cpuset.mems, and the kernel refuses
// to move a task into it (ENOSPC) until both are set. So every level we create gets its parent's
// values, top-down, like runc's fs driver (it copies rather than setting clone_children, which
// would also copy cpu_exclusive-related constraints into new children).

import { posix } from "node:path";
import { readText, writeText } from "../fs.ts";
import type { V1Hierarchy } from "../detect.ts";

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
