// The shim's ttrpc method tables served over gRPC (HTTP/2), for containerd 1.7 and 2.x when the
// shim announces protocol "grpc" (see bin/bootstrap.ts): the same handlers, fed the same request
// bytes and answering the same response bytes, so both transports behave alike. A handler's
// TtrpcError code is the gRPC status code (the numbers are gRPC's); anything else is UNKNOWN, as
// over ttrpc. containerd sends its namespace as gRPC metadata `containerd-namespace`.
import { Server, ServerCredentials, status, type MethodDefinition, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import type { CallContext, Method } from "../ttrpc/server.ts";
import { toStatus } from "../ttrpc/status.ts";
import { bindUnixSocket, shutdown } from "./unix-socket.ts";

/** Frames containerd's gRPC client accepts by default (the Task API's messages are small). */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export interface TaskGrpcServer {
  path: string;
  /** Resolves once no call is in flight (each response handed to the transport). */
  settled(): Promise<void>;
  /** Stops taking calls, lets those in progress finish (up to `graceMs`), removes the socket. */
  close(graceMs?: number): Promise<void>;
}

const toBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** A service definition whose messages stay bytes: the method tables decode and encode them. */
function passThrough(service: string, methods: string[]): ServiceDefinition {
  const def: Record<string, MethodDefinition<Uint8Array, Uint8Array>> = {};
  for (const name of methods) {
    def[name] = {
      path: `/${service}/${name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: toBuffer,
      requestDeserialize: (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
      responseSerialize: toBuffer,
      responseDeserialize: (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
    };
  }
  return def as ServiceDefinition;
}

/** The metadata of a gRPC call as a ttrpc handler sees it (string values only). */
function callContext(service: string, method: string, call: ServerUnaryCall<Uint8Array, Uint8Array>): CallContext {
  const metadata = new Map<string, string[]>();
  for (const [key, value] of Object.entries(call.metadata.getMap())) {
    if (typeof value === "string") metadata.set(key, [...(metadata.get(key) ?? []), value]);
  }
  const ctx: CallContext = { service, method, metadata };
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  if (Number.isFinite(at)) ctx.deadline = at;
  return ctx;
}

/**
 * Serves `services` (full service name → method table) on the unix socket `path` (made 0600
 * before anyone can connect). Unknown services and methods are UNIMPLEMENTED (grpc-js says so).
 */
export async function serveTaskGrpc(path: string, services: Record<string, Record<string, Method>>): Promise<TaskGrpcServer> {
  const server = new Server({ "grpc.max_receive_message_length": MAX_MESSAGE_BYTES, "grpc.max_send_message_length": MAX_MESSAGE_BYTES });
  let inflight = 0;
  let waiters: Array<() => void> = [];
  for (const [service, table] of Object.entries(services)) {
    const impl: UntypedServiceImplementation = {};
    for (const [name, fn] of Object.entries(table)) {
      impl[name] = (call: ServerUnaryCall<Uint8Array, Uint8Array>, callback: sendUnaryData<Uint8Array>) => {
        inflight++;
        const done = () => {
          inflight--;
          for (const w of waiters.splice(0)) w();
        };
        let ctx: CallContext;
        try {
          ctx = callContext(service, name, call);
        } catch (err) {
          callback({ code: status.INTERNAL, details: `reading the call's metadata: ${(err as Error).message}` });
          done();
          return;
        }
        Promise.resolve()
          .then(() => fn(call.request, ctx))
          .then(
            (payload) => callback(null, payload),
            (err: unknown) => {
              const s = toStatus(err);
              callback({ code: s.code, details: s.message });
            },
          )
          .finally(done);
      };
    }
    server.addService(passThrough(service, Object.keys(table)), impl);
  }
  await bindUnixSocket(server, path, ServerCredentials.createInsecure(), "shim task service");
  let closing: Promise<void> | undefined;
  return {
    path,
    settled: async () => {
      while (inflight > 0) {
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 20);
        });
      }
      waiters = [];
    },
    close: (graceMs = 2000) =>
      (closing ??= (async () => {
        await shutdown(server, graceMs);
        const { rm } = await import("node:fs/promises");
        await rm(path, { force: true });
      })()),
  };
}
