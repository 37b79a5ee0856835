// Image records: a name and the descriptor it points at (an index or a manifest in the content
// store), one JSON file per name under <root>/images/, each replaced atomically (tmp + rename) so
// a reader sees the old record or the new one. File names are the sha256 of the image name:
// names hold "/" and ":" and can be longer than a file name may be.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mediaTypes, type Descriptor, type ImageIndex, type ImageManifest } from "@tsrun/ocispec";
import { chainIds } from "./chainid.ts";
import { listSnapshots, removeSnapshot, removeStaleTemps } from "./snapshots.ts";
import { ContentStore, sha256Digest } from "./store.ts";

export interface ImageRecord {
  name: string;
  /** The top-level descriptor: an image index or an image manifest. */
  target: Descriptor;
  /** When the name was first given to an image (RFC 3339). */
  created: string;
  /** When the record last changed. */
  updated: string;
}

export function contentStore(root: string): ContentStore {
  return new ContentStore(join(root, "content"));
}

function imagesDir(root: string): string {
  return join(root, "images");
}

function recordPath(root: string, name: string): string {
  return join(imagesDir(root), `${sha256Digest(name).slice("sha256:".length)}.json`);
}

export function getImage(root: string, name: string): ImageRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(recordPath(root, name), "utf8")) as ImageRecord;
    return r.name === name ? r : undefined;
  } catch {
    return undefined;
  }
}

/** Every image record, sorted by name. */
export function listImages(root: string): ImageRecord[] {
  const dir = imagesDir(root);
  if (!existsSync(dir)) return [];
  const out: ImageRecord[] = [];
  for (const f of readdirSync(dir)) {
    if (!f.endsWith(".json")) continue;
    try {
      out.push(JSON.parse(readFileSync(join(dir, f), "utf8")) as ImageRecord);
    } catch {
      // A record being replaced right now: the rename makes the new one visible whole.
    }
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Points `name` at `target` (keeping the first creation time when the name existed). */
export function putImage(root: string, name: string, target: Descriptor): ImageRecord {
  if (name === "") throw new Error("an image name cannot be empty");
  mkdirSync(imagesDir(root), { recursive: true, mode: 0o700 });
  const now = new Date().toISOString();
  const old = getImage(root, name);
  const record: ImageRecord = { name, target, created: old?.created ?? now, updated: now };
  const path = recordPath(root, name);
  const tmp = `${path}.${process.pid}.${crypto.randomUUID()}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
  return record;
}

/**
 * Removes the name. With `gc` (default) also deletes the blobs and snapshots no other image
 * or container still uses. Returns false when no such image existed.
 */
export function removeImage(root: string, name: string, opts: { gc?: boolean } = {}): boolean {
  const path = recordPath(root, name);
  if (getImage(root, name) === undefined) return false;
  rmSync(path, { force: true });
  if (opts.gc !== false) collectGarbage(root);
  return true;
}

/** Every blob reachable from `target` that is present in the store (missing ones are skipped). */
export function reachableBlobs(store: ContentStore, target: Descriptor, into = new Set<string>(), configs: string[] = []): Set<string> {
  if (into.has(target.digest) || !store.has(target.digest)) return into;
  into.add(target.digest);
  const mt = target.mediaType;
  if (mt === mediaTypes.imageIndex || mt === mediaTypes.dockerManifestList) {
    const index = store.readJson(target.digest) as ImageIndex;
    for (const m of Array.isArray(index.manifests) ? index.manifests : []) reachableBlobs(store, m, into, configs);
  } else if (mt === mediaTypes.imageManifest || mt === mediaTypes.dockerManifest) {
    const manifest = store.readJson(target.digest) as ImageManifest;
    if (manifest.config?.digest && store.has(manifest.config.digest)) {
      into.add(manifest.config.digest);
      configs.push(manifest.config.digest);
    }
    for (const l of Array.isArray(manifest.layers) ? manifest.layers : []) if (store.has(l.digest)) into.add(l.digest);
  }
  return into;
}

/** Chain ids recorded by containers' rootfs (they keep their lower dirs alive). */
function chainIdsInUse(root: string): Set<string> {
  const used = new Set<string>();
  const dir = join(root, "containers");
  if (!existsSync(dir)) return used;
  for (const id of readdirSync(dir)) {
    try {
      const r = JSON.parse(readFileSync(join(dir, id, "rootfs.json"), "utf8")) as { chainIds?: string[] };
      for (const c of r.chainIds ?? []) used.add(c);
    } catch {
      // No record: not a rootfs made by rootfs.ts (or one being set up), nothing to keep.
    }
  }
  return used;
}

/**
 * Mark and sweep: deletes blobs not reachable from any image record, and snapshots no image
 * config and no container refers to. Returns what was removed.
 */
export function collectGarbage(root: string): { blobs: string[]; snapshots: string[] } {
  const store = contentStore(root);
  const keep = new Set<string>();
  const configs: string[] = [];
  for (const img of listImages(root)) reachableBlobs(store, img.target, keep, configs);
  const keepChains = chainIdsInUse(root);
  for (const c of configs) {
    try {
      const cfg = store.readJson(c) as { rootfs?: { diff_ids?: string[] } };
      for (const id of chainIds(cfg.rootfs?.diff_ids ?? [])) keepChains.add(id);
    } catch {
      // A config that is not an image config (an artifact) has no layers to keep.
    }
  }
  const blobs = store.list().filter((d) => !keep.has(d));
  for (const d of blobs) store.delete(d);
  const snapshots = listSnapshots(root)
    .map((s) => s.chainId)
    .filter((c) => !keepChains.has(c));
  for (const c of snapshots) removeSnapshot(root, c);
  removeStaleTemps(root);
  return { blobs, snapshots };
}
