// Changing the resources of a live container all-or-nothing. applyResources refuses, before
// writing, what this host cannot apply; a value the kernel refuses halfway (a memory limit below
// the current usage, a period out of range) would still leave the earlier writes done. So every
// file the update may write is read first and, when a write fails, what changed is written back.
// runc 1.1.5 leaves the earlier writes in place ("your state.json and actual configs might be
// inconsistent"); tsrun does not.

import { readdirSync } from "node:fs";
import type { LinuxResources } from "@tsrun/ocispec/core";
import { applyResources } from "./resources.ts";
import type { CgroupManager } from "./manager.ts";
import { UNIFIED } from "./paths.ts";
import { readText, writeText } from "./fs.ts";

/** Files holding one setting each: restored by writing back what was read. */
const SINGLE = /^(memory\.(limit_in_bytes|memsw\.limit_in_bytes|soft_limit_in_bytes|kmem\.tcp\.limit_in_bytes|swappiness|use_hierarchy|max|low|high|min|swap\.max)|cpu\.(shares|cfs_period_us|cfs_quota_us|cfs_burst_us|rt_period_us|rt_runtime_us|idle|weight|max|max\.burst)|cpuset\.(cpus|mems)|pids\.max|blkio\.(weight|bfq\.weight|leaf_weight)|io\.(weight|bfq\.weight)|hugetlb\..+\.(limit_in_bytes|max|rsvd\.max)|net_cls\.classid)$/;
/** Files of one line per device: restored line by line, devices added meanwhile removed. */
const PER_DEVICE = /^(blkio\.throttle\.(read|write)_(bps|iops)_device|io\.max)$/;

interface Saved {
  file: string;
  text: string;
}

/**
 * Applies `resources` to the manager's cgroups; when any write fails, puts every file it may
 * have changed back as it was and rethrows the first error (with the restore's failure, if any,
 * added to its message).
 */
export function updateResources(manager: CgroupManager, resources: LinuxResources, warn?: (message: string) => void): void {
  const saved = snapshot(manager);
  try {
    applyResources(manager, resources, { warn });
  } catch (err) {
    const failed = restore(saved);
    if (failed.length > 0 && err instanceof Error) err.message += `; and restoring the previous values failed: ${failed.join("; ")}`;
    throw err;
  }
}

/** The current text of every settings file in the manager's directories. */
export function snapshot(manager: CgroupManager): Saved[] {
  const out: Saved[] = [];
  for (const dir of new Set(Object.entries(manager.paths()).filter(([k]) => k !== UNIFIED || manager.mode === "v2").map(([, d]) => d))) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names.sort()) {
      if (!SINGLE.test(name) && !PER_DEVICE.test(name) && name !== "memory.oom_control") continue;
      try {
        out.push({ file: `${dir}/${name}`, text: readText(`${dir}/${name}`) });
      } catch {
        // Unreadable (write-only) files are not settings we can restore.
      }
    }
  }
  return out;
}

/** Writes back what changed; returns the failures (empty when all went back). */
export function restore(saved: readonly Saved[]): string[] {
  const writes: [string, string][] = [];
  for (const { file, text } of saved) {
    let now: string;
    try {
      now = readText(file);
    } catch {
      continue;
    }
    if (now === text) continue;
    const name = file.slice(file.lastIndexOf("/") + 1);
    if (name === "memory.oom_control") {
      const was = /^oom_kill_disable (\d)/m.exec(text)?.[1];
      if (was !== undefined) writes.push([file, was]);
    } else if (PER_DEVICE.test(name)) {
      writes.push(...deviceLines(file, text, now));
    } else {
      writes.push([file, text.trim()]);
    }
  }
  // Limits that depend on each other (memory and memory+swap, quota and period) may need the
  // other's old value back first: a refused write is tried again once the others are back.
  const retry: [string, string][] = [];
  for (const [file, value] of writes) {
    try {
      writeText(file, value);
    } catch {
      retry.push([file, value]);
    }
  }
  const failed: string[] = [];
  for (const [file, value] of retry) {
    try {
      writeText(file, value);
    } catch (err) {
      failed.push(`${file}: ${(err as Error).message}`);
    }
  }
  return failed;
}

/** The writes that turn a per-device file's `now` back into `was`. */
function deviceLines(file: string, was: string, now: string): [string, string][] {
  const dev = (line: string) => line.split(/\s+/)[0]!;
  const lines = (t: string) => t.split("\n").filter((l) => /^\d+:\d+\s/.test(l));
  const old = new Map(lines(was).map((l) => [dev(l), l]));
  const out: [string, string][] = [];
  for (const line of lines(now)) {
    if (old.get(dev(line)) === line) continue;
    if (!old.has(dev(line))) out.push([file, file.endsWith("io.max") ? `${dev(line)} rbps=max wbps=max riops=max wiops=max` : `${dev(line)} 0`]);
  }
  for (const [d, line] of old) if (!lines(now).includes(line)) out.push([file, file.endsWith("io.max") ? line : `${d} ${line.split(/\s+/)[1]}`]);
  return out;
}
