// ImageService values <-> tsrun.image.v1 messages. The server uses the *FromWire direction on
// requests and *ToWire on results; the client the other way round. Requests coming off the wire
// are checked here (proto3 has no required fields), results only as far as decoding needs.
import type { BundleRequest, BundleResult, CommitRequest, ImageDetails, ImageSummary, LayerDetails, PullRequest } from "../image/service.ts";
import {
  RootfsMode,
  SeccompProfile,
  type WireBundleRequest,
  type WireBundleResponse,
  type WireCommitChanges,
  type WireCommitRequest,
  type WireImageDetails,
  type WireImageSummary,
  type WireLayerDetails,
  type WirePullRequest,
  type WireStringList,
} from "./proto.ts";

/** A request that cannot be served as sent: a required field is empty or a value is unknown. */
export class InvalidRequestError extends Error {
  override name = "InvalidRequestError";
}

/** A response the client cannot make sense of (a server of another version, or a bug). */
export class InvalidResponseError extends Error {
  override name = "InvalidResponseError";
}

export function requiredField(rpc: string, field: string, value: string): string {
  if (value === "") throw new InvalidRequestError(`invalid ${rpc} request: ${field} is required`);
  return value;
}

function listToWire(values: string[] | undefined): WireStringList | undefined {
  return values === undefined ? undefined : { values: [...values] };
}

function listFromWire(list: WireStringList | null | undefined): string[] | undefined {
  return list === null || list === undefined ? undefined : list.values;
}

// Copying only the fields that are present keeps "absent" absent in the ImageService call
// (`{ id: undefined }` and `{}` differ to `in` checks and to object spreads over defaults).
function assignDefined<T extends object>(target: T, values: Partial<T>): T {
  for (const [k, v] of Object.entries(values)) if (v !== undefined) (target as Record<string, unknown>)[k] = v;
  return target;
}

// --- summaries and details -------------------------------------------------------------------

export function summaryToWire(s: ImageSummary): WireImageSummary {
  return { name: s.name, digest: s.digest, mediaType: s.mediaType, size: s.size, created: s.created, platform: s.platform };
}

export function summaryFromWire(w: WireImageSummary | null | undefined, rpc: string): ImageSummary {
  if (w === null || w === undefined) throw new InvalidResponseError(`${rpc} response has no image`);
  return { name: w.name, digest: w.digest, mediaType: w.mediaType, size: w.size, created: w.created, platform: w.platform };
}

function layerToWire(l: LayerDetails): WireLayerDetails {
  return { digest: l.digest, mediaType: l.mediaType, size: l.size, diffId: l.diffId, chainId: l.chainId, unpacked: l.unpacked };
}

function layerFromWire(l: WireLayerDetails): LayerDetails {
  return { digest: l.digest, mediaType: l.mediaType, size: l.size, diffId: l.diffId, chainId: l.chainId, unpacked: l.unpacked };
}

export function detailsToWire(d: ImageDetails): WireImageDetails {
  return {
    ...summaryToWire(d),
    manifestDigest: d.manifestDigest,
    manifestJson: JSON.stringify(d.manifest),
    configDigest: d.configDigest,
    configJson: JSON.stringify(d.config),
    layers: d.layers.map(layerToWire),
  };
}

export function detailsFromWire(w: WireImageDetails | null | undefined): ImageDetails {
  if (w === null || w === undefined) throw new InvalidResponseError("Inspect response has no image");
  return {
    ...summaryFromWire(w, "Inspect"),
    manifestDigest: w.manifestDigest,
    manifest: parseDocument(w.manifestJson, "Inspect", "manifest_json") as ImageDetails["manifest"],
    configDigest: w.configDigest,
    config: parseDocument(w.configJson, "Inspect", "config_json") as ImageDetails["config"],
    layers: w.layers.map(layerFromWire),
  };
}

function parseDocument(text: string, rpc: string, field: string): unknown {
  try {
    const doc: unknown = JSON.parse(text);
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new Error("not a JSON object");
    return doc;
  } catch (e) {
    throw new InvalidResponseError(`${rpc} response: ${field} is not a JSON document: ${(e as Error).message}`);
  }
}

// --- pull ------------------------------------------------------------------------------------

export function pullRequestToWire(r: PullRequest): WirePullRequest {
  return assignDefined<WirePullRequest>(
    { ref: r.ref },
    {
      platform: r.platform,
      plainHttp: r.plainHttp,
      credentials: r.credentials === undefined ? undefined : { username: r.credentials.username, password: r.credentials.password },
    },
  );
}

export function pullRequestFromWire(w: WirePullRequest): PullRequest {
  return assignDefined<PullRequest>(
    { ref: requiredField("Pull", "ref", w.ref) },
    {
      platform: w.platform,
      plainHttp: w.plainHttp,
      credentials: w.credentials === null || w.credentials === undefined ? undefined : { username: w.credentials.username, password: w.credentials.password },
    },
  );
}

// --- bundle ----------------------------------------------------------------------------------

const seccompToWire: Record<NonNullable<BundleRequest["seccomp"]>, number> = {
  default: SeccompProfile.SECCOMP_PROFILE_DEFAULT,
  unconfined: SeccompProfile.SECCOMP_PROFILE_UNCONFINED,
};

export function bundleRequestToWire(r: BundleRequest): WireBundleRequest {
  let seccomp: number = SeccompProfile.SECCOMP_PROFILE_UNSPECIFIED;
  if (r.seccomp !== undefined) {
    const value = seccompToWire[r.seccomp];
    // The type says this cannot happen, but callers from JavaScript (or JSON) can still do it.
    if (value === undefined) throw new TypeError(`invalid bundle request: seccomp must be "default" or "unconfined", not ${JSON.stringify(r.seccomp)}`);
    seccomp = value;
  }
  return assignDefined<WireBundleRequest>(
    { image: r.image, dir: r.dir, seccomp },
    {
      id: r.id,
      args: listToWire(r.args),
      entrypoint: listToWire(r.entrypoint),
      env: listToWire(r.env),
      user: r.user,
      cwd: r.cwd,
      tty: r.tty,
      hostname: r.hostname,
      readonlyRootfs: r.readonlyRootfs,
    },
  );
}

export function bundleRequestFromWire(w: WireBundleRequest): BundleRequest {
  let seccomp: BundleRequest["seccomp"];
  switch (w.seccomp) {
    case SeccompProfile.SECCOMP_PROFILE_UNSPECIFIED:
      seccomp = undefined;
      break;
    case SeccompProfile.SECCOMP_PROFILE_DEFAULT:
      seccomp = "default";
      break;
    case SeccompProfile.SECCOMP_PROFILE_UNCONFINED:
      seccomp = "unconfined";
      break;
    default:
      throw new InvalidRequestError(`invalid Bundle request: unknown seccomp profile ${w.seccomp} (this server knows DEFAULT and UNCONFINED)`);
  }
  return assignDefined<BundleRequest>(
    { image: requiredField("Bundle", "image", w.image), dir: requiredField("Bundle", "dir", w.dir) },
    {
      id: w.id,
      args: listFromWire(w.args),
      entrypoint: listFromWire(w.entrypoint),
      env: listFromWire(w.env),
      user: w.user,
      cwd: w.cwd,
      tty: w.tty,
      hostname: w.hostname,
      readonlyRootfs: w.readonlyRootfs,
      seccomp,
    },
  );
}

export function bundleResultToWire(r: BundleResult): WireBundleResponse {
  const mode = r.mode === "overlay" ? RootfsMode.ROOTFS_MODE_OVERLAY : r.mode === "copy" ? RootfsMode.ROOTFS_MODE_COPY : undefined;
  // The service broke its contract: a server bug (INTERNAL), not the caller's bad input.
  if (mode === undefined) throw new Error(`bundle result has unknown rootfs mode ${JSON.stringify(r.mode)}`);
  return { dir: r.dir, rootfs: r.rootfs, specJson: JSON.stringify(r.config), mode };
}

export function bundleResultFromWire(w: WireBundleResponse): BundleResult {
  let mode: BundleResult["mode"];
  if (w.mode === RootfsMode.ROOTFS_MODE_OVERLAY) mode = "overlay";
  else if (w.mode === RootfsMode.ROOTFS_MODE_COPY) mode = "copy";
  else throw new InvalidResponseError(`Bundle response has unknown rootfs mode ${w.mode}`);
  return { dir: w.dir, rootfs: w.rootfs, config: parseDocument(w.specJson, "Bundle", "spec_json") as BundleResult["config"], mode };
}

// --- commit ----------------------------------------------------------------------------------

export function commitRequestToWire(r: CommitRequest): WireCommitRequest {
  const c = r.changes;
  const changes =
    c === undefined
      ? undefined
      : assignDefined<WireCommitChanges>(
          {},
          { cmd: listToWire(c.cmd), entrypoint: listToWire(c.entrypoint), env: listToWire(c.env), workingDir: c.workingDir, user: c.user },
        );
  return assignDefined<WireCommitRequest>({ bundle: r.bundle, ref: r.ref }, { author: r.author, message: r.message, changes });
}

export function commitRequestFromWire(w: WireCommitRequest): CommitRequest {
  const c = w.changes;
  const changes =
    c === null || c === undefined
      ? undefined
      : assignDefined<NonNullable<CommitRequest["changes"]>>(
          {},
          { cmd: listFromWire(c.cmd), entrypoint: listFromWire(c.entrypoint), env: listFromWire(c.env), workingDir: c.workingDir, user: c.user },
        );
  return assignDefined<CommitRequest>(
    { bundle: requiredField("Commit", "bundle", w.bundle), ref: requiredField("Commit", "ref", w.ref) },
    { author: w.author, message: w.message, changes },
  );
}

