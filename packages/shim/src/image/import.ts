// Import of local image archives into the store: OCI image layouts (a directory, or a tar of
// one) and docker-archive tars (`docker save`, `skopeo copy ... docker-archive:`). Every blob
// goes through the content store's verification; every document is validated; an image record
// is written only when everything its platform needs is present and valid, so a failed import
// leaves at most verified, unreferenced blobs (collected by collectGarbage), never a broken image.
//
// Docker archives are converted on the way in: the config file is stored as it is (its sha256
// is Docker's image id), each layer as found (compression detected from its first bytes), and a
// new OCI manifest is written that ties them together.
import { closeSync, createReadStream, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { join, posix } from "node:path";
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import {
  formatProblem,
  mediaTypes,
  parseDigest,
  validateImageDocument,
  type Descriptor,
  type ImageConfig,
  type ImageDocumentTypes,
  type ImageIndex,
  type ImageManifest,
} from "@tsrun/ocispec";
import * as tar from "tar-stream";
import { contentStore, putImage } from "./images.ts";
import { hostPlatform, ImageResolveError, resolveManifest, selectManifest, type PlatformSpec } from "./resolve.ts";
import type { ContentStore } from "./store.ts";

export interface ImportOptions {
  /** Name for the image, instead of the archive's own (only for archives holding one image). */
  name?: string;
  /** The platform that must be complete in the archive (default: this host's). */
  platform?: PlatformSpec;
  /** Told as each blob's bytes are copied into the store. */
  onProgress?: (event: ImportProgress) => void;
}

/** One blob being copied from the archive into the store. */
export interface ImportProgress {
  type: "blob";
  /** The file of the archive it comes from (blobs/sha256/…, or a docker-archive's layer.tar). */
  what: string;
  completed: number;
  total: number;
  state: "start" | "data" | "done";
}

type ImportProgressFn = (event: ImportProgress) => void;

/** Passes `source` through, telling `progress` how many bytes went by. */
async function* counted(source: AsyncIterable<Uint8Array>, what: string, total: number, progress: ImportProgressFn | undefined): AsyncIterable<Uint8Array> {
  if (!progress) {
    yield* source;
    return;
  }
  let completed = 0;
  progress({ type: "blob", what, completed, total, state: "start" });
  for await (const c of source) {
    completed += c.length;
    progress({ type: "blob", what, completed, total, state: "data" });
    yield c;
  }
  progress({ type: "blob", what, completed, total, state: "done" });
}

export interface ImportedImage {
  name: string;
  /** What the record points at: the layout's index entry, or the manifest made for a docker image. */
  target: Descriptor;
  /** The manifest chosen for the platform. */
  manifest: Descriptor;
  format: "oci-layout" | "docker-archive";
}

export class ImportError extends Error {
  override name = "ImportError";
}

/** JSON and other metadata files are read into memory up to this size; anything bigger is a blob. */
const SMALL_MAX = 8 << 20;
const BLOB_PATH = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/;

/** Where the files of an archive are: read from a directory, or collected from one pass over a tar. */
interface Archive {
  /** Small files (metadata) by path. */
  small(path: string): Buffer | undefined;
  /** Makes the blob `desc` present in the store; false when the archive does not hold it. */
  ensure(desc: { digest: string; size?: number }, what: string): Promise<boolean>;
  /** The stored blob a path of the archive holds (docker-archive layer and config paths). */
  blobAt(path: string, what: string): Promise<{ digest: string; size: number } | undefined>;
}

function clean(path: string): string {
  const p = posix.normalize(`/${path}`).slice(1);
  return p.endsWith("/") ? p.slice(0, -1) : p;
}

class DirArchive implements Archive {
  constructor(
    readonly dir: string,
    readonly store: ContentStore,
    private readonly progress?: ImportProgressFn,
  ) {}

  private read(p: string, rel: string): AsyncIterable<Uint8Array> {
    return counted(createReadStream(p, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>, rel, statSync(p).size, this.progress);
  }

  private file(path: string): string | undefined {
    // Paths come from the archive's own documents: keep them inside it.
    const rel = clean(path);
    if (rel === "" || rel.startsWith("..")) return undefined;
    const p = join(this.dir, rel);
    return existsSync(p) && statSync(p).isFile() ? p : undefined;
  }

  small(path: string): Buffer | undefined {
    const p = this.file(path);
    if (p === undefined || statSync(p).size > SMALL_MAX) return undefined;
    return readFileSync(p);
  }

  async ensure(desc: { digest: string; size?: number }, what: string): Promise<boolean> {
    if (this.store.has(desc.digest)) return checkSize(this.store, desc, what);
    const d = parseDigest(desc.digest);
    const p = this.file(`blobs/${d.algorithm}/${d.encoded}`);
    if (p === undefined) return false;
    await this.store.ingest(desc, this.read(p, `blobs/${d.algorithm}/${d.encoded}`), { what });
    return true;
  }

  async blobAt(path: string, what: string): Promise<{ digest: string; size: number } | undefined> {
    const p = this.file(path);
    if (p === undefined) return undefined;
    const m = BLOB_PATH.exec(clean(path));
    if (m) {
      const desc = { digest: `${m[1]}:${m[2]}`, size: statSync(p).size };
      await this.ensure(desc, what);
      return desc;
    }
    return this.store.putStream(this.read(p, clean(path)), { what });
  }
}

function checkSize(store: ContentStore, desc: { digest: string; size?: number }, what: string): true {
  const have = store.size(desc.digest);
  if (desc.size !== undefined && have !== desc.size) throw new ImportError(`${what}: blob ${desc.digest} is ${have} bytes, its descriptor says ${desc.size}`);
  return true;
}

/**
 * One pass over the tar: blobs/<alg>/<hex> files are ingested under their names (verified), other
 * big files (docker layer.tar) are stored under the digest computed while storing, small files
 * kept in memory. Symlinks and hard links (docker save links duplicate layers) are remembered.
 */
class TarArchive implements Archive {
  private readonly smalls = new Map<string, Buffer>();
  private readonly stored = new Map<string, { digest: string; size: number }>();
  private readonly links = new Map<string, string>();

  constructor(
    readonly file: string,
    readonly store: ContentStore,
    private readonly progress?: ImportProgressFn,
  ) {}

  async scan(): Promise<void> {
    const extract = tar.extract();
    const head = Buffer.alloc(2);
    const fd = openSync(this.file, "r");
    try {
      readSync(fd, head, 0, 2, 0);
    } finally {
      closeSync(fd);
    }
    let src: Readable = createReadStream(this.file, { highWaterMark: 1 << 20 });
    if (head[0] === 0x1f && head[1] === 0x8b) src = src.pipe(createGunzip());
    src.on("error", (e) => extract.destroy(e));
    src.pipe(extract);
    for await (const entry of extract) {
      const h = entry.header;
      const name = clean(h.name);
      const what = `${this.file}: ${name}`;
      if (h.type === "symlink" || h.type === "link") {
        const target = h.type === "symlink" ? clean(posix.join(posix.dirname(name), h.linkname ?? "")) : clean(h.linkname ?? "");
        this.links.set(name, target);
        entry.resume();
        continue;
      }
      if (h.type !== "file" && h.type !== "contiguous-file") {
        entry.resume();
        continue;
      }
      const size = h.size ?? 0;
      const m = BLOB_PATH.exec(name);
      if (m && (m[1] === "sha256" || m[1] === "sha512")) {
        const desc = { digest: `${m[1]}:${m[2]}`, size };
        if (this.store.has(desc.digest)) entry.resume();
        else await this.store.ingest(desc, counted(entry as AsyncIterable<Uint8Array>, name, size, this.progress), { what });
        this.stored.set(name, desc);
      } else if (size <= SMALL_MAX && !name.endsWith(".tar")) {
        const parts: Buffer[] = [];
        for await (const c of entry) parts.push(c as Buffer);
        this.smalls.set(name, Buffer.concat(parts));
      } else {
        this.stored.set(name, await this.store.putStream(counted(entry as AsyncIterable<Uint8Array>, name, size, this.progress), { what }));
      }
    }
  }

  private follow(path: string): string {
    let p = clean(path);
    for (let i = 0; i < 16 && this.links.has(p); i++) p = this.links.get(p)!;
    return p;
  }

  small(path: string): Buffer | undefined {
    return this.smalls.get(this.follow(path));
  }

  async ensure(desc: { digest: string; size?: number }, what: string): Promise<boolean> {
    return this.store.has(desc.digest) ? checkSize(this.store, desc, what) : false;
  }

  async blobAt(path: string, what: string): Promise<{ digest: string; size: number } | undefined> {
    const p = this.follow(path);
    const s = this.stored.get(p);
    if (s) return s;
    const bytes = this.smalls.get(p);
    if (bytes) return this.store.put(bytes).catch((e) => Promise.reject(new ImportError(`${what}: ${e instanceof Error ? e.message : e}`)));
    return undefined;
  }
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch (e) {
    throw new ImportError(`${what} is not JSON: ${e instanceof Error ? e.message : e}`);
  }
}

function validated<K extends keyof ImageDocumentTypes>(kind: K, value: unknown, what: string): ImageDocumentTypes[K] {
  const v = validateImageDocument(kind, value);
  if (!v.ok) throw new ImportError(`${what} is not a valid ${kind}:\n  ${v.problems.map(formatProblem).join("\n  ")}`);
  return v.value;
}

const isIndex = (mt: string | undefined) => mt === mediaTypes.imageIndex || mt === mediaTypes.dockerManifestList;
const isManifest = (mt: string | undefined) => mt === mediaTypes.imageManifest || mt === mediaTypes.dockerManifest;

/**
 * Imports the archive at `path` into the image store at `root`. Returns the images recorded.
 * Each image must be complete for `opts.platform` (default: this host); other platforms'
 * manifests are imported as far as the archive holds them.
 */
export async function importImage(root: string, path: string, opts: ImportOptions = {}): Promise<ImportedImage[]> {
  const store = contentStore(root);
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new ImportError(`cannot import ${path}: ${e instanceof Error ? e.message : e}`);
  }
  let archive: Archive;
  if (st.isDirectory()) archive = new DirArchive(path, store, opts.onProgress);
  else {
    const t = new TarArchive(path, store, opts.onProgress);
    try {
      await t.scan();
    } catch (e) {
      throw new ImportError(`cannot read ${path} as a tar archive: ${e instanceof Error ? e.message : e}`, { cause: e });
    }
    archive = t;
  }
  const platform = opts.platform ?? hostPlatform();
  const manifestJson = archive.small("manifest.json");
  if (manifestJson !== undefined) return importDocker(root, store, archive, path, manifestJson, platform, opts);
  if (archive.small("index.json") !== undefined) return importLayout(root, store, archive, path, platform, opts);
  throw new ImportError(`${path} is neither an OCI image layout (no index.json) nor a docker-archive (no manifest.json)`);
}

async function importLayout(root: string, store: ContentStore, archive: Archive, path: string, platform: PlatformSpec, opts: ImportOptions): Promise<ImportedImage[]> {
  const layoutBytes = archive.small("oci-layout");
  if (layoutBytes === undefined) throw new ImportError(`${path}: an OCI image layout needs an oci-layout file beside index.json`);
  validated("ociLayout", parseJson(layoutBytes, `${path}: oci-layout`), `${path}: oci-layout`);
  const index = validated("imageIndex", parseJson(archive.small("index.json")!, `${path}: index.json`), `${path}: index.json`) as ImageIndex;
  const tops = index.manifests.filter((m) => isIndex(m.mediaType) || isManifest(m.mediaType));
  if (tops.length === 0) throw new ImportError(`${path}: index.json lists no image (no manifest or index entries)`);
  if (opts.name !== undefined && tops.length !== 1)
    throw new ImportError(`${path} holds ${tops.length} images; --name can only name an archive with one image`);
  const out: ImportedImage[] = [];
  for (const [i, top] of tops.entries()) {
    const ann = top.annotations ?? {};
    const name = opts.name ?? ann["io.containerd.image.name"] ?? ann["org.opencontainers.image.ref.name"];
    const label = name ?? `${path}: index.json /manifests/${i}`;
    if (name === undefined)
      throw new ImportError(`${label} (${top.digest}) has no name (no org.opencontainers.image.ref.name annotation); give one with --name`);
    const what = `image ${name}`;
    if (!(await archive.ensure(top, what))) throw new ImportError(`${what}: the archive lacks blob ${top.digest} that index.json points at`);
    await fetchIndexes(store, archive, top, what, 0);
    const chosen = selectManifest(store, top, platform, what);
    const manifest = validated("imageManifest", store.readJson(chosen.digest), `${what}: manifest ${chosen.digest}`) as ImageManifest;
    for (const [j, d] of [manifest.config, ...manifest.layers].entries()) {
      const role = j === 0 ? "config" : `layer ${j - 1}`;
      if (!(await archive.ensure(d, `${what}: ${role}`))) throw new ImportError(`${what}: the archive lacks the ${role} blob ${d.digest}`);
    }
    resolveChecked(store, name, top, chosen);
    putImage(root, name, top);
    out.push({ name, target: top, manifest: chosen, format: "oci-layout" });
  }
  return out;
}

/** Brings every index and manifest blob under `desc` the archive holds, and manifests' configs, into the store. */
async function fetchIndexes(store: ContentStore, archive: Archive, desc: Descriptor, what: string, depth: number): Promise<void> {
  if (isManifest(desc.mediaType)) {
    // The config lets an unlabelled manifest be matched by platform.
    const mf = store.readJson(desc.digest) as Partial<ImageManifest>;
    if (mf.config?.digest) await archive.ensure(mf.config, `${what}: config`).catch(() => false);
    return;
  }
  if (!isIndex(desc.mediaType) || depth > 8) return;
  const index = validated("imageIndex", store.readJson(desc.digest), `${what}: index ${desc.digest}`) as ImageIndex;
  for (const m of index.manifests) {
    if (!isIndex(m.mediaType) && !isManifest(m.mediaType)) continue;
    if (!(await archive.ensure(m, what))) continue; // another platform, left out of the archive
    await fetchIndexes(store, archive, m, what, depth + 1);
  }
}

function resolveChecked(store: ContentStore, name: string, target: Descriptor, manifest: Descriptor): void {
  try {
    resolveManifest(store, name, target, manifest);
  } catch (e) {
    if (e instanceof ImageResolveError) throw new ImportError(e.message);
    throw e;
  }
}

interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

function sniffLayer(store: ContentStore, digest: string): string {
  const head = Buffer.alloc(4);
  const fd = openSync(store.blobPath(digest), "r");
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (head[0] === 0x1f && head[1] === 0x8b) return mediaTypes.layerGzip;
  if (head.readUInt32LE(0) === 0xfd2fb528) return mediaTypes.layerZstd;
  return mediaTypes.layer;
}

async function importDocker(
  root: string,
  store: ContentStore,
  archive: Archive,
  path: string,
  manifestJson: Buffer,
  platform: PlatformSpec,
  opts: ImportOptions,
): Promise<ImportedImage[]> {
  const list = parseJson(manifestJson, `${path}: manifest.json`);
  const bad = (why: string) => new ImportError(`${path}: manifest.json is not a docker-archive manifest: ${why}`);
  if (!Array.isArray(list) || list.length === 0) throw bad("expected a non-empty JSON array");
  for (const [i, e] of (list as unknown[]).entries()) {
    const x = e as Partial<DockerManifestEntry>;
    if (typeof x !== "object" || x === null || typeof x.Config !== "string" || !Array.isArray(x.Layers) || !x.Layers.every((l) => typeof l === "string"))
      throw bad(`entry ${i} needs "Config" (a path) and "Layers" (an array of paths)`);
    if (x.RepoTags != null && (!Array.isArray(x.RepoTags) || !x.RepoTags.every((t) => typeof t === "string"))) throw bad(`entry ${i}: "RepoTags" must be an array of names`);
  }
  const entries = list as DockerManifestEntry[];
  if (opts.name !== undefined && entries.length !== 1) throw new ImportError(`${path} holds ${entries.length} images; --name can only name an archive with one image`);
  const out: ImportedImage[] = [];
  for (const [i, entry] of entries.entries()) {
    const names = opts.name !== undefined ? [opts.name] : (entry.RepoTags ?? []);
    const label = names[0] ?? `${path}: manifest.json entry ${i}`;
    if (names.length === 0) throw new ImportError(`${label} has no RepoTags; give the image a name with --name`);
    const what = `image ${label}`;
    const cfgBlob = await archive.blobAt(entry.Config, `${what}: config`);
    if (cfgBlob === undefined) throw new ImportError(`${what}: the archive lacks the config file ${entry.Config}`);
    const config = validated("imageConfig", parseJson(Buffer.from(store.readBytes(cfgBlob.digest)), `${what}: config ${entry.Config}`), `${what}: config ${entry.Config}`) as ImageConfig;
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== entry.Layers.length)
      throw new ImportError(`${what}: manifest.json lists ${entry.Layers.length} layers but the config has ${diffIds.length} diff ids`);
    const layers: Descriptor[] = [];
    for (const [j, lp] of entry.Layers.entries()) {
      const b = await archive.blobAt(lp, `${what}: layer ${j}`);
      if (b === undefined) throw new ImportError(`${what}: the archive lacks layer ${j} (${lp})`);
      const mediaType = sniffLayer(store, b.digest);
      // An uncompressed layer is its own diff id: a wrong one is caught here rather than at unpack.
      if (mediaType === mediaTypes.layer && b.digest !== diffIds[j])
        throw new ImportError(`${what}: layer ${j} (${lp}) hashes to ${b.digest}, but the config's diff id for it is ${diffIds[j]}`);
      layers.push({ mediaType, digest: b.digest, size: b.size });
    }
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: mediaTypes.imageManifest,
      config: { mediaType: mediaTypes.imageConfig, digest: cfgBlob.digest, size: cfgBlob.size },
      layers,
    };
    validated("imageManifest", manifest, `${what}: converted manifest`);
    const stored = await store.put(`${JSON.stringify(manifest)}\n`);
    const target: Descriptor = {
      mediaType: mediaTypes.imageManifest,
      digest: stored.digest,
      size: stored.size,
      platform: { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) },
    };
    const chosen = selectManifest(store, target, platform, what);
    resolveChecked(store, names[0]!, target, chosen);
    for (const name of names) {
      putImage(root, name, target);
      out.push({ name, target, manifest: chosen, format: "docker-archive" });
    }
  }
  return out;
}
