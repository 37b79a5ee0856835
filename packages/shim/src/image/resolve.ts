// From an image name to what a container needs: the manifest for one platform, its config, and
// each layer with its diff id and chain id. Documents are validated on the way (the store
// verifies bytes, not meaning) and every error names the image.
import {
  formatProblem,
  layerFormat,
  mediaTypes,
  validateImageDocument,
  type Descriptor,
  type ImageConfig,
  type ImageDocumentTypes,
  type ImageIndex,
  type ImageManifest,
  type Platform,
} from "@tsrun/ocispec";
import { chainIds } from "./chainid.ts";
import { formatPlatform, hostPlatform, platformMatches, type PlatformSpec } from "./platform.ts";

export { formatPlatform, hostPlatform, parsePlatform, platformMatches, type PlatformSpec } from "./platform.ts";
import { contentStore, getImage } from "./images.ts";
import type { SnapshotLayer } from "./snapshots.ts";
import type { ContentStore } from "./store.ts";


export interface ResolvedLayer extends SnapshotLayer {
  compression: "none" | "gzip" | "zstd";
}

export interface ResolvedImage {
  name: string;
  /** The descriptor the image record points at (index or manifest). */
  target: Descriptor;
  manifestDescriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  layers: ResolvedLayer[];
  /** Chain id of the top layer (undefined for an image without layers). */
  chainId: string | undefined;
}

/** The image failed to resolve (missing, invalid, or not made for the platform). */
export class ImageResolveError extends Error {
  override name = "ImageResolveError";
}

function validated<K extends keyof ImageDocumentTypes>(kind: K, value: unknown, what: string): ImageDocumentTypes[K] {
  const v = validateImageDocument(kind, value);
  if (!v.ok) throw new ImageResolveError(`${what} is not a valid ${kind}:\n  ${v.problems.map(formatProblem).join("\n  ")}`);
  return v.value;
}

/** Reads and validates a document from the store. */
export function readDocument<K extends keyof ImageDocumentTypes>(store: ContentStore, kind: K, desc: Descriptor, what: string): ImageDocumentTypes[K] {
  if (!store.has(desc.digest)) throw new ImageResolveError(`${what}: blob ${desc.digest} is not in the content store`);
  let value: unknown;
  try {
    value = store.readJson(desc.digest);
  } catch (e) {
    throw new ImageResolveError(`${what}: blob ${desc.digest} is not JSON (${e instanceof Error ? e.message : e})`);
  }
  return validated(kind, value, `${what} (${desc.digest})`);
}

const isIndex = (mt: string | undefined) => mt === mediaTypes.imageIndex || mt === mediaTypes.dockerManifestList;
const isManifest = (mt: string | undefined) => mt === mediaTypes.imageManifest || mt === mediaTypes.dockerManifest;

/**
 * Picks the manifest for `platform` under `desc` (a manifest is taken as it is; an index is
 * searched, nested indexes too). Entries without a platform are judged by their config.
 * Manifests whose blob is not in the store are passed over (partial layouts). Throws, listing the platforms there are, when none matches.
 */
export function selectManifest(store: ContentStore, desc: Descriptor, platform: PlatformSpec, what: string): Descriptor {
  const seen: string[] = [];
  const found = search(store, desc, platform, what, seen, 0);
  if (found) return found;
  throw new ImageResolveError(
    `${what} has no manifest for ${formatPlatform(platform)}; it has: ${seen.length ? [...new Set(seen)].join(", ") : "no platform-specific manifests"}`,
  );
}

function search(store: ContentStore, desc: Descriptor, platform: PlatformSpec, what: string, seen: string[], depth: number): Descriptor | undefined {
  if (depth > 8) throw new ImageResolveError(`${what}: image indexes nested more than 8 deep`);
  if (isManifest(desc.mediaType)) {
    const label = desc.platform ?? configPlatform(store, desc);
    if (label) seen.push(formatPlatform(label));
    // A lone manifest without any platform label is taken as the image (nothing to choose from).
    if (!label || platformMatches(platform, label)) return desc;
    return undefined;
  }
  if (!isIndex(desc.mediaType)) throw new ImageResolveError(`${what}: ${desc.digest} has media type "${desc.mediaType}", neither an image index nor a manifest`);
  const index = readDocument(store, "imageIndex", desc, `${what}: index`) as ImageIndex;
  for (const m of index.manifests) {
    if (isIndex(m.mediaType)) {
      if (!store.has(m.digest)) continue;
      const r = search(store, m, platform, what, seen, depth + 1);
      if (r) return r;
      continue;
    }
    if (!isManifest(m.mediaType)) continue; // attestations, signatures and other artifacts
    const label = m.platform ?? (store.has(m.digest) ? configPlatform(store, m) : undefined);
    if (label) seen.push(formatPlatform(label));
    if (label && platformMatches(platform, label) && store.has(m.digest)) return m;
  }
  return undefined;
}

function configPlatform(store: ContentStore, desc: Descriptor): PlatformSpec | undefined {
  if (!store.has(desc.digest)) return undefined;
  const m = store.readJson(desc.digest) as Partial<ImageManifest>;
  const c = m.config;
  if (!c || c.mediaType === mediaTypes.empty || !store.has(c.digest)) return undefined;
  const cfg = store.readJson(c.digest) as Partial<ImageConfig>;
  if (typeof cfg.os !== "string" || typeof cfg.architecture !== "string") return undefined;
  return { os: cfg.os, architecture: cfg.architecture, ...(cfg.variant ? { variant: cfg.variant } : {}) };
}

/** Manifest + config + layers of the manifest `manifestDescriptor`, all checked. */
export function resolveManifest(store: ContentStore, name: string, target: Descriptor, manifestDescriptor: Descriptor): ResolvedImage {
  const what = `image ${name}`;
  const manifest = readDocument(store, "imageManifest", manifestDescriptor, `${what}: manifest`) as ImageManifest;
  const config = readDocument(store, "imageConfig", manifest.config, `${what}: config`) as ImageConfig;
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length)
    throw new ImageResolveError(`${what}: the manifest lists ${manifest.layers.length} layers but the config has ${diffIds.length} diff ids (rootfs.diff_ids)`);
  const chains = chainIds(diffIds);
  const layers = manifest.layers.map((descriptor, index): ResolvedLayer => {
    const format = layerFormat(descriptor.mediaType);
    if (format === undefined)
      throw new ImageResolveError(`${what}: layer ${index} (${descriptor.digest}) has the unknown media type "${descriptor.mediaType}" (tsrun unpacks OCI and Docker tar layers: uncompressed, gzip, zstd)`);
    return {
      index,
      descriptor,
      diffId: diffIds[index]!,
      chainId: chains[index]!,
      ...(index > 0 ? { parent: chains[index - 1]! } : {}),
      compression: format.compression,
    };
  });
  return { name, target, manifestDescriptor, manifest, config, layers, chainId: chains.at(-1) };
}

/** Resolves the image `name` of the store at `root` for `platform` (default: this host). */
export function resolveImage(root: string, name: string, opts: { platform?: PlatformSpec; store?: ContentStore } = {}): ResolvedImage {
  const record = getImage(root, name);
  if (!record) throw new ImageResolveError(`image ${name} not found in ${root} (import or pull it first; "tsrun image ls" lists images)`);
  const store = opts.store ?? contentStore(root);
  const manifestDescriptor = selectManifest(store, record.target, opts.platform ?? hostPlatform(), `image ${name}`);
  return resolveManifest(store, name, record.target, manifestDescriptor);
}
