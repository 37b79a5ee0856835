// Moving a process between cgroups takes a global kernel lock whose first taking after a quiet
// spell waits for an RCU grace period (about 10 ms here; runc pays it too). A throwaway process
// that moves itself to the cgroup it is already in starts that wait at once, in parallel with
// the rest of `create`, so that moving the container's init later is quick. Only an
// optimisation: any failure is ignored.
import { ownProcsFile } from "../cgroups/detect.ts";
import { spawnWarmup } from "../linux/index.ts";

let started = false;

export function startMigrationWarmUp(): void {
  if (started) return;
  started = true;
  try {
    const procs = ownProcsFile();
    if (!procs) return;
    // The executor, not /bin/sh through Bun.spawn: about 0.5 ms less of tsrun's own time.
    spawnWarmup(procs);
  } catch {
    // no cgroup, no memfd: nothing gained, nothing lost
  }
}
