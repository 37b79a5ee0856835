// Moving a process between cgroups takes a global kernel lock whose first taking after a quiet
// spell waits for an RCU grace period (about 10 ms here; runc pays it too). A throwaway process
// that moves itself to the cgroup it is already in starts that wait at once, in parallel with
// the rest of `create`, so that moving the container's init later is quick. Only an
// optimisation: any failure is ignored. On a host without cgroup2 there is none: the init moves
// itself into its v1 cgroups, which takes no such lock (plan/fold.ts moveSelfToCgroupOps), and a
// warm-up would only hold the cgroup mutex (through its wait) against that move and the mkdirs.
import { detect, ownProcsFile } from "../cgroups/detect.ts";
import { spawnWarmup, waitpid, WNOHANG } from "../linux/index.ts";
import { ownChild, releaseChild } from "./children.ts";

/** The warm-up process while it is not reaped. */
let warmPid = 0;

/**
 * Starts a warm-up for the create about to run, unless one is still outstanding (the CLI starts
 * it before its modules load, and create asks again). A long-lived caller (the shim serves many
 * creates from one process) gets one per create: the lock's grace period comes back after every
 * quiet spell.
 */
export function startMigrationWarmUp(): void {
  reapMigrationWarmUp(false);
  if (warmPid) return;
  try {
    if (!detect().unified) return;
    const procs = ownProcsFile();
    if (!procs) return;
    // The executor, not /bin/sh through Bun.spawn: about 0.5 ms less of tsrun's own time.
    warmPid = spawnWarmup(procs);
    // A subreaping caller (the shim) leaves it to us.
    ownChild(warmPid);
  } catch {
    // no cgroup, no memfd: nothing gained, nothing lost
  }
}

/**
 * Reaps the warm-up process (`wait`: block until it ends; it only writes one file). A short-lived
 * `tsrun create` can leave it to its own parent, but a foreground `run` would keep it as a zombie
 * ("[memfd:tsrun-exe] <defunct>") as long as its container runs.
 */
export function reapMigrationWarmUp(wait: boolean): void {
  if (!warmPid) return;
  // pid 0: still running; anything else (its status, or an error: not our child) ends the watch.
  if (waitpid(warmPid, wait ? 0 : WNOHANG).pid !== 0) {
    releaseChild(warmPid);
    warmPid = 0;
  }
}
