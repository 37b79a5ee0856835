// /proc/<pid>/mountinfo, parsed once for everyone who asks about mounts: the cgroup detection,
// create (the mount a rootfs is on, --no-pivot's host proc and sysfs), the image path's and the
// shim's rootfs code. Pure but for readMountinfo.
import { readFileSync } from "node:fs";

export interface MountinfoEntry {
  /** The mount's root within its file system ("/" for a whole one; a bind mount's subpath). */
  root: string;
  mountpoint: string;
  fstype: string;
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeOctal(s: string): string {
  return s.includes("\\") ? s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) : s;
}

/**
 * The mounts in mountinfo text, in mount order. With `fstypes`, only those; lines of other types
 * are skipped before they are split (a big host has thousands of mounts).
 */
export function parseMountinfo(text: string, fstypes?: readonly string[]): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split("\n")) {
    if (fstypes && !fstypes.some((t) => line.includes(` - ${t} `))) continue;
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(" ");
    const post = line.slice(sep + 3).split(" ");
    const root = pre[3];
    const mountpoint = pre[4];
    if (root === undefined || mountpoint === undefined || post[0] === undefined) continue;
    out.push({ root: unescapeOctal(root), mountpoint: unescapeOctal(mountpoint), fstype: post[0], superOptions: (post[2] ?? "").split(",") });
  }
  return out;
}

/** This process's mounts. */
export function readMountinfo(fstypes?: readonly string[]): MountinfoEntry[] {
  return parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"), fstypes);
}

/** Whether `path` (absolute, normalised) is a mount point in this process's mount namespace. */
export function isMountPoint(path: string): boolean {
  return readMountinfo().some((m) => m.mountpoint === path);
}
