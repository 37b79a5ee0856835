// The image service over this machine's image store (default /var/lib/tsrun): the content store,
// the snapshots, the image records and the containers' rootfs dirs. What the CLI's image
// commands and the gRPC image service both call.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { basename, dirname, join, posix, resolve } from "node:path";
import type { Descriptor, ImageConfig, ImageManifest } from "@tsrun/ocispec";
import { commitImage } from "./commit.ts";
import { contentStore, getImage, listImages, putImage, removeImage, type ImageRecord } from "./images.ts";
import { importImage, type ImportProgress } from "./import.ts";
import { formatReference, parseReference } from "./reference.ts";
import { pull, push, type PullProgress, type PushProgress } from "./registry.ts";
import { formatPlatform, hostPlatform, resolveImage, ImageResolveError, type ResolvedImage } from "./resolve.ts";
import { containerDir, prepareRootfs, readRootfs, unmountRootfs } from "./rootfs.ts";
import { hasSnapshot } from "./snapshots.ts";
import { specFromImage } from "./spec.ts";
import {
  ImageNotFound,
  type BundleRequest,
  type BundleResult,
  type CommitRequest,
  type ImageDetails,
  type ImageService,
  type ImageSummary,
  type PullRequest,
} from "./service.ts";

export interface PushRequest {
  /** The image in this store. */
  ref: string;
  /** Where to push it (default: `ref` itself, which names the registry and repository). */
  dest?: string;
  /** Plain HTTP instead of HTTPS (default only for loopback registries). */
  plainHttp?: boolean;
  credentials?: { username: string; password: string };
}

export interface PushedImage {
  /** The reference pushed to. */
  name: string;
  /** What it names in the registry now (the store's own manifest or index, byte for byte). */
  digest: string;
  mediaType: string;
  uploaded: string[];
  skipped: string[];
}

export const DEFAULT_IMAGE_ROOT = "/var/lib/tsrun";

/**
 * The store's own directories. Snapshots hold image content as root made it (setuid-root files,
 * device nodes), containers/ the containers' upper dirs, bundles/ the bundles of `run --image` (networks/ their network: namespaces, leases, records):
 * a local user who could reach them could run an image's setuid program on the host
 * (CVE-2021-41103), so each is 0700 and nothing under them needs to be reached by anyone but root.
 */
const STORE_DIRS = ["content", "images", "snapshots", "containers", "bundles", "networks"];

/** A directory mode that lets users other than the owner in (any group or other bit). */
const opened = (mode: number) => (mode & 0o077) !== 0;

/**
 * Closes a store made by an older tsrun (whose bundles and rootfs dirs were 0755): its own
 * directories become 0700, and the root too when it holds nothing but the store (a root the
 * user shares with other things keeps its mode; the 0700 dirs below are what protects).
 * One stat per directory, a chmod only the first time.
 */
export function secureStoreDirs(root: string): void {
  const fix = (dir: string): boolean => {
    const st = statSync(dir, { throwIfNoEntry: false });
    if (!st?.isDirectory() || !opened(st.mode)) return false;
    // Not the owner: the owner could open it again anyway, and chmod would fail.
    if (st.uid !== process.geteuid?.()) return false;
    chmodSync(dir, 0o700);
    return true;
  };
  for (const d of STORE_DIRS) fix(join(root, d));
  const st = statSync(root, { throwIfNoEntry: false });
  if (st?.isDirectory() && opened(st.mode) && readdirSync(root).every((n) => STORE_DIRS.includes(n))) fix(root);
}

/**
 * An existing (empty) bundle directory the user named: made private as a new one would be. One
 * that belongs to someone else is refused, since its owner could open it again and reach the
 * image's setuid files through rootfs/.
 */
function secureBundleDir(dir: string): void {
  const st = statSync(dir);
  if (!st.isDirectory()) throw new Error(`bundle directory ${dir} is not a directory`);
  const me = process.geteuid?.() ?? 0;
  if (st.uid !== me)
    throw new Error(
      `bundle directory ${dir} belongs to uid ${st.uid}, not to uid ${me} running tsrun: its owner could open it to every user and run the image's setuid programs; give a new path or a directory of uid ${me}`,
    );
  if ((st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
}

/** containers/<id>/bundle.json: which bundle a rootfs serves and which image manifest it came from. */
interface BundleRecord {
  bundle: string;
  image: string;
  manifest: Descriptor;
}

export class LocalImages implements ImageService {
  constructor(readonly root: string = DEFAULT_IMAGE_ROOT) {
    secureStoreDirs(root);
  }

  /**
   * The record a user's reference names: as written (names recorded by import may be short),
   * else normalized as docker does ("busybox" → "docker.io/library/busybox:latest").
   */
  private find(ref: string): ImageRecord | undefined {
    const exact = getImage(this.root, ref);
    if (exact) return exact;
    try {
      return getImage(this.root, formatReference(parseReference(ref)));
    } catch {
      return undefined;
    }
  }

  private resolve(ref: string): ResolvedImage {
    const rec = this.find(ref);
    if (!rec) throw new ImageNotFound(ref, this.root);
    return resolveImage(this.root, rec.name, { store: contentStore(this.root) });
  }

  private summary(rec: ImageRecord): ImageSummary {
    let size = 0;
    let platform = formatPlatform(hostPlatform());
    try {
      const r = resolveImage(this.root, rec.name, { store: contentStore(this.root) });
      size = r.manifest.config.size + r.manifest.layers.reduce((n, l) => n + l.size, 0);
      if (r.manifestDescriptor.platform) platform = formatPlatform(r.manifestDescriptor.platform);
    } catch (e) {
      if (!(e instanceof ImageResolveError)) throw e;
    }
    return { name: rec.name, digest: rec.target.digest, mediaType: rec.target.mediaType, size, created: rec.created, platform };
  }

  async import(file: string, opts: { name?: string; onProgress?: (e: ImportProgress) => void } = {}): Promise<ImageSummary[]> {
    const imported = await importImage(this.root, resolve(file), {
      ...(opts.name !== undefined ? { name: opts.name } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    return imported.map((i) => this.summary(getImage(this.root, i.name)!));
  }

  async pull(req: PullRequest, opts: { onProgress?: (e: PullProgress) => void } = {}): Promise<ImageSummary> {
    const store = contentStore(this.root);
    const r = await pull(req.ref, {
      store,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(req.platform ? { platform: req.platform } : {}),
      ...(req.plainHttp !== undefined ? { plainHttp: req.plainHttp } : {}),
      ...(req.credentials ? { credentials: req.credentials } : {}),
    });
    return this.summary(putImage(this.root, r.name, r.descriptor));
  }

  /**
   * Pushes the image `req.ref` names in this store to a registry: to `req.dest` when given, else
   * to the registry and repository its own name says.
   */
  async push(req: PushRequest, opts: { onProgress?: (e: PushProgress) => void } = {}): Promise<PushedImage> {
    const rec = this.find(req.ref);
    if (!rec) throw new ImageNotFound(req.ref, this.root);
    const dest = formatReference(parseReference(req.dest ?? rec.name));
    const r = await push(dest, rec.target, {
      store: contentStore(this.root),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(req.plainHttp !== undefined ? { plainHttp: req.plainHttp } : {}),
      ...(req.credentials ? { credentials: req.credentials } : {}),
    });
    return { name: r.name, digest: r.descriptor.digest, mediaType: r.descriptor.mediaType, uploaded: r.uploaded, skipped: r.skipped };
  }

  async list(): Promise<ImageSummary[]> {
    return listImages(this.root).map((r) => this.summary(r));
  }

  async inspect(ref: string): Promise<ImageDetails> {
    const rec = this.find(ref);
    if (!rec) throw new ImageNotFound(ref, this.root);
    const r = this.resolve(rec.name);
    return {
      ...this.summary(rec),
      manifestDigest: r.manifestDescriptor.digest,
      manifest: r.manifest,
      configDigest: r.manifest.config.digest,
      config: r.config,
      layers: r.layers.map((l) => ({
        digest: l.descriptor.digest,
        mediaType: l.descriptor.mediaType,
        size: l.descriptor.size,
        diffId: l.diffId,
        chainId: l.chainId,
        unpacked: hasSnapshot(this.root, l.chainId),
      })),
    };
  }

  async remove(ref: string): Promise<void> {
    const rec = this.find(ref);
    if (!rec || !removeImage(this.root, rec.name)) throw new ImageNotFound(ref, this.root);
  }

  async bundle(req: BundleRequest): Promise<BundleResult> {
    const dir = resolve(req.dir);
    // Unique per bundle directory: a/bundle and b/bundle must not share a rootfs name.
    const id = req.id ?? `${basename(dir)}-${createHash("sha256").update(dir).digest("hex").slice(0, 12)}`;
    const r = this.resolve(req.image);
    // A bundle of this directory removed with rm -rf instead of --remove: its rootfs is freed now.
    const stale = this.findBundle(dir);
    if (stale && !existsSync(join(dir, "config.json"))) this.removeRecord(stale.id, dir);
    if (existsSync(dir) && readdirSync(dir).length > 0)
      throw new Error(`bundle directory ${dir} is not empty: give a new or empty directory, or remove a bundle tsrun made there with \`tsrun bundle --remove ${dir}\``);
    const made = !existsSync(dir);
    // 0700: the rootfs below holds the image's setuid-root programs and, unlike a container's
    // own view, is reachable from the host; containerd's bundle dirs are 0700 for that reason.
    if (made) {
      // The parents hold nothing of the image, so they are made as `mkdir -p` would; those of
      // the store's own bundles/ are the store's and private.
      mkdirSync(dirname(dir), { recursive: true, mode: dirname(dir) === join(this.root, "bundles") ? 0o700 : 0o755 });
      mkdirSync(dir, { mode: 0o700 });
    } else secureBundleDir(dir);
    let mounted = false;
    try {
      const rootfs = await prepareRootfs(this.root, r.name, id, { target: join(dir, "rootfs") });
      mounted = true;
      const record: BundleRecord = { bundle: dir, image: r.name, manifest: r.manifestDescriptor };
      writeFileSync(join(containerDir(this.root, id), "bundle.json"), JSON.stringify(record));
      const config = specFromImage(r.config, {
        rootfsDir: rootfs.target,
        image: r.name,
        id,
        ...(req.args?.length ? { args: req.args } : {}),
        ...(req.entrypoint ? { entrypoint: req.entrypoint } : {}),
        ...(req.env ? { env: req.env } : {}),
        ...(req.user !== undefined ? { user: req.user } : {}),
        ...(req.cwd !== undefined ? { cwd: req.cwd } : {}),
        ...(req.tty !== undefined ? { tty: req.tty } : {}),
        ...(req.hostname !== undefined ? { hostname: req.hostname } : {}),
        ...(req.readonlyRootfs !== undefined ? { readonlyRootfs: req.readonlyRootfs } : {}),
        ...(req.seccomp !== undefined ? { seccomp: req.seccomp } : {}),
      });
      writeFileSync(join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o644 });
      return { dir, rootfs: rootfs.target, config, mode: rootfs.mode };
    } catch (e) {
      if (mounted) unmountRootfs(this.root, id);
      rmSync(join(dir, "config.json"), { force: true });
      rmSync(join(dir, "rootfs"), { recursive: true, force: true });
      if (made) rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Every bundle made by `bundle`, by its record: rootfs id, directory, image. */
  private bundles(): { id: string; record: BundleRecord }[] {
    const containers = join(this.root, "containers");
    const out: { id: string; record: BundleRecord }[] = [];
    for (const id of existsSync(containers) ? readdirSync(containers) : []) {
      try {
        out.push({ id, record: JSON.parse(readFileSync(join(containers, id, "bundle.json"), "utf8")) as BundleRecord });
      } catch {
        // a rootfs without a bundle (or being made)
      }
    }
    return out;
  }

  private findBundle(dir: string): { id: string; record: BundleRecord } | undefined {
    const want = resolve(dir);
    return this.bundles().find((b) => b.record.bundle === want);
  }

  /** The container (rootfs) id of a bundle made by `bundle`, found by its record. */
  private bundleId(dir: string): { id: string; record: BundleRecord } {
    const found = this.findBundle(dir);
    if (!found) throw new Error(`${resolve(dir)} is not a bundle made from an image of ${this.root} (tsrun bundle --image makes one)`);
    return found;
  }

  /**
   * The processes whose root directory is the bundle's rootfs: a running container of it (its
   * init and everything it started, in any mount namespace).
   */
  bundleUsers(dir: string): number[] {
    const { id } = this.bundleId(dir);
    const rootfs = readRootfs(this.root, id)?.target;
    const st = rootfs ? statSync(rootfs, { throwIfNoEntry: false }) : undefined;
    if (!st) return [];
    const users: number[] = [];
    for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
      try {
        const r = statSync(`/proc/${pid}/root`);
        if (r.dev === st.dev && r.ino === st.ino) users.push(Number(pid));
      } catch {
        // gone, or a kernel thread
      }
    }
    return users;
  }

  private removeRecord(id: string, dir: string): void {
    unmountRootfs(this.root, id);
    rmSync(resolve(dir), { recursive: true, force: true });
  }

  async removeBundle(dir: string): Promise<void> {
    const { id } = this.bundleId(dir);
    // Its upper dir is the running container's /: removing it would empty the container's root.
    const users = this.bundleUsers(dir);
    if (users.length)
      throw new Error(
        `bundle ${resolve(dir)} is in use by a running container (pid ${users.join(", ")}): delete the container first (\`tsrun delete --force ID\`), or remove with --force to kill its processes`,
      );
    this.removeRecord(id, dir);
  }

  /** Removes the records and rootfs of bundles whose directory is gone (rm -rf'd). Returns their directories. */
  async pruneBundles(): Promise<string[]> {
    const gone: string[] = [];
    for (const { id, record } of this.bundles()) {
      if (existsSync(join(record.bundle, "config.json"))) continue;
      this.removeRecord(id, record.bundle);
      gone.push(record.bundle);
    }
    return gone;
  }

  async commit(req: CommitRequest): Promise<ImageSummary> {
    const { id, record } = this.bundleId(req.bundle);
    const rootfs = readRootfs(this.root, id);
    if (!rootfs) throw new Error(`bundle ${req.bundle}: its rootfs record is gone`);
    if (rootfs.mode !== "overlay") throw new Error(`bundle ${req.bundle}: its rootfs is a copy (no overlayfs here), so there is no upper dir to commit`);
    const store = contentStore(this.root);
    const baseManifest = store.readJson(record.manifest.digest) as ImageManifest;
    const baseConfig = store.readJson(baseManifest.config.digest) as ImageConfig;
    const ref = formatReference(parseReference(req.ref));
    const result = await commitImage({
      store,
      baseManifest,
      baseConfig,
      upperDir: join(containerDir(this.root, id), "upper"),
      ...(req.author !== undefined ? { author: req.author } : {}),
      ...(req.message !== undefined ? { message: req.message } : {}),
      ...(req.changes ? { changes: req.changes } : {}),
      layer: { mountPoints: mountDestinations(req.bundle) },
    });
    return this.summary(putImage(this.root, ref, result.manifestDescriptor));
  }
}

/**
 * The mount destinations of the bundle's config.json, relative to the root ("etc/hosts"): the
 * empty files and dirs the runtime made there to mount on are not the container's changes.
 */
function mountDestinations(bundle: string): Set<string> {
  const out = new Set<string>();
  let spec: { mounts?: Array<{ destination?: unknown }> };
  try {
    spec = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8")) as typeof spec;
  } catch {
    return out;
  }
  for (const m of spec.mounts ?? []) {
    if (typeof m.destination !== "string") continue;
    const rel = posix.normalize(`/${m.destination}`).replace(/^\/+/, "").replace(/\/+$/, "");
    if (rel !== "" && rel !== ".") out.add(rel);
  }
  return out;
}
