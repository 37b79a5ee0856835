// `tsrun commit`: a container's changes (its overlay upper dir) become one more layer on top of
// the image it was made from, and the result a new image: the base config with the layer's DiffID,
// a history entry and the requested changes, and a manifest listing the base layers plus the new
// one. The new manifest is always an OCI one, whatever the base was: a Docker schema 2 base has
// its media types mapped to the OCI equivalents (the blobs are the same bytes), since one manifest
// mixing Docker and OCI layer types is something registries and engines treat inconsistently.
// Naming the image (tag -> manifest) is the caller's business (images.ts).
import { formatProblem, mediaTypes, validateImageDocument, type Descriptor, type ImageConfig, type ImageDocumentKind, type ImageManifest } from "@tsrun/ocispec";
import { layerFromUpper, type LayerFromUpperOptions, type UpperLayer } from "./diff.ts";
import type { ContentStore } from "./store.ts";

/** Config changes applied with the commit, like `docker commit --change`. */
export interface CommitChanges {
  /** Replaces Cmd. */
  cmd?: string[];
  /**
   * Replaces Entrypoint. As with a Dockerfile's ENTRYPOINT, the base image's Cmd is dropped
   * unless `cmd` is given too (the old arguments were meant for the old entrypoint).
   */
  entrypoint?: string[];
  /** NAME=value entries; each replaces the base's entry of the same NAME or is appended. */
  env?: string[];
  workingDir?: string;
  user?: string;
}

export interface CommitOptions {
  store: ContentStore;
  /** Manifest and config of the image the container was created from. */
  baseManifest: ImageManifest;
  baseConfig: ImageConfig;
  /** The container's overlay upper dir; the container must be stopped or paused. */
  upperDir: string;
  /** Recorded as the config's and the history entry's author. */
  author?: string;
  /** The history entry's comment. */
  message?: string;
  changes?: CommitChanges;
  /** Creation time of the image (default: now). */
  created?: Date | string;
  layer?: LayerFromUpperOptions;
}

export interface CommitResult {
  /** Descriptor of the stored manifest, with the image's platform: what a tag points at. */
  manifestDescriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  configDescriptor: Descriptor;
  /** The new layer (already in the store). */
  layer: UpperLayer;
}

/** What `created_by` says in the history entry, as `docker history` shows it. */
export const COMMIT_CREATED_BY = "tsrun commit";

/** OCI equivalents of Docker schema 2 layer media types (same bytes, other name). */
const OCI_LAYER_TYPE = new Map<string, string>([
  [mediaTypes.dockerLayer, mediaTypes.layer],
  [mediaTypes.dockerLayerGzip, mediaTypes.layerGzip],
  [mediaTypes.dockerLayerZstd, mediaTypes.layerZstd],
  [mediaTypes.dockerForeignLayer, mediaTypes.layerNondistributable],
  [mediaTypes.dockerForeignLayerGzip, mediaTypes.layerNondistributableGzip],
]);

/**
 * JSON with object keys sorted (by UTF-16 code units, as JSON.stringify sees them) and no
 * insignificant whitespace, so the same document always has the same bytes and digest.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

function rfc3339(t: Date | string | undefined): string {
  if (t === undefined) return new Date().toISOString();
  const d = typeof t === "string" ? new Date(t) : t;
  if (Number.isNaN(d.getTime())) throw new Error(`commit: created time ${JSON.stringify(String(t))} is not a valid date (use RFC 3339, e.g. 2026-01-02T03:04:05Z)`);
  return typeof t === "string" ? t : d.toISOString();
}

function envName(entry: string): string {
  const eq = entry.indexOf("=");
  return eq < 0 ? entry : entry.slice(0, eq);
}

function mergeEnv(base: readonly string[], changes: readonly string[]): string[] {
  const out = [...base];
  for (const entry of changes) {
    if (!entry.includes("=") || entry.startsWith("="))
      throw new Error(`commit: env change ${JSON.stringify(entry)} is not of the form NAME=value`);
    const i = out.findIndex((e) => envName(e) === envName(entry));
    if (i >= 0) out[i] = entry;
    else out.push(entry);
  }
  return out;
}

/** The new image config: the base's, with the layer appended and the changes applied. */
export function commitConfig(
  base: ImageConfig,
  diffId: string,
  opts: { created: string; author?: string; message?: string; changes?: CommitChanges },
): ImageConfig {
  const config = structuredClone(base);
  config.created = opts.created;
  if (opts.author !== undefined) config.author = opts.author;
  config.rootfs = { type: "layers", diff_ids: [...base.rootfs.diff_ids, diffId] };
  // An entry without empty_layer pairs with the next diff_id; bases without history stay without
  // entries for their own layers rather than being given invented ones.
  config.history = [
    ...(base.history ?? []),
    {
      created: opts.created,
      created_by: COMMIT_CREATED_BY,
      ...(opts.author !== undefined ? { author: opts.author } : {}),
      ...(opts.message !== undefined ? { comment: opts.message } : {}),
    },
  ];
  const c = opts.changes;
  if (c !== undefined && Object.values(c).some((v) => v !== undefined)) {
    const exec = { ...(config.config ?? {}) };
    if (c.entrypoint !== undefined) {
      exec.Entrypoint = [...c.entrypoint];
      if (c.cmd === undefined) delete exec.Cmd;
    }
    if (c.cmd !== undefined) exec.Cmd = [...c.cmd];
    if (c.env !== undefined) exec.Env = mergeEnv(exec.Env ?? [], c.env);
    if (c.workingDir !== undefined) exec.WorkingDir = c.workingDir;
    if (c.user !== undefined) exec.User = c.user;
    config.config = exec;
  }
  return config;
}

function validated(kind: Extract<ImageDocumentKind, "imageConfig" | "imageManifest">, value: unknown): void {
  const r = validateImageDocument(kind, value);
  if (!r.ok)
    throw new Error(
      `commit: the new image ${kind === "imageConfig" ? "config" : "manifest"} is not valid, nothing was stored for it:\n` +
        r.problems.map((p) => `  ${formatProblem(p)}`).join("\n"),
    );
}

async function storeJson(store: ContentStore, mediaType: string, doc: unknown): Promise<Descriptor> {
  const { digest, size } = await store.put(canonicalJson(doc));
  return { mediaType, digest, size };
}

/**
 * Commits a container's upper dir as a new image on top of `baseManifest`/`baseConfig`: stores
 * the layer, config and manifest (each validated first) and returns them. An upper dir without
 * changes still becomes a layer (an empty tar), as with `docker commit`, so the new image always
 * differs from its base by exactly one layer and one history entry.
 */
export async function commitImage(opts: CommitOptions): Promise<CommitResult> {
  const { store, baseManifest, baseConfig } = opts;
  if (baseManifest.layers.length !== baseConfig.rootfs.diff_ids.length)
    throw new Error(
      `commit: the base manifest lists ${baseManifest.layers.length} layers but its config ${baseConfig.rootfs.diff_ids.length} diff_ids; ` +
        `the base image is inconsistent, re-import or re-pull it`,
    );
  const layers = baseManifest.layers.map((l, i) => {
    const mediaType = OCI_LAYER_TYPE.get(l.mediaType) ?? l.mediaType;
    if (mediaType.startsWith("application/vnd.docker."))
      throw new Error(`commit: base layer ${i} (${l.digest}) has the Docker media type ${l.mediaType}, which has no OCI equivalent`);
    return { ...l, mediaType };
  });

  const layer = await layerFromUpper(opts.upperDir, store, opts.layer);

  const config = commitConfig(baseConfig, layer.diffId, {
    created: rfc3339(opts.created),
    ...(opts.author !== undefined ? { author: opts.author } : {}),
    ...(opts.message !== undefined ? { message: opts.message } : {}),
    ...(opts.changes !== undefined ? { changes: opts.changes } : {}),
  });
  validated("imageConfig", config);
  const configDescriptor = await storeJson(store, mediaTypes.imageConfig, config);

  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: mediaTypes.imageManifest,
    config: configDescriptor,
    layers: [...layers, layer.descriptor],
  };
  validated("imageManifest", manifest);
  const stored = await storeJson(store, mediaTypes.imageManifest, manifest);
  const manifestDescriptor: Descriptor = {
    ...stored,
    platform: {
      architecture: config.architecture,
      os: config.os,
      ...(config.variant ? { variant: config.variant } : {}),
      ...(config["os.version"] ? { "os.version": config["os.version"] } : {}),
    },
  };
  return { manifestDescriptor, manifest, config, configDescriptor, layer };
}
