// Locking and teardown, shared by create (on failure) and delete.
import { existsSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { writeFileAtomic } from "../io.ts";
import { join, posix } from "node:path";
import { cgroupManager, cgroupManagerFromJSON, type CgroupManager } from "../cgroups/manager.ts";
import { detect, parseProcCgroup, type CgroupHost, type Hierarchy } from "../cgroups/detect.ts";
import { UNIFIED } from "../cgroups/paths.ts";
import * as linux from "../linux/index.ts";
import { ContainerError } from "./errors.ts";
import { isAlive, procStat } from "./proc.ts";
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
    const code = (e as NodeJS.ErrnoException).code;
    throw new ContainerError(`cannot open state directory of ${id}: ${code}`, { id, op: "open", path: store.dir(id), code, cause: e });
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
 * The cgroup's location, written before the cgroup is made, in two places besides state.json:
 * cgroup.json in the container's directory, and a side record in the state root, outside that
 * directory (`cgroup@<id>.json`: "@" cannot be in an id, so the name never collides with a
 * container's directory and `list` never sees it). Each is written atomically (a new file renamed
 * over), so it is whole or absent, never half-written. Whatever happens to the files inside the
 * container's directory, the side record still names the cgroup, which matters most for a custom
 * linux.cgroupsPath: that path cannot be derived from the id. See findCgroup for the order.
 */
export function saveCgroupRecord(store: Store, id: string, cgroup: unknown): void {
  writeFileAtomic(join(store.dir(id), "cgroup.json"), JSON.stringify(cgroup));
  writeFileAtomic(sideRecordPath(store, id), JSON.stringify(cgroup));
}

function sideRecordPath(store: Store, id: string): string {
  return join(store.root, `cgroup@${id}.json`);
}

/**
 * What the cgroup records say for a container that runs in no cgroup (rootless, where the user
 * may write none): without it, delete would take whatever cgroup has the default name for the id.
 */
export const NO_CGROUP = { version: 1, none: true } as const;

function isNoCgroupRecord(record: unknown): boolean {
  return typeof record === "object" && record !== null && (record as { none?: unknown }).none === true;
}

function loadRecord(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/**
 * The container's cgroup, from the first source that gives a usable one:
 * 1. state.json's record (when state.json could be read);
 * 2. cgroup.json, then the side record in the state root (see saveCgroupRecord); either may say
 *    the container has none (NO_CGROUP), and then nothing below is tried;
 * 3. what the kernel keeps: the cgroup at runc's default path for the id (tsrun's own cgroup
 *    and the id), when it exists;
 * 4. a process whose cgroup (in the freezer or cgroup2 hierarchy) is named after the id: that
 *    finds the default cgroup even when this tsrun runs in another cgroup than the create did.
 * A record read from disk after damage is trusted only if each of its paths lies strictly below a
 * cgroup mount of this host: a garbage record naming a hierarchy's root would otherwise make
 * killAll signal the whole host.
 */
function findCgroup(store: Store, id: string, rec: ContainerRecord | undefined): CgroupManager | undefined {
  if (rec?.cgroup !== undefined) return cgroupManagerFromJSON(rec.cgroup);
  for (const record of [loadRecord(join(store.dir(id), "cgroup.json")), loadRecord(sideRecordPath(store, id))]) {
    if (record === undefined) continue;
    // The create's own word that the container got none: a cgroup of its name that exists (made
    // by someone else, e.g. root's, where a rootless create could not write) is not its to remove.
    if (isNoCgroupRecord(record)) return undefined;
    try {
      const cg = cgroupManagerFromJSON(record);
      if (belowMounts(cg, detect())) return cg;
    } catch {
      // Not a usable record: try the next source.
    }
  }
  try {
    const cg = cgroupManager({ id });
    if (cg.exists()) return cg;
  } catch {
    // No hierarchy to derive it in, or an id that cannot name a cgroup: nothing to find there.
  }
  return cgroupOfProcessNamed(id);
}

function belowMounts(cg: CgroupManager, host: CgroupHost): boolean {
  const mounts = [...Object.values(host.v1), ...(host.unified ? [host.unified] : [])].map((h) => h.mountpoint);
  return Object.values(cg.paths()).every((p) => mounts.some((m) => p.startsWith(`${m}/`)));
}

/** The cgroups of the first process whose freezer (or cgroup2) cgroup is named `id`. */
function cgroupOfProcessNamed(id: string): CgroupManager | undefined {
  let host: CgroupHost;
  try {
    host = detect();
  } catch {
    return undefined;
  }
  const key = host.v1.freezer ? "freezer" : UNIFIED;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/cgroup`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    const own = parseProcCgroup(text);
    const mine = key === UNIFIED ? own.unified : own.v1[key];
    if (mine === undefined || mine === null || posix.basename(mine) !== id) continue;
    const paths: Record<string, string> = {};
    for (const [ctl, h] of Object.entries(host.v1)) {
      const dir = own.v1[ctl] === undefined ? undefined : hostDir(h, own.v1[ctl]!);
      if (dir !== undefined) paths[ctl] = dir;
    }
    if (host.unified && own.unified !== null) {
      const dir = hostDir(host.unified, own.unified);
      if (dir !== undefined) paths[UNIFIED] = dir;
    }
    try {
      const cg = cgroupManagerFromJSON({ version: 1, mode: host.mode, paths });
      if (belowMounts(cg, host)) return cg;
    } catch {
      // Its cgroups do not make a whole set for this host's mode: not one tsrun made.
    }
  }
  return undefined;
}

/** Where `cgroup` (a path from /proc/<pid>/cgroup) is under `h`'s mountpoint, if this mount shows it. */
function hostDir(h: Hierarchy, cgroup: string): string | undefined {
  if (h.root !== "/" && cgroup !== h.root && !cgroup.startsWith(`${h.root}/`)) return undefined;
  return posix.join(h.mountpoint, h.root === "/" ? cgroup : cgroup.slice(h.root.length));
}

/**
 * Kills whatever is left of the container (its init and everything in its cgroup), removes its
 * cgroup and its state directory. Works from a partial record, or none: see findCgroup.
 */
export function destroyContainer(store: Store, id: string, rec: ContainerRecord | undefined): void {
  const cg = findCgroup(store, id, rec);
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
    // Only when something is still inside (or the init was found only through the cgroup) is it
    // killed (freezing first on v1, thawing a paused one) and waited for.
    try {
      cg.destroy({ timeoutMs: 0 });
    } catch {
      if (cg.exists()) cg.killAll(9);
      try {
        cg.destroy();
      } catch (e) {
        // A path that is no directory at all (a cgroupsPath through a file, refused at mkdir)
        // fails rmdir with ENOTDIR: there is nothing to remove. Only a directory still there is
        // a failure, and then the state stays so that delete can be tried again.
        if (Object.values(cg.paths()).some((d) => existsSync(d))) throw e;
      }
    }
  }
  rmSync(sideRecordPath(store, id), { force: true });
  store.remove(id);
}

/**
 * Waits (bounded) until a killed process is gone, reaping it when it is our child. Only that
 * process is reaped (its start time matches): in a long-lived caller (the shim) the pid may have
 * been reaped already and reused by another child, whose exit is not ours to take.
 */
export function waitGone(pid: number, startTime: number, timeoutMs = 10_000): boolean {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    const st = procStat(pid);
    if (st?.state === "Z" && st.startTime === startTime) linux.waitpid(pid, linux.WNOHANG);
    if (!isAlive(pid, startTime)) return true;
    if (Date.now() > deadline) return false;
    Bun.sleepSync(delay);
  }
}
