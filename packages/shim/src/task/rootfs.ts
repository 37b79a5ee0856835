// The task's root filesystem: containerd hands the snapshotter's mounts to Create (one overlay
// mount, or a read-only bind for a single-layer image), and the shim mounts them on
// <bundle>/rootfs before the runtime runs, and takes them down in Delete. The option handling
// follows containerd's mount package: flag words become MS_* flags, propagation takes a second
// mount(2), a read-only bind needs a remount, and everything else is filesystem data.
import { lstatSync, mkdirSync, readFileSync } from "node:fs";
import { join, normalize, relative, sep } from "node:path";
import { MS } from "@tsrun/ocispec/core";
import { isBind, parseMountOptions } from "@tsrun/runtime";
import { mount, SysError, umount2, MNT_DETACH, parseMountinfo } from "@tsrun/runtime/linux";
import type { Mount } from "./proto.ts";

/** mount(2) copies at most a page of data; containerd shortens long overlay lowerdirs by chdir, which a multithreaded shim cannot do safely. */
const MAX_DATA = 4095;

export interface MountCall {
  source: string | null;
  target: string;
  fstype: string | null;
  flags: number;
  data: string | null;
}

export class RootfsError extends Error {
  override name = "RootfsError";
}

/** The mount(2) calls for one containerd mount (pure). */
export function planMount(m: Mount, rootfs: string): MountCall[] {
  const target = mountTarget(rootfs, m.target);
  const options = m.options ?? [];
  for (const o of options) {
    if (o === "loop" || o.startsWith("uidmap=") || o.startsWith("gidmap=")) throw new RootfsError(`rootfs mount ${m.type} ${m.source}: option ${JSON.stringify(o)} is not supported by containerd-shim-tsrun-v2`);
  }
  const parsed = parseMountOptions(options);
  if (parsed.attrSet || parsed.attrClr || parsed.extensions.length) throw new RootfsError(`rootfs mount ${m.type} ${m.source}: recursive and extension options (${options.join(",")}) are not supported here`);
  const data = parsed.data.join(",");
  if (data.length > MAX_DATA) throw new RootfsError(`rootfs mount ${m.type} ${m.source}: its options are ${data.length} bytes, more than mount(2) takes (${MAX_DATA}); an image with fewer layers avoids this`);
  let flags = parsed.flags;
  const bind = isBind(m.type, parsed);
  if (bind) flags |= MS.BIND;
  const calls: MountCall[] = [];
  // A remount that changes no data needs no first call (containerd's rule, moby#34077).
  if (!(flags & MS.REMOUNT) || data) calls.push({ source: m.source, target, fstype: bind ? null : m.type, flags, data: data || null });
  for (const p of parsed.propagation) calls.push({ source: null, target, fstype: null, flags: p, data: null });
  // MS_RDONLY is ignored when a bind mount is made; it takes a remount of the bind.
  if (bind && flags & MS.RDONLY) calls.push({ source: null, target, fstype: null, flags: flags | MS.REMOUNT, data: null });
  return calls;
}

/** Where a mount goes: its target inside the rootfs ("../" cannot climb out: it stops at the rootfs, as in a chroot). */
export function mountTarget(rootfs: string, target: string | undefined): string {
  if (!target) return rootfs;
  return join(rootfs, normalize(`/${target}`));
}

/**
 * A target below the rootfs must not pass through a symlink: the image controls those, and a
 * link to /etc would put the mount on the host's /etc.
 */
function checkNoSymlinks(rootfs: string, target: string): void {
  let path = rootfs;
  for (const part of relative(rootfs, target).split(sep).filter(Boolean)) {
    path = join(path, part);
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return; // Missing: mkdir makes real directories from here on.
    }
    if (st.isSymbolicLink()) throw new RootfsError(`rootfs mount target ${target} goes through the symlink ${path}, which is not followed`);
  }
}

/** Mounts them in order; if one fails, those already made are unmounted before the error is thrown. */
export function mountRootfs(rootfs: string, mounts: readonly Mount[]): void {
  const plans = mounts.map((m) => planMount(m, rootfs));
  try {
    for (const calls of plans) {
      for (const c of calls) {
        checkNoSymlinks(rootfs, c.target);
        mkdirSync(c.target, { recursive: true, mode: 0o711 });
        mount(c.source, c.target, c.fstype, c.flags, c.data);
      }
    }
  } catch (err) {
    unmountRootfs(rootfs);
    if (err instanceof SysError) throw new RootfsError(`mounting the rootfs: ${err.message}`);
    throw err;
  }
}

/** Unmounts everything at or below `rootfs`, deepest first (containerd unmounts the same way on bundle removal). */
export function unmountRootfs(rootfs: string): void {
  const prefix = rootfs.endsWith("/") ? rootfs : `${rootfs}/`;
  const points = mountPoints().filter((p) => p === rootfs || p.startsWith(prefix));
  // Stacked mounts on one point are listed once each; unmount as often as they appear.
  points.sort((a, b) => b.length - a.length);
  for (const p of points) {
    try {
      umount2(p, 0);
    } catch (err) {
      if (err instanceof SysError && err.code === "EINVAL") continue;
      if (err instanceof SysError && err.code === "EBUSY") {
        // A process still holds it (a container's leftover): detach now, the kernel frees it later.
        umount2(p, MNT_DETACH);
        continue;
      }
      throw err;
    }
  }
}

/** Mount points of this mount namespace, with mountinfo's octal escapes decoded. */
export function mountPoints(info = readFileSync("/proc/self/mountinfo", "utf8")): string[] {
  return parseMountinfo(info).map((m) => m.mountpoint);
}
