// What tsrun does differently when it is not root (runc's "rootless"): which cgroups it tries
// (runc's --rootless and its rootless cgroup managers), and what a joining process must know of a
// rootless container. The plan's unprivileged steps are the plan compiler's (PlanInput.unprivileged).
import { readFileSync } from "node:fs";

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

