// A client of tsrun.image.v1.Images that is itself an ImageService: code written against the
// interface (the CLI, tests) works the same on a local store and on a remote shim.
import { isIP } from "node:net";
import { Client, credentials, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
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
  /** Mutual TLS, for a server started with it (required by the server on TCP). */
  tls?: ClientTls;
}

/** PEM contents (not paths) of what mutual TLS needs on the client side. */
export interface ClientTls {
  /** The CA certificate(s) the server's certificate must chain to. */
  ca: Uint8Array | string;
  /** The client's certificate chain, signed by a CA the server trusts. */
  cert: Uint8Array | string;
  /** The client certificate's private key. */
  key: Uint8Array | string;
  /**
   * The name the server's certificate must carry. Default: the address's host. Needed when the
   * address is an IP: TLS sends no IP address as the server name, so one cannot be checked.
   */
  serverName?: string;
}

function pem(v: Uint8Array | string): Buffer {
  return typeof v === "string" ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function channelCredentials(address: string, tls: ClientTls | undefined): { creds: ChannelCredentials; options: Record<string, string> } {
  if (tls === undefined) {
    if (!address.startsWith("unix:"))
      throw new TypeError(`image service at ${address}: over TCP the image service speaks only mutual TLS; give tls (ca, cert, key), or connect to its unix socket`);
    return { creds: credentials.createInsecure(), options: {} };
  }
  const host = /^(?:\[([^\]]+)\]|([^:]+)):\d+$/.exec(address);
  const ip = host !== null && isIP(host[1] ?? host[2] ?? "") !== 0;
  if (tls.serverName === undefined && (ip || address.startsWith("unix:")))
    throw new TypeError(`image service at ${address}: with TLS, give tls.serverName, a DNS name in the server's certificate (an IP address or a socket path cannot be checked against it)`);
  return {
    creds: credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert)),
    options: tls.serverName !== undefined ? { "grpc.ssl_target_name_override": tls.serverName } : {},
  };
}

/**
 * A client for the image service at `address` ("unix:///path" or "host:port", the latter with
 * `opts.tls`). Connecting is lazy: an unreachable server, or one that refuses the client's
 * certificate, shows as the first call failing with UNAVAILABLE.
 */
export function connectImages(address: string, opts: ConnectImagesOptions = {}): ImageClient {
  const methods = imagesServiceDefinition();
  const { creds, options } = channelCredentials(address, opts.tls);
  const client = new Client(address, creds, {
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    ...options,
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

