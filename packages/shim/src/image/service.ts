// What the image path offers its callers (the CLI's image commands, the gRPC image service):
// one interface, so that both speak of images, bundles and commits the same way. The
// implementation over the content store, snapshots and image records is in local.ts.
import type { ImageConfig, ImageManifest, Spec } from "@tsrun/ocispec";
import type { SpecFromImageOptions } from "./spec.ts";

export interface ImageSummary {
  /** Full reference, e.g. "docker.io/library/busybox:latest". */
  name: string;
  /** Digest of the image's top-level document (an index or a manifest). */
  digest: string;
  mediaType: string;
  /** Bytes of the host platform's config and layers as stored (compressed). */
  size: number;
  /** RFC 3339 time the record was made in this store. */
  created: string;
  /** The host platform's manifest, "os/arch[/variant]". */
  platform: string;
}

export interface LayerDetails {
  digest: string;
  mediaType: string;
  size: number;
  diffId: string;
  chainId: string;
  /** Its snapshot exists (unpacked once, shared by every container of every image using it). */
  unpacked: boolean;
}

export interface ImageDetails extends ImageSummary {
  manifestDigest: string;
  manifest: ImageManifest;
  configDigest: string;
  config: ImageConfig;
  layers: LayerDetails[];
}

/** What shapes the config from the image's: the options of specFromImage (spec.ts), by name. */
export interface BundleRequest extends Pick<SpecFromImageOptions, "args" | "entrypoint" | "env" | "user" | "cwd" | "tty" | "hostname" | "readonlyRootfs" | "seccomp"> {
  /** Image reference (as in `tsrun image ls`, or short: "busybox"). */
  image: string;
  /** Bundle directory to make (must not exist or be empty): config.json and rootfs/ go there. */
  dir: string;
  /** Container id the rootfs belongs to: names its upper/work dirs (default: the dir's name). */
  id?: string;
}

export interface BundleResult {
  dir: string;
  /** Absolute path of the mounted (or copied) root filesystem. */
  rootfs: string;
  config: Spec;
  /** How the rootfs was made: an overlay of the image's snapshots, or a copy where overlayfs is missing. */
  mode: "overlay" | "copy";
}

export interface CommitRequest {
  /** Bundle directory made by `bundle` (its container may be running; stop it for a consistent layer). */
  bundle: string;
  /** Reference to record the new image under. */
  ref: string;
  author?: string;
  message?: string;
  changes?: { cmd?: string[]; entrypoint?: string[]; env?: string[]; workingDir?: string; user?: string };
}

export interface PullRequest {
  ref: string;
  /** "os/arch[/variant]"; default the host's. */
  platform?: string;
  /** Plain HTTP instead of HTTPS (default only for loopback registries). */
  plainHttp?: boolean;
  credentials?: { username: string; password: string };
}

export interface ImageService {
  /** Imports an OCI layout (dir or tar) or a docker-archive tar; every image in it, or the one named. */
  import(file: string, opts?: { name?: string }): Promise<ImageSummary[]>;
  pull(req: PullRequest): Promise<ImageSummary>;
  list(): Promise<ImageSummary[]>;
  inspect(ref: string): Promise<ImageDetails>;
  /** Forgets the reference; blobs and snapshots no other image uses are removed. */
  remove(ref: string): Promise<void>;
  bundle(req: BundleRequest): Promise<BundleResult>;
  /** Unmounts and removes a bundle made by `bundle` (its container must be deleted first). */
  removeBundle(dir: string): Promise<void>;
  commit(req: CommitRequest): Promise<ImageSummary>;
}

/** A reference that names no image in the store. */
export class ImageNotFound extends Error {
  override name = "ImageNotFound";
  /** `store`: the image store searched, named so that a user of several (--image-root) knows which. */
  constructor(
    readonly ref: string,
    readonly store?: string,
  ) {
    super(`image ${ref} not found${store ? ` in the image store ${store}` : ""} (see \`tsrun image ls\`${store ? "; --image-root or $TSRUN_IMAGE_ROOT choose another store" : ""})`);
  }
}
