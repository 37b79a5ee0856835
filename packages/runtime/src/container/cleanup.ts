// Locking and teardown, shared by create (on failure) and delete.
import { openSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../io.ts";
import { join } from "node:path";
import { cgroupManagerFromJSON } from "../cgroups/manager.ts";
import * as linux from "../linux/index.ts";
import { ContainerError } from "./errors.ts";
import { isAlive } from "./proc.ts";
import type { ContainerRecord, Store } from "./store.ts";

const LOCK_EX = 2;
const LOCK_NB = 4;

/**
 * Takes the container's lock (flock on its directory) and returns the fd that holds it. The
 * kernel drops the lock when the holder dies, so a killed tsrun never leaves it taken.
 */
export function lockContainer(store: Store, id: string): number {
  let fd: number;
  try {
    fd = openSync(store.dir(id), "r");
  } catch (e) {
    throw new ContainerError(`cannot open state directory of ${id}: ${(e as NodeJS.ErrnoException).code}`);
  }
  linux.flock(fd, LOCK_EX);
  return fd;
}

/** Is a tsrun command (e.g. the create that is still setting it up) holding the container's lock? */
export function isLocked(store: Store, id: string): boolean {
  let fd: number;
  try {
    fd = openSync(store.dir(id), "r");
  } catch {
    return false;
  }
  try {
    return !linux.flock(fd, LOCK_EX | LOCK_NB);
  } finally {
    linux.close(fd);
  }
}

/**
 * The cgroup's location, in a file of its own written before the cgroup is made: delete --force
 * finds the cgroup with it even when state.json is lost or corrupt.
 */
export function saveCgroupRecord(store: Store, id: string, cgroup: unknown): void {
  writeFileAtomic(join(store.dir(id), "cgroup.json"), JSON.stringify(cgroup));
}

function loadCgroupRecord(store: Store, id: string): unknown {
  try {
    return JSON.parse(readFileSync(join(store.dir(id), "cgroup.json"), "utf8"));
  } catch {
    return undefined;
  }
}

/**
 * Kills whatever is left of the container (its init and everything in its cgroup), removes its
 * cgroup and its state directory. Works from a partial record, or none.
 */
export function destroyContainer(store: Store, id: string, rec: ContainerRecord | undefined): void {
  const cgJson = rec?.cgroup ?? loadCgroupRecord(store, id);
  const cg = cgJson === undefined ? undefined : cgroupManagerFromJSON(cgJson);
  if (rec && rec.pid > 0 && isAlive(rec.pid, rec.pidStartTime)) {
    linux.kill(rec.pid, 9);
    // A paused container's init cannot die while frozen: thaw, or waitGone waits in vain.
    try {
      cg?.thaw();
    } catch {
      // No cgroup left to thaw: nothing in it is frozen either.
    }
  }
  if (rec && rec.pid > 0) waitGone(rec.pid, rec.pidStartTime);
  if (cg) {
    // Usually empty by now (the init is gone, and its pid namespace with it): removed at once.
    // Only when something is still inside is it killed (freezing first on v1) and waited for.
    try {
      cg.destroy({ timeoutMs: 0 });
    } catch {
      if (cg.exists()) cg.killAll(9);
      cg.destroy();
    }
  }
  store.remove(id);
}

/** Waits (bounded) until a killed process is gone, reaping it when it is our child. */
export function waitGone(pid: number, startTime: number, timeoutMs = 10_000): boolean {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    linux.waitpid(pid, linux.WNOHANG);
    if (!isAlive(pid, startTime)) return true;
    if (Date.now() > deadline) return false;
    Bun.sleepSync(delay);
  }
}
