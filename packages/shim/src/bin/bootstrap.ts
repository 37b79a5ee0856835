// What `start` tells containerd, and what it learns from containerd first. Pure except for
// `probeContainerdVersion`.
//
// containerd reads `start`'s stdout three ways (see /work/shared/design/containerd-shim-protocol.md §1.4):
//  - 1.6 takes it whole as a ttrpc address (`unix:///run/containerd/s/<hex>`): JSON would be
//    dialled as an address.
//  - 1.7 also takes JSON `{"version":2,"address":…,"protocol":"ttrpc"|"grpc"}` (version 3 is refused;
//    over gRPC it calls containerd.task.v3.Task all the same).
//  - 2.x takes JSON with version 2 or 3, and for "grpc" requires version 3 (it calls
//    containerd.task.v3.Task); with version 3 over ttrpc it calls v3 too, with 2 the v2 service.
// Which one is on the other end: 2.3+ writes a protobuf BootstrapParams on stdin (its
// containerd_version says so); 1.7 and 2.0–2.2 write the same env (MAX_SHIM_VERSION=2,
// GRPC_ADDRESS, NAMESPACE) and the same stdin (the runtime options' Any, or nothing); 1.6 writes
// none of that env. So 1.7 and 2.0–2.2 can only be told apart by asking containerd, which
// `start` does (its Version service) only when it must: for gRPC, whose version number differs.
//
// The protocol is the shim's choice: TSRUN_SHIM_PROTOCOL=grpc (containerd passes its own
// environment to shims, and 2.x's `[plugins."io.containerd.shim.v1.manager"] env` adds to it)
// serves the Task API over gRPC; the default is ttrpc, which every containerd speaks.

export const PROTOCOL_ENV = "TSRUN_SHIM_PROTOCOL";
/** Set by containerd 1.7 and 2.x (always to 2), absent from 1.6's shim environment. */
export const MAX_SHIM_VERSION_ENV = "MAX_SHIM_VERSION";
/** The gRPC task socket is the daemon's control socket (ttrpc) plus this suffix. */
export const GRPC_SOCKET_SUFFIX = ".grpc";

export type Protocol = "ttrpc" | "grpc";

export class BootstrapError extends Error {
  override name = "BootstrapError";
}

export function protocolFromEnv(env: Record<string, string | undefined> = process.env): Protocol {
  const v = env[PROTOCOL_ENV];
  if (v === undefined || v === "" || v === "ttrpc") return "ttrpc";
  if (v === "grpc") return "grpc";
  throw new BootstrapError(`${PROTOCOL_ENV}=${JSON.stringify(v)}: use ttrpc or grpc`);
}

/** containerd.runtime.bootstrap.v1.BootstrapParams (containerd 2.3+), the fields `start` reads. */
export interface BootstrapParams {
  instanceId: string;
  namespace: string;
  logLevel: number;
  containerdVersion: string;
  containerdTtrpcAddress: string;
  containerdGrpcAddress: string;
  containerdBinary: string;
  /** Each extension's Any (the runtime options travel here), undecoded. */
  extensions: Uint8Array[];
  socketDir?: string;
}

/** Reads protobuf wire format field by field; throws on anything malformed. */
class Wire {
  pos = 0;
  constructor(private readonly b: Uint8Array) {}
  get done(): boolean {
    return this.pos >= this.b.length;
  }
  varint(): bigint {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (this.pos >= this.b.length) throw new BootstrapError("truncated varint");
      if (shift > 63n) throw new BootstrapError("varint longer than 10 bytes");
      const byte = this.b[this.pos++]!;
      v |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v & 0xffffffffffffffffn;
    }
  }
  bytes(): Uint8Array {
    const n = Number(this.varint());
    if (this.pos + n > this.b.length) throw new BootstrapError("length-delimited field runs past the end");
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.advance(8);
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.advance(4);
    else throw new BootstrapError(`unsupported wire type ${wireType}`);
  }
  private advance(n: number): void {
    if (this.pos + n > this.b.length) throw new BootstrapError("fixed-size field runs past the end");
    this.pos += n;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes a BootstrapParams; throws BootstrapError if the bytes are not one. */
export function decodeBootstrapParams(bytes: Uint8Array): BootstrapParams {
  const p: BootstrapParams = { instanceId: "", namespace: "", logLevel: 0, containerdVersion: "", containerdTtrpcAddress: "", containerdGrpcAddress: "", containerdBinary: "", extensions: [] };
  const w = new Wire(bytes);
  const str = () => {
    try {
      return utf8.decode(w.bytes());
    } catch (err) {
      if (err instanceof BootstrapError) throw err;
      throw new BootstrapError("a string field is not UTF-8");
    }
  };
  while (!w.done) {
    const key = Number(w.varint());
    const field = key >>> 3;
    const type = key & 7;
    if (field === 0) throw new BootstrapError("field number 0");
    const expect = field === 3 ? 0 : field >= 1 && field <= 9 ? 2 : -1;
    if (expect !== -1 && type !== expect) throw new BootstrapError(`field ${field} has wire type ${type}, expected ${expect}`);
    switch (field) {
      case 1: p.instanceId = str(); break;
      case 2: p.namespace = str(); break;
      // An enum is an int32: negative values (DEBUG -4, TRACE -8) come as 10-byte varints.
      case 3: p.logLevel = Number(BigInt.asIntN(32, w.varint())); break;
      case 4: p.containerdVersion = str(); break;
      case 5: p.containerdTtrpcAddress = str(); break;
      case 6: p.containerdGrpcAddress = str(); break;
      case 7: p.containerdBinary = str(); break;
      case 8: p.extensions.push(w.bytes()); break;
      case 9: p.socketDir = str(); break;
      default: w.skip(type);
    }
  }
  return p;
}

/**
 * containerd 2.3+'s BootstrapParams, if that is what stdin holds. A legacy options Any also
 * decodes as one (its type_url and value are fields 1 and 2), so, as containerd's own shim
 * library does, it counts only if its instance id and namespace are the -id and -namespace flags.
 */
export function bootstrapFromStdin(stdin: Uint8Array, id: string, namespace: string): BootstrapParams | undefined {
  if (stdin.length === 0) return undefined;
  let p: BootstrapParams;
  try {
    p = decodeBootstrapParams(stdin);
  } catch {
    return undefined;
  }
  return p.instanceId === id && p.namespace === namespace ? p : undefined;
}

/** The major number of a containerd version string ("v2.1.5", "2.3.0-rc.1", "1.7.27~ds1"), or NaN. */
export function majorVersion(version: string): number {
  const m = /^v?(\d+)\./.exec(version.trim());
  return m ? Number(m[1]) : NaN;
}

/** What `start` knows of the containerd that runs it. */
export type Engine =
  /** 2.3+: BootstrapParams on stdin. */
  | { kind: "bootstrap"; version: string }
  /** 1.7 or 2.0–2.2 (MAX_SHIM_VERSION is set), not told apart yet. */
  | { kind: "json" }
  /** 1.6 (or anything else that sets no MAX_SHIM_VERSION): a plain address only. */
  | { kind: "plain" };

export function engineOf(params: BootstrapParams | undefined, env: Record<string, string | undefined>): Engine {
  if (params) return { kind: "bootstrap", version: params.containerdVersion };
  if (env[MAX_SHIM_VERSION_ENV]) return { kind: "json" };
  return { kind: "plain" };
}

/**
 * The Task API version to announce: 3 when containerd is 2.x and will use it (always over gRPC,
 * where 2.x requires it; over ttrpc when 2.3+ said who it is), 2 for 1.7 over gRPC, and
 * undefined for a plain address (ttrpc, v2: what 1.6 needs, and what 1.7 and 2.0–2.2 take
 * without `start` having to ask containerd its version). `containerdVersion` is needed (asked
 * for) only for gRPC with a "json" engine.
 */
export async function announcedVersion(engine: Engine, protocol: Protocol, containerdVersion: () => Promise<string>): Promise<2 | 3 | undefined> {
  if (engine.kind === "bootstrap") return 3;
  if (protocol === "ttrpc") return undefined;
  if (engine.kind === "plain") throw new BootstrapError(`${PROTOCOL_ENV}=grpc needs containerd 1.7 or later: this containerd passes no ${MAX_SHIM_VERSION_ENV} (1.6 takes only a ttrpc address from a shim)`);
  const version = await containerdVersion();
  const major = majorVersion(version);
  if (Number.isNaN(major)) throw new BootstrapError(`containerd reported version ${JSON.stringify(version)}, which does not say whether it is 1.x or 2.x`);
  return major >= 2 ? 3 : 2;
}

/** `start`'s output (and the content of <bundle>/address) for a daemon whose control socket is `socket`. */
export function startOutput(socket: string, protocol: Protocol, version: 2 | 3 | undefined): string {
  if (version === undefined) {
    if (protocol !== "ttrpc") throw new BootstrapError("a plain address is a ttrpc address");
    return `unix://${socket}`;
  }
  // gRPC addresses are bare paths (containerd dials them as unix sockets itself); a ttrpc
  // address without unix:// would be an abstract socket.
  const address = protocol === "grpc" ? `${socket}${GRPC_SOCKET_SUFFIX}` : `unix://${socket}`;
  return JSON.stringify({ version, address, protocol });
}

/** The sockets (control first) named by a start output or an address file, whichever form. */
export function socketsOf(output: string): string[] {
  const text = output.trim();
  let address = text;
  let protocol = "ttrpc";
  if (text.startsWith("{")) {
    try {
      const j = JSON.parse(text) as { address?: unknown; protocol?: unknown; version?: unknown };
      if (typeof j.address === "string" && typeof j.version === "number" && j.version >= 2) {
        address = j.address;
        protocol = typeof j.protocol === "string" ? j.protocol : "ttrpc";
      }
    } catch {
      // Not JSON after all: containerd would take it whole as an address too.
    }
  }
  if (protocol === "grpc") {
    const path = address.startsWith("unix://") ? address.slice("unix://".length) : address;
    return path.endsWith(GRPC_SOCKET_SUFFIX) ? [path.slice(0, -GRPC_SOCKET_SUFFIX.length), path] : [path];
  }
  return address.startsWith("unix://") ? [address.slice("unix://".length)] : [];
}

/**
 * Asks containerd's gRPC API (containerd.services.version.v1.Version, served by 1.x and 2.x
 * alike on the -address socket) for its version.
 */
export async function probeContainerdVersion(address: string, timeoutMs = 5000): Promise<string> {
  if (!address) throw new BootstrapError("cannot ask containerd its version: -address is empty");
  const grpc = await import("@grpc/grpc-js");
  const target = address.startsWith("unix:") ? address : `unix://${address}`;
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  try {
    const reply = await new Promise<Uint8Array>((resolve, reject) => {
      client.makeUnaryRequest(
        "/containerd.services.version.v1.Version/Version",
        (b: Uint8Array) => Buffer.from(b),
        (b: Buffer) => new Uint8Array(b),
        new Uint8Array(0),
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, value) => (err ? reject(err) : resolve(value ?? new Uint8Array(0))),
      );
    });
    // VersionResponse{string version = 1; string revision = 2}
    const w = new Wire(reply);
    while (!w.done) {
      const key = Number(w.varint());
      if (key >>> 3 === 1 && (key & 7) === 2) return utf8.decode(w.bytes());
      w.skip(key & 7);
    }
    return "";
  } catch (err) {
    throw new BootstrapError(`cannot ask containerd at ${address} its version (to choose the Task API version for gRPC): ${(err as Error).message}`);
  } finally {
    client.close();
  }
}
