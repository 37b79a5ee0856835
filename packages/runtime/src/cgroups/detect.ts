// Which cgroup hierarchies this host has, and where: read from /proc/self/mountinfo (what *this*
// process sees, which is what matters inside a container or a private mount namespace), never from
// hard-coded paths. The parsers are pure functions of the file text so that every layout can be
// unit-tested without root.

import { readFileSync } from "node:fs";
import { CgroupError, fsError } from "./errors.ts";
import { parseMountinfo as parseAnyMountinfo } from "../linux/mountinfo.ts";

export type CgroupMode = "v1" | "v2" | "hybrid";

export interface Hierarchy {
  /** Where it is mounted here, e.g. /sys/fs/cgroup/memory. */
  mountpoint: string;
  /**
   * Which cgroup of the hierarchy the mount shows at `mountpoint` (mountinfo field 4): "/" on a
   * host, "/docker/<id>" inside a container that got a bind of its own cgroup and no cgroupns.
   */
  root: string;
}

export interface V1Hierarchy extends Hierarchy {
  /** The controllers mounted together here ("cpu", "cpuacct"), or ["name=systemd"]. */
  controllers: string[];
  /** Mounted with -o noprefix: files are "cpus", not "cpuset.cpus". */
  noprefix: boolean;
}

export interface CgroupHost {
  mode: CgroupMode;
  /**
   * v1 controller → its hierarchy. Co-mounted controllers ("cpu,cpuacct") map to the same object.
   * Besides the real controllers, holds "name=systemd" when mounted (see NAMED_HIERARCHIES).
   * Empty in v2 mode.
   */
  v1: Record<string, V1Hierarchy>;
  /** The cgroup2 mount: the whole tree in v2 mode, a controller-less extra tree in hybrid mode. */
  unified: Hierarchy | null;
}

/**
 * The v1 controllers the kernel has (kernel/cgroup/*, "debug" left out on purpose). Mount options
 * of a "cgroup" mount are these plus plain options (rw, noprefix, clone_children, xattr,
 * release_agent=…, cpuset_v2_mode, name=…): an allow-list is how we tell them apart.
 */
const V1_CONTROLLERS = new Set([
  "cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "net_cls", "perf_event",
  "net_prio", "hugetlb", "pids", "rdma", "misc",
]);

/**
 * Named (controller-less) v1 hierarchies we put containers in. Like runc, only name=systemd:
 * systemd and the tools around it find a process's unit through it, so a container's processes
 * must not stay in tsrun's caller's systemd cgroup. Other named hierarchies belong to whoever
 * mounted them and are ignored on purpose.
 */
const NAMED_HIERARCHIES = new Set(["name=systemd"]);

export interface MountinfoCgroup {
  fstype: "cgroup" | "cgroup2";
  mountpoint: string;
  root: string;
  superOptions: string[];
}

/** The cgroup and cgroup2 mounts in /proc/<pid>/mountinfo text, in mount order. */
export function parseMountinfo(text: string): MountinfoCgroup[] {
  return parseAnyMountinfo(text, ["cgroup", "cgroup2"]).map(({ fstype, root, mountpoint, superOptions }) => ({ fstype: fstype as "cgroup" | "cgroup2", root, mountpoint, superOptions }));
}

/**
 * The host's layout from mountinfo text. The first mount of a hierarchy wins (later ones are
 * usually bind mounts of it into containers). Throws when there is no cgroup mount at all.
 */
export function hostFromMountinfo(text: string): CgroupHost {
  const v1: Record<string, V1Hierarchy> = {};
  let unified: Hierarchy | null = null;
  let realControllers = 0;
  for (const m of parseMountinfo(text)) {
    if (m.fstype === "cgroup2") {
      unified ??= { mountpoint: m.mountpoint, root: m.root };
      continue;
    }
    const controllers = m.superOptions.filter((o) => V1_CONTROLLERS.has(o) || NAMED_HIERARCHIES.has(o));
    if (controllers.length === 0 || controllers.some((c) => v1[c] !== undefined)) continue;
    const h: V1Hierarchy = { mountpoint: m.mountpoint, root: m.root, controllers, noprefix: m.superOptions.includes("noprefix") };
    for (const c of controllers) {
      v1[c] = h;
      if (V1_CONTROLLERS.has(c)) realControllers++;
    }
  }
  if (realControllers > 0) return { mode: unified ? "hybrid" : "v1", v1, unified };
  // name=systemd alone beside a cgroup2 tree (a v2 host that mounts it for old containers) does not
  // make the host v1: there is no controller to use in it.
  if (unified) return { mode: "v2", v1: {}, unified };
  throw new CgroupError("detect", "/proc/self/mountinfo", "ENOENT", "no cgroup or cgroup2 mount found; mount cgroup2 on /sys/fs/cgroup (or the v1 controllers under it)");
}

/** A process's cgroups, from /proc/<pid>/cgroup. */
export interface ProcCgroups {
  /** v1 controller (or "name=…") → cgroup path, relative to its hierarchy's root. */
  v1: Record<string, string>;
  /** The "0::" line: the cgroup in the cgroup2 tree; null when there is none. */
  unified: string | null;
}

export function parseProcCgroup(text: string): ProcCgroups {
  const v1: Record<string, string> = {};
  let unified: string | null = null;
  for (const line of text.split("\n")) {
    // "4:memory:/a/b", "1:name=systemd:/", "0::/a"; the path itself may contain colons.
    const a = line.indexOf(":");
    const b = line.indexOf(":", a + 1);
    if (a < 0 || b < 0) continue;
    const controllers = line.slice(a + 1, b);
    const path = line.slice(b + 1);
    if (line.slice(0, a) === "0" && controllers === "") unified = path;
    else for (const c of controllers.split(",")) if (c !== "") v1[c] = path;
  }
  return { v1, unified };
}

let cachedHost: CgroupHost | undefined;

/** This host's cgroup layout, read once per process (mounts do not change under a CLI call). */
export function detect(): CgroupHost {
  cachedHost ??= hostFromMountinfo(readProcFile("/proc/self/mountinfo"));
  return cachedHost;
}

/** tsrun's own cgroups. Not cached: only relative cgroupsPaths and safety checks need it. */
let own: ProcCgroups | undefined;
/** This process's cgroups, read once: a tsrun command does not move itself while it runs. */
export function ownCgroups(): ProcCgroups {
  return (own ??= parseProcCgroup(readProcFile("/proc/self/cgroup")));
}

function readProcFile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw fsError("read", path, err);
  }
}

/**
 * The cgroup.procs file of the cgroup tsrun itself is in, in one mounted hierarchy (undefined
 * when there is none). Writing "0" there moves the writer to where it already is: a no-op that
 * still takes the kernel's global cgroup migration lock. See `warmUpMigration` in container/.
 */
export function ownProcsFile(): string | undefined {
  const host = detect();
  const own = ownCgroups();
  const join = (h: Hierarchy, path: string) => {
    if (!path.startsWith(h.root)) return undefined;
    const rel = path.slice(h.root.length).replace(/^\/+/, "");
    return `${h.mountpoint}${rel ? `/${rel}` : ""}/cgroup.procs`;
  };
  if (host.unified && own.unified !== null) {
    const f = join(host.unified, own.unified);
    if (f) return f;
  }
  for (const [ctrl, h] of Object.entries(host.v1)) {
    const path = own.v1[ctrl];
    if (path !== undefined) {
      const f = join(h, path);
      if (f) return f;
    }
  }
  return undefined;
}
