// What tsrun does differently when it is not root (runc's "rootless"): which cgroups it tries
// (runc's --rootless and its rootless cgroup managers), and the plan's steps that only privilege
// could carry out, done the unprivileged way (as runc's nsexec does them) or refused in runc's words.
import { readFileSync } from "node:fs";
import { CLONE_FLAGS, MS } from "@tsrun/ocispec/core";
import { SYNC, type Op } from "../plan/ops.ts";
import { ContainerError } from "./errors.ts";

/**
 * Whether this process runs in a user namespace other than the initial one, as runc's
 * userns.RunningInUserNS decides it: the initial namespace maps all 2^32 ids onto themselves.
 */
export function runningInUserNS(): boolean {
  let text: string;
  try {
    text = readFileSync("/proc/self/uid_map", "utf8");
  } catch {
    return false;
  }
  return !isInitialUidMap(text);
}

export function isInitialUidMap(text: string): boolean {
  const lines = text.trim().split("\n");
  const f = lines[0]?.trim().split(/\s+/);
  return lines.length === 1 && f?.[0] === "0" && f[1] === "0" && f[2] === "4294967295";
}

export type RootlessFlag = "true" | "false" | "auto";

/**
 * runc's shouldUseRootlessCgroupManager for the cgroupfs driver: `--rootless true|false` is
 * taken as said; `auto` means rootless unless tsrun is root in the initial user namespace (root
 * in a user namespace cannot know whether the cgroups are its own, so it is rootless too).
 */
export function rootlessCgroups(flag: RootlessFlag, host: { euid: number; inUserNS: () => boolean } = { euid: process.geteuid?.() ?? 0, inUserNS: runningInUserNS }): boolean {
  if (flag !== "auto") return flag === "true";
  if (host.euid !== 0) return true;
  return host.inUserNS();
}

let rootlessFlag: RootlessFlag = "auto";

/**
 * The command line's `--rootless`, for create (and run) when their caller does not say: the
 * global flag is parsed before the command, which gets only its own options.
 */
export function setRootlessFlag(flag: RootlessFlag): void {
  rootlessFlag = flag;
}

export function rootlessFlagGiven(): RootlessFlag {
  return rootlessFlag;
}

/**
 * With setgroups denied (an unprivileged tsrun), setgroups(2) fails in the container: the user's
 * switch leaves the groups as the namespace has them, as runc does (setupUser skips setgroups for
 * a rootless euid), and additional groups, which could not be set, are refused in runc's words.
 */
export function withoutSetgroups(ops: Op[]): Op[] {
  return ops.map((op) => {
    if (op.op !== "setUser" || !op.setgroups) return op;
    if (op.groups.length) throw new ContainerError(`/process/user/additionalGids: cannot set any additional groups in a rootless container (tsrun is not root, so setgroups is denied in its user namespace)`);
    return { ...op, setgroups: false };
  });
}

/**
 * Whether setgroups(2) is denied in the user namespace of `pid` (a rootless container's init):
 * a process joining it (exec) must then skip setgroups as the init did, as runc's setupUser
 * reads /proc/self/setgroups for every process it sets up.
 */
export function setgroupsDenied(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/setgroups`, "utf8").trim() === "deny";
  } catch {
    return false;
  }
}

const PR_SET_DUMPABLE = 4;

/**
 * The executor is not dumpable, so its /proc files are root's: an unprivileged tsrun could not
 * open uid_map, setgroups and gid_map to write them. As runc's nsexec does, stage 1 is dumpable
 * only while it waits for the maps (it is still the executor, the caller's own process, and no
 * other namespace has been joined yet), and not dumpable again right after.
 */
export function dumpableForIdMaps(ops: Op[]): Op[] {
  return ops.flatMap((op, i): Op[] => {
    const prev = ops[i - 1];
    if (op.op === "sync" && op.code === SYNC.USERNS && prev?.op === "unshare" && prev.flags & CLONE_FLAGS.user)
      return [{ op: "prctl", option: PR_SET_DUMPABLE, arg: 1n }, op, { op: "prctl", option: PR_SET_DUMPABLE, arg: 0n }];
    return [op];
  });
}

/**
 * An unprivileged tsrun cannot clone a mount tree in its own mount namespace (open_tree with
 * OPEN_TREE_CLONE needs CAP_SYS_ADMIN over it), so the plan's binds of trees cloned before the
 * user namespace become plain binds made in the container's new mount namespace, as runc makes
 * them rootless. That namespace holds a copy of the host's mounts and is owned by the container's
 * user namespace, so binding them is allowed; what the clone bought (tsrun's own credentials for
 * the path walk) is moot here, since the container's root is the caller itself. The attributes
 * follow with mount_setattr, which may only add restrictions to the locked host mounts.
 */
export function bindsWithoutOpenTree(ops: Op[]): Op[] {
  const trees = new Map<number, string>();
  for (const op of ops) if (op.op === "openTree") trees.set(op.fd, op.path);
  if (trees.size === 0) return ops;
  return ops.flatMap((op): Op[] => {
    if (op.op === "openTree") return [];
    if (op.op !== "mountTree") return [op];
    const source = trees.get(op.fd);
    if (source === undefined) return [op];
    const bind: Op = { op: "mount", source, target: op.target, fstype: null, flags: MS.BIND | (op.recursive ? MS.REC : 0), data: null, inRoot: op.inRoot, targetIsFile: op.targetIsFile };
    return op.attrSet ? [bind, { op: "mountSetattr", target: op.target, attrSet: op.attrSet, attrClr: 0, propagation: 0, recursive: op.recursive, inRoot: op.inRoot }] : [bind];
  });
}
