// Serves an ImageService as tsrun.image.v1.Images over gRPC, on a unix socket (what the shim
// uses) or, with mutual TLS, a TCP port (for tools that cannot reach a socket file).
import { lstat, unlink } from "node:fs/promises";
import { isAbsolute } from "node:path";
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from "@grpc/grpc-js";
import type { ImageService } from "../image/service.ts";
import {
  bundleRequestFromWire,
  bundleResultToWire,
  commitRequestFromWire,
  detailsToWire,
  pullRequestFromWire,
  requiredField,
  summaryToWire,
} from "./convert.ts";
import { errorToStatus } from "./errors.ts";
import { bind, bindUnixSocket, shutdown } from "./unix-socket.ts";
import { imagesServiceDefinition, MAX_MESSAGE_BYTES, type ImagesRpcName, type ImagesRpcs } from "./proto.ts";

export interface ImageServer {
  /** Where it listens: "unix:///abs/path" or "host:port" (with the port chosen when 0 was asked). */
  address: string;
  /** Stops taking calls, lets calls in progress finish (for up to `graceMs`), removes the socket. */
  close(graceMs?: number): Promise<void>;
}

export interface ServeImagesOptions {
  /** Told about calls that failed with INTERNAL (with the whole error, stack included) for the server's log. */
  onInternalError?: (rpc: ImagesRpcName, err: unknown) => void;
  /** Mutual TLS: required for a TCP address, optional on a unix socket. */
  tls?: ServerTls;
}

/** PEM contents (not paths) of what mutual TLS needs on the server side. */
export interface ServerTls {
  /** The server's certificate chain. */
  cert: Uint8Array | string;
  /** The server certificate's private key. */
  key: Uint8Array | string;
  /** The CA certificate(s) that client certificates must chain to; a client without one is refused. */
  clientCa: Uint8Array | string;
}

type Handler<K extends ImagesRpcName> = (req: ImagesRpcs[K]["request"]) => Promise<ImagesRpcs[K]["response"]>;

function handlers(service: ImageService): { [K in ImagesRpcName]: Handler<K> } {
  return {
    Import: async (req) => {
      const opts = req.name !== undefined ? { name: req.name } : undefined;
      const images = await service.import(requiredField("Import", "file", req.file), opts);
      return { images: images.map(summaryToWire) };
    },
    Pull: async (req) => ({ image: summaryToWire(await service.pull(pullRequestFromWire(req))) }),
    List: async () => ({ images: (await service.list()).map(summaryToWire) }),
    Inspect: async (req) => ({ image: detailsToWire(await service.inspect(requiredField("Inspect", "ref", req.ref))) }),
    Remove: async (req) => {
      await service.remove(requiredField("Remove", "ref", req.ref));
      return {};
    },
    Bundle: async (req) => bundleResultToWire(await service.bundle(bundleRequestFromWire(req))),
    RemoveBundle: async (req) => {
      await service.removeBundle(requiredField("RemoveBundle", "dir", req.dir));
      return {};
    },
    Commit: async (req) => ({ image: summaryToWire(await service.commit(commitRequestFromWire(req))) }),
  };
}

function implementation(service: ImageService, opts: ServeImagesOptions): UntypedServiceImplementation {
  const impl: UntypedServiceImplementation = {};
  const table = handlers(service);
  for (const name of Object.keys(table) as ImagesRpcName[]) {
    const handle = table[name] as Handler<ImagesRpcName>;
    impl[name] = (call: ServerUnaryCall<ImagesRpcs[ImagesRpcName]["request"], unknown>, callback: sendUnaryData<unknown>) => {
      handle(call.request).then(
        (response) => callback(null, response),
        (err: unknown) => {
          const st = errorToStatus(err);
          if (st.code === status.INTERNAL) opts.onInternalError?.(name, err);
          callback(st, null);
        },
      );
    };
  }
  return impl;
}

/**
 * Serves `service` at `address`: "unix:///abs/path" (or "unix:/abs/path"), or "host:port"
 * (port 0: any free one) with `opts.tls`. Whoever can call the service can import any file the
 * server can read and have bundles mounted where they like, as whoever runs it (root), so the
 * caller must be authenticated: on a unix socket by the file's mode (0600, made so before anyone
 * can connect), on TCP by a client certificate. TCP without mutual TLS is refused.
 */
export async function serveImages(service: ImageService, address: string, opts: ServeImagesOptions = {}): Promise<ImageServer> {
  const target = parseAddress(address);
  if (target.kind === "tcp" && opts.tls === undefined)
    throw new Error(
      `image service: refusing to listen on ${address} without mutual TLS: anyone able to connect to a TCP port could list and import images and have bundles mounted as this user. ` +
        "Serve it on a unix socket (made 0600), e.g. --address unix:///run/tsrun/images.sock, or give a server certificate, its key and the CA of the clients' certificates (--tls-cert FILE --tls-key FILE --tls-client-ca FILE)",
    );
  const creds = opts.tls === undefined ? ServerCredentials.createInsecure() : serverCredentials(opts.tls);
  const server = new Server({ "grpc.max_receive_message_length": MAX_MESSAGE_BYTES, "grpc.max_send_message_length": MAX_MESSAGE_BYTES });
  server.addService(imagesServiceDefinition(), implementation(service, opts));

  if (target.kind === "tcp") {
    const port = await bind(server, `${target.host}:${target.port}`, creds).catch((e: Error) => {
      server.forceShutdown();
      throw new Error(`image service: cannot listen on ${target.host}:${target.port}: ${e.message}`);
    });
    return { address: `${target.host}:${port}`, close: once((graceMs) => shutdown(server, graceMs)) };
  }

  const path = target.path;
  const ino = await bindUnixSocket(server, path, creds, "image service");
  return {
    address: `unix://${path}`,
    close: once(async (graceMs) => {
      await shutdown(server, graceMs);
      // Only remove the socket if it is still ours: a server started after us on the same path
      // (ours being considered stale) must keep its socket.
      const st = await lstat(path).catch(() => undefined);
      if (st !== undefined && st.isSocket() && st.ino === ino) await unlink(path).catch(() => {});
    }),
  };
}

/** Closing twice (a signal handler and a finally block, say) waits for the same close. */
function once(close: (graceMs?: number) => Promise<void>): (graceMs?: number) => Promise<void> {
  let closing: Promise<void> | undefined;
  return (graceMs) => (closing ??= close(graceMs));
}

type Target = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

function parseAddress(address: string): Target {
  if (address.startsWith("unix:")) {
    const path = address.startsWith("unix://") ? address.slice("unix://".length) : address.slice("unix:".length);
    if (!isAbsolute(path)) throw new TypeError(`invalid image service address ${JSON.stringify(address)}: a unix socket path must be absolute (unix:///run/tsrun/images.sock)`);
    // sun_path holds 108 bytes with the terminating NUL.
    if (Buffer.byteLength(path) > 107) throw new TypeError(`invalid image service address: socket path ${path} is ${Buffer.byteLength(path)} bytes long; unix sockets allow 107`);
    return { kind: "unix", path };
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(address);
  if (m === null) throw new TypeError(`invalid image service address ${JSON.stringify(address)}: expected unix:///path or host:port`);
  const host = m[1]!;
  const port = Number(m[2]);
  if (port > 65535) throw new TypeError(`invalid image service address ${JSON.stringify(address)}: port ${port} is out of range`);
  return { kind: "tcp", host, port };
}

function serverCredentials(tls: ServerTls): ServerCredentials {
  const pem = (v: Uint8Array | string) => (typeof v === "string" ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  for (const [field, v] of Object.entries(tls) as [keyof ServerTls, Uint8Array | string][])
    if (v === undefined || v.length === 0) throw new TypeError(`image service: TLS ${field} is empty; mutual TLS needs the server certificate, its key and the client CA`);
  // The last argument makes a client certificate (chaining to clientCa) mandatory: TLS
  // without it would encrypt the calls but let anyone make them.
  return ServerCredentials.createSsl(pem(tls.clientCa), [{ cert_chain: pem(tls.cert), private_key: pem(tls.key) }], true);
}
