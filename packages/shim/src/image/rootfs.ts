// A container's root file system from an image: an overlay mount with the image's snapshots as
// lower dirs (shared by every container of the image, never written) and the container's own
// upper and work dirs under <root>/containers/<id>/. Where overlayfs cannot be used, a copying
// fallback applies the snapshots in order into one directory, honouring whiteouts and opaque dirs.
//
// The mount is mount(2) through the runtime's bun:ffi binding: no child process, so a second
// container of an unpacked image costs one mkdir and one mount.
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  linkSync,
  writeFileSync,
  constants as C,
  type Stats,
} from "node:fs";
import { join } from "node:path";
import { mount, umount2, SysError, isMountPoint as isMountPointIn } from "@tsrun/runtime/linux";
import { lgetxattr, llistxattr, lsetxattr, mknod, S_IFBLK, S_IFCHR, S_IFIFO } from "./fsys.ts";
import { contentStore } from "./images.ts";
import { resolveImage, type PlatformSpec, type ResolvedImage } from "./resolve.ts";
import { ensureSnapshots, snapshotFsDir, snapshotFsRelative, snapshotsDir } from "./snapshots.ts";

export type RootfsMode = "overlay" | "copy";

export interface RootfsOptions {
  /** "auto" (default): overlay, or copy when the kernel or file system cannot do overlay. */
  mode?: RootfsMode | "auto";
  /** Where to mount (default <root>/containers/<id>/rootfs). */
  target?: string;
}

/** containers/<id>/rootfs.json: what teardown and garbage collection need to know. */
export interface MountedRootfs {
  containerId: string;
  image?: string;
  mode: RootfsMode;
  target: string;
  /** Snapshots used, bottom first (kept alive by garbage collection while this exists). */
  chainIds: string[];
  /** Milliseconds from the call to a usable rootfs. */
  ms: number;
}

const MNT_DETACH = 2;
/** mount(2) copies at most one page of option data; longer overlay options are cut off. */
const MOUNT_DATA_MAX = 4095;
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function containerDir(root: string, id: string): string {
  if (!ID.test(id)) throw new Error(`container id ${JSON.stringify(id)} is not usable as a directory name (letters, digits, _ . -; at most 128)`);
  return join(root, "containers", id);
}

function overlayOptions(lower: string[], upper: string, work: string): string {
  // Commas and colons separate options and lower dirs; escape them as overlayfs expects.
  const esc = (p: string) => p.replace(/\\/g, "\\\\").replace(/:/g, "\\:").replace(/,/g, "\\,");
  return `lowerdir=${lower.map(esc).join(":")},upperdir=${esc(upper)},workdir=${esc(work)}`;
}

/**
 * Mounts overlayfs at `target`, without nosuid or nodev: setuid programs of the image (su, ping,
 * sudo) must work inside the container, as with containerd and Docker. What keeps host users
 * from running them through the mount is that every path to it is a 0700 directory of root's
 * (the bundle dir, containers/<id>, the store's snapshots/; see local.ts).
 *
 * Absolute lower dirs when the options fit in a page; otherwise
 * paths relative to <root>/snapshots, resolved by the kernel against our working directory,
 * which is changed for the duration of the (synchronous) mount call only.
 */
function mountOverlay(root: string, chains: string[], upper: string, work: string, target: string, id: string): void {
  const topFirst = [...chains].reverse();
  const abs = overlayOptions(topFirst.map((c) => snapshotFsDir(root, c)), upper, work);
  if (abs.length <= MOUNT_DATA_MAX) {
    mount("overlay", target, "overlay", 0, abs);
    return;
  }
  const rel = overlayOptions(topFirst.map(snapshotFsRelative), upper, work);
  if (rel.length > MOUNT_DATA_MAX)
    throw new Error(
      `container ${id}: the image has ${chains.length} layers, too many for one overlay mount (the lower dir list needs ${rel.length} bytes of mount options, the kernel takes ${MOUNT_DATA_MAX}); flatten the image (fewer layers)`,
    );
  const cwd = process.cwd();
  process.chdir(snapshotsDir(root));
  try {
    mount("overlay", target, "overlay", 0, rel);
  } finally {
    process.chdir(cwd);
  }
}

/** Whether this kernel knows overlayfs (it may still refuse a given upper fs). */
export function overlaySupported(): boolean {
  try {
    return /\toverlay$/m.test(readFileSync("/proc/filesystems", "utf8"));
  } catch {
    return false;
  }
}

/**
 * Makes the rootfs of container `id` from snapshots `chains` (bottom first, all present).
 * On failure nothing is left: no mount, no container dir.
 */
export function mountRootfs(root: string, id: string, chains: string[], opts: RootfsOptions & { image?: string } = {}): MountedRootfs {
  const started = performance.now();
  const dir = containerDir(root, id);
  const target = opts.target ?? join(dir, "rootfs");
  mkdirSync(join(root, "containers"), { recursive: true, mode: 0o700 });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new Error(`container ${id}: a rootfs already exists at ${dir} (remove it first)`);
    throw e;
  }
  let mounted = false;
  try {
    // The mount point too is private: in copy mode it is the rootfs itself, and unmounted it
    // must not be a way in (the bundle dir above it is 0700 as well).
    mkdirSync(target, { recursive: true, mode: 0o700 });
    let mode: RootfsMode = opts.mode === "copy" ? "copy" : "overlay";
    // The record goes first so that garbage collection keeps the snapshots from here on.
    const record = (m: RootfsMode): MountedRootfs => ({
      containerId: id,
      ...(opts.image !== undefined ? { image: opts.image } : {}),
      mode: m,
      target,
      chainIds: chains,
      ms: 0,
    });
    writeFileSync(join(dir, "rootfs.json"), JSON.stringify(record(mode)));
    if (mode === "overlay") {
      if (opts.mode !== "overlay" && !overlaySupported()) mode = "copy";
      else if (chains.length === 0) mode = "copy"; // nothing to layer: the upper dir alone would do, a plain dir is simpler
      else {
        // The upper dir's mode is the container's / (overlay shows the upper root's); it is
        // reachable only by root through containers/<id> (0700).
        mkdirSync(join(dir, "upper"), { mode: 0o755 });
        mkdirSync(join(dir, "work"), { mode: 0o700 });
        try {
          mountOverlay(root, chains, join(dir, "upper"), join(dir, "work"), target, id);
          mounted = true;
        } catch (e) {
          const code = e instanceof SysError ? e.code : "";
          // ENODEV: no overlayfs; EINVAL/EOPNOTSUPP: the upper fs cannot hold an overlay upper
          // (e.g. overlay on overlay). Anything else is a real error.
          if (opts.mode === "overlay" || !["ENODEV", "EINVAL", "EOPNOTSUPP"].includes(code)) throw e;
          mode = "copy";
          rmSync(join(dir, "upper"), { recursive: true, force: true });
          rmSync(join(dir, "work"), { recursive: true, force: true });
        }
      }
    }
    if (mode === "copy") {
      for (const c of chains) applySnapshot(snapshotFsDir(root, c), target);
    }
    const result = { ...record(mode), ms: Math.round((performance.now() - started) * 100) / 100 };
    writeFileSync(join(dir, "rootfs.json"), JSON.stringify(result));
    return result;
  } catch (e) {
    if (mounted) umount2(target, MNT_DETACH);
    rmSync(dir, { recursive: true, force: true });
    if (opts.target !== undefined) rmSync(target, { recursive: true, force: true });
    throw e;
  }
}

/** The rootfs record of container `id`, if it has one. */
export function readRootfs(root: string, id: string): MountedRootfs | undefined {
  try {
    return JSON.parse(readFileSync(join(containerDir(root, id), "rootfs.json"), "utf8")) as MountedRootfs;
  } catch {
    return undefined;
  }
}

/** Unmounts (overlay) and removes the container's upper, work and rootfs dirs. Idempotent. */
export function unmountRootfs(root: string, id: string): void {
  const dir = containerDir(root, id);
  const rec = readRootfs(root, id);
  if (rec?.mode === "overlay" && isMountPoint(rec.target)) {
    try {
      umount2(rec.target);
    } catch (e) {
      // Busy (a process still has it open): detach now, the kernel frees it when released.
      if (!(e instanceof SysError && e.code === "EBUSY")) throw e;
      umount2(rec.target, MNT_DETACH);
    }
  }
  if (rec && rec.target !== join(dir, "rootfs") && existsSync(rec.target)) {
    if (isMountPoint(rec.target)) throw new Error(`container ${id}: ${rec.target} is still a mount point; not removing it`);
    rmSync(rec.target, { recursive: true, force: true });
  }
  if (existsSync(join(dir, "rootfs")) && isMountPoint(join(dir, "rootfs"))) throw new Error(`container ${id}: ${join(dir, "rootfs")} is still a mount point; not removing it`);
  rmSync(dir, { recursive: true, force: true });
}

function isMountPoint(path: string): boolean {
  try {
    return isMountPointIn(path);
  } catch {
    return false;
  }
}

/**
 * Resolves `image`, unpacks what is missing, and mounts the rootfs of container `id`.
 * The rootfs path is `result.target`.
 */
export async function prepareRootfs(
  root: string,
  image: string,
  id: string,
  opts: RootfsOptions & { platform?: PlatformSpec } = {},
): Promise<MountedRootfs & { resolved: ResolvedImage; unpacked: number }> {
  const store = contentStore(root);
  const resolved = resolveImage(root, image, { store, ...(opts.platform ? { platform: opts.platform } : {}) });
  const { unpacked } = await ensureSnapshots(root, store, resolved.layers, { image });
  const mounted = mountRootfs(root, id, resolved.layers.map((l) => l.chainId), { ...opts, image });
  return { ...mounted, resolved, unpacked };
}

// ---- copying fallback ----

const isWhiteout = (st: { mode: number; rdev: number }) => (st.mode & C.S_IFMT) === C.S_IFCHR && st.rdev === 0;

/**
 * Applies one overlay-form snapshot onto `dest` as overlayfs would show it: a 0:0 char device
 * deletes the name below, an opaque dir hides everything below it, anything else replaces.
 * Hard links inside the snapshot stay hard links. Symlinks are copied, never followed: `dest`
 * paths are built from snapshot names, whose parents are real directories in `dest` by
 * construction (a non-directory in the way is replaced first).
 */
export function applySnapshot(src: string, dest: string): void {
  const links = new Map<string, string>();
  copyMeta(src, dest, lstatSync(src));
  walk(src, dest, links);
}

function walk(srcDir: string, destDir: string, links: Map<string, string>): void {
  for (const name of readdirSync(srcDir)) {
    const s = join(srcDir, name);
    const d = join(destDir, name);
    const st: Stats = lstatSync(s);
    const existing = lstatSync(d, { throwIfNoEntry: false });
    if (isWhiteout(st)) {
      if (existing) rmSync(d, { recursive: true, force: true });
      continue;
    }
    if (st.isDirectory()) {
      const opaque = lgetxattr(s, "trusted.overlay.opaque")?.toString() === "y";
      if (existing && (!existing.isDirectory() || opaque)) rmSync(d, { recursive: true, force: true });
      if (!existing || !existing.isDirectory() || opaque) mkdirSync(d, { mode: 0o700 });
      walk(s, d, links);
      copyMeta(s, d, st);
      continue;
    }
    if (existing) rmSync(d, { recursive: true, force: true });
    const key = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1 ? links.get(key) : undefined;
    if (first !== undefined) {
      linkSync(first, d);
      continue;
    }
    if (st.isFile()) copyFileSync(s, d);
    else if (st.isSymbolicLink()) symlinkSync(readlinkSync(s), d);
    else if (st.isFIFO()) mknod(d, S_IFIFO | (st.mode & 0o7777));
    else if (st.isCharacterDevice() || st.isBlockDevice())
      mknod(d, (st.isBlockDevice() ? S_IFBLK : S_IFCHR) | (st.mode & 0o7777), Math.floor(st.rdev / 256) & 0xfff, (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00));
    else continue; // sockets are not content
    if (st.nlink > 1) links.set(key, d);
    copyMeta(s, d, st);
  }
}

function copyMeta(s: string, d: string, st: Stats): void {
  for (const name of llistxattr(s)) {
    if (name.startsWith("trusted.overlay.")) continue;
    const v = lgetxattr(s, name);
    if (v !== undefined) lsetxattr(d, name, v);
  }
  if (st.isSymbolicLink()) lchownSync(d, st.uid, st.gid);
  else {
    chownSync(d, st.uid, st.gid);
    chmodSync(d, st.mode & 0o7777); // after chown, which clears set-id bits
  }
  lutimesSync(d, st.atime, st.mtime);
}
