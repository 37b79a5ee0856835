// A client of tsrun.image.v1.Images that is itself an ImageService: code written against the
// interface (the CLI, tests) works the same on a local store and on a remote shim.
import { Client, credentials, type ServiceError } from "@grpc/grpc-js";
import type { BundleRequest, BundleResult, CommitRequest, ImageDetails, ImageService, ImageSummary, PullRequest } from "../image/service.ts";
import {
  bundleRequestToWire,
  bundleResultFromWire,
  commitRequestToWire,
  detailsFromWire,
  pullRequestToWire,
  summaryFromWire,
} from "./convert.ts";
import { statusToError } from "./errors.ts";
import { imagesServiceDefinition, MAX_MESSAGE_BYTES, type ImagesRpcName, type ImagesRpcs } from "./proto.ts";

export interface ImageClient extends ImageService {
  /** The address it was made for. */
  readonly address: string;
  /** Closes the connection; calls in progress fail with CANCELLED. */
  close(): void;
}

export interface ConnectImagesOptions {
  /**
   * Deadline of each call in milliseconds (default: none, since Pull and Bundle of a large image
   * legitimately take minutes).
   */
  timeoutMs?: number;
}

/**
 * A client for the image service at `address` ("unix:///path" or "host:port"). Connecting is
 * lazy: an unreachable server shows as the first call failing with UNAVAILABLE.
 */
export function connectImages(address: string, opts: ConnectImagesOptions = {}): ImageClient {
  const methods = imagesServiceDefinition();
  const client = new Client(address, credentials.createInsecure(), {
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
  });

  function call<K extends ImagesRpcName>(rpc: K, request: ImagesRpcs[K]["request"], ref?: string): Promise<ImagesRpcs[K]["response"]> {
    const m = methods[rpc];
    const callOptions = opts.timeoutMs !== undefined ? { deadline: Date.now() + opts.timeoutMs } : {};
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        m.path,
        m.requestSerialize as (v: ImagesRpcs[K]["request"]) => Buffer,
        m.responseDeserialize as (b: Buffer) => ImagesRpcs[K]["response"],
        request,
        callOptions,
        (err: ServiceError | null, response?: ImagesRpcs[K]["response"]) => {
          if (err !== null) reject(statusToError(err, address, ref));
          else if (response === undefined) reject(new Error(`image service at ${address}: ${rpc} returned no response`));
          else resolve(response);
        },
      );
    });
  }

  return {
    address,
    close: () => client.close(),
    async import(file: string, o?: { name?: string }): Promise<ImageSummary[]> {
      const res = await call("Import", o?.name !== undefined ? { file, name: o.name } : { file }, o?.name);
      return res.images.map((w) => summaryFromWire(w, "Import"));
    },
    async pull(req: PullRequest): Promise<ImageSummary> {
      return summaryFromWire((await call("Pull", pullRequestToWire(req), req.ref)).image, "Pull");
    },
    async list(): Promise<ImageSummary[]> {
      return (await call("List", {})).images.map((w) => summaryFromWire(w, "List"));
    },
    async inspect(ref: string): Promise<ImageDetails> {
      return detailsFromWire((await call("Inspect", { ref }, ref)).image);
    },
    async remove(ref: string): Promise<void> {
      await call("Remove", { ref }, ref);
    },
    async bundle(req: BundleRequest): Promise<BundleResult> {
      return bundleResultFromWire(await call("Bundle", bundleRequestToWire(req), req.image));
    },
    async removeBundle(dir: string): Promise<void> {
      await call("RemoveBundle", { dir });
    },
    async commit(req: CommitRequest): Promise<ImageSummary> {
      return summaryFromWire((await call("Commit", commitRequestToWire(req))).image, "Commit");
    },
  };
}

