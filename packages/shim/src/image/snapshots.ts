// Snapshots: each layer unpacked once, into <root>/snapshots/<alg>/<hex>/fs, named by the chain id
// of the stack it tops. Every snapshot dir is only ever one overlayfs lower dir, so a layer is
// unpacked without its lower layers, and images sharing a base share its snapshots.
//
// Visibility is all-or-nothing: a layer is unpacked into snapshots/tmp/<random>/ (fs + meta.json)
// and renamed into place when complete. Two processes unpacking the same layer both do the work;
// the first rename wins, the loser finds the name taken (ENOTEMPTY/EEXIST) and discards its copy.
// Removal renames out of place before deleting, so a half-deleted snapshot is never visible either.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseDigest, type Descriptor } from "@tsrun/ocispec";
import type { ContentStore } from "./store.ts";
import { unpackLayer } from "./unpack.ts";

/** What is needed to make one snapshot. */
export interface SnapshotLayer {
  /** Position in the manifest, 0 = base. */
  index: number;
  descriptor: Descriptor;
  diffId: string;
  chainId: string;
  /** Chain id of the snapshot below, absent for the base layer. */
  parent?: string;
}

/** The meta.json of a snapshot. */
export interface SnapshotInfo {
  chainId: string;
  diffId: string;
  parent?: string;
  /** Digest of the layer blob it was unpacked from (one of possibly several encodings). */
  layer: string;
  /** Uncompressed tar size. */
  size: number;
  entries: number;
  created: string;
  /** Milliseconds the unpack took. */
  unpackMs: number;
}

export interface EnsureSnapshotOptions {
  /** Image name, for error messages. */
  image?: string;
  /** Unpack missing layers concurrently (default true): decompression runs off the main thread. */
  parallel?: boolean;
}

export function snapshotsDir(root: string): string {
  return join(root, "snapshots");
}

/** <root>/snapshots/<alg>/<hex>: the snapshot's own directory (fs/ and meta.json). */
export function snapshotDir(root: string, chainId: string): string {
  const d = parseDigest(chainId);
  return join(snapshotsDir(root), d.algorithm, d.encoded);
}

/** The directory that is the layer's content (an overlayfs lower dir). */
export function snapshotFsDir(root: string, chainId: string): string {
  return join(snapshotDir(root, chainId), "fs");
}

/** The fs dir relative to <root>/snapshots (keeps overlay mount options short). */
export function snapshotFsRelative(chainId: string): string {
  const d = parseDigest(chainId);
  return `${d.algorithm}/${d.encoded}/fs`;
}

export function hasSnapshot(root: string, chainId: string): boolean {
  return existsSync(join(snapshotDir(root, chainId), "meta.json"));
}

export function readSnapshot(root: string, chainId: string): SnapshotInfo | undefined {
  try {
    return JSON.parse(readFileSync(join(snapshotDir(root, chainId), "meta.json"), "utf8")) as SnapshotInfo;
  } catch {
    return undefined;
  }
}

function tempDir(root: string): string {
  const base = join(snapshotsDir(root), "tmp");
  mkdirSync(base, { recursive: true, mode: 0o700 });
  const dir = join(base, `${process.pid}-${crypto.randomUUID()}`);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

/**
 * Makes the snapshot of `layer` unless it exists. Returns its fs dir and whether this call made it.
 * On failure nothing becomes visible and the temporary copy is gone.
 */
export async function ensureSnapshot(
  root: string,
  store: ContentStore,
  layer: SnapshotLayer,
  opts: EnsureSnapshotOptions = {},
): Promise<{ fsDir: string; created: boolean }> {
  const final = snapshotDir(root, layer.chainId);
  const fsDir = join(final, "fs");
  if (hasSnapshot(root, layer.chainId)) return { fsDir, created: false };
  const tmp = tempDir(root);
  try {
    mkdirSync(join(tmp, "fs"), { mode: 0o755 });
    const started = performance.now();
    const r = await unpackLayer(store, layer.descriptor, layer.diffId, join(tmp, "fs"), {
      index: layer.index,
      ...(opts.image !== undefined ? { image: opts.image } : {}),
    });
    const info: SnapshotInfo = {
      chainId: layer.chainId,
      diffId: layer.diffId,
      ...(layer.parent !== undefined ? { parent: layer.parent } : {}),
      layer: layer.descriptor.digest,
      size: r.size,
      entries: r.entries,
      created: new Date().toISOString(),
      unpackMs: Math.round(performance.now() - started),
    };
    writeFileSync(join(tmp, "meta.json"), `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
    mkdirSync(join(final, ".."), { recursive: true, mode: 0o700 });
    try {
      renameSync(tmp, final);
      return { fsDir, created: true };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another unpacker won the race; its copy is as good as ours.
      if ((code === "ENOTEMPTY" || code === "EEXIST") && hasSnapshot(root, layer.chainId)) return { fsDir, created: false };
      throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Makes every snapshot of an image's layers (bottom first). Returns the fs dirs, bottom first,
 * and how many were unpacked by this call.
 */
export async function ensureSnapshots(
  root: string,
  store: ContentStore,
  layers: readonly SnapshotLayer[],
  opts: EnsureSnapshotOptions = {},
): Promise<{ fsDirs: string[]; unpacked: number }> {
  let results: Array<{ fsDir: string; created: boolean }>;
  if (opts.parallel === false) {
    results = [];
    for (const l of layers) results.push(await ensureSnapshot(root, store, l, opts));
  } else {
    // Every layer unpacks into its own directory, so their order does not matter; wait for all
    // of them before reporting the first error so no unpack is left running behind the caller.
    const settled = await Promise.allSettled(layers.map((l) => ensureSnapshot(root, store, l, opts)));
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    results = settled.map((s) => (s as PromiseFulfilledResult<{ fsDir: string; created: boolean }>).value);
  }
  return { fsDirs: results.map((r) => r.fsDir), unpacked: results.filter((r) => r.created).length };
}

/** Every complete snapshot. */
export function listSnapshots(root: string): SnapshotInfo[] {
  const out: SnapshotInfo[] = [];
  const base = snapshotsDir(root);
  if (!existsSync(base)) return out;
  for (const alg of readdirSync(base)) {
    if (alg === "tmp") continue;
    for (const hex of readdirSync(join(base, alg))) {
      const info = readSnapshot(root, `${alg}:${hex}`);
      if (info) out.push(info);
    }
  }
  return out;
}

/** Removes a snapshot (the caller makes sure nothing mounts it). */
export function removeSnapshot(root: string, chainId: string): void {
  const dir = snapshotDir(root, chainId);
  if (!existsSync(dir)) return;
  const tmp = tempDir(root);
  rmSync(tmp, { recursive: true, force: true });
  renameSync(dir, tmp);
  rmSync(tmp, { recursive: true, force: true });
}

/**
 * Removes temporary unpack dirs older than `maxAgeMs` (left by a crash or kill mid-unpack).
 * Young ones may belong to an unpack still running in another process.
 */
export function removeStaleTemps(root: string, maxAgeMs = 3_600_000): string[] {
  const base = join(snapshotsDir(root), "tmp");
  if (!existsSync(base)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(base)) {
    const p = join(base, name);
    try {
      if (Date.now() - statSync(p).mtimeMs < maxAgeMs) continue;
    } catch {
      continue;
    }
    rmSync(p, { recursive: true, force: true });
    removed.push(p);
  }
  return removed;
}
