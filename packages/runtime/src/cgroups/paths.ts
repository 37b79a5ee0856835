// Where a container's cgroups go: the OCI `linux.cgroupsPath` resolved the way runc's cgroupfs
// ("fs") driver resolves it. Pure: the host layout and tsrun's own cgroups come in as data.
//
// - Absolute ("/default/abc"): below the root of each hierarchy as mounted here (the mountpoint),
//   like runc's fs driver (it joins the mountpoint and the path; the mount's own root does not
//   enter into it).
// - Relative ("kubepods/abc"): below tsrun's own cgroup in each v1 hierarchy, as read from
//   /proc/self/cgroup and made relative to the mount's root (tsrun may itself run in a container
//   that sees only its own subtree). In the cgroup2 tree it is below the *parent* of tsrun's own
//   cgroup, as runc's fs2 driver does: tsrun's own cgroup has processes (tsrun), and cgroup2's
//   "no internal processes" rule would then forbid enabling controllers for a child of it. The
//   same rule holds for the cgroup2 directory of a hybrid host (runc there uses the top of the
//   cgroup2 mount instead, whatever tsrun's own cgroup; one rule per tree type is simpler to
//   reason about, and the two agree whenever tsrun runs in the cgroup2 root, as it does here).
// - Absent or empty: the container id, taken as a relative path. That is runc's default:
//   specconv.CreateCgroupConfig leaves Path empty and sets Name = id when the spec has no
//   cgroupsPath and the systemd driver is off, and the fs drivers' path.Inner then yields
//   join(Parent="", Name=id) = "<id>", a relative path, which goes through the rule above. So
//   `runc run abc` started from a shell in cgroup /user/1 puts abc in /user/1/abc (v1).
//
// runc quietly clamps ".." (it cleans the path as if rooted at "/", so "../../x" becomes "x"); we
// refuse such a path instead, as a config error, because silently putting a container somewhere
// else than asked is worse than failing. A path that resolves to the hierarchy's root, or (being
// relative) to tsrun's own cgroup, is refused too: destroy() would try to remove it and killAll()
// would signal every process in it. (An absolute path that happens to name a cgroup tsrun is in
// cannot be seen here; freeze() and killAll() check for that before acting.)

import { posix } from "node:path";
import { CgroupError } from "./errors.ts";
import type { CgroupHost, CgroupMode, Hierarchy, ProcCgroups, V1Hierarchy } from "./detect.ts";

/**
 * The paths() key of the cgroup2 directory (v2 mode, and hybrid mode beside the v1 ones): "", as
 * runc's Manager.Path("") — a name no v1 controller can have.
 */
export const UNIFIED = "";

/** The hierarchies a manager in `mode` uses on `host`. */
export interface Hierarchies {
  mode: CgroupMode;
  v1: Record<string, V1Hierarchy>;
  unified: Hierarchy | null;
}

/**
 * Picks the hierarchies for the requested mode (default: the host's). On a hybrid host "v1"
 * leaves the cgroup2 tree out and "v2" uses only the cgroup2 tree; a mode the host cannot give is
 * an error.
 */
export function hierarchiesFor(host: CgroupHost, mode: CgroupMode = host.mode): Hierarchies {
  const hasV1 = host.mode !== "v2";
  if (mode === "v2") {
    if (!host.unified) throw new CgroupError("resolve", undefined, "EINVAL", `cgroup mode v2 asked for, but no cgroup2 file system is mounted (host mode: ${host.mode})`);
    return { mode, v1: {}, unified: host.unified };
  }
  if (!hasV1) throw new CgroupError("resolve", undefined, "EINVAL", `cgroup mode ${mode} asked for, but no v1 controller is mounted (host mode: v2)`);
  if (mode === "v1") return { mode, v1: host.v1, unified: null };
  if (!host.unified) throw new CgroupError("resolve", undefined, "EINVAL", "cgroup mode hybrid asked for, but no cgroup2 file system is mounted (host mode: v1)");
  return { mode, v1: host.v1, unified: host.unified };
}

export interface ResolveInput {
  hierarchies: Hierarchies;
  /** The OCI linux.cgroupsPath; undefined or "" means runc's default, the container id. */
  cgroupsPath?: string | undefined;
  id: string;
  /** tsrun's own cgroups; called only when the path is relative. */
  own: () => ProcCgroups;
}

/** controller (or "name=systemd", or UNIFIED) → absolute directory of the container's cgroup. */
export function resolveCgroupPaths(input: ResolveInput): Record<string, string> {
  const { hierarchies: h } = input;
  const given = input.cgroupsPath !== undefined && input.cgroupsPath !== "";
  const raw = given ? (input.cgroupsPath as string) : validId(input.id);
  const absolute = raw.startsWith("/");
  const inner = cleanInner(raw, absolute);

  const paths: Record<string, string> = {};
  let own: ProcCgroups | undefined;
  for (const [name, hier] of Object.entries(h.v1)) {
    if (absolute) {
      paths[name] = posix.join(hier.mountpoint, inner);
      continue;
    }
    own ??= input.own();
    const mine = own.v1[name];
    if (mine === undefined) throw new CgroupError("resolve", "/proc/self/cgroup", "ENOENT", `tsrun's own cgroup for ${name} is not listed, so the relative cgroupsPath "${raw}" cannot be resolved`);
    paths[name] = posix.join(hier.mountpoint, belowRoot(hier, mine, name), inner);
  }
  if (h.unified) {
    if (absolute) paths[UNIFIED] = posix.join(h.unified.mountpoint, inner);
    else {
      own ??= input.own();
      if (own.unified === null) throw new CgroupError("resolve", "/proc/self/cgroup", "ENOENT", `tsrun's own cgroup2 cgroup (the "0::" line) is not listed, so the relative cgroupsPath "${raw}" cannot be resolved`);
      // The parent of tsrun's cgroup, but no higher than what this mount shows.
      paths[UNIFIED] = posix.join(h.unified.mountpoint, posix.dirname(belowRoot(h.unified, own.unified, "cgroup2")), inner);
    }
  }
  return paths;
}

/**
 * The path lexically cleaned, without a leading "/"; refuses what leads out of its base or names
 * the base itself (see the header).
 */
function cleanInner(raw: string, absolute: boolean): string {
  if (raw.includes("\0")) throw invalidPath(raw, "contains a NUL byte");
  const segments: string[] = [];
  for (const s of raw.split("/")) {
    if (s === "" || s === ".") continue;
    if (s === "..") {
      if (segments.length === 0) throw invalidPath(raw, absolute ? `".." leads out of the cgroup hierarchy` : `".." leads out of tsrun's own cgroup, which a relative path is relative to`);
      segments.pop();
    } else segments.push(s);
  }
  if (segments.length === 0) throw invalidPath(raw, absolute ? "it names the root of the cgroup hierarchy, which a container cannot own" : "it names tsrun's own cgroup, which a container cannot own");
  return segments.join("/");
}

function invalidPath(raw: string, why: string): CgroupError {
  return new CgroupError("resolve", undefined, "EINVAL", `linux.cgroupsPath ${JSON.stringify(raw)} is refused: ${why}`);
}

/** The container id as a cgroup directory name (runc's default cgroupsPath). */
function validId(id: string): string {
  if (id === "" || id === "." || id === ".." || id.includes("/") || id.includes("\0")) {
    throw new CgroupError("resolve", undefined, "EINVAL", `container id ${JSON.stringify(id)} cannot name a cgroup (the default cgroupsPath is the id)`);
  }
  return id;
}

/**
 * The directories of the cgroups tsrun itself is in, per controller (and UNIFIED): where a
 * container stays when a rootless create() could not make its own, and so what its
 * /sys/fs/cgroup shows (runc binds the init's current cgroups just so). Hierarchies this process
 * is not listed in, or that show only part of the tree without it, are left out.
 */
export function ownCgroupDirs(h: Hierarchies, own: ProcCgroups): Record<string, string> {
  const out: Record<string, string> = {};
  const at = (hier: Hierarchy, cgroup: string | null | undefined, what: string) => {
    if (cgroup === undefined || cgroup === null) return undefined;
    try {
      return posix.join(hier.mountpoint, belowRoot(hier, cgroup, what));
    } catch {
      return undefined;
    }
  };
  for (const [name, hier] of Object.entries(h.v1)) {
    const dir = at(hier, own.v1[name], name);
    if (dir !== undefined) out[name] = dir;
  }
  if (h.unified) {
    const dir = at(h.unified, own.unified, "cgroup2");
    if (dir !== undefined) out[UNIFIED] = dir;
  }
  return out;
}

/** `cgroup` (a path from /proc/self/cgroup) as a path under `hier`'s mountpoint. */
function belowRoot(hier: Hierarchy, cgroup: string, what: string): string {
  if (hier.root === "/" || cgroup === hier.root) return hier.root === "/" ? cgroup : "/";
  if (cgroup.startsWith(hier.root + "/")) return cgroup.slice(hier.root.length);
  throw new CgroupError("resolve", hier.mountpoint, "ENOENT", `tsrun's own ${what} cgroup ${cgroup} is outside the part of the hierarchy mounted here (${hier.root}), so a relative cgroupsPath cannot be resolved; use an absolute one`);
}
