// A ttrpc server on a unix socket: unary calls only (the Task API has no streams), dispatched by
// full service name and bare method name, served concurrently because Wait blocks until the
// container exits while other calls go on over the same connection.
import type { Socket, UnixSocketListener } from "bun";
import { FrameConn } from "./conn.ts";
import { FrameType, MAX_DATA_LENGTH, type Frame } from "./frame.ts";
import { requestCodec, responseCodec, type Request } from "./messages.ts";
import { Code, TtrpcError, toStatus } from "./status.ts";

/** ttrpc request flags: a unary call has neither. */
const FLAG_REMOTE_CLOSED = 0x01;
const FLAG_REMOTE_OPEN = 0x02;

export interface CallContext {
  service: string;
  method: string;
  /** Request metadata; keys as sent (containerd sends `containerd-namespace-ttrpc`). */
  metadata: ReadonlyMap<string, readonly string[]>;
  /** The client's deadline as a Date.now() value, when it sent one. */
  deadline?: number;
}

/** A unary method: the request's payload bytes in, the response's payload bytes out. */
export type Method = (payload: Uint8Array, ctx: CallContext) => Uint8Array | Promise<Uint8Array>;

interface ConnData {
  conn?: FrameConn;
}

export class TtrpcServer {
  private services = new Map<string, Map<string, Method>>();
  private listener: UnixSocketListener<ConnData> | undefined;
  private conns = new Set<FrameConn>();
  /** Calls whose responses have not been written yet (see `settled`). */
  private inflight = 0;
  private waiters: Array<() => void> = [];

  register(service: string, methods: Record<string, Method>): void {
    const table = this.services.get(service) ?? new Map<string, Method>();
    for (const [name, fn] of Object.entries(methods)) table.set(name, fn);
    this.services.set(service, table);
  }

  /** Runs one decoded request through its method; never throws (errors become a status). */
  async dispatch(req: Request): Promise<{ code: number; message: string; payload: Uint8Array }> {
    const method = this.services.get(req.service)?.get(req.method);
    if (!method) {
      const what = this.services.has(req.service) ? `method ${req.method} of service ${req.service}` : `service ${req.service}`;
      return { code: Code.UNIMPLEMENTED, message: `${what} is not implemented`, payload: new Uint8Array(0) };
    }
    const metadata = new Map<string, string[]>();
    for (const kv of req.metadata) metadata.set(kv.key, [...(metadata.get(kv.key) ?? []), kv.value]);
    const ctx: CallContext = { service: req.service, method: req.method, metadata };
    if (req.timeoutNano > 0) ctx.deadline = Date.now() + req.timeoutNano / 1e6;
    try {
      const payload = await method(req.payload, ctx);
      return { code: Code.OK, message: "", payload };
    } catch (err) {
      return { ...toStatus(err), payload: new Uint8Array(0) };
    }
  }

  /** Listens on a socket path, or on an abstract socket when `path` starts with "\0". */
  listen(path: string): void {
    if (this.listener) throw new Error("ttrpc server is already listening");
    this.listener = Bun.listen<ConnData>({
      unix: path,
      socket: {
        open: (socket) => {
          const conn = new FrameConn(socket as Socket<unknown>);
          socket.data = { conn };
          this.conns.add(conn);
        },
        data: (socket, chunk) => {
          const conn = socket.data.conn;
          if (conn) this.onData(conn, chunk);
        },
        drain: (socket) => socket.data.conn?.flush(),
        close: (socket) => this.drop(socket.data.conn),
        error: (socket) => this.drop(socket.data.conn),
      },
    });
  }

  /** Stops accepting connections and closes the open ones; calls in flight are abandoned. */
  close(): void {
    this.listener?.stop(true);
    this.listener = undefined;
    for (const conn of this.conns) {
      conn.closed = true;
      conn.socket.end();
    }
    this.conns.clear();
  }

  /** Resolves once no call is in flight and every response has reached the kernel. */
  async settled(): Promise<void> {
    while (this.inflight > 0 || [...this.conns].some((c) => !c.idle)) {
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
  }

  private drop(conn: FrameConn | undefined): void {
    if (!conn) return;
    conn.closed = true;
    this.conns.delete(conn);
  }

  private onData(conn: FrameConn, chunk: Uint8Array): void {
    for (const d of conn.receive(chunk)) {
      if (d.kind === "oversized") {
        this.reply(conn, d.streamId, Code.RESOURCE_EXHAUSTED, `message of ${d.length} bytes exceeds the maximum of ${MAX_DATA_LENGTH}`);
        continue;
      }
      this.onFrame(conn, d.frame);
    }
  }

  private onFrame(conn: FrameConn, frame: Frame): void {
    // Data frames belong to streams, which no unary service has; ttrpc drops stray ones too.
    if (frame.type !== FrameType.Request) return;
    if (frame.streamId % 2 !== 1) {
      this.reply(conn, frame.streamId, Code.INVALID_ARGUMENT, `stream id ${frame.streamId} is not odd: client streams must use odd ids`);
      return;
    }
    if (frame.flags & FLAG_REMOTE_OPEN && !(frame.flags & FLAG_REMOTE_CLOSED)) {
      this.reply(conn, frame.streamId, Code.UNIMPLEMENTED, "streaming requests are not supported by this server");
      return;
    }
    let req: Request;
    try {
      req = requestCodec().decode(frame.data);
    } catch (err) {
      this.reply(conn, frame.streamId, Code.INVALID_ARGUMENT, `malformed ttrpc request: ${(err as Error).message}`);
      return;
    }
    this.inflight++;
    void this.dispatch(req)
      .then((r) => this.reply(conn, frame.streamId, r.code, r.message, r.payload))
      .finally(() => {
        this.inflight--;
        for (const w of this.waiters.splice(0)) w();
      });
  }

  private reply(conn: FrameConn, streamId: number, code: number, message: string, payload: Uint8Array = new Uint8Array(0)): void {
    let data = responseCodec().encode({ status: { code, message, details: [] }, payload });
    if (data.length > MAX_DATA_LENGTH) {
      const err = new TtrpcError(Code.RESOURCE_EXHAUSTED, `response of ${data.length} bytes exceeds the maximum of ${MAX_DATA_LENGTH}`);
      data = responseCodec().encode({ status: { code: err.code, message: err.message, details: [] }, payload: new Uint8Array(0) });
    }
    conn.send({ streamId, type: FrameType.Response, flags: 0, data });
  }
}
