// cgroup2: a controller is usable in a cgroup only when every ancestor has it in
// cgroup.subtree_control. create() enables everything the root offers on the way down to the
// container's cgroup (not in the container's cgroup itself: it holds processes, and a cgroup with
// processes cannot delegate controllers), as runc's fs2 driver does. Resource limits (later) then
// find their files in place.

import { posix } from "node:path";
import { CgroupError } from "../errors.ts";
import { readText, writeText } from "../fs.ts";

export function enableControllers(mountpoint: string, leaf: string): void {
  const available = readText(`${mountpoint}/cgroup.controllers`).trim().split(/\s+/).filter((c) => c !== "");
  if (available.length === 0) return;
  const all = available.map((c) => `+${c}`).join(" ");
  const ancestors: string[] = [];
  for (let d = posix.dirname(leaf); d.startsWith(mountpoint); d = posix.dirname(d)) {
    ancestors.unshift(d);
    if (d === mountpoint) break;
  }
  for (const d of ancestors) {
    try {
      writeText(`${d}/cgroup.subtree_control`, all);
    } catch (err) {
      if (!(err instanceof CgroupError)) throw err;
      // One controller the parent lacks, or a parent with processes of its own (EBUSY), fails the
      // whole write: enable what can be, one by one. What stays off surfaces when a limit needs it.
      for (const c of available) {
        try {
          writeText(`${d}/cgroup.subtree_control`, `+${c}`);
        } catch {
          // See above.
        }
      }
    }
  }
}
