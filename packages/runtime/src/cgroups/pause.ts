// Whether a container's cgroup is paused, read straight from its freezer files: `state` and
// `list` ask this for every live container, so it reads one small file and builds no manager.

import { readFileSync } from "node:fs";
import { UNIFIED } from "./paths.ts";

/**
 * True when the container's own cgroup is frozen: v1 freezer.state FROZEN with
 * freezer.self_freezing 1 (FROZEN only because an ancestor is frozen is not a pause of this
 * container, as runc reads it), or cgroup2's cgroup.freeze 1. FREEZING (a freeze under way)
 * reads as not paused: the pause has not happened yet.
 */
export function cgroupPaused(paths: Record<string, string>): boolean {
  const v1 = paths.freezer;
  if (v1 !== undefined) {
    if (read(`${v1}/freezer.state`) !== "FROZEN") return false;
    const self = read(`${v1}/freezer.self_freezing`);
    return self === undefined || self === "1";
  }
  const unified = paths[UNIFIED];
  return unified !== undefined && read(`${unified}/cgroup.freeze`) === "1";
}

function read(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    // A cgroup removed under us (container gone) is not paused.
    return undefined;
  }
}
