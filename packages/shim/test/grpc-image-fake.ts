// An in-memory ImageService for the gRPC tests: records every call (arguments deep-copied, so
// what is checked is what arrived, not what the test still holds), answers from canned values,
// and fails on demand.
import type { ImageConfig, ImageManifest, Spec } from "@tsrun/ocispec";
import type { BundleRequest, BundleResult, CommitRequest, ImageDetails, ImageService, ImageSummary, PullRequest } from "../src/image/service.ts";

export type Method = keyof ImageService;

export interface Call {
  method: Method;
  args: unknown[];
}

export class FakeImageService implements ImageService {
  calls: Call[] = [];
  /** An error (or any value) to throw from the next call of a method, once. */
  failNext = new Map<Method, unknown>();
  /** Milliseconds each call of a method waits before answering (to overlap calls). */
  delayMs = new Map<Method, number>();
  inFlight = 0;
  maxInFlight = 0;

  summaries: ImageSummary[] = [SUMMARY_A, SUMMARY_B];
  details: ImageDetails = DETAILS;
  /** The result of bundle; by default made from the request so concurrent calls can be told apart. */
  bundleResult: ((req: BundleRequest) => BundleResult) | undefined;

  private async enter(method: Method, args: unknown[]): Promise<void> {
    this.calls.push({ method, args: args.map((a) => (a === undefined ? undefined : structuredClone(a))) });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const delay = this.delayMs.get(method);
      if (delay !== undefined) await Bun.sleep(delay);
      if (this.failNext.has(method)) {
        const err = this.failNext.get(method);
        this.failNext.delete(method);
        throw err;
      }
    } finally {
      this.inFlight--;
    }
  }

  async import(file: string, opts?: { name?: string }): Promise<ImageSummary[]> {
    await this.enter("import", [file, opts]);
    return opts?.name !== undefined ? [{ ...SUMMARY_A, name: opts.name }] : this.summaries;
  }
  async pull(req: PullRequest): Promise<ImageSummary> {
    await this.enter("pull", [req]);
    return { ...SUMMARY_B, name: req.ref, platform: req.platform ?? SUMMARY_B.platform };
  }
  async list(): Promise<ImageSummary[]> {
    await this.enter("list", []);
    return this.summaries;
  }
  async inspect(ref: string): Promise<ImageDetails> {
    await this.enter("inspect", [ref]);
    return this.details;
  }
  async remove(ref: string): Promise<void> {
    await this.enter("remove", [ref]);
  }
  async bundle(req: BundleRequest): Promise<BundleResult> {
    await this.enter("bundle", [req]);
    if (this.bundleResult !== undefined) return this.bundleResult(req);
    return { dir: req.dir, rootfs: `${req.dir}/rootfs`, config: { ...SPEC, hostname: req.hostname ?? "h" }, mode: req.id === "copy" ? "copy" : "overlay" };
  }
  async removeBundle(dir: string): Promise<void> {
    await this.enter("removeBundle", [dir]);
  }
  async commit(req: CommitRequest): Promise<ImageSummary> {
    await this.enter("commit", [req]);
    return { ...SUMMARY_A, name: req.ref };
  }
}

export const SUMMARY_A: ImageSummary = {
  name: "docker.io/library/busybox:latest",
  digest: "sha256:" + "a".repeat(64),
  mediaType: "application/vnd.oci.image.index.v1+json",
  // Past 2^32, to catch an int64 squeezed through 32 bits.
  size: 2 ** 40 + 12345,
  created: "2026-11-23T10:11:12.123456789Z",
  platform: "linux/amd64",
};

export const SUMMARY_B: ImageSummary = {
  name: "registry.example:5000/ünïcode/ímage:v1.2-ß",
  digest: "sha256:" + "b".repeat(64),
  mediaType: "application/vnd.docker.distribution.manifest.v2+json",
  size: 0,
  created: "2026-01-02T03:04:05Z",
  platform: "linux/arm64/v8",
};

const MANIFEST: ImageManifest = {
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: "sha256:" + "c".repeat(64), size: 1234 },
  layers: [
    { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: "sha256:" + "d".repeat(64), size: 2 ** 33 },
    { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: "sha256:" + "e".repeat(64), size: 10, annotations: { "org.example/ünï": "värde \"quoted\" \n newline" } },
  ],
  annotations: { "org.opencontainers.image.ref.name": "latest" },
};

const CONFIG: ImageConfig = {
  architecture: "amd64",
  os: "linux",
  created: "2026-11-23T10:11:12Z",
  config: {
    Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "EMPTY="],
    Cmd: ["sh", "-c", "echo 'hi' && exit 0"],
    WorkingDir: "/",
    Labels: { "x.y": "z" },
    ExposedPorts: { "80/tcp": {} },
  },
  rootfs: { type: "layers", diff_ids: ["sha256:" + "1".repeat(64), "sha256:" + "2".repeat(64)] },
  history: [{ created_by: "/bin/sh -c #(nop) CMD [\"sh\"]", empty_layer: true }],
};

export const DETAILS: ImageDetails = {
  ...SUMMARY_A,
  manifestDigest: "sha256:" + "f".repeat(64),
  manifest: MANIFEST,
  configDigest: "sha256:" + "c".repeat(64),
  config: CONFIG,
  layers: [
    { digest: "sha256:" + "d".repeat(64), mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", size: 2 ** 33, diffId: "sha256:" + "1".repeat(64), chainId: "sha256:" + "1".repeat(64), unpacked: true },
    { digest: "sha256:" + "e".repeat(64), mediaType: "application/vnd.oci.image.layer.v1.tar", size: 10, diffId: "sha256:" + "2".repeat(64), chainId: "sha256:" + "3".repeat(64), unpacked: false },
  ],
};

export const SPEC: Spec = {
  ociVersion: "1.2.0",
  root: { path: "rootfs", readonly: false },
  process: { terminal: false, user: { uid: 0, gid: 0, additionalGids: [10] }, args: ["sh"], env: ["PATH=/bin"], cwd: "/" },
  hostname: "h",
  mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
  annotations: { "org.opencontainers.image.stopSignal": "SIGTERM" },
  linux: { namespaces: [{ type: "pid" }, { type: "mount" }], maskedPaths: ["/proc/kcore"] },
};

/** Errors named like the image package's, without loading it. */
export function namedError(name: string, message: string): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}
