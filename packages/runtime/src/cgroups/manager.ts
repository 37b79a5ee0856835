// The cgroupfs manager: one directory per v1 hierarchy (v1), one cgroup2 directory (v2), or both
// (hybrid: the v1 controllers do the work, the cgroup2 directory tracks the processes, which gives
// cgroup.kill and a tree that tools reading only cgroup2 can follow; runc does the same).
//
// Per-controller work lives in one file per controller under v1/ and v2/: what creating needs
// (v1/cpuset.ts, v2/subtree.ts) is called from here; resource limits (an apply(dir, resources)
// per controller) are driven by resources.ts through paths() and mode, outside the lifecycle below.

import { existsSync, mkdirSync, rmdirSync } from "node:fs";
import { posix } from "node:path";
import { CgroupError, errnoCode, fsError } from "./errors.ts";
import { detect, ownCgroups, type CgroupMode } from "./detect.ts";
import { hierarchiesFor, ownCgroupDirs, resolveCgroupPaths, UNIFIED, type Hierarchies } from "./paths.ts";
import { freezeV1, freezeV2, thawV1, thawV2 } from "./freezer.ts";
import { readProcs, readText, sleepMs, subdirs, vanished, writeText } from "./fs.ts";
import { prepareCpuset } from "./v1/cpuset.ts";
import { enableControllers } from "./v2/subtree.ts";
import { systemdUnsupported } from "./systemd.ts";

export interface CgroupManager {
  readonly mode: CgroupMode;
  /** controller (v1 name, "name=systemd", or "" (UNIFIED) for the cgroup2 directory) → directory. */
  paths(): Record<string, string>;
  /** Makes every directory (idempotent); on failure removes what it made and throws. */
  create(): void;
  /** Moves a process (all its threads) into every directory. */
  addProcess(pid: number): void;
  /** Every process in the container's cgroup and its sub-cgroups. */
  pids(): number[];
  /** Freezes every process and returns once all are frozen (bounded wait, then CgroupError). */
  freeze(): void;
  thaw(): void;
  /**
   * Signals every process in the container's cgroup tree, including ones forked meanwhile (the
   * tree is frozen around the signalling, or cgroup.kill does it for SIGKILL). A paused container
   * stays paused, except for SIGKILL, which thaws it so that its processes can die.
   */
  killAll(signal: NodeJS.Signals | number): void;
  /** Removes every directory, sub-cgroups first. Missing directories are fine. */
  destroy(options?: DestroyOptions): void;
  exists(): boolean;
  /** What to keep in the container's state to find its cgroups again: see cgroupManagerFromJSON. */
  toJSON(): CgroupManagerState;
  /**
   * Rootless only: the hierarchies create() or addProcess() gave up on because the user may not
   * write them (key as in paths() → the error). Empty otherwise. paths() no longer lists them.
   */
  dropped(): Record<string, CgroupError>;
  /**
   * Where the container's processes are for each hierarchy: its own directory, or for one a
   * rootless create() dropped, the cgroup tsrun is in (which the init, never moved, stays in).
   */
  processPaths(): Record<string, string>;
}

export interface CgroupManagerOptions {
  /** The OCI linux.cgroupsPath. */
  cgroupsPath?: string | undefined;
  /** The container id (the default cgroupsPath). */
  id: string;
  /** Defaults to the host's mode; "v1" or "v2" on a hybrid host uses only that side. */
  mode?: CgroupMode | undefined;
  /** --systemd-cgroup: refused with a SystemdCgroupUnsupportedError. */
  systemd?: boolean | undefined;
  /** Problems that do not stop the operation (a freeze that failed during killAll, …). */
  warn?: ((message: string) => void) | undefined;
  /**
   * runc's rootless cgroup manager (`--rootless`, see cgroups/rootless.ts): when no cgroupsPath
   * is given, a hierarchy the user may not create a cgroup in or move the process into
   * (EACCES, EPERM, EROFS) is left out instead of failing, as runc's fs and fs2 managers do. An
   * explicit cgroupsPath still fails: the config asked for that place.
   */
  rootless?: boolean | undefined;
}

export interface DestroyOptions {
  /** SIGKILL whatever is left in the cgroups first. */
  kill?: boolean;
  /** Total time to wait for busy cgroups (processes still exiting) to become removable. */
  timeoutMs?: number;
}

/** The serializable form: plain data, stable across tsrun versions (hence `version`). */
export interface CgroupManagerState {
  version: 1;
  mode: CgroupMode;
  paths: Record<string, string>;
}

/** Total wait of destroy() for busy cgroups; runc's per-directory retries add up to about 1 s. */
export const DESTROY_TIMEOUT_MS = 1000;

export function cgroupManager(options: CgroupManagerOptions): CgroupManager {
  if (options.systemd) throw systemdUnsupported();
  const hierarchies = hierarchiesFor(detect(), options.mode);
  const paths = resolveCgroupPaths({ hierarchies, cgroupsPath: options.cgroupsPath, id: options.id, own: ownCgroups });
  const tolerant = options.rootless === true && (options.cgroupsPath === undefined || options.cgroupsPath === "");
  return new FsCgroupManager(hierarchies.mode, paths, hierarchies, options.warn, tolerant);
}

/** A manager for cgroups made earlier (possibly by another tsrun process), from toJSON()'s output. */
export function cgroupManagerFromJSON(state: unknown, options: { warn?: ((message: string) => void) | undefined } = {}): CgroupManager {
  const s = validState(state);
  return new FsCgroupManager(s.mode, s.paths, undefined, options.warn);
}

const MODES: readonly CgroupMode[] = ["v1", "v2", "hybrid"];

function validState(state: unknown): CgroupManagerState {
  const bad = (why: string) => new CgroupError("load", undefined, "EINVAL", `saved cgroup state is not usable: ${why}`);
  if (typeof state !== "object" || state === null) throw bad("not an object");
  const { version, mode, paths } = state as Record<string, unknown>;
  if (version !== 1) throw bad(`unknown version ${JSON.stringify(version)}`);
  if (typeof mode !== "string" || !MODES.includes(mode as CgroupMode)) throw bad(`unknown mode ${JSON.stringify(mode)}`);
  if (typeof paths !== "object" || paths === null || Array.isArray(paths)) throw bad("paths is not an object");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(paths)) {
    if (typeof v !== "string" || !v.startsWith("/") || v.split("/").includes("..") || posix.normalize(v) !== v || v === "/") throw bad(`paths[${JSON.stringify(k)}] is not a clean absolute path: ${JSON.stringify(v)}`);
    out[k] = v;
  }
  const hasUnified = out[UNIFIED] !== undefined;
  const hasV1 = Object.keys(out).some((k) => k !== UNIFIED);
  if ((mode === "v1" && (!hasV1 || hasUnified)) || (mode === "v2" && (!hasUnified || hasV1)) || (mode === "hybrid" && (!hasUnified || !hasV1))) {
    throw bad(`paths ${JSON.stringify(Object.keys(out))} do not fit mode ${mode}`);
  }
  return { version: 1, mode: mode as CgroupMode, paths: out };
}

/** The errors runc's rootless managers ignore (fs.isIgnorableError): the user may not write there. */
const ROOTLESS_IGNORABLE = new Set(["EACCES", "EPERM", "EROFS"]);

class FsCgroupManager implements CgroupManager {
  /** Each distinct directory once (co-mounted controllers share one), in mount order. */
  private dirs: string[];
  /**
   * Where pids are listed and existence is judged: the freezer directory (v1 freezer, else the
   * cgroup2 one), so that the pids listed are exactly the set that freezing holds still. Empty
   * only when a rootless create() dropped every hierarchy.
   */
  private primary: string;
  private readonly droppedDirs: Record<string, CgroupError> = {};
  /** The directories create() made itself, each with the ones above it it made: what a drop removes. */
  private readonly madeFor = new Map<string, string[]>();

  constructor(
    private readonly hostMode: CgroupMode,
    private readonly dirByController: Record<string, string>,
    /** Known when made from a config; looked up only when create() needs it after fromJSON. */
    private hierarchies: Hierarchies | undefined,
    private readonly warn: ((message: string) => void) | undefined,
    /** Permission errors drop the hierarchy instead of failing (rootless, no cgroupsPath). */
    private readonly tolerant = false,
  ) {
    this.dirs = [...new Set(Object.values(dirByController))];
    const primary = this.pickPrimary();
    if (primary === undefined) throw new CgroupError("resolve", undefined, "ENOENT", "no cgroup hierarchy to put the container in");
    this.primary = primary;
  }

  private pickPrimary(): string | undefined {
    return this.dirByController.freezer ?? this.dirByController[UNIFIED] ?? this.dirs[0];
  }

  /**
   * The mode of what is left: a hybrid manager that lost its cgroup2 directory (or all its v1
   * ones) to a rootless drop works, and is saved, as a v1 (or v2) one.
   */
  get mode(): CgroupMode {
    if (this.hostMode !== "hybrid") return this.hostMode;
    const unified = this.dirByController[UNIFIED] !== undefined;
    const v1 = Object.keys(this.dirByController).some((k) => k !== UNIFIED);
    return unified && !v1 ? "v2" : !unified && v1 ? "v1" : "hybrid";
  }

  paths(): Record<string, string> {
    return { ...this.dirByController };
  }

  dropped(): Record<string, CgroupError> {
    return { ...this.droppedDirs };
  }

  processPaths(): Record<string, string> {
    const lost = Object.keys(this.droppedDirs);
    if (lost.length === 0) return this.paths();
    this.hierarchies ??= hierarchiesFor(detect(), this.hostMode);
    const own = ownCgroupDirs(this.hierarchies, ownCgroups());
    const out: Record<string, string> = {};
    for (const key of [...Object.keys(this.dirByController), ...lost]) {
      const dir = this.dirByController[key] ?? own[key];
      if (dir !== undefined) out[key] = dir;
    }
    return out;
  }

  /** Whether `err` lets a rootless manager go on without `dir`; if so, forgets `dir` (and removes what it made of it). */
  private dropIfTolerated(dir: string, err: unknown): boolean {
    if (!this.tolerant || !(err instanceof CgroupError) || !ROOTLESS_IGNORABLE.has(err.code)) return false;
    for (const [key, d] of Object.entries(this.dirByController))
      if (d === dir) {
        this.droppedDirs[key] = err;
        delete this.dirByController[key];
      }
    this.dirs = this.dirs.filter((d) => d !== dir);
    for (const d of (this.madeFor.get(dir) ?? []).reverse()) {
      try {
        rmdirSync(d);
      } catch {
        // Best effort: a directory we made and may not use is only clutter.
      }
    }
    this.madeFor.delete(dir);
    this.primary = this.pickPrimary() ?? "";
    return true;
  }

  toJSON(): CgroupManagerState {
    return { version: 1, mode: this.mode, paths: this.paths() };
  }

  exists(): boolean {
    return this.primary !== "" && existsSync(this.primary);
  }

  create(): void {
    this.hierarchies ??= hierarchiesFor(detect(), this.hostMode);
    const made: string[] = [];
    try {
      for (const dir of [...this.dirs]) {
        const before = made.length;
        try {
          mkdirs(dir, made);
          this.prepare(dir, made[before], this.hierarchies);
        } catch (err) {
          const mine = made.splice(before);
          this.madeFor.set(dir, mine);
          if (!this.dropIfTolerated(dir, err)) {
            made.push(...mine);
            throw err;
          }
          continue;
        }
        this.madeFor.set(dir, made.slice(before));
      }
    } catch (err) {
      // Leave nothing behind a failed create: remove what we made, bottom-up. Directories that
      // were there before (shared parents, a cgroup being joined) stay.
      for (const d of made.reverse()) {
        try {
          rmdirSync(d);
        } catch {
          // Best effort; the original error is what matters.
        }
      }
      throw err;
    }
  }

  /** Controller-specific set-up of a freshly made (or joined) directory. */
  private prepare(dir: string, top: string | undefined, h: Hierarchies): void {
    const keys = Object.keys(this.dirByController).filter((k) => this.dirByController[k] === dir);
    for (const key of keys) {
      const cpuset = h.v1.cpuset;
      if (key === "cpuset" && cpuset) prepareCpuset(cpuset, dir, top);
      else if (key === UNIFIED && this.hostMode === "v2" && h.unified) enableControllers(h.unified.mountpoint, dir);
    }
  }

  addProcess(pid: number): void {
    if (!Number.isSafeInteger(pid) || pid <= 0) throw new CgroupError("addProcess", undefined, "EINVAL", `not a pid: ${pid}`);
    for (const dir of [...this.dirs]) {
      // EINVAL can mean a task still being born (TASK_NEW, e.g. mid-clone); it settles quickly.
      for (let attempt = 1; ; attempt++) {
        try {
          writeText(`${dir}/cgroup.procs`, String(pid));
          break;
        } catch (err) {
          // runc's rootless Apply gives up on a hierarchy whose cgroup.procs it may not write
          // (a cgroup that was there already, not the user's) as on one it may not mkdir in.
          if (this.dropIfTolerated(dir, err)) break;
          if (errnoCode(err) !== "EINVAL" || attempt === 5) throw err;
          sleepMs(10);
        }
      }
    }
  }

  pids(): number[] {
    const pids: number[] = [];
    const walk = (dir: string, top: boolean) => {
      try {
        pids.push(...readProcs(dir));
      } catch (err) {
        // A sub-cgroup removed while we walk is fine; the container's own cgroup missing is not.
        if (!top && vanished(err)) return;
        throw err;
      }
      for (const sub of subdirs(dir)) walk(`${dir}/${sub}`, false);
    };
    if (this.primary !== "") walk(this.primary, true);
    return pids;
  }

  freeze(): void {
    this.refuseSelf(this.pids(), "freeze");
    this.freezeUnchecked();
  }

  thaw(): void {
    const f = this.freezer();
    if (f === undefined) return; // nothing can have been frozen
    if (f.v1) thawV1(f.dir);
    else thawV2(f.dir);
  }

  killAll(signal: NodeJS.Signals | number): void {
    if (!this.exists()) throw new CgroupError("kill", this.primary, "ENOENT", "the container's cgroup does not exist");
    const kill = isSigkill(signal);
    this.refuseSelf(this.pids(), "kill");
    // A paused container stays paused for a catchable signal (delivered on resume); with SIGKILL
    // it is thawed, since a v1-frozen task cannot die until thawed (cgroup.kill included).
    const paused = this.isFrozen();
    const unified = this.dirByController[UNIFIED];
    if (kill && unified !== undefined) {
      // cgroup.kill (Linux 5.14+) kills the whole tree in the kernel, forks included, in one write.
      try {
        writeText(`${unified}/cgroup.kill`, "1");
        if (paused) this.thaw();
        return;
      } catch (err) {
        if (errnoCode(err) !== "ENOENT") throw err;
      }
    }
    // Frozen, the set of processes cannot change under us: no fork escapes the signal.
    let frozeHere = false;
    if (!paused && this.freezer() !== undefined) {
      try {
        this.freezeUnchecked();
        frozeHere = true;
      } catch (err) {
        this.warn?.(`killAll: signalling without freezing first: ${(err as Error).message}`);
      }
    }
    try {
      const signalled = new Set<number>();
      // Unfrozen, processes can fork between listing and signalling: go round again while new
      // ones show up (bounded; SIGKILL needs it most, other signals may be legitimately ignored).
      for (let round = 0; round < (frozeHere || paused ? 1 : 10); round++) {
        const fresh = this.pids().filter((p) => !signalled.has(p) && p !== process.pid);
        if (fresh.length === 0) break;
        for (const pid of fresh) {
          signalled.add(pid);
          try {
            process.kill(pid, signal);
          } catch (err) {
            if (errnoCode(err) !== "ESRCH") this.warn?.(`killAll: kill ${pid}: ${(err as Error).message}`);
          }
        }
      }
    } finally {
      if (frozeHere || (paused && kill)) this.thaw();
    }
  }

  destroy(options: DestroyOptions = {}): void {
    const deadline = performance.now() + (options.timeoutMs ?? DESTROY_TIMEOUT_MS);
    if (options.kill && this.exists()) {
      try {
        this.killAll("SIGKILL");
      } catch (err) {
        // Removal below reports what is still busy; a vanished cgroup is just done.
        if (!vanished(err)) this.warn?.(`destroy: ${(err as Error).message}`);
      }
    }
    const failures: unknown[] = [];
    for (const dir of this.dirs) {
      try {
        removeTree(dir, deadline);
      } catch (err) {
        failures.push(err);
      }
    }
    const [first] = failures;
    if (failures.length > 1 && first instanceof CgroupError) {
      throw new CgroupError(first.op, first.path, first.code, `${first.message.slice(first.message.indexOf(`${first.code}: `) + first.code.length + 2)} (and ${failures.length - 1} more cgroup directories could not be removed)`, { cause: first });
    }
    if (failures.length > 0) throw first;
  }

  private freezer(): { dir: string; v1: boolean } | undefined {
    const v1 = this.dirByController.freezer;
    if (v1 !== undefined) return { dir: v1, v1: true };
    const unified = this.dirByController[UNIFIED];
    // cgroup.freeze is part of cgroup2's core, so it is there in hybrid mode too.
    if (unified !== undefined) return { dir: unified, v1: false };
    return undefined;
  }

  /** Frozen by us or by a pause (v1 FREEZING counts as not frozen: freezing again is harmless). */
  private isFrozen(): boolean {
    const f = this.freezer();
    if (f === undefined) return false;
    try {
      return f.v1 ? readText(`${f.dir}/freezer.state`).trim() === "FROZEN" : readText(`${f.dir}/cgroup.freeze`).trim() === "1";
    } catch (err) {
      if (vanished(err)) return false;
      throw err;
    }
  }

  private freezeUnchecked(): void {
    const f = this.freezer();
    if (f === undefined) throw new CgroupError("freeze", undefined, "ENOTSUP", "the v1 freezer controller is not mounted and there is no cgroup2 tree");
    if (f.v1) freezeV1(f.dir);
    else freezeV2(f.dir);
  }

  /** A cgroupsPath naming a cgroup tsrun itself is in must never be frozen (we would hang) or killed. */
  private refuseSelf(pids: number[], op: string): void {
    if (pids.includes(process.pid)) throw new CgroupError(op, this.primary, "EINVAL", `tsrun itself (pid ${process.pid}) is in this cgroup; refusing to ${op} it`);
  }
}

/** mkdir -p that records each directory it makes, top-down, so that a failure can undo them. */
function mkdirs(dir: string, made: string[]): void {
  try {
    mkdirSync(dir, 0o755);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "EEXIST") return;
    if (code !== "ENOENT" || dir === "/") throw fsError("mkdir", dir, err);
    mkdirs(posix.dirname(dir), made);
    try {
      mkdirSync(dir, 0o755);
    } catch (again) {
      if (errnoCode(again) === "EEXIST") return; // another tsrun made it meanwhile
      throw fsError("mkdir", dir, again);
    }
  }
  made.push(dir);
}

function isSigkill(signal: NodeJS.Signals | number): boolean {
  return signal === "SIGKILL" || signal === 9;
}

/**
 * rmdir dir after its sub-cgroups, leaf first. EBUSY (processes still exiting, or sub-cgroups made
 * meanwhile) is retried with a growing pause until `deadline`; ENOENT is success.
 */
function removeTree(dir: string, deadline: number): void {
  let delay = 0.1;
  for (;;) {
    let err: unknown;
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      err = e;
    }
    const code = errnoCode(err);
    if (code === "ENOENT") return;
    if (code !== "EBUSY" && code !== "ENOTEMPTY") throw fsError("rmdir", dir, err);
    const subs = subdirs(dir);
    for (const sub of subs) removeTree(`${dir}/${sub}`, deadline);
    const left = deadline - performance.now();
    if (left <= 0) throw fsError("rmdir", dir, err, busyDetail(dir));
    // Retry at once when sub-cgroups were what kept it busy; else wait for processes to exit.
    if (subs.length > 0) continue;
    sleepMs(Math.min(delay, left));
    delay = Math.min(delay * 1.5, 100);
  }
}

function busyDetail(dir: string): string {
  try {
    const pids = readProcs(dir);
    if (pids.length > 0) return `still has processes ${pids.slice(0, 10).join(", ")}${pids.length > 10 ? ", …" : ""}; kill them first (destroy with kill)`;
  } catch {
    // Fall through to the generic text.
  }
  return "still in use";
}
